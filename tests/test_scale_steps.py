"""`archgen scale`: every row has its base, the steps around the target are whole quantization steps (a block,
a width step, a resolution step of the network's output stride), and the written spec shows the depths and
widths it builds, building exactly the figures the table reports."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.design import scale
from archgen.design.fast_count import figures
from archgen.grammar.loader import load_spec

runner = CliRunner()
RESNET50_MACS = 4_089_184_256


def scale_json(tmp_path, *args: str) -> tuple[dict, dict, str]:
    out = tmp_path / "scaled.yaml"
    result = runner.invoke(app, ["scale", *args, "-o", str(out), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    table = json.loads(result.stdout)
    rows = {row[""]: row for row in table["rows"]}
    return rows, yaml.safe_load(out.read_text()), str(out)


def test_every_row_has_its_base(tmp_path):
    rows, _, _ = scale_json(tmp_path, "resnet50", "--factor", "2", "--rule", "compound")
    assert {label: row["base"] for label, row in rows.items()} == {
        "depth multiplier": 1.0, "width multiplier": 1.0, "input size": 224, "stage depths": "3 4 6 3",
        "widths (stem, stages)": "64 64 128 256 512", "params": 25_557_032, "MACs": RESNET50_MACS,
        "acts": 11_114_984}


def test_resnet50_compound_twice_is_4_5_7_4_blocks_at_256px(tmp_path):
    """EfficientNet's compound rule at 2x ResNet-50's MACs: a block more in every stage, widths x1.12 and
    256 px, one output-stride step above 224 (the issue's old answer was 257 px, a step of one pixel)."""
    rows, spec, _ = scale_json(tmp_path, "resnet50", "--factor", "2", "--rule", "compound")
    assert rows["stage depths"]["scaled"] == "4 5 7 4"
    assert rows["widths (stem, stages)"]["scaled"] == "72 72 144 288 576"
    assert rows["input size"]["scaled"] == 256
    assert (rows["params"]["scaled"], rows["MACs"]["scaled"]) == (39_552_400, 8_180_803_584)
    # the step below is one width step of one stage: 576 -> 568 channels in layer4
    assert rows["widths (stem, stages)"]["step below"] == "72 72 144 288 568"
    assert rows["MACs"]["step below"] == 8_138_566_400 < 2 * RESNET50_MACS <= rows["MACs"]["step above"]
    assert spec["stages"] == [{"depth": 4, "width": 72}, {"depth": 5, "width": 144, "stride": 2},
                              {"depth": 7, "width": 288, "stride": 2}, {"depth": 4, "width": 576, "stride": 2}]
    assert spec["stem"]["width"] == 72 and spec["input"]["size"] == 256 and "multipliers" not in spec


def test_resnet50_dwr_twice_grows_in_width_at_224px(tmp_path):
    """docs/design.md's example: Dollar et al.'s dWr at 2x ResNet-50's MACs."""
    rows, spec, _ = scale_json(tmp_path, "resnet50", "--factor", "2", "--rule", "dwr")
    assert [rows[k]["scaled"] for k in ("input size", "stage depths", "widths (stem, stages)")] == \
        [224, "3 4 7 3", "88 88 176 352 712"]
    assert (rows["params"]["scaled"], rows["MACs"]["scaled"], rows["acts"]["scaled"]) == \
        (49_961_312, 8_112_591_040, 15_706_480)
    assert (rows["widths (stem, stages)"]["step above"], rows["MACs"]["step above"]) == \
        ("88 88 176 360 712", 8_258_741_184)
    assert spec["name"] == "resnet50_dwr_1p98x"


@pytest.mark.parametrize("rule", ["compound", "dwr", "resolution", "depth", "width"])
def test_the_input_side_moves_by_whole_output_strides(rule):
    result = scale(load_spec("resnet50"), 2 * RESNET50_MACS, rule)
    assert result.size_step == 32
    for step in (result.base, result.landing, result.below, result.above):
        assert (step.size - 224) % 32 == 0
        assert all(w % 8 == 0 for w in step.widths)
    if rule in ("depth", "width"):
        assert result.landing.size == 224  # the rule leaves the resolution alone
    if rule == "resolution":
        assert result.landing.size == 320 and result.below.size == 288


def test_cifar_nets_step_by_their_own_output_stride():
    result = scale(load_spec("resnet20_cifar"), 2 * figures(load_spec("resnet20_cifar")).macs, "resolution")
    assert result.size_step == 4
    assert {result.below.size, result.above.size} == {44, 48}


@pytest.mark.parametrize("name,factor,rule", [
    ("resnet50", 2, "dwr"),
    ("resnet50_d", 3, "dwr"),         # the deep stem's first two widths are written too
    ("densenet121", 2, "width"),      # the growth rate is the width a dense family holds itself
    ("regnetx_002", 2, "compound"),   # a stage rule is written as the stages it generates
    ("efficientnet_b1", 0.5, "width"),  # and the compound rule's scaling, the head conv's width included
    ("vgg11", 0.5, "compound"),       # no stem
    ("resnet20_cifar", 2, "compound"),
])
def test_the_written_spec_builds_the_reported_figures(tmp_path, name, factor, rule):
    rows, spec, path = scale_json(tmp_path, name, "--factor", str(factor), "--rule", rule)
    assert "multipliers" not in spec and "extends" not in spec and "paper" not in spec
    assert isinstance(spec["stages"], list)
    assert " ".join(str(stage["depth"]) for stage in spec["stages"]) == rows["stage depths"]["scaled"]
    p = archgen.profile(path)
    assert (p.params, p.macs, p.acts) == (rows["params"]["scaled"], rows["MACs"]["scaled"], rows["acts"]["scaled"])
    assert p.input_size == rows["input size"]["scaled"]


def test_densenet_scaled_in_width_writes_its_growth_rate(tmp_path):
    _, spec, _ = scale_json(tmp_path, "densenet121", "--factor", "2", "--rule", "width")
    assert spec["block"]["growth_rate"] == 48 and spec["stem"]["width"] == 88  # k = 32 and 64 channels, x1.375


def test_the_written_spec_builds(tmp_path):
    torch = pytest.importorskip("torch")
    _, _, path = scale_json(tmp_path, "resnet20_cifar", "--factor", "2", "--rule", "compound")
    model = archgen.build(path, device="meta")
    assert sum(p.numel() for p in model.parameters()) == archgen.profile(path).params
    size = archgen.profile(path).input_size
    assert model(torch.empty(1, 3, size, size, device="meta")).shape == (1, 10)
