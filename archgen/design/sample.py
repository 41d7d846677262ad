"""Rejection sampling: draw candidates from a space until N meet its constraints.

Reproducible: one `random.Random(seed)` draws every axis in the order the
file writes them, rejected candidates included, so a seed names a sample.
Streaming: candidates are yielded as they are accepted and never held, so
memory does not grow with N (nor with the draws a low acceptance rate costs).
"""

from __future__ import annotations

import random
from typing import Iterator

from archgen.design.evaluate import Evaluator, Rejections, Verdict
from archgen.design.space import Space
from archgen.errors import UserError

#: Draws allowed per sample asked for, by default, before a space is called unsatisfiable.
DRAWS_PER_SAMPLE = 1000
#: ... and at least this many in all.
MIN_DRAWS = 10_000


class Unsatisfiable(UserError):
    """Too few candidates met the constraints within the draw budget."""


def draw(space: Space, rng: random.Random) -> tuple:
    """One value per axis, in file order."""
    return tuple(axis.dist.draw(rng) for axis in space.axes)


def default_budget(n: int) -> int:
    return max(MIN_DRAWS, DRAWS_PER_SAMPLE * n)


def sample(space: Space, n: int, seed: int, evaluator: Evaluator, tally: Rejections,
           max_draws: int | None = None) -> Iterator[Verdict]:
    """Yield `n` accepted candidates (verdicts with figures); `tally` counts every draw as it goes.

    Raises Unsatisfiable after the last accepted one when the budget (`max_draws`, default
    `default_budget(n)`) runs out first, saying how many were drawn and what rejected them.
    """
    rng = random.Random(seed)
    budget = default_budget(n) if max_draws is None else max_draws
    while tally.accepted < n and tally.drawn < budget:
        verdict = evaluator(draw(space, rng))
        tally.record(verdict)
        if verdict.accepted:
            yield verdict
    if tally.accepted < n:
        raise Unsatisfiable(unsatisfiable_message(space, n, tally))


def unsatisfiable_message(space: Space, n: int, tally: Rejections) -> str:
    got = "none" if tally.accepted == 0 else f"only {tally.accepted:,}"
    return (f"{space.file}: drew {tally.drawn:,} candidates and {got} met the constraints ({n:,} asked for): "
            f"{tally.worst()}. Loosen the constraint that rejected most, widen the distributions, or allow more "
            f"draws (--max-draws)")
