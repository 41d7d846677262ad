"""The ResNet family (He et al. 2015): the two-conv `basic` block and the
three-conv `bottleneck`, which with groups and base width is ResNeXt's block
(Xie et al. 2017) and with a width factor the Wide ResNet bottleneck.

Layer names and order are torchvision's (conv1, bn1, conv2, bn2[, conv3, bn3],
downsample), so its checkpoints load by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from archgen.blocks.common import (act_field, base_width_field, cardinality_field, conv_bn_act,
                                   dropout_field, expansion_field, groups_suffix, residual_merge, shortcut_layers,
                                   shortcut_problem, width_factor_field)
from archgen.blocks.registry import Family, Placement, register_block
from archgen.grammar.schema import Act as ActKind, spec_field
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.plain import Dropout
from archgen.layer_kinds.squeeze_excite import SqueezeExcite


def residual_block(branch: list, at: Placement, out_chs: int, act: ActKind) -> BlockLayers:
    """A post-activation residual block: act(branch(x) + shortcut(x))."""
    return BlockLayers(branch=tuple(branch), shortcut=shortcut_layers(at, out_chs), merge=residual_merge(at),
                       post=(Act("act_out", out_chs, act),), survival=at.survival, inverted_drop=at.inverted_drop)


def dropout_layers(p: float) -> list:
    return [Dropout("drop", p)] if p > 0 else []


@register_block("basic")
@dataclass(frozen=True)
class Basic(Family):
    """Two 3x3 convs (ResNet-18/34, CIFAR ResNets, plain nets)."""

    cardinality: int = cardinality_field()
    width_factor: float = width_factor_field("Widens both convs (Wide ResNet's k).")
    expansion: int = expansion_field(1)
    dropout: float = dropout_field("Dropout between the two convs (Wide ResNet).")
    act: ActKind = act_field()

    def inner(self, at: Placement) -> int:
        return int(at.width * self.width_factor)

    def out_chs(self, at: Placement) -> int:
        return self.inner(at) * self.expansion

    def check(self, at: Placement) -> tuple[str, str] | None:
        if self.inner(at) < 1:
            return "width_factor", f"width {at.width} x width_factor {self.width_factor} leaves no channels"
        return shortcut_problem(at, self.out_chs(at))

    def convs(self, at: Placement) -> tuple[list, list]:
        """The two 3x3 convs with their BN (and the first's act): the first strides and keeps the previous
        dilation, the second maps to width * width_factor * expansion channels."""
        width, out = self.inner(at), self.out_chs(at)
        first = conv_bn_act(1, at.in_chs, width, 3, self.act, stride=at.stride, groups=self.cardinality,
                            dilation=at.first_dilation)
        second = conv_bn_act(2, width, out, 3, self.act, groups=self.cardinality, dilation=at.dilation,
                             with_act=False)
        return first, second

    def layers(self, at: Placement) -> BlockLayers:
        first, second = self.convs(at)
        return residual_block(first + dropout_layers(self.dropout) + second, at, self.out_chs(at), self.act)

    def notation(self, at: Placement) -> str:
        return (f"3x3, {self.inner(at)}{groups_suffix(self.cardinality, at.dilation)}; "
                f"3x3, {self.out_chs(at)}{groups_suffix(self.cardinality, at.dilation)}")


@register_block("bottleneck")
@dataclass(frozen=True)
class Bottleneck(Family):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (ResNet-50 and up, ResNeXt, WRN-50-2)."""

    network_fields = frozenset({"shortcut", "stride_on"})

    cardinality: int = cardinality_field()
    base_width: int = base_width_field()
    width_factor: float = width_factor_field("Widens the 3x3 conv (and so the 1x1 convs around it; WRN-50-2).")
    expansion: int = expansion_field(4)
    dropout: float = dropout_field("Dropout after the 3x3 conv's activation.")
    act: ActKind = act_field()
    se_ratio: float = spec_field(0.0, doc="Squeeze-and-excitation after bn3, before the add (SE-ResNet, "
                                          "SE-ResNeXt as timm builds them), squeezing to round(se_ratio * the "
                                          "block's OUTPUT width) channels: timm's 1/16 is 0.0625; 0: none.",
                                 example=0.0625, minimum=0, maximum=4)

    def inner(self, at: Placement) -> int:
        """Channels of the 3x3 conv: int(width * base_width / 64 * width_factor) * cardinality (torchvision)."""
        return int(at.width * self.base_width / 64 * self.width_factor) * self.cardinality

    def out_chs(self, at: Placement) -> int:
        return at.width * self.expansion

    def check(self, at: Placement) -> tuple[str, str] | None:
        if self.inner(at) < 1:
            return "base_width", (f"width {at.width} x base_width {self.base_width} / 64 x width_factor "
                                  f"{self.width_factor} gives groups of 0 channels; raise base_width")
        if self.se_ratio > 0 and self.se_width(at) < 1:
            return "se_ratio", (f"se_ratio {self.se_ratio} of {self.out_chs(at)} channels squeezes to none; raise "
                                "it, or 0 for no squeeze-and-excitation")
        return shortcut_problem(at, self.out_chs(at))

    def strides(self, at: Placement) -> tuple[int, int]:
        """Strides of the first 1x1 and of the 3x3: He et al. 2015 stride the 1x1, torchvision ('v1.5') the 3x3."""
        return (at.stride, 1) if at.stride_on == "1x1" else (1, at.stride)

    def convs(self, at: Placement) -> tuple[list, list, list]:
        inner, (s1, s3) = self.inner(at), self.strides(at)
        return (conv_bn_act(1, at.in_chs, inner, 1, self.act, stride=s1),
                conv_bn_act(2, inner, inner, 3, self.act, stride=s3, groups=self.cardinality,
                            dilation=at.first_dilation),
                conv_bn_act(3, inner, self.out_chs(at), 1, self.act, with_act=False))

    def se_width(self, at: Placement) -> int:
        """timm rounds out / 16 to a multiple of 8; the same for every width a 64-based ResNet has."""
        return int(round(self.se_ratio * self.out_chs(at)))

    def se_layers(self, at: Placement) -> list:
        return [SqueezeExcite("se", self.out_chs(at), self.se_width(at))] if self.se_ratio > 0 else []

    def layers(self, at: Placement) -> BlockLayers:
        reduce, middle, expand = self.convs(at)
        return residual_block(reduce + middle + dropout_layers(self.dropout) + expand + self.se_layers(at), at,
                              self.out_chs(at), self.act)

    def notation(self, at: Placement) -> str:
        inner = self.inner(at)
        se = f"; SE, {self.se_width(at)}" if self.se_ratio > 0 else ""
        return (f"1x1, {inner}; 3x3, {inner}{groups_suffix(self.cardinality, at.dilation)}; "
                f"1x1, {self.out_chs(at)}{se}")

