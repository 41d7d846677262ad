"""Predicted latency as a design figure: `archgen search SPACE --latency TABLE.json` constrains and optimises
the latency each candidate's stems, blocks and heads sum to in the table, and `archgen calibrate --space`
times a sample of the space's configurations. Tables here are filled by hand, so the figures are exact."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import archgen
from archgen.bench import latency
from archgen.cli.app import app
from archgen.design import load_space
from archgen.design.search import every
from conftest import filled_latency_table, tiny_resnet

runner = CliRunner()
FAST = 0.1  # ms of each configuration only the widest candidate holds
WIDTHS = [16, 24, 32]


@pytest.fixture()
def space(tmp_path):
    (tmp_path / "tiny_resnet.yaml").write_text(tiny_resnet("tiny_resnet", "the space's parent"))
    path = tmp_path / "space.yaml"
    path.write_text("name: tiny_widths\ndescription: the tiny ResNet's second stage at three widths\n"
                    "extends: tiny_resnet.yaml\nstages:\n  - {depth: 2, width: 8}\n"
                    f"  - {{depth: 2, width: {{choice: {WIDTHS}}}, stride: 2}}\n")
    return path


def candidates(path) -> dict[int, object]:
    loaded = load_space(str(path))
    return {values[0]: loaded.spec(values) for values in every(loaded)}


def table_file(tmp_path, specs: list, fast: list = ()) -> str:
    """The specs' configurations at 1 ms each, those of `fast` alone at FAST ms."""
    table = filled_latency_table(specs)
    others = {seg.key for spec in specs if spec not in fast for seg in latency.segments(archgen.profile(spec))}
    for key, entry in table["blocks"].items():
        if key not in others:
            entry["ms"] = {k: FAST for k in entry["ms"]}
    out = tmp_path / "table.json"
    out.write_text(json.dumps(table))
    return str(out)


def search_json(*args: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["search", *args, "-f", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_the_front_over_latency_and_params_holds_the_smallest_and_the_fastest(space, tmp_path):
    """Width 32 is made fastest (its second stage's blocks and its head take 0.1 ms), width 16 has fewest params;
    width 24 is beaten by 16 on both and leaves the front. Each latency is the table's sum: stem, 4 blocks, head."""
    specs = candidates(space)
    table = table_file(tmp_path, list(specs.values()), fast=[specs[32]])
    data, _ = search_json(str(space), "--latency", table, "--minimize", "latency", "--minimize", "params")
    rows = {row["width2"]: row for row in data["rows"]}
    assert set(rows) == {16, 32}
    assert rows[16]["latency (ms)"] == pytest.approx(6.0) and rows[32]["latency (ms)"] == pytest.approx(3 + 3 * FAST)
    assert rows[16]["params"] < rows[32]["params"]


def test_a_latency_constraint_keeps_the_candidates_under_it(space, tmp_path):
    specs = candidates(space)
    table = table_file(tmp_path, list(specs.values()), fast=[specs[32]])
    data, stderr = search_json(str(space), "--latency", table, "--minimize", "params", "-c", "latency <= 5")
    assert [row["width2"] for row in data["rows"]] == [32]
    assert "1 met the constraints" in stderr


def test_candidates_the_table_cannot_predict_are_counted_and_named(space, tmp_path):
    specs = candidates(space)
    table = table_file(tmp_path, [specs[16], specs[24]])
    data, stderr = search_json(str(space), "--latency", table, "--minimize", "latency")
    assert {row["width2"] for row in data["rows"]} <= {16, 24}
    assert "1 had configurations the latency table lacks" in stderr and "archgen calibrate --space" in stderr

    other = table_file(tmp_path, ["resnet20_cifar"])
    result = runner.invoke(app, ["search", str(space), "--latency", other, "--minimize", "latency"])
    assert result.exit_code == 2
    assert "lacks the configuration of tiny_widths's stem" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args, words", [
    (["-c", "latency <= 5"], "reads the predicted latency, and no latency table was given"),
    (["--minimize", "latency"], "the objective reads the predicted latency"),
    (["--latency", "missing.json"], "cannot read the latency table"),
    (["--latency", "t.json", "--latency-condition", "eager/b1"], "write BACKEND/DTYPE/LAYOUT/bBATCH"),
])
def test_latency_without_a_usable_table_exits_2(space, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.json").write_text(json.dumps(filled_latency_table(["resnet20_cifar"])))
    result = runner.invoke(app, ["search", str(space), *args])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split())


def test_a_latency_target_is_refused_at_its_line(space):
    space.write_text(space.read_text() + "space:\n  closest: {latency: 5}\n")
    result = runner.invoke(app, ["search", str(space)])
    assert result.exit_code == 2
    assert "space.yaml:8" in result.output and "constrain it instead" in " ".join(result.output.split())


def test_calibrate_space_times_a_sample_of_its_candidates(space, tmp_path):
    """Ten draws of a three-candidate space (seed 0) cover all three; the search can then predict each."""
    out = tmp_path / "sampled.json"
    result = runner.invoke(app, ["calibrate", "--space", str(space), "--n", "10", "--cpu", "--backends", "eager",
                                 "--batch-sizes", "1", "--warmup", "0", "--reps", "1", "--rounds", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert all(name.startswith("tiny_widths_") for name in table["config"]["specs"])
    data, stderr = search_json(str(space), "--latency", str(out), "--minimize", "latency", "--strategy",
                               "exhaustive", "--minimize", "params")
    assert "3 met the constraints" in stderr and data["rows"]
    assert all(row["latency (ms)"] > 0 for row in data["rows"])


def test_a_table_from_another_device_warns_once_per_search(space, tmp_path):
    specs = candidates(space)
    table = filled_latency_table(list(specs.values()))
    table["environment"]["device"] = "Another GPU"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(table))
    _, stderr = search_json(str(space), "--latency", str(path), "--minimize", "latency")
    assert stderr.count("warning: latency table") == 1 and "measured on Another GPU" in stderr
