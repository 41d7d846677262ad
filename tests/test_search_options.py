"""How `archgen search` turns its options into a search, decided in archgen.design.search (no CLI): which
strategy runs a space, and which objective it answers."""

from __future__ import annotations

import pytest

from archgen.design.objectives import Closest, Pareto
from archgen.design.search import EXHAUSTIVE_LIMIT, chosen_objective, resolve_strategy
from archgen.design.space import load_space
from archgen.errors import UserError


def test_auto_searches_a_small_discrete_space_exhaustively_and_a_large_one_at_random():
    wrn = load_space("wrn28_width")  # k = 1..16: 16 candidates
    budget = load_space("resnet_budget")  # hundreds of billions
    assert wrn.size() <= EXHAUSTIVE_LIMIT < budget.size()
    assert resolve_strategy(wrn, "auto") == "exhaustive"
    assert resolve_strategy(budget, "auto") == "random"
    assert resolve_strategy(wrn, "evolve") == "evolve"


def test_a_space_with_a_continuous_axis_cannot_be_searched_exhaustively():
    continuous = load_space("regnetx_400mf")
    assert continuous.size() is None
    assert resolve_strategy(continuous, "auto") == "random"
    with pytest.raises(UserError, match="an exhaustive search needs a discrete space"):
        resolve_strategy(continuous, "exhaustive")


def test_an_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown strategy 'grid'; use auto, exhaustive, random or evolve"):
        resolve_strategy(load_space("wrn28_width"), "grid")


def test_figures_given_replace_the_spaces_objective_with_their_front():
    space = load_space("wrn28_width")
    assert chosen_objective(space) == Closest("params", 36.5e6, "36.5M")
    assert chosen_objective(space, ["macs"], ["depth"]) == Pareto(("macs",), ("depth",))


def test_an_objective_on_an_unknown_figure_or_an_unpredicted_latency_is_refused():
    space = load_space("resnet_budget")
    with pytest.raises(UserError, match="unknown figure 'mac'; figures: params, macs"):
        chosen_objective(space, ["mac"])
    with pytest.raises(UserError, match="no latency model was given"):
        chosen_objective(space, ["latency"])
    assert chosen_objective(space, ["latency"], predicts_latency=True) == Pareto(("latency",), ())
