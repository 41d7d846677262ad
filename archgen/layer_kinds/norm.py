"""Normalisation layers: the network's norm (batch, group or frozen batch norm, as the spec's `norm:` says) and
local response normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import LayerKind, current_style, layer_kind

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("norm")
@dataclass(frozen=True)
class Norm(LayerKind):
    """The network's normalisation over `c` channels. The three choices count the same (two parameters per
    channel, one op per element), so the record does not say which: the builder's style does."""

    fusable = "norm"
    scales_output = True

    name: str
    c: int

    def unit_kind(self, h_out: int, w_out: int, norm: str) -> str:
        return norm

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        t.record(self.name, "bn", 2 * self.c, 0, 0, self.c * h * w, (self.c, h, w))
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        style = current_style()
        if style.norm == "group":
            return nn.GroupNorm(style.groups, self.c)
        if style.norm == "frozen_batch":
            from archgen.modules import FrozenBatchNorm2d

            frozen = FrozenBatchNorm2d(self.c)
            frozen.eps = style.eps
            return frozen
        return nn.BatchNorm2d(self.c, eps=style.eps, momentum=style.momentum)


@layer_kind("local_response_norm")
@dataclass(frozen=True)
class LocalResponseNorm(LayerKind):
    """Local response normalisation across channels (Krizhevsky et al. 2012, Sec. 3.3): VGG's configuration
    A-LRN, whose parameters are AlexNet's (Simonyan and Zisserman 2014, Sec. 2.2): n = 5, alpha = 1e-4, beta =
    0.75, k = 2. No parameters; element-wise work, counted under `other_ops` as `size` ops per element."""

    unit = "lrn"
    onnx_note = ("local response normalisation before VGG's 7x7 adaptive pool hides the map's size from the "
                 "exporter (configuration A-LRN); TorchScript (--to torchscript) exports it")

    name: str
    c: int
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        t.record(self.name, "norm", 0, 0, 0, self.c * h * w * self.size, (self.c, h, w))
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)
