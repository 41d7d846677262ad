"""Full pre-activation units (He et al. 2016, "Identity Mappings in Deep Residual
Networks", Fig. 4e): BN-ReLU-conv, twice (basic) or three times (bottleneck),
added to the shortcut with nothing after the add. The network ends with one
more BN-ReLU before the head (`final_norm`).

Where the pre-activation sits follows the authors' code (fb.resnet.torch
`preresnet.lua`, KaimingHe/resnet-1k-layers):
- a unit that changes shape pre-activates its input *before* the split, so its
  projection shortcut (a 1x1 conv without BN) sees the activated input;
- the network's first unit does the same after a stem that ends in a bare conv
  ("we adopt the first activation right after conv1 and before splitting into
  two paths"), and has no pre-activation at all after a stem that already ends
  in BN-ReLU (fb.resnet.torch's 'no_preact' first unit);
- every other unit pre-activates its residual branch only, so its shortcut is
  an identity.

With `width_factor` and `dropout`, `preact_basic` is the Wide ResNet block
(Zagoruyko and Komodakis 2016): dropout between the two convs, after the ReLU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from archgen.blocks.common import ResidualBlock, make_act, needs_shortcut_change, shortcut_cost
from archgen.blocks.registry import BlockArgs, register_block
from archgen.blocks.resnet import (Basic, Bottleneck, basic_convs, bottleneck_convs, bottleneck_inner,
                                   bottleneck_strides)
from archgen.complexity import Tally


def preact_mode(a: BlockArgs, out_chs: int) -> str:
    """'both' (activate before the split), 'branch' (activate the branch only) or 'none' (the stem did it)."""
    if a.input_from == "stem_act":
        return "none"
    if a.input_from == "stem" or needs_shortcut_change(a, out_chs):
        return "both"
    return "branch"


class PreActBlock(ResidualBlock):
    """shortcut + drop_path(branch(act1(bn1(x)))), with the shortcut on x or on act1(bn1(x)) (see module doc)."""

    def __init__(self, a: BlockArgs, out_chs: int) -> None:
        super().__init__(a, out_chs, out_act="none", shortcut_norm=False)
        self.mode = preact_mode(a, out_chs)
        if self.mode != "none":
            self.bn1 = nn.BatchNorm2d(a.in_chs)
            self.act1 = make_act(a.act)

    def preactivate(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mode == "none" else self.act1(self.bn1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preactivate(x)
        out = self.branch(pre)
        if not self.residual:
            return out
        split = x if self.mode == "branch" else pre
        shortcut = split if self.downsample is None else self.downsample(split)
        return self.drop_path(out) + shortcut

    def shortcut_is_identity(self) -> bool:
        return super().shortcut_is_identity() and self.mode != "both"


class PreActBasicBlock(PreActBlock):
    def __init__(self, a: BlockArgs) -> None:
        conv1, conv2 = basic_convs(a)
        super().__init__(a, conv2.out_channels)
        self.conv1 = conv1
        self.bn2 = nn.BatchNorm2d(conv1.out_channels)
        self.act2 = make_act(a.act)
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()
        self.conv2 = conv2
        self.downsample_last()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.drop(self.act2(self.bn2(self.conv1(x)))))


class PreActBottleneckBlock(PreActBlock):
    def __init__(self, a: BlockArgs) -> None:
        conv1, conv2, conv3 = bottleneck_convs(a)
        super().__init__(a, conv3.out_channels)
        self.conv1 = conv1
        self.bn2 = nn.BatchNorm2d(conv1.out_channels)
        self.act2 = make_act(a.act)
        self.conv2 = conv2
        self.bn3 = nn.BatchNorm2d(conv2.out_channels)
        self.act3 = make_act(a.act)
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()
        self.conv3 = conv3
        self.downsample_last()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.bn2(self.conv1(x)))
        x = self.drop(self.act3(self.bn3(self.conv2(x))))
        return self.conv3(x)


def preact_cost(a: BlockArgs, out_chs: int, t: Tally, h: int, w: int) -> None:
    """The pre-activation, before the convs (mirrors PreActBlock.__init__)."""
    if preact_mode(a, out_chs) != "none":
        t.bn("bn1", a.in_chs, h, w)
        t.act("act1", a.act, a.in_chs, h, w)


def preact_tail(a: BlockArgs, out_chs: int, t: Tally, h_in: int, w_in: int, h: int, w: int) -> None:
    """The BN-less shortcut and the add, with no activation after it."""
    shortcut_cost(a, out_chs, t, h_in, w_in, norm=False)
    if a.shortcut != "none":
        t.add("add", out_chs, h, w)


@register_block("preact_basic")
class PreActBasic(Basic):
    """BN-ReLU-3x3 conv, twice (pre-activation ResNet-110 on CIFAR; Wide ResNets with width_factor and dropout)."""

    final_norm = True

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        width, out = int(a.width * a.width_factor), self.out_chs(a)
        preact_cost(a, out, t, h, w)
        h1, w1 = t.conv("conv1", a.in_chs, width, 3, h, w, stride=a.stride, groups=a.cardinality,
                        dilation=a.first_dilation)
        t.bn("bn2", width, h1, w1)
        t.act("act2", a.act, width, h1, w1)
        h2, w2 = t.conv("conv2", width, out, 3, h1, w1, groups=a.cardinality, dilation=a.dilation)
        preact_tail(a, out, t, h, w, h2, w2)
        return h2, w2

    def module(self, a: BlockArgs) -> nn.Module:
        return PreActBasicBlock(a)


@register_block("preact_bottleneck")
class PreActBottleneck(Bottleneck):
    """BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (pre-activation ResNet-164/1001 on CIFAR, ResNet-200 on ImageNet)."""

    final_norm = True

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        inner, out = bottleneck_inner(a), self.out_chs(a)
        s1, s3 = bottleneck_strides(a)
        preact_cost(a, out, t, h, w)
        h1, w1 = t.conv("conv1", a.in_chs, inner, 1, h, w, stride=s1)
        t.bn("bn2", inner, h1, w1)
        t.act("act2", a.act, inner, h1, w1)
        h2, w2 = t.conv("conv2", inner, inner, 3, h1, w1, stride=s3, groups=a.cardinality,
                        dilation=a.first_dilation)
        t.bn("bn3", inner, h2, w2)
        t.act("act3", a.act, inner, h2, w2)
        h3, w3 = t.conv("conv3", inner, out, 1, h2, w2)
        preact_tail(a, out, t, h, w, h3, w3)
        return h3, w3

    def module(self, a: BlockArgs) -> nn.Module:
        return PreActBottleneckBlock(a)
