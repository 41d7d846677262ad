"""The classifier's layers: flatten a pooled map, then fully connected layers (the head's fc, VGG's hidden fcs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import LayerKind, layer_kind

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("flatten")
@dataclass(frozen=True)
class Flatten(LayerKind):
    """A pooled c x h x w map as a vector of c * h * w features: the linear layers after it see a 1 x 1 input."""

    name: str

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return 1, 1

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Flatten(1)


@layer_kind("linear")
@dataclass(frozen=True)
class Linear(LayerKind):
    """A fully connected layer with bias on a vector; built with torchvision's zero bias."""

    weight_layers = 1

    name: str
    c_in: int
    c_out: int

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        t.record(self.name, "linear", self.c_in * self.c_out + self.c_out, self.c_in * self.c_out, self.c_out, 0,
                 (self.c_out, 1, 1))
        return 1, 1

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        fc = nn.Linear(self.c_in, self.c_out)
        nn.init.zeros_(fc.bias)
        return fc
