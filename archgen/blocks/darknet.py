"""DarkNet-53 (Redmon and Farhadi 2018, YOLOv3 Table 1): each stage is a 3x3/2
conv to the stage's width, then residual units of a 1x1 conv to half the width
and a 3x3 conv back to it, every conv with BN and leaky ReLU (slope 0.1), the
unit's output added to its input with no activation after the add (darknet's
`[shortcut] activation=linear`, cfg/darknet53.cfg).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from archgen.blocks.common import ResidualBlock, make_act
from archgen.blocks.registry import BlockArgs, BlockFamily, register_block, replace
from archgen.complexity import Tally


class DarkNetUnit(ResidualBlock):
    def __init__(self, a: BlockArgs) -> None:
        super().__init__(a, a.width, out_act="none")
        half = a.width // 2
        self.conv1 = nn.Conv2d(a.in_chs, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.act1 = make_act(a.act)
        self.conv2 = nn.Conv2d(half, a.width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(a.width)
        self.act2 = make_act(a.act)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))


@register_block("darknet")
class DarkNet(BlockFamily):
    """A 3x3/2 `conv` layer to `width`, then `depth` residual units [1x1, width/2; 3x3, width]."""

    defaults = {"act": "leaky_relu"}
    uses = frozenset({"width", "act"})

    def out_chs(self, a: BlockArgs) -> int:
        return a.width

    def check(self, a: BlockArgs) -> tuple[str, str] | None:
        if a.width < 2:
            return "width", f"a DarkNet unit halves its width in the 1x1 conv; width {a.width} leaves no channels"
        if a.dilation != 1:
            return "dilation", "DarkNet units do not support dilation; use dilation: 1"
        return None

    def expand_stage(self, template: BlockArgs, depth: int, stage_index: int) -> list[BlockArgs]:
        down = replace(template, type="conv")
        units = [replace(template, in_chs=template.width, stride=1) for _ in range(depth)]
        return [down, *units]

    def cost(self, a: BlockArgs, t: Tally, h: int, w: int) -> tuple[int, int]:
        half = a.width // 2
        t.conv("conv1", a.in_chs, half, 1, h, w)
        t.bn("bn1", half, h, w)
        t.act("act1", a.act, half, h, w)
        t.conv("conv2", half, a.width, 3, h, w)
        t.bn("bn2", a.width, h, w)
        t.act("act2", a.act, a.width, h, w)
        if a.shortcut != "none":
            t.add("add", a.width, h, w)
        return h, w

    def notation(self, a: BlockArgs) -> str:
        return f"1x1, {a.width // 2}; 3x3, {a.width}"

    def module(self, a: BlockArgs) -> nn.Module:
        return DarkNetUnit(a)
