"""The design hot path counts what `archgen.profile` counts: every bundled spec, and sampled candidates."""

from __future__ import annotations

import pytest

import archgen
from archgen.design import Evaluator, Rejections, load_space, sample
from archgen.design.count import figures, full_figures
from archgen.grammar.loader import bundled_names, load_spec


@pytest.mark.parametrize("name", bundled_names())
def test_fast_figures_equal_the_profile(name):
    spec = load_spec(name)
    p = archgen.profile(spec)
    fast = figures(spec)
    assert (fast.params, fast.macs, fast.acts) == (p.params, p.macs, p.acts)
    assert fast == full_figures(spec)


def test_depth_counts_the_layers_the_names_count():
    assert [figures(load_spec(n)).depth for n in ("resnet18", "resnet50", "resnet152", "densenet121")] == \
        [18, 50, 152, 121]


def test_sampled_candidates_count_alike_on_both_paths():
    space = load_space("resnet_budget")
    for verdict in sample(space, 15, 5, Evaluator(space, []), Rejections()):
        assert verdict.figures == full_figures(space.spec(verdict.values))
