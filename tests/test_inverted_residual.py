"""The inverted-residual family: the rules its torchvision twins rest on, each pinned to what the research
notes read in torchvision 0.28.0 (tests/data/torchvision/ holds the twins' params and logits)."""

from __future__ import annotations

import pytest
import torch.nn as nn

import archgen
from archgen.blocks.inverted_residual import make_divisible
from archgen.errors import SpecError
from archgen.planner import expand_stage_rule, plan


@pytest.mark.parametrize("value, rounded", [(18, 24), (30, 32), (35.2, 32), (19.2, 24), (134.4, 136), (230.4, 232),
                                            (4, 8), (36, 40), (60, 64)])
def test_make_divisible_rounds_to_eight_halves_up_never_ten_percent_below(value, rounded):
    assert make_divisible(value, 8) == rounded


def _blocks(name: str) -> list:
    return [b for stage in plan(name).stages for b in stage.blocks]


def _se_widths(name: str) -> list[tuple[int, int]]:
    """(expanded width, squeeze width) of every block with an SE, in order."""
    out = []
    for b in _blocks(name):
        se = [layer for layer in b.layers().branch if layer.name == "se"]
        out += [(se[0].c, se[0].c_mid)] if se else []
    return out


def test_mobilenet_v3_squeezes_the_expanded_width_to_a_multiple_of_eight_with_a_hard_sigmoid_gate():
    assert sorted(set(_se_widths("mobilenet_v3_large"))) == [(72, 24), (120, 32), (480, 120), (672, 168),
                                                             (960, 240)]
    assert sorted(set(_se_widths("mobilenet_v3_small"))) == [(16, 8), (96, 24), (120, 32), (144, 40), (240, 64),
                                                             (288, 72), (576, 144)]
    se = next(layer for layer in _blocks("mobilenet_v3_small")[0].layers().branch if layer.name == "se")
    assert (se.act, se.gate) == ("relu", "hardsigmoid")


def test_efficientnet_squeezes_a_quarter_of_the_blocks_input_through_silu():
    blocks = _blocks("efficientnet_b0")
    assert _se_widths("efficientnet_b0")[:3] == [(32, 8), (96, 4), (144, 6)]
    assert [b.at.in_chs for b in blocks[:3]] == [32, 16, 24]
    se = next(layer for layer in blocks[0].layers().branch if layer.name == "se")
    assert (se.act, se.gate) == ("silu", "sigmoid")


def test_the_expansion_conv_is_left_out_where_it_would_keep_the_width_and_the_add_where_the_shape_changes():
    blocks = _blocks("mobilenet_v2")
    names = [[layer.name for layer in b.layers().branch] for b in blocks]
    assert names[0] == ["conv2", "bn2", "act2", "conv3", "bn3"]
    assert names[1] == ["conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3"]
    # torchvision's features.k is block k - 1 here; its residual blocks are features 3, 5, 6, 8, 9, 10, 12, 13,
    # 15, 16.
    assert [k + 1 for k, b in enumerate(blocks) if b.layers().merge.residual] == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


def test_efficientnet_b1_to_b3_are_b0_under_round_filters_and_ceil_of_the_depth():
    def shape(name):
        p = plan(name)
        return (p.stem.out_chs, [s.out_chs for s in p.stages], [len(s.blocks) for s in p.stages], p.head.conv)

    assert shape("efficientnet_b0") == (32, [16, 24, 40, 80, 112, 192, 320], [1, 2, 2, 3, 3, 4, 1], 1280)
    assert shape("efficientnet_b1") == (32, [16, 24, 40, 80, 112, 192, 320], [2, 3, 3, 4, 4, 5, 2], 1280)
    assert shape("efficientnet_b2") == (32, [16, 24, 48, 88, 120, 208, 352], [2, 3, 3, 4, 4, 5, 2], 1408)
    assert shape("efficientnet_b3") == (40, [24, 32, 48, 96, 136, 232, 384], [2, 3, 3, 5, 5, 6, 2], 1536)


