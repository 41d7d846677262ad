"""Constraints on computed figures, written as people write them: `macs <= 4.1G`, `params < 25.6M`,
`3.9G <= macs <= 4.1G`, `depth == 50`.

Numbers are read by archgen.printed (so `4.1G`, `25.6M`, `25,557,032` and
`36.5 x 10^6` all work) and mean their value: `macs <= 4.1G` is 4.1e9 or less.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable

from archgen.design.figures import FIGURES, Figures
from archgen.errors import did_you_mean
from archgen.grammar.validate import Validator, describe
from archgen.grammar.yamlio import Path
from archgen.printed import parse_printed

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_SPLIT = re.compile(r"\s*(<=|>=|==|<|>)\s*")


@dataclass(frozen=True)
class Bound:
    """`figure op value`."""

    figure: str
    op: str
    value: float

    def holds(self, figures: Figures) -> bool:
        return OPERATORS[self.op](figures.get(self.figure), self.value)


@dataclass(frozen=True)
class Constraint:
    """One written constraint (one or two bounds), and where it was written."""

    text: str
    bounds: tuple[Bound, ...]
    line: int | None = None

    def holds(self, figures: Figures) -> bool:
        return all(b.holds(figures) for b in self.bounds)

    @property
    def figures(self) -> frozenset[str]:
        return frozenset(b.figure for b in self.bounds)

    @property
    def where(self) -> str:
        return f"'{self.text}'" + (f" (line {self.line})" if self.line else "")


def parse_constraint(text: object, path: Path = (), validator: Validator | None = None) -> Constraint:
    """A Constraint from its text; SpecError at `path` otherwise (a constraint from the command line is said to come from --constraint)."""
    v = validator or Validator({}, "--constraint")
    if not isinstance(text, str):
        raise v.error(path, f"found {describe(text)}; a constraint is text such as 'macs <= 4.1G'")
    parts = _SPLIT.split(text.strip())
    if len(parts) not in (3, 5):
        raise v.error(path, f"cannot read the constraint '{text}'; write FIGURE OP NUMBER (e.g. 'macs <= 4.1G', "
                            f"'params > 1M') or LOW <= FIGURE <= HIGH, with OP one of {', '.join(OPERATORS)}")
    if len(parts) == 3:
        left, op, right = parts
        if left in FIGURES or right not in FIGURES:
            figure = known_figure(left, text, path, v)
            bounds = (Bound(figure, op, number(right, text, path, v)),)
        else:
            bounds = (Bound(right, flip(op), number(left, text, path, v)),)
    else:
        low, op1, middle, op2, high = parts
        figure = known_figure(middle, text, path, v)
        bounds = (Bound(figure, flip(op1), number(low, text, path, v)),
                  Bound(figure, op2, number(high, text, path, v)))
    loc = v.locs.get(path)
    return Constraint(text.strip(), bounds, loc.line if loc else None)


def flip(op: str) -> str:
    """The operator seen from the other side: `4G >= macs` is `macs <= 4G`."""
    return {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}[op]


def known_figure(name: str, text: str, path: Path, v: Validator) -> str:
    if name not in FIGURES:
        raise v.error(path, f"'{name}' in '{text}' is not a figure archgen computes.{did_you_mean(name, FIGURES)} "
                            f"Figures: {', '.join(FIGURES)}")
    return name


def number(text: str, whole: str, path: Path, v: Validator) -> float:
    if text.strip().startswith("-"):  # every figure (params, MACs, ms, ...) is a count or a time: never below 0
        raise v.error(path, f"'{text}' in '{whole}' is below 0, and every figure is 0 or more; write e.g. 4.1G, "
                            "25.6M, 800K or 50")
    try:
        return parse_printed(text).value
    except ValueError:
        raise v.error(path, f"'{text}' in '{whole}' is not a number; write e.g. 4.1G, 25.6M, 800K or 50") from None
