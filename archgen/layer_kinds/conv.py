"""The convolution: a layer kind like any other, and the one most others are measured against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import LayerKind, layer_kind
from archgen.tally import Misgrouped, TooSmall, conv_out

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("conv")
@dataclass(frozen=True)
class Conv(LayerKind):
    """A 2-d convolution with 'same' padding for its odd kernel, so the size changes by the stride alone.

    Counted: weight c_out * c_in / groups * k * k parameters (and c_out for a bias), that many MACs per output
    pixel (bias excluded), c_out * h * w activations. Built as torchvision initialises it (Kaiming normal,
    fan out), so every network starts from the same distribution whatever its family."""

    fusable = "conv"
    weight_layers = 1
    scales_output = True

    def unit_kind(self, h_out: int, w_out: int, norm: str) -> str:
        depthwise = self.groups > 1 and self.groups == self.c_in == self.c_out
        return "dwconv" if depthwise else "conv"

    name: str
    c_in: int
    c_out: int
    k: int
    stride: int = 1
    groups: int = 1
    dilation: int = 1
    bias: bool = False

    @property
    def padding(self) -> int:
        return self.dilation * (self.k - 1) // 2

    @property
    def misgrouped(self) -> bool:
        """Its groups do not divide its input and output channels, so torch would refuse it."""
        return bool(self.c_in % self.groups or self.c_out % self.groups)

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        if self.c_in % self.groups or self.c_out % self.groups:  # self.misgrouped, inlined: every conv counted
            raise Misgrouped(f"{t.full_name(self.name)}: {self.groups} groups do not divide {self.c_in} -> "
                             f"{self.c_out} channels")
        pad = self.padding
        ho = conv_out(h, self.k, self.stride, pad, self.dilation)
        wo = conv_out(w, self.k, self.stride, pad, self.dilation)
        if ho < 1 or wo < 1:
            raise TooSmall(f"{t.full_name(self.name)} gets a {h}x{w} input and would output {ho}x{wo}")
        weight = self.c_out * (self.c_in // self.groups) * self.k * self.k
        t.record(self.name, "conv", weight + (self.c_out if self.bias else 0), weight * ho * wo,
                 self.c_out * ho * wo, 0, (self.c_out, ho, wo))
        return ho, wo

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        conv = nn.Conv2d(self.c_in, self.c_out, self.k, self.stride, self.padding, self.dilation, self.groups,
                         bias=self.bias)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        return conv

