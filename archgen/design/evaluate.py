"""One candidate's verdict: its figures, and which constraints it breaks (or why it cannot be built).

Sampling and search both go through `Evaluator`, which remembers the verdicts
of recent candidates by their axis values, so a discrete space drawn many
times plans each network once. Given a latency predictor (a latency model's,
archgen.bench.latency_model), it predicts the latency of each candidate that
meets the counted constraints: every such candidate is predicted, and those
with kernels outside the calibrated ranges are counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from archgen.design.constraints import Constraint
from archgen.design.fast_count import figures
from archgen.design.figures import PREDICTED, Figures
from archgen.design.space import Space
from archgen.errors import SpecError, UserError
from archgen.memo import Memo
from archgen.planner import Framed, framed
from archgen.render import share

if TYPE_CHECKING:
    from archgen.bench.latency_model import Prediction

#: Candidates whose verdicts are remembered.
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
    #: Kernel units of the candidate outside the latency model's calibrated ranges (predicted all the same).
    extrapolated: int = 0

    @property
    def accepted(self) -> bool:
        return not self.broken


@dataclass
class Rejections:
    """How many candidates were drawn, how many met every constraint, and what turned the others away."""

    drawn: int = 0
    accepted: int = 0
    by: Counter = field(default_factory=Counter)
    #: The first error of each kind (UNBUILDABLE), for the message when nothing is accepted.
    examples: dict[str, str] = field(default_factory=dict)
    #: Distinct candidates (by their axis values) whose latency was predicted, and how many of them had kernels
    #: outside the calibrated ranges: a search draws a candidate many times (an evolving population, a small
    #: space), and counting the draws would count far more candidates than the space holds.
    predicted: int = 0
    extrapolated: int = 0
    #: The axis values counted in `predicted`.
    predicted_values: set[tuple] = field(default_factory=set, repr=False)

    def record(self, verdict: Verdict) -> None:
        self.drawn += 1
        if verdict.accepted:
            self.accepted += 1
        if verdict.figures is not None and verdict.figures.latency is not None \
                and verdict.values not in self.predicted_values:
            self.predicted_values.add(verdict.values)
            self.predicted += 1
            self.extrapolated += verdict.extrapolated > 0
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
            example = f" ({self.examples[text]})" if text in self.examples else ""
            parts.append(f"{text} rejected {count:,} ({share(count, self.drawn)}){example}")
        return "; ".join(parts)


class Evaluator:
    """Figures and constraint verdicts of a space's candidates; `latency` (a framed spec's predicted latency,
    such as archgen.bench.latency_model.LatencyModel.predict gives) where the constraints or the objective read
    it."""

    def __init__(self, space: Space, constraints: list[Constraint],
                 latency: Optional[Callable[[Framed], "Prediction"]] = None) -> None:
        self.space = space
        self.counted = [c for c in constraints if not c.figures & PREDICTED]
        self.predicted = [c for c in constraints if c.figures & PREDICTED]
        if self.predicted and latency is None:
            raise UserError(f"the constraint {self.predicted[0].where} reads the predicted latency, and no latency "
                            "model was given: use archgen search SPACE --latency DEVICE.json (made by archgen "
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
            candidate = framed(self.space.spec(values))  # settled once, for counting and predicting
            counted = figures(candidate)
        except SpecError as exc:
            return Verdict(values, None, (UNBUILDABLE,), exc.message)
        broken = tuple(c.text for c in self.counted if not c.holds(counted))
        if broken or self.latency is None:
            return Verdict(values, counted, broken)
        prediction = self.latency(candidate)
        predicted = counted._replace(latency=prediction.total_ms)
        return Verdict(values, predicted, tuple(c.text for c in self.predicted if not c.holds(predicted)),
                       extrapolated=prediction.extrapolated)
