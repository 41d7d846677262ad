"""Numbers as papers print them ("25.0M", "3.8G", "0.27M", "25.0 x 10^6").

A printed figure carries its own tolerance: "1.7M" says the true count lies
within half a unit of its last digit (1.65M .. 1.75M). Specs cite numbers in
this form, and every test and table that compares a computed count with a
paper reads them through `parse_printed` / `within`, so the rounding rule lives
in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

#: Unit suffixes papers use after a number; "Bn" is YOLOv3's "Bn Ops".
SUFFIXES = {"": 0, "K": 3, "M": 6, "G": 9, "B": 9, "BN": 9, "T": 12}

_PRINTED = re.compile(
    r"""^\s*(?P<mantissa>[0-9]+(?:\.[0-9]*)?)\s*
        (?:(?:x|\*|×|·)\s*10\s*\^?\s*(?P<power>[+-]?[0-9]+)|(?P<suffix>[A-Za-z]*))\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Printed:
    """A printed number: its value and half a unit of its last printed digit."""

    text: str
    value: float
    half_unit: float

    @property
    def low(self) -> float:
        return self.value - self.half_unit

    @property
    def high(self) -> float:
        return self.value + self.half_unit


def parse_printed(text: str) -> Printed:
    """'25.0M' -> Printed(value=25.0e6, half_unit=0.05e6); '3.8G', '0.27M', '25.0 x 10^6', '18.7 Bn' alike.

    Thousands separators ('25,557,032') are accepted for exact counts (half unit 0.5).
    Raises ValueError on anything else, naming the text.
    """
    cleaned = str(text).strip().replace(",", "")
    match = _PRINTED.match(cleaned)
    if match is None:
        raise ValueError(f"cannot read {text!r} as a printed number (expected e.g. '25.0M', '3.8G', "
                         f"'25.0 x 10^6')")
    mantissa = Decimal(match["mantissa"])
    if match["power"] is not None:
        exponent = int(match["power"])
    else:
        suffix = match["suffix"].upper()
        if suffix not in SUFFIXES:
            raise ValueError(f"unknown unit {match['suffix']!r} in printed number {text!r} "
                             f"(known: {', '.join(s for s in SUFFIXES if s)})")
        exponent = SUFFIXES[suffix]
    last_digit = mantissa.as_tuple().exponent  # -2 for '0.27', 0 for '25'
    scale = Decimal(10) ** exponent
    half_unit = Decimal(5) * Decimal(10) ** (last_digit - 1) * scale
    return Printed(text=str(text), value=float(mantissa * scale), half_unit=float(half_unit))


def printed_tolerance(text: str) -> tuple[float, float]:
    """'25.0M' -> (25.0e6, 0.05e6): the value and half a unit of its last printed digit."""
    printed = parse_printed(text)
    return printed.value, printed.half_unit


def within(text: str, value: float) -> bool:
    """Whether `value` rounds to `text` at the precision the paper printed it (bounds inclusive)."""
    printed = parse_printed(text)
    # A relative epsilon keeps exact boundary cases (e.g. 1.75M for '1.7M') from failing on float noise.
    slack = printed.half_unit * 1e-9
    return printed.low - slack <= value <= printed.high + slack
