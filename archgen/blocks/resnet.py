"""The ResNet family (He et al. 2015): the two-conv `basic` block and the
three-conv `bottleneck`, which with groups and base width is ResNeXt's block
(Xie et al. 2017) and with a width factor the Wide ResNet bottleneck."""

from __future__ import annotations

import torch
import torch.nn as nn

from archgen.blocks.common import ResidualBlock, make_act, shortcut_check, shortcut_cost
from archgen.blocks.registry import BlockArgs, BlockFamily, register_block
from archgen.complexity import Tally


def _groups_suffix(a: BlockArgs) -> str:
    out = f", C={a.cardinality}" if a.cardinality > 1 else ""
    return out + (f", dilation {a.dilation}" if a.dilation > 1 else "")


class BasicBlock(ResidualBlock):
    def __init__(self, a: BlockArgs) -> None:
        conv1, conv2 = basic_convs(a)
        super().__init__(a, conv2.out_channels)
        # conv1 / bn1 / conv2 / bn2 and `downsample`: torchvision's names and order.
        self.conv1 = conv1
        self.bn1 = nn.BatchNorm2d(conv1.out_channels)
        self.act1 = make_act(a.act)
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()
        self.conv2 = conv2
        self.bn2 = nn.BatchNorm2d(conv2.out_channels)
        self.downsample_last()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.drop(self.act1(self.bn1(self.conv1(x))))))


class BottleneckBlock(ResidualBlock):
    def __init__(self, a: BlockArgs) -> None:
        conv1, conv2, conv3 = bottleneck_convs(a)
        super().__init__(a, conv3.out_channels)
        self.conv1 = conv1
        self.bn1 = nn.BatchNorm2d(conv1.out_channels)
        self.act1 = make_act(a.act)
        self.conv2 = conv2
        self.bn2 = nn.BatchNorm2d(conv2.out_channels)
        self.act2 = make_act(a.act)
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()
        self.conv3 = conv3
        self.bn3 = nn.BatchNorm2d(conv3.out_channels)
        self.downsample_last()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.drop(self.act2(self.bn2(self.conv2(x))))
        return self.bn3(self.conv3(x))


def basic_convs(a: BlockArgs) -> tuple[nn.Conv2d, nn.Conv2d]:
    """The two 3x3 convs of a basic block, shared by the post- and pre-activation designs: the first strides
    and keeps the previous dilation, the second maps to width * width_factor * expansion channels."""
    width = int(a.width * a.width_factor)
    return (nn.Conv2d(a.in_chs, width, 3, a.stride, a.first_dilation, a.first_dilation, groups=a.cardinality,
                      bias=False),
            nn.Conv2d(width, width * a.expansion, 3, 1, a.dilation, a.dilation, groups=a.cardinality, bias=False))


def bottleneck_convs(a: BlockArgs) -> tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
    """1x1 reduce, 3x3 (grouped; strides unless stride_on is '1x1'), 1x1 expand."""
    inner = bottleneck_inner(a)
    s1, s3 = bottleneck_strides(a)
    return (nn.Conv2d(a.in_chs, inner, 1, s1, bias=False),
            nn.Conv2d(inner, inner, 3, s3, a.first_dilation, a.first_dilation, groups=a.cardinality, bias=False),
            nn.Conv2d(inner, a.width * a.expansion, 1, bias=False))


def bottleneck_strides(a: BlockArgs) -> tuple[int, int]:
    """Strides of the first 1x1 and of the 3x3: He et al. 2015 stride the 1x1, torchvision ('v1.5') the 3x3."""
    return (a.stride, 1) if a.stride_on == "1x1" else (1, a.stride)


def bottleneck_inner(a: BlockArgs) -> int:
    """Channels of the 3x3 conv: int(width * base_width / 64 * width_factor) * cardinality (torchvision's rule)."""
    return int(a.width * a.base_width / 64 * a.width_factor) * a.cardinality


