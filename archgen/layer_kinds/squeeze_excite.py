"""Squeeze-and-excitation (Hu et al. 2018): x * gate(fc2(act(fc1(avgpool(x))))), fc1 and fc2 1x1 convs with
bias, made of the layer kinds it is written in. SE-ResNet and RegNetY use ReLU and a sigmoid; MobileNetV3 gates
with a hard sigmoid, EfficientNet squeezes through SiLU, so both are fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.act import Act
from archgen.layer_kinds.base import LayerKind, layer_kind
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.pool import AdaptivePool

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@layer_kind("squeeze_excite")
@dataclass(frozen=True)
class SqueezeExcite(LayerKind):
    """`c_mid` is the family's to choose (RegNetY: round(0.25 * the block's input width); SE-ResNet: out / 16;
    MobileNetV3 and EfficientNet: see archgen.blocks.inverted_residual).

    Counted as pycls and fvcore count it: the two convs run on a 1x1 map, so they add c * c_mid MACs each
    (bias excluded, as everywhere) and c_mid + c activations; the global pool, the sigmoid and the gating
    multiply are element-wise work, counted under `other_ops` only (fvcore counts the pool, not the rest).
    Its modules are named as torchvision's and timm's SE (`fc1`, `fc2`), so their weights load by name.
    """

    fusable = "gate"
    unit = "se_gate"

    name: str
    c: int
    c_mid: int
    act: str = "relu"  # a key of archgen.layer_kinds.act.FUNCTIONS
    gate: str = "sigmoid"

    def layers(self) -> tuple[LayerKind, ...]:
        return (AdaptivePool("pool", self.c, "avg"), Conv("fc1", self.c, self.c_mid, 1, bias=True),
                Act("act", self.c_mid, self.act), Conv("fc2", self.c_mid, self.c, 1, bias=True),
                Act("gate", self.c, self.gate))

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        with t.scope(self.name):
            hs, ws = h, w
            for layer in self.layers():
                hs, ws = layer.cost(t, hs, ws)
            t.record("scale", "mul", 0, 0, 0, self.c * h * w, (self.c, h, w))
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        from archgen.modules import Rescale

        return Rescale([(layer.name, layer.module()) for layer in self.layers()])
