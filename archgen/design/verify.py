"""A latency-aware search checked on the device: the predicted front's members and K other candidates inside
the constraints are built and measured, and the front is judged again with the measured latency.

A prediction that ranks candidates well is what a search needs; a front member that another checked candidate
dominates once both are measured is one the model put there wrongly. The measuring is the caller's (`measure`:
spec mappings to ms, such as archgen.bench.kernel_timing.time_networks on the model's backend), so this stays
free of torch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence

from archgen.design.evaluate import Evaluator, Verdict
from archgen.design.objectives import Objective, Pareto, dominates
from archgen.design.sample import draw
from archgen.design.space import Space

#: Draws per other candidate asked for before giving up on finding more inside the constraints; also the run of
#: draws that meet no candidate not met before, after which the space is taken to hold no more.
DRAWS_PER_OTHER = 200


class Checked(NamedTuple):
    """One candidate measured: whether it is on the predicted front, its predicted and measured ms, the
    relative error (predicted / measured - 1), for a front member whether a checked candidate dominates
    it once measured (None where the objective is not a front), and its axis values by the search table's
    column labels (an other candidate is on no table but this one)."""

    name: str
    on_front: bool
    predicted_ms: float
    measured_ms: float
    error: float
    dominated: Optional[bool]
    values: dict[str, object]


@dataclass
class Verification:
    """A search's front and other candidates measured (archgen search --verify)."""

    space: str
    #: Where it was measured, in words (backend, batch, device).
    where: str
    checked: list[Checked]
    front_size: int
    #: Front members dominated once measured (None where the objective is not a front).
    dominated: Optional[int]
    #: Other candidates asked for, and found inside the constraints.
    asked: int = 0

    @property
    def scale(self) -> Optional[float]:
        """Measured over predicted at the median: how far the model's scale sits from this machine now (a
        machine's speed drifts; a search reads the ranking, which a common factor leaves alone)."""
        ratios = sorted(c.measured_ms / c.predicted_ms for c in self.checked if c.predicted_ms > 0)
        return ratios[len(ratios) // 2] if ratios else None

    @property
    def tau(self) -> Optional[float]:
        """Kendall's tau of predicted against measured over the candidates checked (None for fewer than 3, or
        where either side is all ties)."""
        if len(self.checked) < 3:
            return None
        tau = kendall_tau([c.predicted_ms for c in self.checked], [c.measured_ms for c in self.checked])
        return None if math.isnan(tau) else tau

    def summary(self) -> str:
        """The check in a sentence: what was measured, how close the predictions came, how well they ranked the
        candidates, what the front lost."""
        if not self.checked:
            return "nothing was measured"
        others = len(self.checked) - self.front_size
        errors = sorted(abs(c.error) for c in self.checked)
        text = f"measured {self.front_size} front member(s) and {others} other candidate(s)"
        if others < self.asked:
            text += f" (of {self.asked:,} asked for; the space gave no more inside the constraints)"
        text += (f"; {sum(e <= 0.1 for e in errors)} of {len(errors)} predicted within +-10%, median error "
                 f"{errors[len(errors) // 2]:.1%}")
        scale, tau = self.scale, self.tau
        if scale is not None:
            text += f"; measured {scale:.2f}x the prediction at the median"
        if tau is not None:
            text += f", ranked with Kendall's tau {tau:.2f}"
        if self.dominated is not None:
            text += f"; {self.dominated} of {self.front_size} front member(s) dominated once measured"
        return text


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Kendall's tau-b of two paired lists (ties in either list counted as neither concordant nor discordant;
    NaN where either list is all ties): how well one orders what the other does, which is what a search
    needs of a predictor."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else float("nan")


def others(space: Space, evaluator: Evaluator, exclude: set, k: int, seed: int) -> list[Verdict]:
    """Up to k candidates inside the constraints, drawn with `seed`, none of them in `exclude` (axis values)
    nor twice. The drawing stops early once every candidate of a finite space has been met, or after
    DRAWS_PER_OTHER draws in a row met none not met before: a small space asked for more than it holds
    would otherwise be drawn DRAWS_PER_OTHER * k times for nothing."""
    rng = random.Random(seed)
    found: list[Verdict] = []
    met = set(exclude)  # accepted or not: a candidate is judged once
    size = space.size()
    stale = 0
    for _ in range(DRAWS_PER_OTHER * k):
        if len(found) == k or (size is not None and len(met) >= size) or stale >= DRAWS_PER_OTHER:
            break
        values = draw(space, rng)
        if values in met:
            stale += 1
            continue
        stale = 0
        met.add(values)
        verdict = evaluator(values)
        if verdict.accepted:
            found.append(verdict)
    return found


def verify(space: Space, objective: Objective, evaluator: Evaluator, front: Sequence[Verdict],
           names: Sequence[str], k: int, seed: int, measure: Callable[[list[dict]], list[float]],
           where: str) -> Verification:
    """The front's members (named `names`) and k other candidates measured by `measure` and judged again."""
    extra = others(space, evaluator, {v.values for v in front}, k, seed)
    verdicts = list(front) + extra
    labels = list(names) + [f"{space.name}_other{j}" for j in range(len(extra))]
    specs = [space.written(v.values, name, f"checked by archgen search --verify: {space.describe(v.values)}")
             for v, name in zip(verdicts, labels)]
    measured = measure(specs)
    keys = None
    if isinstance(objective, Pareto):
        keys = [objective.key(v.figures._replace(latency=ms)) for v, ms in zip(verdicts, measured)]
    checked = []
    for i, (v, name, ms) in enumerate(zip(verdicts, labels, measured)):
        on_front = i < len(front)
        dominated = None
        if keys is not None and on_front:
            dominated = any(dominates(other, keys[i]) for j, other in enumerate(keys) if j != i)
        checked.append(Checked(name, on_front, v.figures.latency, ms, v.figures.latency / ms - 1, dominated,
                               dict(zip(space.labels(), v.values))))
    count = None if keys is None else sum(bool(c.dominated) for c in checked)
    return Verification(space.name, where, checked, len(front), count, k)