def residual_tail(a: BlockArgs, out_chs: int, t: Tally, h_in: int, w_in: int, h: int, w: int) -> None:
    shortcut_cost(a, out_chs, t, h_in, w_in)
    if a.shortcut != "none":
        t.add("add", out_chs, h, w)
    t.act("act_out", a.act, out_chs, h, w)


@register_block("basic")
class Basic(BlockFamily):
    """Two 3x3 convs (ResNet-18/34, CIFAR ResNets, plain nets)."""

    defaults = {"expansion": 1}
    uses = frozenset({"width", "cardinality", "width_factor", "expansion", "dropout", "act"})

    def out_chs(self, a: BlockArgs) -> int:
        return int(a.width * a.width_factor) * a.expansion

    def check(self, a: BlockArgs) -> tuple[str, str] | None:
        width = int(a.width * a.width_factor)
        if width < 1:
            return "width_factor", f"width {a.width} x width_factor {a.width_factor} leaves no channels"
        if width % a.cardinality:
            return "cardinality", (f"cardinality {a.cardinality} does not divide the block width {width}; "
                                   "choose a cardinality that divides it")
        return shortcut_check(a, self.out_chs(a))

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        width = int(a.width * a.width_factor)
        out = self.out_chs(a)
        h1, w1 = t.conv("conv1", a.in_chs, width, 3, h, w, stride=a.stride, groups=a.cardinality,
                        dilation=a.first_dilation)
        t.bn("bn1", width, h1, w1)
        t.act("act1", a.act, width, h1, w1)
        h2, w2 = t.conv("conv2", width, out, 3, h1, w1, groups=a.cardinality, dilation=a.dilation)
        t.bn("bn2", out, h2, w2)
        residual_tail(a, out, t, h, w, h2, w2)
        return h2, w2

    def notation(self, a: BlockArgs) -> str:
        width = int(a.width * a.width_factor)
        return f"3x3, {width}{_groups_suffix(a)}; 3x3, {self.out_chs(a)}{_groups_suffix(a)}"

    def module(self, a: BlockArgs) -> nn.Module:
        return BasicBlock(a)


@register_block("bottleneck")
class Bottleneck(BlockFamily):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (ResNet-50 and up, ResNeXt, WRN-50-2)."""

    defaults = {"expansion": 4}
    uses = frozenset({"width", "cardinality", "base_width", "width_factor", "expansion", "dropout", "act"})

    def out_chs(self, a: BlockArgs) -> int:
        return a.width * a.expansion

    def check(self, a: BlockArgs) -> tuple[str, str] | None:
        if int(a.width * a.base_width / 64 * a.width_factor) < 1:
            return "base_width", (f"width {a.width} x base_width {a.base_width} / 64 x width_factor "
                                  f"{a.width_factor} gives groups of 0 channels; raise base_width")
        return shortcut_check(a, self.out_chs(a))

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        inner, out = bottleneck_inner(a), self.out_chs(a)
        s1, s3 = bottleneck_strides(a)
        h1, w1 = t.conv("conv1", a.in_chs, inner, 1, h, w, stride=s1)
        t.bn("bn1", inner, h1, w1)
        t.act("act1", a.act, inner, h1, w1)
        h2, w2 = t.conv("conv2", inner, inner, 3, h1, w1, stride=s3, groups=a.cardinality,
                        dilation=a.first_dilation)
        t.bn("bn2", inner, h2, w2)
        t.act("act2", a.act, inner, h2, w2)
        h3, w3 = t.conv("conv3", inner, out, 1, h2, w2)
        t.bn("bn3", out, h3, w3)
        residual_tail(a, out, t, h, w, h3, w3)
        return h3, w3

    def notation(self, a: BlockArgs) -> str:
        inner = bottleneck_inner(a)
        return f"1x1, {inner}; 3x3, {inner}{_groups_suffix(a)}; 1x1, {self.out_chs(a)}"

    def module(self, a: BlockArgs) -> nn.Module:
        return BottleneckBlock(a)
