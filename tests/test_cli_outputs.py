"""What the CLI writes: files with the umask's mode, tables that fit the terminal, notes printed once,
exact numbers in CSV, one CSV per table, `--version`, whole-sentence help, and no torch where none is needed."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.render import quantity, share, write_atomic

runner = CliRunner()


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_umasks_mode_not_mkstemps(tmp_path, umask, mask, mode):
    umask(mask)
    write_atomic(str(tmp_path / "direct.txt"), "text\n")
    assert runner.invoke(app, ["schema", "-o", str(tmp_path / "schema.json")]).exit_code == 0
    result = runner.invoke(app, ["table", "resnet18", "-f", "markdown", "-o", str(tmp_path / "table.md")])
    assert result.exit_code == 0, result.output
    assert {p.name: _mode(p) for p in tmp_path.iterdir()} == {"direct.txt": mode, "schema.json": mode,
                                                                "table.md": mode}


def test_saved_weights_get_the_umasks_mode(tmp_path, umask):
    umask(0o022)
    result = runner.invoke(app, ["build", "resnet18", "--input-size", "32", "-o", str(tmp_path / "r18.pt")])
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "r18.pt") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r18.pt"]


def _lines(args: list[str], columns: int) -> list[str]:
    result = runner.invoke(app, args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_rich_tables_fit_the_terminal_and_no_line_ends_in_spaces():
    args = ["table", "--compare", "resnet18", "resnet34"]
    narrow, wide = _lines(args, 80), _lines(args, 200)
    assert max(map(len, narrow)) <= 80
    assert 80 < max(map(len, wide)) <= 200  # the table grows with the terminal, rather than always 160
    for line in narrow + wide:
        assert line == line.rstrip(), f"trailing spaces: {line!r}"


def test_a_papers_tables_print_each_note_once():
    """ResNeXt-50's 2x40d, 4x24d and 8x14d specs share their first two sentences; ResNet-50's note and the
    'outside rounding' legend belong to both of the paper's tables."""
    lines = _lines(["table", "--paper", "resnext", "-f", "markdown"], 80)
    notes = [line for line in lines if line.startswith("- ")]
    assert len(notes) == len(set(notes))
    text = "\n".join(lines)
    assert text.count("Table 2 lists the (C, d) pairs that keep ResNet-50's complexity") == 1
    assert "- ResNeXt-50 2 x 40d, 4 x 24d and 8 x 14d: Table 2 lists" in text
    assert "- ResNeXt-50 4 x 24d: This net counts 25,292,968 parameters" in text
    assert text.count("Xie et al. print ResNet-50 with the stride on the 3x3 conv") == 1
    assert text.count("'outside rounding': the computed figure") == 1


def _csv_rows(args: list[str]) -> list[list[str]]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return list(csv.reader(io.StringIO(result.stdout)))


def test_csv_cells_carry_exact_counts():
    """ResNeXt-50 32x4d: 25,028,904 params and 4,230,479,872 MACs, 28,904 above the printed 25.0M."""
    rows = {r[0]: r[2:] for r in _csv_rows(["table", "resnext50_32x4d", "-f", "csv"])}
    assert rows["params, paper"] == ["25.0M"]  # a printing stays as printed
    assert rows["params, archgen"] == ["25028904"] and rows["params, difference"] == ["28904"]
    assert rows["MACs (the papers' FLOPs), archgen"] == ["4230479872"]
    total = next(r for r in _csv_rows(["build", "resnet50", "-f", "csv"]) if r[0] == "total")
    acts = archgen.profile("resnet50").acts
    assert total[2:] == [f"FLOPs (2 x MACs) 8178368512; activations {acts}", "25557032", "4089184256"]


