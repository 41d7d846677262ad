"""The fast counter (archgen.design.fast_count) counts what `archgen.profile` counts: every bundled spec, and
sampled candidates."""

from __future__ import annotations

import pytest

import archgen
from archgen.design import Evaluator, Rejections, load_space, sample
from archgen.design.fast_count import figures, full_figures
from archgen.errors import SpecError
from archgen.grammar.loader import bundled_names, load_spec
from archgen.memo import clear_all


@pytest.mark.parametrize("name", bundled_names())
def test_fast_figures_equal_the_profile(name):
    spec = load_spec(name)
    p = archgen.profile(spec)
    fast = figures(spec)
    assert (fast.params, fast.macs, fast.acts) == (p.params, p.macs, p.acts)
    assert fast == full_figures(spec)


def test_depth_counts_the_layers_the_names_count():
    names = ("resnet18", "resnet50", "resnet152", "densenet121")
    assert [figures(load_spec(n)).depth for n in names] == [18, 50, 152, 121]
    assert [archgen.plan(n).depth for n in names] == [18, 50, 152, 121]


def test_sampled_candidates_count_alike_on_both_paths():
    space = load_space("resnet_budget")
    for verdict in sample(space, 15, 5, Evaluator(space, []), Rejections()):
        assert verdict.figures == full_figures(space.spec(verdict.values))


def test_stage_memo_keeps_errors_at_the_spec_line():
    """A stage remembered from one candidate does not hide another candidate's error: the planner's, at its line."""
    def regnet(width: int):
        return load_spec({"name": "r", "block": {"type": "regnet", "group_width": 16},
                          "stages": [{"depth": 1, "width": 32}, {"depth": 2, "width": width}]})

    clear_all()
    cold = figures(regnet(96))  # remembers both stages, the first of which regnet(100) shares
    assert cold == full_figures(regnet(96)) and figures(regnet(96)) == cold  # the full plan's; and from the memo
    with pytest.raises(SpecError) as refused:
        figures(regnet(100))
    with pytest.raises(SpecError) as planned:
        archgen.profile(regnet(100))
    assert "group_width 16" in refused.value.message and refused.value.message == planned.value.message


def test_a_moved_placement_equals_dataclasses_replace():
    import dataclasses

    from archgen.blocks.registry import Placement

    at = Placement(in_chs=64, width=128, stride=2, dilation=2, first_dilation=1, shortcut="projection")
    moved = at.moved(in_chs=128, stride=1, first_dilation=2)
    assert moved == dataclasses.replace(at, in_chs=128, stride=1, first_dilation=2)
    assert hash(moved) == hash(dataclasses.replace(at, in_chs=128, stride=1, first_dilation=2))
    assert at.in_chs == 64 and at.stride == 2


def test_a_misgrouped_conv_met_while_counting_is_the_planners_error():
    """The fast counter learns that a conv's groups do not divide its channels from the conv's own count
    (Conv.cost raises Misgrouped), then lets the planner name the field: here the stem's 64 channels feed a
    basic block of cardinality 3, which its stage widths alone would allow."""
    from archgen.layer_kinds.conv import Conv
    from archgen.tally import Misgrouped, Totals

    with pytest.raises(Misgrouped, match="3 groups do not divide 64 -> 96"):
        Conv("conv1", 64, 96, 3, groups=3).cost(Totals(), 8, 8)
    spec = load_spec({"name": "g", "stem": {"type": "imagenet", "width": 64},
                      "block": {"type": "basic", "cardinality": 3},
                      "stages": [{"depth": 2, "width": 96}, {"depth": 2, "width": 192, "stride": 2}]})
    clear_all()
    with pytest.raises(SpecError) as counted:
        figures(spec)
    with pytest.raises(SpecError) as planned:
        archgen.profile(spec)
    assert counted.value.field == planned.value.field == "block.cardinality"
    assert counted.value.message == planned.value.message and "does not divide" in counted.value.message


def test_a_framed_spec_counts_plans_and_predicts_as_the_spec():
    """What the evaluator settles once per candidate (planner.framed) gives what the spec itself gives."""
    from archgen.planner import framed

    space = load_space("regnetx_400mf")
    for verdict in sample(space, 5, 3, Evaluator(space, []), Rejections()):
        spec = space.spec(verdict.values)
        candidate = framed(spec)
        assert framed(candidate) is candidate
        assert figures(candidate) == figures(spec) == verdict.figures
        assert archgen.plan(candidate).depth == archgen.plan(spec).depth
        assert archgen.profile(archgen.plan(candidate)).macs == archgen.profile(spec).macs
