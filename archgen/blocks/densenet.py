"""DenseNet (Huang et al. 2017): the dense layer (BN-ReLU-1x1-BN-ReLU-3x3, its
output concatenated to its input) and the transition between dense blocks.

A dense stage after the first begins with a transition (BN-ReLU-1x1 conv to
floor(compression * c) channels, then 2x2 average pooling by the stage's
stride), so each stage's output is a dense block's, as a backbone wants it.
Module names are torchvision's within a layer (norm1, conv1, norm2, conv2).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from archgen.blocks.registry import BlockArgs, BlockFamily, register_block
from archgen.complexity import Tally


class DenseLayer(nn.Module):
    def __init__(self, a: BlockArgs) -> None:
        super().__init__()
        k = a.growth_rate
        if a.bn_size > 0:
            self.norm1 = nn.BatchNorm2d(a.in_chs)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(a.in_chs, a.bn_size * k, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(a.bn_size * k)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(a.bn_size * k, k, 3, 1, 1, bias=False)
            self.layers = [self.norm1, self.relu1, self.conv1, self.norm2, self.relu2, self.conv2]
        else:
            self.norm1 = nn.BatchNorm2d(a.in_chs)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(a.in_chs, k, 3, 1, 1, bias=False)
            self.layers = [self.norm1, self.relu1, self.conv1]
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.layers:
            out = layer(out)
            if isinstance(layer, nn.Conv2d):
                out = self.drop(out)  # after each conv, as in the paper
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    def __init__(self, a: BlockArgs, out_chs: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(a.in_chs)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(a.in_chs, out_chs, 1, bias=False)
        if a.dropout > 0:
            self.drop = nn.Dropout(a.dropout)
        if a.stride > 1:
            self.pool = nn.AvgPool2d(a.stride, a.stride)


@register_block("dense")
class Dense(BlockFamily):
    """One dense layer; a stage of `depth` of them is a dense block."""

    defaults = {"growth_rate": 32, "bn_size": 4, "compression": 0.5}
    final_norm = True
    residual = False
    uses = frozenset({"growth_rate", "bn_size", "compression", "dropout"})

    def out_chs(self, a: BlockArgs) -> int:
        return a.in_chs + a.growth_rate

    def check(self, a: BlockArgs) -> tuple[str, str] | None:
        if a.dilation != 1:
            return "dilation", "dense layers do not support dilation; use dilation: 1"
        return None

    def expand_stage(self, template: BlockArgs, depth: int, stage_index: int) -> list[BlockArgs]:
        blocks: list[BlockArgs] = []
        in_chs = template.in_chs
        if stage_index > 0:
            transition = BlockArgs(**{**template.__dict__, "type": "transition"})
            blocks.append(transition)
            in_chs = get_transition().out_chs(transition)
        for _ in range(depth):
            layer = BlockArgs(**{**template.__dict__, "in_chs": in_chs, "stride": 1})
            blocks.append(layer)
            in_chs = self.out_chs(layer)
        return blocks

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        k = a.growth_rate
        t.bn("norm1", a.in_chs, h, w)
        t.act("relu1", "relu", a.in_chs, h, w)
        if a.bn_size > 0:
            t.conv("conv1", a.in_chs, a.bn_size * k, 1, h, w)
            t.bn("norm2", a.bn_size * k, h, w)
            t.act("relu2", "relu", a.bn_size * k, h, w)
            t.conv("conv2", a.bn_size * k, k, 3, h, w)
        else:
            t.conv("conv1", a.in_chs, k, 3, h, w)
        return h, w

    def notation(self, a: BlockArgs) -> str:
        if a.bn_size > 0:
            return f"1x1, {a.bn_size * a.growth_rate}; 3x3, {a.growth_rate}"
        return f"3x3, {a.growth_rate}"

    def module(self, a: BlockArgs) -> nn.Module:
        return DenseLayer(a)


@register_block("transition")
class TransitionFamily(BlockFamily):
    """Between dense blocks: BN-ReLU-1x1 conv (compression), 2x2 average pool. Placed by `dense`, not by specs."""

    residual = False
    internal = True
    uses = frozenset({"compression"})

    def out_chs(self, a: BlockArgs) -> int:
        return max(1, math.floor(a.in_chs * a.compression))

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        out = self.out_chs(a)
        t.bn("norm", a.in_chs, h, w)
        t.act("relu", "relu", a.in_chs, h, w)
        t.conv("conv", a.in_chs, out, 1, h, w)
        if a.stride > 1:
            h, w = t.pool("pool", out, a.stride, h, w, stride=a.stride)
        return h, w

    def notation(self, a: BlockArgs) -> str:
        pool = f"; {a.stride}x{a.stride} avg pool, stride {a.stride}" if a.stride > 1 else ""
        return f"1x1, {self.out_chs(a)}{pool}"

    def module(self, a: BlockArgs) -> nn.Module:
        return Transition(a, self.out_chs(a))


def get_transition() -> BlockFamily:
    from archgen.blocks.registry import get_block

    return get_block("transition")
