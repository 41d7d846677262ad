"""Layers that shape nothing and cost nothing (dropout, a placeholder), and a named run of layers."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import LayerKind, layer_kind

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("dropout")
@dataclass(frozen=True)
class Dropout(LayerKind):
    fusable = "drop"
    unit = "nop"  # nothing runs in eval mode

    name: str
    p: float

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Dropout(self.p)


@layer_kind("identity")
@dataclass(frozen=True)
class Identity(LayerKind):
    """A placeholder that keeps a layout's names and numbering (timm's `downsample.0` when a ResNet-D shortcut
    does not pool; the head's `fc` of a backbone)."""

    fusable = "drop"
    unit = "nop"  # nothing runs in eval mode

    name: str

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Identity()


@layer_kind("sequence")
@dataclass(frozen=True)
class Sequence(LayerKind):
    """Layers run in turn under one name (a projection shortcut's `downsample.0`, `.1`; VGG's `head.hidden`),
    so their counts and modules are named as torchvision nests them."""

    fusable = "sequence"

    name: str
    layers: tuple[LayerKind, ...]

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        with t.scope(self.name):
            for layer in self.layers:
                h, w = layer.cost(t, h, w)
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Sequential(OrderedDict((layer.name, layer.module(first=first and i == 0))
                                         for i, layer in enumerate(self.layers)))

    @property
    def weight_layers(self) -> int:
        return sum(layer.weight_layers for layer in self.layers)

    def leaves(self) -> tuple[LayerKind, ...]:
        return tuple(leaf for layer in self.layers for leaf in layer.leaves())
