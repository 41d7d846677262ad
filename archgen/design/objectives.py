"""What a search looks for: the candidate of each group whose figure comes closest to a target
(`closest:` / `preserve:`), or the Pareto front of figures to minimise or maximise."""

from __future__ import annotations

from dataclasses import dataclass

from archgen.design.figures import Figures
from archgen.grammar.yamlio import Path


@dataclass(frozen=True)
class Closest:
    """Per group (the values of the `per` fields), the candidate whose `figure` is nearest `target`.
    Ties go to the candidate met first (the lower value in a range), so an answer does not depend on luck."""

    figure: str
    target: float
    #: Where the target came from, in words ('resnet50's params', '36.5M').
    source: str
    per: tuple[Path, ...] = ()

    def distance(self, figures: Figures) -> float:
        return abs(figures.get(self.figure) - self.target)


@dataclass(frozen=True)
class Pareto:
    """The candidates no other beats on every figure: `minimize` lower, `maximize` higher."""

    minimize: tuple[str, ...] = ("params", "macs", "acts")
    maximize: tuple[str, ...] = ()

    @property
    def figures(self) -> tuple[str, ...]:
        return self.minimize + self.maximize

    def key(self, figures: Figures) -> tuple[float, ...]:
        """Figures as costs (lower is better on every axis)."""
        return tuple(figures.get(f) for f in self.minimize) + tuple(-figures.get(f) for f in self.maximize)


Objective = Closest | Pareto


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """a is no worse than b on every axis and better on one."""
    return all(x <= y for x, y in zip(a, b)) and a != b

