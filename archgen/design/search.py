"""Search a space for its answer (the nearest candidate per group, or the Pareto front).

Strategies: `exhaustive` evaluates every candidate of a discrete space (the
default when it has at most EXHAUSTIVE_LIMIT); `random` draws `budget`
candidates with a seed; `evolve` is regularized evolution (Real et al. 2019):
a population of the last POPULATION accepted candidates, each step mutating
one axis of the best of a random tournament, the oldest leaving.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence, get_args

from archgen.design.distributions import Range
from archgen.design.evaluate import Evaluator, Rejections, Verdict
from archgen.design.figures import FIGURES
from archgen.design.keep import keeper
from archgen.design.objectives import Closest, Objective, Pareto, dominates
from archgen.design.sample import draw
from archgen.design.space import Space
from archgen.errors import UserError

Strategy = Literal["auto", "exhaustive", "random", "evolve"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
#: Largest discrete space `auto` searches exhaustively.
EXHAUSTIVE_LIMIT = 20_000
POPULATION = 64
TOURNAMENT = 8


@dataclass
class SearchResult:
    strategy: str
    answers: list[Verdict]
    tally: Rejections


def resolve_strategy(space: Space, strategy: str) -> Strategy:
    """The strategy a search of this space runs: `auto` becomes exhaustive for a discrete space of at most
    EXHAUSTIVE_LIMIT candidates, else random. UserError for an unknown one, or an exhaustive search of a space
    with a continuous axis, which has no end."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy '{strategy}'; use {', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]}")
    size = space.size()
    if strategy == "auto":
        strategy = "exhaustive" if size is not None and size <= EXHAUSTIVE_LIMIT else "random"
    if strategy == "exhaustive" and size is None:
        raise UserError(f"{space.file}: an exhaustive search needs a discrete space, and this one has a continuous "
                        "axis (a range without a step over a float field); give it a step, or use --strategy random")
    return strategy


def chosen_objective(space: Space, minimize: Sequence[str] = (), maximize: Sequence[str] = (),
                     predicts_latency: bool = False) -> Objective:
    """The space's own objective, or the Pareto front of the figures given to minimise and maximise, which
    replaces it. UserError for an unknown figure, or an objective reading the predicted latency when no
    latency model predicts it."""
    objective = space.objective
    if minimize or maximize:
        for name in (*minimize, *maximize):
            if name not in FIGURES:
                raise UserError(f"unknown figure '{name}'; figures: {', '.join(FIGURES)}")
        objective = Pareto(tuple(minimize), tuple(maximize))
    aimed = objective.figures if isinstance(objective, Pareto) else (objective.figure,)
    if "latency" in aimed and not predicts_latency:
        raise UserError("the objective reads the predicted latency, and no latency model was given: add --latency "
                        "DEVICE.json (made by archgen calibrate)")
    return objective


def search(space: Space, objective: Objective, evaluator: Evaluator, strategy: Strategy = "auto",
           budget: int = 10_000, seed: int = 0, progress: Callable[[int], None] | None = None) -> SearchResult:
    """The answer of `objective` over the candidates that meet the evaluator's constraints."""
    strategy = resolve_strategy(space, strategy)
    tally = Rejections()
    keep = keeper(space, objective)
    rng = random.Random(seed)
    candidates = {"exhaustive": lambda: every(space),
                  "random": lambda: (draw(space, rng) for _ in range(budget)),
                  "evolve": lambda: evolve(space, objective, evaluator, rng, budget)}[strategy]()
    for values in candidates:
        verdict = evaluator(values)
        tally.record(verdict)
        if verdict.accepted:
            keep.offer(verdict)
        if progress is not None:
            progress(tally.drawn)
    if not keep.answers():
        raise UserError(f"{space.file}: searched {tally.drawn:,} candidates ({strategy}) and none met the "
                        f"constraints: {tally.worst()}. Loosen the constraint that rejected most or widen the "
                        "distributions")
    return SearchResult(strategy, keep.answers(), tally)


def every(space: Space) -> Iterator[tuple]:
    """Every candidate, the last axis varying fastest."""
    return itertools.product(*(list(axis.dist.values()) for axis in space.axes))


def evolve(space: Space, objective: Objective, evaluator: Evaluator, rng: random.Random,
           budget: int) -> Iterator[tuple]:
    """Regularized evolution: random candidates until the population is full, then mutants of tournament
    winners. Evaluations come back through the evaluator's memo, so scoring a parent costs nothing."""
    population: deque[tuple] = deque(maxlen=POPULATION)
    for _ in range(budget):
        if len(population) < POPULATION:
            child = draw(space, rng)
        else:
            contenders = [evaluator(v) for v in rng.sample(list(population), TOURNAMENT)]
            child = mutate(space, winner(objective, contenders).values, rng)
        yield child
        if evaluator(child).accepted:
            population.append(child)


def winner(objective: Objective, contenders: list[Verdict]) -> Verdict:
    """The nearest to the target; for a front, the contender the fewest others dominate (the first of equals)."""
    if isinstance(objective, Closest):
        return min(contenders, key=lambda v: objective.distance(v.figures))
    keys = [objective.key(v.figures) for v in contenders]
    return min(zip(contenders, keys), key=lambda ck: sum(dominates(k, ck[1]) for k in keys))[0]


def mutate(space: Space, parent: tuple, rng: random.Random) -> tuple:
    """The parent with one axis moved: to a neighbouring grid value of a stepped range, a new draw otherwise."""
    i = rng.randrange(len(space.axes))
    dist = space.axes[i].dist
    n = dist.size() if isinstance(dist, Range) else None
    if n is not None and n > 1:
        k = round((parent[i] - dist.lo) / dist.grid_step) + rng.choice((-1, 1))
        value = dist.at(min(max(k, 0), n - 1))
    else:
        value = dist.draw(rng)
    return parent[:i] + (value,) + parent[i + 1:]
