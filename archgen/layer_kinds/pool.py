"""Pooling: windows of a fixed size (the stem's max-pool, VGG's, DenseNet's transitions, ResNet-D's shortcut),
and adaptive pooling to a fixed output (the head's global pool, VGG's 7x7, the squeeze of an SE gate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import LayerKind, layer_kind
from archgen.tally import TooSmall, adaptive_window_sum, conv_out

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("pool")
@dataclass(frozen=True)
class Pool(LayerKind):
    """Max or average pooling over k x k windows: one op per window element, apart from MACs."""

    name: str
    c: int
    kind: str  # max, avg
    k: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    def unit_kind(self, h_out: int, w_out: int, norm: str) -> str:
        return f"{self.kind}_pool"

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        ho = conv_out(h, self.k, self.stride, self.padding, 1, self.ceil_mode)
        wo = conv_out(w, self.k, self.stride, self.padding, 1, self.ceil_mode)
        if ho < 1 or wo < 1:
            raise TooSmall(f"{t.full_name(self.name)} gets a {h}x{w} input and would output {ho}x{wo}")
        t.record(self.name, "pool", 0, 0, 0, self.c * ho * wo * self.k * self.k, (self.c, ho, wo))
        return ho, wo

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        if self.kind == "max":
            return nn.MaxPool2d(self.k, self.stride, self.padding, ceil_mode=self.ceil_mode)
        return nn.AvgPool2d(self.k, self.stride, self.padding, ceil_mode=self.ceil_mode,
                            count_include_pad=self.count_include_pad)


@layer_kind("adaptive_pool")
@dataclass(frozen=True)
class AdaptivePool(LayerKind):
    """Max or average pooling to size x size (1: global). One op per input element read by each output's
    window: torch's windows [floor(i h / s), ceil((i + 1) h / s)) overlap, or repeat a pixel, when s does not
    divide h; at size 1 that is every input element once."""

    name: str
    c: int
    kind: str  # max, avg
    size: int = 1

    def unit_kind(self, h_out: int, w_out: int, norm: str) -> str:
        return "global_pool" if (h_out, w_out) == (1, 1) else "adaptive_pool"

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        reads = adaptive_window_sum(h, self.size) * adaptive_window_sum(w, self.size)
        t.record(self.name, "pool", 0, 0, 0, self.c * reads, (self.c, self.size, self.size))
        return self.size, self.size

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return (nn.AdaptiveMaxPool2d if self.kind == "max" else nn.AdaptiveAvgPool2d)(self.size)
