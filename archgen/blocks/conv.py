"""The plain `conv` layer: one 3x3 conv, BN and activation, with no shortcut.

A stage of depth N is N such layers (the first strides). It is DarkNet's
downsampling conv (placed by the `darknet` family) and the non-residual levels
of the dilated residual networks (Yu et al. 2017): DRN-D's levels 1-2 and the
degridding levels 7-8 of DRN-C and DRN-D. Every layer of a stage uses the
stage's dilation, as DRN's `_make_conv_layers` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from archgen.blocks.common import act_field
from archgen.blocks.registry import Family, Placement, register_block
from archgen.grammar.schema import Act as ActKind
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.norm import Norm


@register_block("conv")
@dataclass(frozen=True)
class ConvLayer(Family):
    """3x3 conv (stride, dilation), BN, activation."""

    residual = False
    stage_fields = frozenset({"width", "stride", "dilation"})
    network_fields = frozenset()

    act: ActKind = act_field()

    def out_chs(self, at: Placement) -> int:
        return at.width

    def layers(self, at: Placement) -> BlockLayers:
        return BlockLayers(branch=(Conv("conv", at.in_chs, at.width, 3, at.stride, dilation=at.dilation),
                                   Norm("bn", at.width), Act("act", at.width, self.act)))

    def notation(self, at: Placement) -> str:
        stride = f", stride {at.stride}" if at.stride > 1 else ""
        dilation = f", dilation {at.dilation}" if at.dilation > 1 else ""
        return f"3x3, {at.width}{stride}{dilation}"
