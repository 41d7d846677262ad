"""DarkNet-53 (Redmon and Farhadi 2018, YOLOv3 Table 1): each stage is a 3x3/2
conv to the stage's width, then residual units of a 1x1 conv to half the width
and a 3x3 conv back to it, every conv with BN and leaky ReLU (slope 0.1), the
unit's output added to its input with no activation after the add (darknet's
`[shortcut] activation=linear`, cfg/darknet53.cfg).
"""

from __future__ import annotations

from dataclasses import dataclass

from archgen.blocks.common import act_field, conv_bn_act, residual_merge
from archgen.blocks.conv import ConvLayer
from archgen.blocks.registry import Family, Placement, PlannedBlock, register_block
from archgen.grammar.schema import Act as ActKind
from archgen.layer_kinds.block import BlockLayers


@register_block("darknet")
@dataclass(frozen=True)
class DarkNet(Family):
    """A 3x3/2 `conv` layer to `width`, then `depth` residual units [1x1, width/2; 3x3, width]."""

    stage_fields = frozenset({"width", "stride"})

    act: ActKind = act_field("leaky_relu")

    def out_chs(self, at: Placement) -> int:
        return at.width

    def check(self, at: Placement) -> tuple[str, str] | None:
        if at.width < 2:
            return "width", f"a DarkNet unit halves its width in the 1x1 conv; width {at.width} leaves no channels"
        return None

    def expand_stage(self, at: Placement, depth: int, stage_index: int) -> list[PlannedBlock]:
        down = PlannedBlock(ConvLayer(self.act), at)
        unit = at.moved(in_chs=at.width, stride=1)
        return [down, *(PlannedBlock(self, unit) for _ in range(depth))]

    def layers(self, at: Placement) -> BlockLayers:
        half = at.width // 2
        branch = conv_bn_act(1, at.in_chs, half, 1, self.act) + conv_bn_act(2, half, at.width, 3, self.act)
        return BlockLayers(branch=tuple(branch), merge=residual_merge(at), survival=at.survival,
                           inverted_drop=at.inverted_drop)

    def notation(self, at: Placement) -> str:
        return f"1x1, {at.width // 2}; 3x3, {at.width}"
