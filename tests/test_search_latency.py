"""Predicted latency as a design figure: `archgen search SPACE --latency DEVICE.json` predicts every candidate
inside the counted constraints (none is turned away for a configuration never timed), constrains and
optimises the figure `latency`, and `--verify K` builds and measures the predicted front and K others. The
model is conftest's synthetic one (eager), so the predicted figures are exact and reproducible."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from archgen.bench.latency_model import load_model, write_model
from archgen.cli.app import app
from archgen.design import load_space
from archgen.design.search import every
from archgen.design.verify import Checked, Verification, kendall_tau
from conftest import tiny_resnet

runner = CliRunner()
WIDTHS = [16, 24, 32]


@pytest.fixture()
def space(tmp_path):
    (tmp_path / "tiny_resnet.yaml").write_text(tiny_resnet("tiny_resnet", "the space's parent"))
    path = tmp_path / "space.yaml"
    path.write_text("name: tiny_widths\ndescription: the tiny ResNet's second stage at three widths\n"
                    "extends: tiny_resnet.yaml\nstages:\n  - {depth: 2, width: 8}\n"
                    f"  - {{depth: 2, width: {{choice: {WIDTHS}}}, stride: 2}}\n")
    return path


def predicted(path, model_file) -> dict[int, float]:
    """Each width's latency as the model predicts it."""
    loaded, model = load_space(str(path)), load_model(model_file)
    return {values[0]: model.predict(loaded.spec(values)).total_ms for values in every(loaded)}


def search_json(*args: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["search", *args, "-f", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_every_candidate_is_predicted_and_the_front_trades_latency_for_params(space, latency_model_file):
    """Wider is slower and larger, so minimising both keeps only the narrowest, at the model's latency."""
    data, stderr = search_json(str(space), "--latency", str(latency_model_file), "--minimize", "latency",
                               "--minimize", "params")
    assert "latency predicted for 3 candidates" in stderr and "lacks" not in stderr
    ms = predicted(space, latency_model_file)
    assert [row["width2"] for row in data["rows"]] == [16]
    assert data["rows"][0]["latency (ms)"] == pytest.approx(ms[16], abs=1e-4)


def test_a_latency_constraint_keeps_the_candidates_under_it(space, latency_model_file):
    ms = predicted(space, latency_model_file)
    limit = (ms[24] + ms[32]) / 2
    data, stderr = search_json(str(space), "--latency", str(latency_model_file), "--maximize", "params",
                               "-c", f"latency <= {limit:.4f}")
    assert [row["width2"] for row in data["rows"]] == [24]
    assert "2 met the constraints" in stderr


def test_the_batch_option_predicts_at_that_batch(space, latency_model_file):
    one, _ = search_json(str(space), "--latency", str(latency_model_file), "--minimize", "latency")
    two, stderr = search_json(str(space), "--latency", str(latency_model_file), "--minimize", "latency",
                              "--batch", "16")
    assert two["rows"][0]["latency (ms)"] > one["rows"][0]["latency (ms)"]
    assert "3 with kernels outside the calibrated ranges" in stderr


@pytest.mark.parametrize("args, words", [
    (["-c", "latency <= 5"], "reads the predicted latency, and no latency model was given"),
    (["--minimize", "latency"], "the objective reads the predicted latency"),
    (["--latency", "missing.json"], "cannot read the latency model 'missing.json'"),
    (["--verify", "1"], "--verify measures the predicted latency, and no latency model was given"),
    (["--latency", "{model}", "--verify", "1", "-f", "csv"], "CSV holds one"),
])
def test_latency_without_a_usable_model_exits_2(space, tmp_path, monkeypatch, latency_model_file, args, words):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["search", str(space), *[a.format(model=latency_model_file) for a in args]])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()) and "Traceback" not in result.output


def test_a_latency_target_is_refused_at_its_line(space):
    space.write_text(space.read_text() + "space:\n  closest: {latency: 5}\n")
    result = runner.invoke(app, ["search", str(space)])
    assert result.exit_code == 2
    assert "space.yaml:8" in result.output and "constrain it instead" in " ".join(result.output.split())


def test_a_model_from_another_device_warns_once_per_search(space, latency_model_file, tmp_path):
    doc = json.loads(latency_model_file.read_text())
    doc["device"]["name"] = "Another CPU"
    other = tmp_path / "other.json"
    write_model(other, {k: v for k, v in doc.items() if k != "checksum"})
    _, stderr = search_json(str(space), "--latency", str(other), "--minimize", "latency")
    assert stderr.count("warning: latency model") == 1 and "made with name Another CPU" in stderr


def test_verify_measures_the_front_and_others_and_judges_the_front_again(space, latency_model_file):
    """The front (one member) and one other candidate are built and timed on eager; each row has a measured
    figure, and the note says how many front members a measured candidate dominates."""
    result = runner.invoke(app, ["search", str(space), "--latency", str(latency_model_file), "--minimize", "latency",
                                 "--minimize", "params", "--verify", "1", "-f", "json"])
    assert result.exit_code == 0, result.output
    front, verify = json.loads(result.stdout)
    checked = verify["checked"]
    assert [c["on_front"] for c in checked] == [True, False] and verify["front"] == 1
    assert checked[0]["name"] == "tiny_widths_0" and checked[1]["name"] == "tiny_widths_other0"
    assert all(c["measured_ms"] > 0 for c in checked)
    assert checked[0]["predicted_ms"] == pytest.approx(front["rows"][0]["latency (ms)"], abs=1e-4)
    assert checked[0]["dominated"] in (True, False) and checked[1]["dominated"] is None
    assert verify["dominated"] == int(checked[0]["dominated"])
    assert "measuring 2 networks on eager, batch 1" in result.stderr
    # the scale is the median of measured over predicted (of two, the larger); two candidates rank nothing
    ratios = sorted(c["measured_ms"] / c["predicted_ms"] for c in checked)
    assert verify["scale"] == pytest.approx(ratios[1]) and verify["kendall_tau"] is None


@pytest.mark.parametrize("xs, ys, tau", [
    ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
    ([1, 2, 3, 4], [40, 30, 20, 10], -1.0),
    # 6 pairs: 5 concordant, 1 discordant (the middle two swapped)
    ([1, 2, 3, 4], [1, 3, 2, 4], (5 - 1) / 6),
    # tau-b with a tie in x: pairs 5 untied (4 concordant, 1 discordant), 1 tied in x only
    ([1, 1, 2, 3], [1, 2, 4, 3], (4 - 1) / ((5 + 1) * 5) ** 0.5),
])
def test_kendall_tau_counts_concordant_pairs_as_tau_b(xs, ys, tau):
    assert kendall_tau(xs, ys) == pytest.approx(tau)


def test_verify_reports_the_models_scale_and_how_it_ranked_what_was_measured():
    """A model whose scale is off by a common factor still ranks: --verify's sentence says both."""
    checked = [Checked(f"n{i}", i == 0, p, m, p / m - 1, None) for i, (p, m) in
               enumerate([(1.0, 1.1), (2.0, 2.4), (3.0, 3.9), (4.0, 5.0)])]
    v = Verification("space", "eager, batch 1", checked, 1, None, 3)
    assert v.scale == 1.25 and v.tau == 1.0  # the ratios 1.1, 1.2, 1.3, 1.25: the upper median
    assert "measured 1.25x the prediction at the median, ranked with Kendall's tau 1.00" in v.summary()
    flat = Verification("space", "eager, batch 1", [c._replace(predicted_ms=2.0) for c in checked], 1, None, 3)
    assert flat.tau is None and "tau" not in flat.summary()  # predictions all tied rank nothing