def test_the_compound_rule_is_registered_beside_its_family_and_writes_ceil_depths_and_the_width():
    rule = archgen.load_spec("efficientnet_b3").doc.stage_rule["efficientnet"]
    assert (rule.width, rule.depth, len(rule.stages)) == (1.2, 1.4, 7)
    doc = expand_stage_rule(archgen.load_spec("efficientnet_b3")).doc
    assert [s.depth for s in doc.stages] == [2, 3, 3, 5, 5, 6, 2] and doc.multipliers.width == 1.2
    assert doc.stage_rule is None


def test_an_error_in_a_compound_rules_stage_points_at_the_stage_written(tmp_path):
    """The validator names the field where it is written; the planner, which reads the generated stages, points
    at the line of the stage written."""
    text = open(archgen.load_spec("efficientnet_b0").file).read()
    text = text.replace("width: 40, kernel: 5", "width: 40, kernel: 4").replace("80, kernel:", "80, kernels:")
    lines = text.splitlines()
    (tmp_path / "b0.yaml").write_text(text)
    with pytest.raises(SpecError) as unknown:
        archgen.profile(str(tmp_path / "b0.yaml"))
    assert (unknown.value.field, unknown.value.line) == ("stages.efficientnet.stages[3].kernels",
                                                         1 + next(i for i, x in enumerate(lines) if "kernels" in x))
    assert "Did you mean 'kernel'?" in unknown.value.message
    (tmp_path / "b0.yaml").write_text(text.replace("kernels", "kernel"))
    with pytest.raises(SpecError, match="odd kernel") as even:
        archgen.profile(str(tmp_path / "b0.yaml"))
    assert (even.value.field, even.value.line) == ("stages[2].kernel",
                                                   1 + next(i for i, x in enumerate(lines) if "kernel: 4" in x))


def test_a_printed_exp_size_scales_with_the_width_multiplier():
    v3 = archgen.load_spec("mobilenet_v3_large").doc
    assert v3.stages[5].args["expand_width"] == 240
    half = plan({"extends": "mobilenet_v3_large", "name": "v3_half", "multipliers": {"width": 0.5}})
    block = half.stages[5].blocks[0]
    assert (block.at.in_chs, block.family.expanded(block.at), block.out_chs) == (24, 120, 40)


def test_batch_norm_eps_momentum_and_the_stem_act_are_the_specs():
    v3 = archgen.build("mobilenet_v3_small", device="meta")
    bns = [m for m in v3.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in bns} == {(0.001, 0.01)}
    assert isinstance(v3.stem.act1, nn.Hardswish) and isinstance(v3.layer1[0].act2, nn.ReLU)
    mnasnet = archgen.build("mnasnet1_0", device="meta")
    assert {(m.eps, m.momentum) for m in mnasnet.modules() if isinstance(m, nn.BatchNorm2d)} == {(1e-5, 0.0003)}


def test_an_even_depthwise_kernel_is_refused_at_its_field():
    spec = {"extends": "mobilenet_v2", "name": "even", "block": {"type": "inverted_residual", "kernel": 4}}
    with pytest.raises(SpecError, match=r"block\.kernel.*odd kernel"):
        archgen.profile(spec)


def test_only_the_blocks_that_keep_the_shape_count_as_residual_for_lesions_and_paths():
    from archgen.ensemble import residual_block_names

    names = residual_block_names("mobilenet_v2")
    assert len(names) == 10 and "layer2.1" in names and "layer2.0" not in names


def test_another_mobile_networks_checkpoint_is_refused_naming_its_keys_not_crashing():
    """Keys naming a block or unit the model lacks (V3-Large's features.12 in V3-Small's 11 blocks) are kept
    as they are, so the mismatch report lists them."""
    from archgen.weights import WeightsMismatch
    from conftest import filled_state_dict, torchvision_reference

    model = archgen.build("mobilenet_v3_small")
    large = filled_state_dict(torchvision_reference("mobilenet_v3_large")["state_dict"])
    with pytest.raises(WeightsMismatch) as info:
        archgen.load_weights(model, large, layout="torchvision")
    assert "features.12.block.0.0.weight" in info.value.unexpected and "layer1.0.bn3.weight" in info.value.missing
