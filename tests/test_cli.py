"""The CLI end to end: summaries in every format, saved weights, listing, and a fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.grammar.loader import bundled_names

runner = CliRunner()


def test_build_prints_the_stages_in_bracket_notation():
    result = runner.invoke(app, ["build", "specs/resnext50_32x4d.yaml"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "[1x1, 128; 3x3, 128, C=32; 1x1, 256] x 3" in result.stdout
    assert "25.03M" in result.stdout and "4.23G" in result.stdout


def test_build_json_carries_exact_integers():
    result = runner.invoke(app, ["build", "resnet50", "--format", "json", "--input-size", "224"])
    data = json.loads(result.stdout)
    assert data["params"] == 25_557_032 and data["macs"] == 4_089_184_256  # fvcore's conv + linear count
    assert data["flops"] == 2 * data["macs"]
    assert [s["output"] for s in data["stages"]][1:5] == [[256, 56, 56], [512, 28, 28], [1024, 14, 14],
                                                          [2048, 7, 7]]


def test_build_input_size_changes_the_counts():
    small = json.loads(runner.invoke(app, ["build", "resnet18", "-f", "json", "--input-size", "112"]).stdout)
    assert small["input_size"] == 112 and small["params"] == 11_689_512
    assert small["stages"][4]["output"] == [512, 4, 4]


def test_build_markdown_and_latex():
    md = runner.invoke(app, ["build", "resnet18", "-f", "markdown"]).stdout
    assert "| layer1 | 56x56, 64 | [3x3, 64; 3x3, 64] x 2 |" in md
    tex = runner.invoke(app, ["build", "resnet18", "-f", "latex"]).stdout
    assert r"\toprule" in tex and r"\bottomrule" in tex


def test_build_output_saves_a_loadable_state_dict(tmp_path):
    target = tmp_path / "r18.pt"
    result = runner.invoke(app, ["build", "resnet18", "--output", str(target)])
    assert result.exit_code == 0, result.output
    state = torch.load(target)
    model = archgen.build("resnet18")
    model.load_state_dict(state)
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                       "num_batches_tracked"))) == 11_689_512
    assert [p.name for p in tmp_path.iterdir()] == ["r18.pt"]  # no temporary file left behind


def test_list_shows_every_bundled_spec():
    data = json.loads(runner.invoke(app, ["list", "--format", "json"]).stdout)
    assert [row["name"] for row in data] == bundled_names()
    r50 = next(row for row in data if row["name"] == "resnet50")
    assert r50["params"] == 25_557_032 and r50["arxiv"] == "1611.05431"


def test_validate_several_specs():
    result = runner.invoke(app, ["validate", "resnet18", "specs/densenet121.yaml"])
    assert result.exit_code == 0
    assert result.stdout.count("ok ") == 2


def test_help_answers_without_importing_torch():
    code = "import sys, archgen.cli.app; assert 'torch' not in sys.modules, 'torch imported at CLI start'"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_ci_runs_exactly_the_readme_test_command():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme_commands = [line for line in (root / "README.md").read_text().splitlines()
                       if line.startswith("python3 -m venv")]
    ci_commands = [line for line in (root / ".ci" / "run").read_text().splitlines()
                   if line.startswith("python3 -m venv")]
    assert len(readme_commands) == 2 and ci_commands == [readme_commands[1]]
    # the whole suite, a worker per core (pytest-xdist), each test file in one worker
    assert readme_commands[1].endswith("python -m pytest -q -n auto --dist loadfile")


def test_pyproject_lists_every_package():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "archgen").rglob("__init__.py")}
    assert listed == found | {"archgen.zoo"}


def test_short_names_resolve_in_every_command():
    assert json.loads(runner.invoke(app, ["build", "resnext50", "-f", "json"]).stdout)["name"] == "resnext50_32x4d"
    assert runner.invoke(app, ["validate", "darknet"]).stdout.startswith("ok  darknet (darknet53): ")
    ambiguous = runner.invoke(app, ["build", "densenet"])
    assert ambiguous.exit_code == 2 and "names several bundled specs: densenet121" in ambiguous.stderr


def test_an_output_in_a_missing_directory_is_refused_before_any_work(tmp_path):
    missing = tmp_path / "no" / "such" / "x"
    for command in (["build", "resnet18", "--output", str(missing)], ["table", "resnet18", "-o", str(missing)],
                    ["profile", "resnet18", "-o", str(missing)], ["schema", "-o", str(missing)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, command
        assert result.stdout == "" and f"cannot write '{missing}'" in result.stderr
        assert "Traceback" not in result.output
    as_directory = runner.invoke(app, ["build", "resnet18", "--output", str(tmp_path)])
    assert as_directory.exit_code == 2 and "is a directory" in as_directory.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a directory that takes no new file (/proc)")
def test_an_output_where_no_file_can_be_made_is_refused_before_any_work_naming_it():
    """A directory that exists but takes no file (here /proc) was found only when the result was written, after
    the work (a whole calibration), with an error naming the temporary file. Refused first, naming the path."""
    for command in (["profile", "resnet18", "-o", "/proc/x.txt"],
                    ["calibrate", "--backend", "eager", "-o", "/proc/x.json"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, command
        assert "cannot write '/proc/x." in result.stderr and ".archgen-" not in result.stderr
        assert "networks:" not in result.stderr and "Traceback" not in result.output


def test_path_lengths_refuse_a_network_without_shortcuts_and_lesions_take_a_single_path_one():
    result = runner.invoke(app, ["paths", "densenet121"])
    assert result.exit_code == 2 and "no residual blocks" in result.stderr
    result = runner.invoke(app, ["lesion", "plain20_cifar", "--blocks", "layer1.1"])  # Veit et al.'s VGG lesion
    assert result.exit_code == 0, result.output


def test_profile_with_one_tracer_reconciles_it_alone():
    for counter in ("fvcore", "ptflops"):
        result = runner.invoke(app, ["profile", "resnet20_cifar", "--counters", counter])
        assert result.exit_code == 0, result.output
        assert "Every count matches its rule." in result.stdout


def test_lesion_names_what_is_wrong_with_foreign_weights(tmp_path):
    weights = tmp_path / "r18.pt"
    torch.save(archgen.build("resnet18").state_dict(), weights)
    result = runner.invoke(app, ["lesion", "resnet20_cifar", "--blocks", "1", "--weights", str(weights)])
    assert result.exit_code == 2
    assert "the checkpoint does not fit resnet20_cifar" in result.stderr and "36 missing" in result.stderr
    assert "Nothing was loaded" in result.stderr


def test_lesion_loads_torchvision_named_weights(tmp_path):
    """lesion reads weights through archgen.load_weights, so a torchvision-named checkpoint loads by name."""
    from archgen.weights import key_map

    model = archgen.build("resnet18")
    ours = model.state_dict()
    theirs = {ref: ours[mine] for ref, mine in key_map(list(_torchvision_keys("resnet18")), "torchvision",
                                                            model).items()}
    weights = tmp_path / "tv.pt"
    torch.save(theirs, weights)
    result = runner.invoke(app, ["lesion", "resnet18", "--blocks", "layer1.1", "--weights", str(weights),
                                 "--input-size", "32"])
    assert result.exit_code == 0, result.output
    assert f"weights from {weights}" in " ".join(result.stdout.split())


def _torchvision_keys(name: str) -> list[str]:
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "data" / "torchvision" / f"{name}.json").read_text())
    return [key for key, _ in ref["state_dict"]]


def test_an_input_size_too_small_for_the_network_exits_2():
    for command in (["build", "resnet50", "--input-size", "8"], ["lesion", "resnet50", "-b", "0", "--input-size", "1"],
                    ["profile", "resnet50", "--input-size", "16"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, command
        assert "smaller than the network's total stride of 32" in result.stderr and "was asked for" in result.stderr
