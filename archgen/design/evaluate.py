"""One candidate's verdict: its figures, and which constraints it breaks (or why it cannot be built).

Sampling and search both go through `Evaluator`, which remembers the figures
of recent candidates by their axis values, so a discrete space drawn many
times plans each network once.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from archgen.design.constraints import Constraint
from archgen.design.count import figures
from archgen.design.figures import Figures
from archgen.design.space import Space
from archgen.errors import SpecError

#: Candidates whose figures are remembered.
REMEMBERED = 4_096
#: What the rejection tally calls a candidate the planner refuses.
UNBUILDABLE = "the network must build"


@dataclass(frozen=True)
class Verdict:
    values: tuple
    figures: Figures | None
    #: Constraint texts broken (UNBUILDABLE, with `error`, when the planner refused the candidate).
    broken: tuple[str, ...] = ()
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return not self.broken


@dataclass
class Rejections:
    """How many candidates were drawn, how many met every constraint, and what turned the others away."""

    drawn: int = 0
    accepted: int = 0
    by: Counter = field(default_factory=Counter)
    #: A planner error, for the message when the network cannot be built.
    example_error: str | None = None

    def record(self, verdict: Verdict) -> None:
        self.drawn += 1
        if verdict.accepted:
            self.accepted += 1
        self.by.update(verdict.broken)
        if verdict.error and self.example_error is None:
            self.example_error = verdict.error

    @property
    def rate(self) -> float:
        return self.accepted / self.drawn if self.drawn else 0.0

    def worst(self) -> str:
        """The constraints that rejected most, in words."""
        parts = []
        for text, count in self.by.most_common(3):
            share = count / self.drawn
            example = f" ({self.example_error})" if text == UNBUILDABLE and self.example_error else ""
            parts.append(f"{text} rejected {count:,} ({share:.1%}){example}")
        return "; ".join(parts)


class Evaluator:
    """Figures and constraint verdicts of a space's candidates."""

    def __init__(self, space: Space, constraints: list[Constraint]) -> None:
        self.space = space
        self.constraints = constraints
        self.memo: OrderedDict[tuple, Figures | str] = OrderedDict()

    def __call__(self, values: tuple) -> Verdict:
        known = self.memo.get(values)
        if known is None:
            try:
                known = figures(self.space.spec(values))
            except SpecError as exc:
                known = exc.message
            self.memo[values] = known
            if len(self.memo) > REMEMBERED:
                self.memo.popitem(last=False)
        if isinstance(known, str):
            return Verdict(values, None, (UNBUILDABLE,), known)
        broken = tuple(c.text for c in self.constraints if not c.holds(known))
        return Verdict(values, known, broken)
