"""The three distributions a design-space field may hold instead of a value.

    {range: [lo, hi], step: s}        every lo + k*s up to hi (s must divide hi - lo); without `step`,
                                      every integer of an integer field, or uniform over a float field
    {log_uniform: [lo, hi], step: s}  log-uniform over [lo, hi] (lo > 0), rounded to a multiple of s if
                                      given (pycls's quantized log-uniform: RegNet's w0 in steps of 8)
    {choice: [v1, v2, ...]}           one of the values, each equally likely

A mapping is a distribution when it holds one of the keys `range`, `log_uniform`
or `choice`; no spec field has those names, so the two cannot be confused. Each
is checked here at its own line (lo > hi, an empty choice, a step that does not
divide the range); whether its values suit the field is checked by the space,
against the spec grammar.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Union

from archgen.grammar.validate import Validator, describe
from archgen.grammar.yamlio import Path

KINDS = ("range", "log_uniform", "choice")
#: What each kind takes besides itself.
OPTIONS = {"range": ("step",), "log_uniform": ("step",), "choice": ()}


def is_distribution(raw: Any) -> bool:
    """Whether a raw YAML value is a distribution rather than a value."""
    return isinstance(raw, dict) and any(kind in raw for kind in KINDS)


@dataclass(frozen=True)
class Range:
    """lo, lo + step, ..., hi; `step` None means continuous (float fields) or integers (int fields)."""

    lo: float
    hi: float
    step: float | None
    integer: bool = False

    @property
    def grid_step(self) -> float | None:
        return self.step if self.step is not None else (1 if self.integer else None)

    def size(self) -> int | None:
        step = self.grid_step
        return None if step is None else int(round((self.hi - self.lo) / step)) + 1

    def values(self) -> Iterator[Any]:
        for k in range(self.size() or 0):
            yield self.at(k)

    def at(self, k: int) -> Any:
        value = self.lo + k * self.grid_step
        return int(round(value)) if self.integer else round(value, 12)

    def draw(self, rng: random.Random) -> Any:
        n = self.size()
        if n is None:
            return rng.uniform(self.lo, self.hi)
        return self.at(rng.randrange(n))

    def representatives(self) -> list[Any]:
        """Values whose validity vouches for every value: the ends, and the second grid value (a step of
        0.5 over an integer field shows there)."""
        second = [self.lo + self.step] if self.step is not None and self.lo + self.step <= self.hi else []
        return [self.lo, self.hi, *second]


@dataclass(frozen=True)
class LogUniform:
    """exp(uniform(log lo, log hi)), then to the nearest multiple of `step` (kept inside [lo, hi])."""

    lo: float
    hi: float
    step: float | None
    integer: bool = False

    def size(self) -> int | None:
        if self.step is None:
            return int(self.hi - self.lo) + 1 if self.integer else None
        return int(round((self.hi - self.lo) / self.step)) + 1

    def values(self) -> Iterator[Any]:
        step = self.step if self.step is not None else 1
        for k in range(self.size() or 0):
            yield self.cast(self.lo + k * step)

    def cast(self, value: float) -> Any:
        return int(round(value)) if self.integer else round(value, 12)

    def draw(self, rng: random.Random) -> Any:
        value = math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        if self.step is not None:
            value = min(max(round(value / self.step) * self.step, self.lo), self.hi)
        return self.cast(value)

    def representatives(self) -> list[Any]:
        return [self.lo, self.hi]


@dataclass(frozen=True)
class Choice:
    """One of `options`, equally likely."""

    options: tuple[Any, ...]

    def size(self) -> int:
        return len(self.options)

    def values(self) -> Iterator[Any]:
        return iter(self.options)

    def draw(self, rng: random.Random) -> Any:
        return self.options[rng.randrange(len(self.options))]

    def representatives(self) -> list[Any]:
        return list(self.options)


Distribution = Union[Range, LogUniform, Choice]


def parse_distribution(raw: dict, path: Path, validator: Validator) -> Distribution:
    """The distribution a raw mapping describes, or a SpecError at the line of what is wrong with it.

    `integer` is settled later, from the field the distribution sits on (`with_field_type`).
    """
    kinds = [kind for kind in KINDS if kind in raw]
    if len(kinds) > 1:
        raise validator.error(path + (kinds[1],), f"a distribution has one kind, and this one has "
                                                  f"{' and '.join(kinds)}; keep one")
    kind = kinds[0]
    for key in raw:
        if key != kind and key not in OPTIONS[kind]:
            takes = f"'{kind}' and " + (", ".join(f"'{o}'" for o in OPTIONS[kind]) or "nothing else")
            raise validator.error(path + (key,), f"unknown key '{key}' in a {kind} distribution; it takes {takes}")
    if kind == "choice":
        options = raw["choice"]
        if not isinstance(options, list):
            raise validator.error(path + ("choice",), f"found {describe(options)}; expected a list of the values "
                                                      "to choose from, e.g. {choice: [1, 2, 4]}")
        if not options:
            raise validator.error(path + ("choice",), "is an empty list; a choice needs at least one value")
        return Choice(tuple(options))
    lo, hi = bounds(raw[kind], path + (kind,), validator, kind)
    step = raw.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
            raise validator.error(path + ("step",), f"found {describe(step)}; expected a positive number")
        spans = (hi - lo) / step
        if abs(spans - round(spans)) > 1e-9:
            raise validator.error(path + ("step",), f"a step of {step} does not divide the range {lo}..{hi} "
                                                    f"({hi - lo:g} is {spans:.3g} steps); choose a step that does, "
                                                    f"or move an end to lo + k * step")
        if kind == "log_uniform" and abs(lo / step - round(lo / step)) > 1e-9:
            raise validator.error(path + ("step",), f"a log-uniform value is rounded to a multiple of the step, "
                                                    f"and {lo} is not a multiple of {step}; make both ends multiples")
    if kind == "log_uniform":
        if lo <= 0:
            raise validator.error(path + (kind,), f"a log-uniform range needs lo > 0 (found {lo})")
        return LogUniform(lo, hi, step)
    return Range(lo, hi, step)


def bounds(raw: Any, path: Path, validator: Validator, kind: str) -> tuple[float, float]:
    """[lo, hi], two numbers with lo <= hi."""
    if (not isinstance(raw, list) or len(raw) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in raw)):
        raise validator.error(path, f"found {describe(raw)}; expected [lo, hi], two numbers, e.g. "
                                    f"{{{kind}: [1, 8]}}")
    lo, hi = raw
    if lo > hi:
        raise validator.error(path, f"lo {lo} is above hi {hi}; write [{hi}, {lo}]")
    return lo, hi


def with_field_type(dist: Distribution, integer: bool, path: Path, validator: Validator) -> Distribution:
    """`dist` told whether its field takes integers (then every value it draws is one)."""
    if isinstance(dist, Choice):
        return dist
    if integer and dist.step is not None and float(dist.step) != int(dist.step):
        raise validator.error(path + ("step",), f"the field takes integers, and a step of {dist.step} makes "
                                                "fractions; use an integer step")
    if integer and (float(dist.lo) != int(dist.lo) or float(dist.hi) != int(dist.hi)):
        raise validator.error(path, f"the field takes integers, and [{dist.lo}, {dist.hi}] has a fractional end")
    return type(dist)(dist.lo, dist.hi, dist.step, integer)
