"""One candidate's verdict: its figures, and which constraints it breaks (or why it cannot be built).

Sampling and search both go through `Evaluator`, which remembers the verdicts
of recent candidates by their axis values, so a discrete space drawn many
times plans each network once. Given a latency predictor, it predicts the
latency of each candidate that meets the counted constraints (predicting
profiles the whole network: a thousand times the cost of counting it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from archgen.bench.latency import LatencyTableError
from archgen.design.constraints import Constraint
from archgen.design.fast_count import figures
from archgen.design.figures import PREDICTED, Figures
from archgen.design.space import Space
from archgen.errors import SpecError, UserError
from archgen.grammar.loader import Spec
from archgen.memo import Memo

#: Candidates whose verdicts are remembered.
REMEMBERED = 4_096
#: What the rejection tally calls a candidate the planner refuses.
UNBUILDABLE = "the network must build"
#: What it calls a candidate whose latency the table cannot predict.
UNPREDICTED = "the latency table must hold its configurations"


@dataclass(frozen=True)
class Verdict:
    values: tuple
    figures: Figures | None
    #: Constraint texts broken (UNBUILDABLE or UNPREDICTED, with `error`, when the planner refused the
    #: candidate or the latency table could not predict it).
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
    #: The first error of each kind (UNBUILDABLE, UNPREDICTED), for the message when nothing is accepted.
    examples: dict[str, str] = field(default_factory=dict)

    def record(self, verdict: Verdict) -> None:
        self.drawn += 1
        if verdict.accepted:
            self.accepted += 1
        self.by.update(verdict.broken)
        if verdict.error:
            self.examples.setdefault(verdict.broken[0], verdict.error)

    @property
    def rate(self) -> float:
        return self.accepted / self.drawn if self.drawn else 0.0

    def worst(self) -> str:
        """The constraints that rejected most, in words."""
        parts = []
        for text, count in self.by.most_common(3):
            share = count / self.drawn
            example = f" ({self.examples[text]})" if text in self.examples else ""
            parts.append(f"{text} rejected {count:,} ({share:.1%}){example}")
        return "; ".join(parts)


class Evaluator:
    """Figures and constraint verdicts of a space's candidates; `latency` (a spec's predicted ms, such as
    archgen.bench.latency.Predictor gives) where the constraints or the objective read the latency."""

    def __init__(self, space: Space, constraints: list[Constraint],
                 latency: Optional[Callable[[Spec], float]] = None) -> None:
        self.space = space
        self.counted = [c for c in constraints if not c.figures & PREDICTED]
        self.predicted = [c for c in constraints if c.figures & PREDICTED]
        if self.predicted and latency is None:
            raise UserError(f"the constraint {self.predicted[0].where} reads the predicted latency, and no latency "
                            "table was given: use archgen search SPACE --latency TABLE.json (made by archgen "
                            "calibrate), or drop the constraint")
        self.latency = latency
        self.memo = Memo(REMEMBERED, "evaluate: verdicts")

    def __call__(self, values: tuple) -> Verdict:
        known = self.memo.get(values)
        if known is None:
            known = self.memo.keep(values, self.judge(values))
        return known

    def judge(self, values: tuple) -> Verdict:
        try:
            spec = self.space.spec(values)
            counted = figures(spec)
        except SpecError as exc:
            return Verdict(values, None, (UNBUILDABLE,), exc.message)
        broken = tuple(c.text for c in self.counted if not c.holds(counted))
        if broken or self.latency is None:
            return Verdict(values, counted, broken)
        try:
            predicted = counted._replace(latency=self.latency(spec))
        except LatencyTableError as exc:
            return Verdict(values, counted, (UNPREDICTED,), f"{exc.lacking or exc}; archgen calibrate --space "
                                                            f"{self.space.file} --n N -o TABLE.json times a sample of "
                                                            "the space's configurations")
        return Verdict(values, predicted, tuple(c.text for c in self.predicted if not c.holds(predicted)))
