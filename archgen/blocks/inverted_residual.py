"""The inverted residual (Sandler et al. 2018, MobileNetV2 Table 1): a 1x1 conv expands the block's input,
a depthwise k x k conv filters each expanded channel (it carries the stride), optional squeeze-and-excitation
re-weights them (MnasNet, MobileNetV3, EfficientNet's MBConv), and a linear 1x1 conv projects back, with no
activation after it; the input is added when the block keeps the shape (stride 1, in == out).

One family covers MobileNetV2, MobileNetV3, MnasNet-B1 and EfficientNet because they differ only in fields:
the activation, the kernel, how wide the expansion is (a ratio t, or MobileNetV3's printed 'exp size') and
the SE's squeeze (MobileNetV3 squeezes the EXPANDED width to a multiple of 8 and gates with a hard sigmoid;
EfficientNet squeezes to a quarter of the block's INPUT width through SiLU). The expansion conv is left out
where it would map a width to itself (t = 1), as all four networks do. Module names: conv1/bn1/act1 (expand),
conv2/bn2/act2 (depthwise), se, conv3/bn3 (project).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

from archgen.blocks.common import act_field, changes_shape
from archgen.blocks.registry import Family, Placement, StageRule, register_block, register_stage_rule
from archgen.grammar.schema import MAX_WIDTH, Act as ActKind, Gate, SpecDoc, Stage, shallow_copy, spec_field
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.merges import ADD, NO_MERGE
from archgen.layer_kinds.norm import Norm
from archgen.layer_kinds.squeeze_excite import SqueezeExcite


def make_divisible(value: float, divisor: int) -> int:
    """The nearest multiple of `divisor` (halves up), at least `divisor`, never more than 10% below `value`:
    the rounding MobileNetV3's and EfficientNet's widths go through (their reference code's rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@register_block("inverted_residual")
@dataclass(frozen=True)
class InvertedResidual(Family):
    """Expand 1x1, depthwise k x k, [SE], project 1x1; the add when the shape is kept."""

    stage_fields = frozenset({"width", "stride"})
    network_fields = frozenset()

    expansion: float = spec_field(6.0, doc="t: the expanded width is round(t * the block's input width) "
                                           "(MobileNetV2's and EfficientNet's 6; 1 leaves the expansion conv "
                                           "out).", example=6, minimum=1, maximum=64)
    expand_width: int = spec_field(0, doc="The expanded width as printed (MobileNetV3's 'exp size', which is no "
                                          "fixed ratio of the input); 0: from `expansion`.", example=240,
                                   minimum=0, maximum=MAX_WIDTH)
    kernel: int = spec_field(3, doc="Side of the depthwise conv (3, 5 or 7).", example=5, minimum=1, maximum=15)
    act: ActKind = act_field("relu6")
    se_ratio: float = spec_field(0.0, doc="Squeeze-and-excitation after the depthwise conv, squeezing to "
                                          "int(se_ratio * `se_base`) channels (0.25 for MobileNetV3 and "
                                          "EfficientNet); 0: none.", example=0.25, minimum=0, maximum=4)
    se_base: Literal["input", "expanded"] = spec_field(
        "expanded", doc="What the squeeze is a fraction of: the 'expanded' width (MobileNetV3) or the block's "
                        "'input' width (EfficientNet).", example="input")
    se_divisor: int = spec_field(1, doc="The squeeze width is then made a multiple of this (MobileNetV3: 8, "
                                        "never 10% below); 1: as it is, at least 1.", example=8, minimum=1,
                                 maximum=MAX_WIDTH)
    se_act: ActKind = spec_field("relu", doc="The SE's activation between its two 1x1 convs (EfficientNet: "
                                             "'silu').", example="silu")
    se_gate: Gate = spec_field("sigmoid", doc="The SE's gate: 'sigmoid', or MobileNetV3's 'hardsigmoid'.",
                               example="hardsigmoid")

    def out_chs(self, at: Placement) -> int:
        return at.width

    def scaled(self, scale_width: Callable[[int], int]) -> "InvertedResidual":
        """A printed 'exp size' scales with the network's widths, as MobileNetV3's width multiplier takes it."""
        return dataclasses.replace(self, expand_width=scale_width(self.expand_width)) if self.expand_width else self

    def expanded(self, at: Placement) -> int:
        return self.expand_width or int(round(at.in_chs * self.expansion))

    def se_width(self, at: Placement) -> int:
        base = self.expanded(at) if self.se_base == "expanded" else at.in_chs
        squeezed = max(1, int(base * self.se_ratio))
        return make_divisible(squeezed, self.se_divisor) if self.se_divisor > 1 else squeezed

    def check(self, at: Placement) -> tuple[str, str] | None:
        if self.kernel % 2 == 0:
            return "kernel", f"found {self.kernel}; the depthwise conv pads by (k - 1) / 2, which needs an odd kernel"
        return None

    def layers(self, at: Placement) -> BlockLayers:
        mid, out = self.expanded(at), self.out_chs(at)
        branch: list = []
        if mid != at.in_chs:
            branch += [Conv("conv1", at.in_chs, mid, 1), Norm("bn1", mid), Act("act1", mid, self.act)]
        branch += [Conv("conv2", mid, mid, self.kernel, at.stride, groups=mid), Norm("bn2", mid),
                   Act("act2", mid, self.act)]
        if self.se_ratio > 0:
            branch.append(SqueezeExcite("se", mid, self.se_width(at), self.se_act, self.se_gate))
        branch += [Conv("conv3", mid, out, 1), Norm("bn3", out)]
        residual = not changes_shape(at, out)  # only a block that keeps the shape adds its input
        return BlockLayers(branch=tuple(branch), merge=ADD if residual else NO_MERGE,
                           survival=at.survival if residual else 1.0, inverted_drop=at.inverted_drop)

    def notation(self, at: Placement) -> str:
        mid = self.expanded(at)
        expand = f"1x1, {mid}; " if mid != at.in_chs else ""
        se = f"; SE, {self.se_width(at)}" if self.se_ratio > 0 else ""
        stride = f", stride {at.stride}" if at.stride > 1 else ""
        return f"{expand}{self.kernel}x{self.kernel} dw, {mid}{stride}{se}; 1x1, {self.out_chs(at)}"


@register_stage_rule("efficientnet")
@dataclass
class CompoundScaling(StageRule):
    """EfficientNet's compound scaling (Tan and Le 2019, Sec. 3.3) of a baseline network: `stages: {efficientnet:
    {width: w, depth: d, stages: [...]}}` is the baseline's stages with each stage's depth n taken to
    ceil(n * d) (the reference code's round_repeats) and every width of the network (the stem's, each stage's,
    the head conv's and a family's own) to round_filters(c * w): the nearest multiple of 8, never 10% below,
    which is the width rule of [Multipliers](#multipliers), whose `width` w multiplies. EfficientNet-B1..B7 are
    B0 (the paper's Table 1) under the official code's (w, d): B1 (1.0, 1.1), B2 (1.1, 1.2), B3 (1.2, 1.4), B4
    (1.4, 1.8), B5 (1.6, 2.2), B6 (1.8, 2.6), B7 (2.0, 3.1). A spec that extends B0 writes only the two
    coefficients (`stages: {efficientnet: {width: 1.1, depth: 1.2}}`); `multipliers.depth`, if written, then
    rounds the scaled depths as it rounds any."""

    stage_list = "stages"

    width: float = spec_field(1.0, doc="w: multiplies every width before round_filters (B3: 1.2).", example=1.2,
                              minimum=0, maximum=100, exclusive_minimum=True)
    depth: float = spec_field(1.0, doc="d: each stage's depth n becomes ceil(n * d) (B3: 1.4).", example=1.4,
                              minimum=0, maximum=100, exclusive_minimum=True)
    stages: list[Stage] = spec_field(None, doc="The baseline's stages, written as a list of stages is (B0's seven "
                                     "rows of Table 1).", example=[{"depth": 1, "width": 16, "expansion": 1}],
                                     required=True)

    def expand(self, doc: SpecDoc) -> dict[str, Any]:
        return {"stages": [shallow_copy(s, depth=math.ceil(s.depth * self.depth)) for s in self.stages],
                "multipliers": shallow_copy(doc.multipliers, width=doc.multipliers.width * self.width)}