def test_profile_latency_csv_carries_the_exact_milliseconds_and_a_numeric_share(latency_model_file):
    """The predicted ms as JSON has them, the share as a fraction; the rich table prints both rounded."""
    args = ["profile", "resnet18", "--latency", str(latency_model_file), "--table", "latency"]
    data = json.loads(runner.invoke(app, [*args, "-f", "json"]).stdout)
    rows = _csv_rows([*args, "-f", "csv"])
    assert rows[0] == ["stage", "ms", "share"]
    ms = {stage: float(m) for stage, m, _ in rows[1:]}
    share = {stage: float(s) for stage, _, s in rows[1:]}
    assert ms == data["stages"] | {"total": data["predicted_ms"]}
    assert share == {stage: m / data["predicted_ms"] for stage, m in data["stages"].items()} | {"total": 1.0}
    rich = runner.invoke(app, args, env={"COLUMNS": "80"}).stdout
    assert f"{data['stages']['stem'] / data['predicted_ms']:.1%}" in rich and "100.0%" in rich
    assert repr(data["predicted_ms"]) not in rich


def test_several_tables_in_csv_need_a_file_per_table_or_a_choice(tmp_path):
    args = ["table", "--compare", "resnet18", "resnet34", "-f", "csv"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "2 tables (specs, stages)" in refused.stderr and "--table KEY" in refused.stderr

    out = tmp_path / "out.csv"
    written = runner.invoke(app, [*args, "-o", str(out)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-specs.csv", "out-stages.csv"]
    assert str(tmp_path / "out-stages.csv") in written.stderr
    stages = list(csv.reader((tmp_path / "out-stages.csv").open()))
    assert stages[0][0] == "stage" and stages[-1][:2] == ["total", "11689512"]

    picked = runner.invoke(app, [*args, "--table", "stages", "-o", str(out)])
    assert picked.exit_code == 0 and out.read_text() == (tmp_path / "out-stages.csv").read_text()


def test_an_unknown_table_key_lists_the_keys():
    result = runner.invoke(app, ["table", "--compare", "resnet18", "resnet34", "--table", "stage"])
    assert result.exit_code == 2 and "no table 'stage' here; this command makes specs, stages" in result.stderr


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"archgen {archgen.__version__}\n"


def test_every_commands_one_line_help_is_a_whole_sentence():
    commands = typer.main.get_command(app).commands
    assert {"build", "validate", "list", "schema", "table", "profile", "paths", "lesion"} <= set(commands)
    for name, command in commands.items():
        first_paragraph = (command.help or "").strip().split("\n\n")[0]
        assert "\n" not in first_paragraph, f"{name}: the one-line help spans lines: {first_paragraph!r}"
        assert first_paragraph[:1].isupper() and first_paragraph.endswith("."), f"{name}: {first_paragraph!r}"


def _imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1] == "True"


def test_the_cli_modules_import_no_torch():
    assert not _imports_torch("import archgen.cli.app, archgen.cli.common, archgen.cli.tables, "
                              "archgen.cli.summary, archgen.cli.profile_view, archgen.cli.ensemble, archgen.render")


def test_validate_and_list_run_without_torch():
    assert not _imports_torch("from typer.testing import CliRunner\nfrom archgen.cli.app import app\n"
                              "assert CliRunner().invoke(app, ['validate', 'resnet18']).exit_code == 0\n"
                              "assert CliRunner().invoke(app, ['list']).exit_code == 0")


@pytest.mark.parametrize("part, whole, text", [
    (1, 8, "12.5%"), (1, 1, "100.0%"), (0, 5, "0.0%"),
    (1, 4000, "<0.1%"),  # one decimal would print a share that is there as none at all
    (1, 2000, "0.1%"),  # 0.05% rounds up: it is printed
])
def test_a_share_prints_a_small_part_as_under_a_tenth_and_keeps_the_fraction(part, whole, text):
    figure = share(part, whole)
    assert (figure.text, figure.value) == (text, part / whole)


def test_a_count_reads_in_the_singular_and_the_plural():
    assert [quantity(n, "network") for n in (0, 1, 2, 1520)] == [
        "0 networks", "1 network", "2 networks", "1,520 networks"]
