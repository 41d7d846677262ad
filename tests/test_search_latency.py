"""Predicted latency as a design figure: `archgen search SPACE --latency DEVICE.json` predicts every candidate
inside the counted constraints (none is turned away for a configuration never timed), constrains and
optimises the figure `latency`, and `--verify K` builds and measures the predicted front and K others. The
model is conftest's synthetic one (eager), so the predicted figures are exact and reproducible."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from archgen.bench.latency_model import load_model, write_model
from archgen.cli.app import app
from archgen.design import load_space
from archgen.design.evaluate import Evaluator, Rejections, Verdict
from archgen.design.figures import Figures
from archgen.design.search import every
from archgen.design.verify import DRAWS_PER_OTHER, Checked, Verification, kendall_tau, others
from archgen.render import one_format
from conftest import tiny_resnet
from test_80_columns import assert_reads_at_80

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
    checked = [Checked(f"n{i}", i == 0, p, m, p / m - 1, None, {}) for i, (p, m) in
               enumerate([(1.0, 1.1), (2.0, 2.4), (3.0, 3.9), (4.0, 5.0)])]
    v = Verification("space", "eager, batch 1", checked, 1, None, 3)
    assert v.scale == 1.25 and v.tau == 1.0  # the ratios 1.1, 1.2, 1.3, 1.25: the upper median
    assert "measured 1.25x the prediction at the median, ranked with Kendall's tau 1.00" in v.summary()
    flat = Verification("space", "eager, batch 1", [c._replace(predicted_ms=2.0) for c in checked], 1, None, 3)
    assert flat.tau is None and "tau" not in flat.summary()  # predictions all tied rank nothing


def fake_timing(monkeypatch) -> None:
    """--verify's timing replaced by fixed figures: these tests read what is printed, not the machine."""
    monkeypatch.setattr("archgen.bench.kernel_timing.time_networks",
                        lambda specs, *a, **k: [1.25 + i for i in range(len(specs))])


def predictions(path, model_file) -> dict[int, object]:
    """Each width's prediction (total ms, kernel units extrapolated) as the model makes it."""
    loaded, model = load_space(str(path)), load_model(model_file)
    return {values[0]: model.predict(loaded.spec(values)) for values in every(loaded)}


@pytest.mark.parametrize("finite", [True, False])
def test_verify_stops_drawing_others_once_the_space_holds_no_more(space, monkeypatch, finite):
    """The tiny space has 3 candidates: asked for 1,000 others besides the front's one, it gives the other 2
    after a handful of draws (known size), or after a run of DRAWS_PER_OTHER draws that meet nothing new
    (unknown size), not after 200 draws per candidate asked for."""
    import archgen.design.verify as verify_module

    loaded = load_space(str(space))
    if not finite:
        monkeypatch.setattr(loaded, "size", lambda: None)
    draws = []
    real_draw = verify_module.draw
    monkeypatch.setattr(verify_module, "draw", lambda s, rng: draws.append(1) or real_draw(s, rng))
    found = others(loaded, Evaluator(loaded, []), {(16,)}, 1_000, seed=1)
    assert sorted(v.values for v in found) == [(24,), (32,)]
    assert len(draws) < (20 if finite else 2 * DRAWS_PER_OTHER)


def test_verify_says_how_many_others_it_found_when_the_space_has_fewer(space, latency_model_file, monkeypatch):
    fake_timing(monkeypatch)
    result = runner.invoke(app, ["search", str(space), "--latency", str(latency_model_file), "--minimize",
                                 "latency", "--minimize", "params", "--verify", "1000"])
    assert result.exit_code == 0, result.output
    assert "measured 1 front member(s) and 2 other candidate(s) (of 1,000 asked for; the space gave no more " \
           "inside the constraints)" in " ".join(result.stdout.split())


