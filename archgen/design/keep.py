"""What a search keeps while it streams candidates: the best per group (closest:), or the Pareto front.

Both hold answers only, never every candidate, so a search's memory is the
size of its answer.
"""

from __future__ import annotations

from archgen.design.evaluate import Verdict
from archgen.design.objectives import Closest, Objective, Pareto, dominates
from archgen.design.space import Space


class BestPerGroup:
    """For each group (the values of the `per` axes), the candidate nearest the target; ties keep the first."""

    def __init__(self, space: Space, objective: Closest) -> None:
        self.objective = objective
        self.group_axes = [i for i, axis in enumerate(space.axes) if axis.path in objective.per]
        self.best: dict[tuple, tuple[float, Verdict]] = {}

    def offer(self, verdict: Verdict) -> None:
        group = tuple(verdict.values[i] for i in self.group_axes)
        distance = self.objective.distance(verdict.figures)
        held = self.best.get(group)
        if held is None or distance < held[0]:
            self.best[group] = (distance, verdict)

    def answers(self) -> list[Verdict]:
        """One per group, in the order of the groups' values."""
        return [self.best[g][1] for g in sorted(self.best, key=sort_key)]


class Front:
    """The candidates no other dominates on the objective's figures (equal figures: the first kept)."""

    def __init__(self, objective: Pareto) -> None:
        self.objective = objective
        self.members: list[tuple[tuple[float, ...], Verdict]] = []

    def offer(self, verdict: Verdict) -> None:
        key = self.objective.key(verdict.figures)
        for held, _ in self.members:
            if held == key or dominates(held, key):
                return
        self.members = [(held, v) for held, v in self.members if not dominates(key, held)]
        self.members.append((key, verdict))

    def answers(self) -> list[Verdict]:
        """Sorted by the first figure, then the others."""
        return [v for _, v in sorted(self.members, key=lambda m: m[0])]


def keeper(space: Space, objective: Objective) -> BestPerGroup | Front:
    return BestPerGroup(space, objective) if isinstance(objective, Closest) else Front(objective)


def sort_key(values: tuple) -> tuple:
    """Groups in their values' order, numbers before text."""
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in values)
