"""Where layer kinds write their cost: a running list of named figures (`Tally`), or only their sums (`Totals`).

The arithmetic of each layer lives in its kind (archgen.layer_kinds); this module holds what they share,
below every kind, so that counting imports no kind, no planner and no torch. Conventions are in
archgen.complexity's docstring.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator


class Uncountable(ValueError):
    """Records that have no count because torch would not build them for this input."""


class TooSmall(Uncountable):
    """A layer's output would have no pixels."""


class Misgrouped(Uncountable):
    """A grouped conv whose groups do not divide its channels (the planner names the field at fault; the fast
    counter, which skips the planner's checks, learns it here in passing)."""


@dataclass
class LayerCost:
    name: str
    op: str  # conv, linear, bn, norm, act, pool, add, mul
    params: int
    macs: int
    acts: int
    other_ops: int
    out: tuple[int, int, int]  # channels, height, width


@dataclass
class Tally:
    """Each layer's figures, in the order a block's records are walked, under a name scope."""

    layers: list[LayerCost] = field(default_factory=list)
    prefix: str = ""

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        saved = self.prefix
        self.prefix = f"{saved}.{name}" if saved else name
        try:
            yield
        finally:
            self.prefix = saved

    def full_name(self, name: str) -> str:
        """The layer's name in the network ('layer1.0.conv1'), as error messages give it."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def record(self, name: str, op: str, params: int, macs: int, acts: int, other_ops: int,
               out: tuple[int, int, int]) -> None:
        self.layers.append(LayerCost(self.full_name(name), op, params, macs, acts, other_ops, out))

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def acts(self) -> int:
        return sum(layer.acts for layer in self.layers)


#: The scope of a tally that keeps no names: one reusable context that does nothing.
_NO_SCOPE = contextlib.nullcontext()


class Unnamed(Tally):
    """A Tally that keeps no named record, so that entering a scope costs nothing: the design hot path enters
    one per sequence of every new block, and a generator-based context manager there cost about 5% of a latency
    search. Its errors name layers without their scope; the hot paths that use it recount a candidate they
    cannot settle with a named Tally, whose error the user sees."""

    def __init__(self) -> None:
        self.prefix = ""

    def scope(self, name: str) -> contextlib.AbstractContextManager[None]:
        return _NO_SCOPE


class Totals(Unnamed):
    """A Tally that keeps only the sums: what the design hot path needs, without a named record per layer."""

    # Plain counters, shadowing Tally's sums over its records.
    params = macs = acts = 0

    def record(self, name: str, op: str, params: int, macs: int, acts: int, other_ops: int,
               out: tuple[int, int, int]) -> None:
        self.params += params
        self.macs += macs
        self.acts += acts


def conv_out(size: int, k: int, stride: int, pad: int, dilation: int, ceil_mode: bool = False) -> int:
    span = size + 2 * pad - dilation * (k - 1) - 1
    if span < 0:
        return 0
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        # PyTorch drops a last window that would start in the right padding.
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1


def adaptive_window_sum(size: int, out: int) -> int:
    """The summed window lengths of adaptive pooling from `size` to `out` along one axis."""
    return sum(-(-(i + 1) * size // out) - i * size // out for i in range(out))