def test_verify_beyond_its_bound_is_refused_in_a_sentence(space, latency_model_file):
    result = runner.invoke(app, ["search", str(space), "--latency", str(latency_model_file), "--minimize",
                                 "latency", "--verify", "100000"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--verify 100,000 asks to build and time 100,000 networks" in " ".join(result.output.split())


def test_the_latency_summary_counts_distinct_candidates_not_draws(space, latency_model_file):
    """50 random draws of a space of 3 candidates predict 3 candidates' latency (the draws stay 50)."""
    _, stderr = search_json(str(space), "--latency", str(latency_model_file), "--minimize", "latency",
                            "--strategy", "random", "--budget", "50")
    said = " ".join(stderr.split())
    assert "drew 50 candidates" in said
    assert "latency predicted for 3 candidates, 3 with kernels outside the calibrated ranges" in said


def test_a_candidate_recorded_twice_is_predicted_once():
    tally = Rejections()
    for values in [(16,), (16,), (24,)]:
        tally.record(Verdict(values, Figures(1, 1, 1, 1, latency=2.0), extrapolated=int(values[0] == 16)))
    assert (tally.drawn, tally.predicted, tally.extrapolated) == (3, 2, 1)


def test_the_front_says_how_many_kernel_units_each_member_extrapolates(space, latency_model_file):
    """A column 'extrapolated' beside the predicted latency, in the table (at 80 columns) and in JSON and CSV."""
    args = [str(space), "--latency", str(latency_model_file), "--minimize", "latency", "--minimize", "params"]
    data, _ = search_json(*args)
    expected = predictions(space, latency_model_file)[16].extrapolated
    assert expected > 0 and data["rows"][0]["extrapolated"] == expected
    csv_rows = runner.invoke(app, ["search", *args, "-f", "csv"]).stdout.splitlines()
    assert csv_rows[0].endswith(",latency (ms),extrapolated") and csv_rows[1].endswith(f",{expected}")
    rich = runner.invoke(app, ["search", *args], env={"COLUMNS": "80"}).stdout
    assert_reads_at_80(rich, runner.invoke(app, ["search", *args, "-f", "markdown"]).stdout)
    header = next(line for line in rich.splitlines() if line.split()[:1] == ["name"])
    row = next(line for line in rich.splitlines() if "tiny_widths_0" in line)
    assert header.split()[-1] == "extrapolated" and row.split()[-1] == str(expected)


def test_machine_formats_carry_the_exact_predicted_latency(space, latency_model_file):
    """JSON and CSV hold the latency as the model predicts it (as profile --latency's predicted_ms does); the
    table shows it rounded."""
    exact = predictions(space, latency_model_file)[16].total_ms
    args = [str(space), "--latency", str(latency_model_file), "--minimize", "latency", "--minimize", "params"]
    data, _ = search_json(*args)
    assert data["rows"][0]["latency (ms)"] == exact
    csv_row = runner.invoke(app, ["search", *args, "-f", "csv"]).stdout.splitlines()[1]
    assert csv_row.split(",")[-2] == repr(exact)
    row = next(line for line in runner.invoke(app, ["search", *args]).stdout.splitlines() if "tiny_widths_0" in line)
    assert one_format([exact])[0].text in row.split()


def test_verify_says_which_candidates_it_checked(space, latency_model_file, monkeypatch):
    """An other candidate is on no table but the verify table: its axis values are there and in JSON."""
    fake_timing(monkeypatch)
    args = ["search", str(space), "--latency", str(latency_model_file), "--minimize", "latency", "--minimize",
            "params", "--verify", "2"]
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout)[1]["checked"]
    assert checked[0]["values"] == {"width2": 16}  # the front
    assert sorted(c["values"]["width2"] for c in checked[1:]) == [24, 32]
    rich = runner.invoke(app, args, env={"COLUMNS": "120"}).stdout
    verify_lines = rich.split("predicted latency checked on", 1)[1].splitlines()
    for c in checked:
        line = next(line for line in verify_lines if c["name"] in line.split())
        assert f"width2={c['values']['width2']}" in line


@pytest.mark.parametrize("why", ["cuda", "runtime"])
def test_verify_refuses_what_it_cannot_time_before_it_searches(space, latency_model_file, tmp_path, monkeypatch,
                                                               why):
    """A model calibrated on a CUDA GPU this machine lacks, or on a runtime not installed here, is refused by
    the timing's own checks before the search runs, not after it."""
    doc = json.loads(latency_model_file.read_text())
    if why == "cuda":
        doc["device"]["device"] = "cuda"
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
        words = "this asks for the CUDA GPU, but torch"
    else:
        doc["backend"] = "onnxruntime"
        doc["device"]["nchwc_block"] = 16
        monkeypatch.setattr("archgen.bench.runner.missing_runtime",
                            lambda backend: f"the {backend} backend needs ONNX Runtime, which is not installed")
        words = "the onnxruntime backend needs ONNX Runtime, which is not installed"
    model = tmp_path / "model.json"
    write_model(model, {k: v for k, v in doc.items() if k != "checksum"})
    searched = []
    monkeypatch.setattr(sys.modules["archgen.design.search"], "search", lambda *a, **k: searched.append(a))
    result = runner.invoke(app, ["search", str(space), "--latency", str(model), "--minimize", "latency",
                                 "--verify", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert words in " ".join(result.output.split()) and not searched


def test_the_verify_table_says_in_one_column_whether_a_member_stays_on_the_front():
    """'kept' or 'dominated' once measured, 'yes' where the objective has no front to lose, 'no' off it: one
    column instead of two, so that fewer lines are spent per candidate at 80 columns; JSON keeps both fields."""
    from archgen.cli.latency_view import verify_table

    checked = [Checked(f"c{i}", on_front, 1.0, 1.1, -0.09, dominated, {"depth": 13})
               for i, (on_front, dominated) in enumerate([(True, False), (True, True), (True, None), (False, None)])]
    table = verify_table(Verification("space", "eager, batch 1, on the CPU", checked, 3, 1))
    assert table.columns[:2] == ["name", "front"] and "dominated" not in table.columns
    assert [row[1] for row in table.rows] == ["kept", "dominated", "yes", "no"]
    assert [c["dominated"] for c in table.data["checked"]] == [False, True, None, None]
