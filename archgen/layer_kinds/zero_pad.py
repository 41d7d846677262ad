"""Option A of He et al. 2015's shortcuts: subsample by the stride, pad the new channels with zeros."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import LayerKind, layer_kind

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("zero_pad")
@dataclass(frozen=True)
class ZeroPad(LayerKind):
    """No parameters and no counted work (a strided view and a copy)."""

    name: str
    stride: int
    extra_channels: int

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return -(-h // self.stride), -(-w // self.stride)

    def module(self, first: bool = False) -> "nn.Module":
        from archgen.modules import ZeroPadShortcut

        return ZeroPadShortcut(self.stride, self.extra_channels)
