"""The plain `conv` layer: one 3x3 conv, BN and activation, with no shortcut.

A stage of depth N is N such layers (the first strides). It is DarkNet's
downsampling conv (placed by the `darknet` family) and the non-residual levels
of the dilated residual networks (Yu et al. 2017): DRN-D's levels 1-2 and the
degridding levels 7-8 of DRN-C and DRN-D. Every layer of a stage uses the
stage's dilation, as DRN's `_make_conv_layers` does.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from archgen.blocks.common import make_act
from archgen.blocks.registry import BlockArgs, BlockFamily, register_block
from archgen.complexity import Tally


def conv_layer_module(a: BlockArgs) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(a.in_chs, a.width, 3, a.stride, a.dilation, a.dilation, bias=False)),
        ("bn", nn.BatchNorm2d(a.width)),
        ("act", make_act(a.act)),
    ]))


@register_block("conv")
class Conv(BlockFamily):
    """3x3 conv (stride, dilation), BN, activation."""

    residual = False
    uses = frozenset({"width", "act"})

    def out_chs(self, a: BlockArgs) -> int:
        return a.width

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        h, w = t.conv("conv", a.in_chs, a.width, 3, h, w, stride=a.stride, dilation=a.dilation)
        t.bn("bn", a.width, h, w)
        t.act("act", a.act, a.width, h, w)
        return h, w

    def notation(self, a: BlockArgs) -> str:
        stride = f", stride {a.stride}" if a.stride > 1 else ""
        dilation = f", dilation {a.dilation}" if a.dilation > 1 else ""
        return f"3x3, {a.width}{stride}{dilation}"

    def module(self, a: BlockArgs) -> nn.Module:
        return conv_layer_module(a)
