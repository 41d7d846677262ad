"""`archgen table`: the papers' tables regenerated, each computed figure beside the printed one.

Golden files: tests/golden/<table>.<ext>, one per format. After a deliberate
change to a table, regenerate them with

    ARCHGEN_REGEN_GOLDENS=1 python -m pytest -q tests/test_tables.py

and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archgen.cli.app import app
from archgen.errors import SpecError
from archgen.render import FORMATS, cell, render
from archgen.tables.compare import Figure, layout_models, layout_table, model_for, specs_table, stages_table
from archgen.tables.layouts import LAYOUTS, PAPERS, layouts_for
from archgen.grammar.loader import bundled_names, resolve_name as resolve_spec_name

GOLDEN = Path(__file__).parent / "golden"
EXTENSION = {"rich": "txt", "json": "json", "csv": "csv", "markdown": "md", "latex": "tex"}
REGENERATE = os.environ.get("ARCHGEN_REGEN_GOLDENS") == "1"


def _golden_tables():
    return {
        "resnext_table1": lambda: [layout_table(layouts_for("resnext")[0])],
        "compare_resnet50_resnext50": lambda: [specs_table(["resnet50", "resnext50_32x4d"]),
                                               stages_table(["resnet50", "resnext50_32x4d"])],
    }


def _golden_texts(table: str, fmt: str) -> dict[str, str]:
    """Golden file name -> its text. CSV holds one table, so a several-table golden is one file per table
    (<golden>-<key>.csv, as `archgen table -o FILE` writes them); rich is drawn for an 80-column terminal."""
    tables = _golden_tables()[table]()
    if fmt == "csv" and len(tables) > 1:
        return {f"{table}-{t.key}.csv": render(t, fmt) for t in tables}
    return {f"{table}.{EXTENSION[fmt]}": render(tables, fmt, width=80)}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("table", sorted(_golden_tables()))
def test_table_matches_its_golden_file(table, fmt):
    for name, text in _golden_texts(table, fmt).items():
        path = GOLDEN / name
        if REGENERATE:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text)
        assert text == path.read_text()


def test_resnext_table1_puts_the_papers_blocks_and_numbers_beside_archgens():
    t = layout_table(layouts_for("resnext")[0])
    rows = {r[0]: [cell(c) for c in r[2:]] for r in t.rows}
    assert rows["conv2"] == ["3x3 max pool, stride 2, then [1x1, 64; 3x3, 64; 1x1, 256] x 3",
                             "3x3 max pool, stride 2, then [1x1, 128; 3x3, 128, C=32; 1x1, 256] x 3"]
    assert rows["conv5"][1] == "[1x1, 1024; 3x3, 1024, C=32; 1x1, 2048] x 3"
    assert rows["params, paper"] == ["25.5M", "25.0M"]
    assert rows["params, archgen"] == ["25.56M", "25.03M"]
    # ResNet-50's 25,557,032 does not round to the printed 25.5M: marked, not hidden.
    assert rows["params, difference"] == ["+0.06M (outside rounding)", "+0.03M"]
    assert rows["MACs (the papers' FLOPs), paper"] == ["4.1G", "4.2G"]
    models = t.data["models"]
    assert [m["params"]["value"] for m in models] == [25_557_032, 25_028_904]
    assert [m["params"]["within_rounding"] for m in models] == [False, True]


def test_a_printed_figure_is_met_within_half_a_unit_of_its_last_digit():
    assert Figure("macs", 3_849_000_000, "3.8G", 224).within
    assert Figure("macs", 3_750_000_000, "3.8G", 224).within
    assert not Figure("macs", 3_860_000_000, "3.8G", 224).within
    assert Figure("macs", 3_860_000_000, "3.8G", 224).difference_text() == "+0.06G (outside rounding)"
    assert Figure("params", 269_722, "0.27M", None).difference_text() == "0"


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.key}-{lay.source.table}")
def test_every_paper_table_builds_and_explains_each_figure_outside_the_printed_rounding(layout):
    assert {entry.spec for entry in layout.entries} <= set(bundled_names()), "a table names a spec not bundled"
    models = layout_models(layout)
    t = layout_table(layout)
    assert t.rows
    for m in models:
        for fig in m.figures.values():
            if fig.within is False:
                assert m.citation.note, f"{m.spec.name}: {fig.name} outside {fig.printed} with no note saying why"


def test_he_2015_table1_marks_the_34_and_50_layer_flops_that_do_not_round_to_the_printed_ones():
    """With the paper's stride placement, 18/101/152 round to the printed FLOPs; 34 (3.66 G for '3.6') and
    50 (3.86 G for '3.8') do not, and the table says so rather than hiding it."""
    models = layout_models(layouts_for("resnet")[0])
    within = {m.label: m.figures["macs"].within for m in models}
    assert within == {"18-layer": True, "34-layer": False, "50-layer": False, "101-layer": True,
                      "152-layer": True}
    assert [m.figures["macs"].value for m in models] == [1_814_073_344, 3_663_761_408, 3_857_973_248,
                                                         7_570_194_432, 11_282_415_616]


def test_short_names_resolve_and_ambiguous_or_unknown_ones_list_candidates():
    assert resolve_spec_name("resnext50") == "resnext50_32x4d"
    assert resolve_spec_name("resnet50") == "resnet50"
    with pytest.raises(SpecError, match="densenet121, densenet161"):
        resolve_spec_name("densenet")
    with pytest.raises(SpecError, match="Did you mean 'resnet50'"):
        resolve_spec_name("resnet5O")


runner = CliRunner()


def test_cli_compare_prints_both_models_beside_their_papers():
    result = runner.invoke(app, ["table", "--compare", "resnet50", "resnext50", "--format", "csv", "--table", "specs"])
    assert result.exit_code == 0, result.output
    assert "resnet50" in result.output
    # The papers' printings as printed; archgen's counts exact.
    assert '"params, paper",,25.5M,25.0M' in result.output
    assert '"params, archgen",,25557032,25028904' in result.output


@pytest.mark.parametrize("args, message", [
    (["table", "--compare", "resnet50", "densenet"], "densenet121"),
    (["table", "--paper", "alexnet"], "choose one of " + ", ".join(PAPERS)),
    (["table", "--compare", "resnet50"], "two specs or more"),
    (["table"], "name specs"),
    (["profile", "resnet18", "--counters", "thop"], "unknown counter"),
])
def test_cli_mistakes_exit_2_with_one_paragraph(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") or "error: " in result.stderr
    assert message in (result.stderr if result.stderr else result.output)


def test_cli_table_reads_a_users_own_file(tmp_path):
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\nextends: resnet18\nstages: [{depth: 1}, {depth: 1}, {depth: 1}, {depth: 1}]\n")
    result = runner.invoke(app, ["table", str(spec), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "[3x3, 64; 3x3, 64] x 1" in result.output


def test_cli_profile_with_all_counters_reconciles_resnet18(tmp_path):
    result = runner.invoke(app, ["profile", "resnet18", "--input-size", "64", "--counters",
                                 "archgen,fvcore,ptflops", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"flagged": []' in result.output


def test_model_for_counts_at_the_input_size_the_paper_measured():
    m = model_for("darknet53", arxiv="1804.02767")
    assert m.figures["flops"].input_size == (m.citation.input_size or m.spec.doc.input.size)


def test_a_free_comparison_takes_each_figure_from_the_first_paper_that_prints_it():
    """ResNet-18's own paper prints no parameter count; Zagoruyko and Komodakis's Table 7 prints 11.7M."""
    m = model_for("resnet18")
    assert m.figures["params"].printed == "11.7M" and m.figures["params"].source.arxiv == "1605.07146"
    assert m.figures["macs"].printed == "1.8G" and m.figures["macs"].source.arxiv == "1512.03385"
    notes = specs_table(["resnet18"]).notes
    assert any("params printed in Zagoruyko and Komodakis 2016, Table 7" in n for n in notes)


def test_mobilenetv2_table2_and_efficientnet_table1_put_the_papers_rows_beside_archgens():
    """MobileNetV2's Table 2 in its own columns (input, operator, t, c, n, s: 17 bottlenecks) and EfficientNet-B0's
    seven MBConv stages (Table 1), each beside archgen's blocks and the paper's printed parameters and
    multiply-adds."""
    table = layout_table(layouts_for("mobilenetv2")[0])
    assert table.columns == ["input", "operator", "t", "c", "n", "s", "MobileNetV2 1.0"]
    operators = [" ".join(cell(x) for x in r[:6]) for r in table.rows if cell(r[2])]
    assert operators == [  # Sandler et al. 2018, Table 2, with the classifier's k = 1000 and every row's n
        "224x224x3 conv2d - 32 1 2", "112x112x32 bottleneck 1 16 1 1", "112x112x16 bottleneck 6 24 2 2",
        "56x56x24 bottleneck 6 32 3 2", "28x28x32 bottleneck 6 64 4 2", "14x14x64 bottleneck 6 96 3 1",
        "14x14x96 bottleneck 6 160 3 2", "7x7x160 bottleneck 6 320 1 1", "7x7x320 conv2d 1x1 - 1280 1 1",
        "7x7x1280 avgpool 7x7 - 1280 1 -", "1x1x1280 conv2d 1x1 - 1000 1 -"]
    v2 = {(cell(r[0]), cell(r[1])): cell(r[6]) for r in table.rows}
    assert v2[("28x28x32", "bottleneck")] == ("[1x1, 192; 3x3 dw, 192, stride 2; 1x1, 64] x 1 "
                                              "[1x1, 384; 3x3 dw, 384; 1x1, 64] x 3")
    assert v2[("7x7x1280", "avgpool 7x7")] == "global avg pool"
    assert v2[("", "params, paper")] == "3.4M" and v2[("", "params, difference")] == "+0.10M (outside rounding)"
    assert v2[("at 224px", "MACs (the papers' FLOPs), archgen")] == "300.8M"
    b0 = {r[0]: cell(r[2]) for r in layout_table(layouts_for("efficientnet")[0]).rows}
    assert b0["MBConv, stage 2"] == "[3x3 dw, 32; SE, 8; 1x1, 16] x 1"
    assert b0["MBConv, stage 7"] == ("[1x1, 672; 5x5 dw, 672, stride 2; SE, 28; 1x1, 192] x 1 "
                                     "[1x1, 1152; 5x5 dw, 1152; SE, 48; 1x1, 192] x 3")
    assert b0["params, paper"] == "5.3M" and b0["params, difference"] == "-0.01M"
    assert b0["MACs (the papers' FLOPs), paper"] == "0.39G" and b0["MACs (the papers' FLOPs), archgen"] == "0.386G"
