"""RegNet (Radosavovic et al. 2020, "Designing Network Design Spaces"): the X/Y residual bottleneck with
group width g and bottleneck ratio b, squeeze-and-excitation for RegNetY, and the quantized linear rule
that generates a RegNet's stages from (d, w0, wa, wm, g, b, q).

The block is pycls's ResBottleneckBlock as torchvision and timm lay it out: 1x1 conv-BN-ReLU to
w_b = round(w * b), 3x3 group conv (w_b / g groups, the stage's stride) BN-ReLU, SE (RegNetY), 1x1 conv-BN
to w, a projection shortcut (1x1 conv with the stride, BN) where the shape changes, ReLU after the add.
Module names and order are timm's (conv1, bn1, conv2, bn2, se, conv3, bn3, downsample), so timm's state
dict pairs in order; torchvision registers the shortcut (`proj`) before the branch (`f`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from archgen.blocks.common import conv_bn_act, residual_merge, shortcut_layers, shortcut_problem
from archgen.blocks.registry import Family, Placement, StageRule, register_block, register_stage_rule
from archgen.grammar.schema import MAX_DEPTH, MAX_WIDTH, SpecDoc, Stage, spec_field
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.squeeze_excite import SqueezeExcite
from archgen.memo import Memo


@register_block("regnet")
@dataclass(frozen=True)
class RegNetBlock(Family):
    """RegNet's X block (se_ratio 0) or Y block (se_ratio 0.25); every stage strides by 2 unless it says."""

    stage_fields = frozenset({"width", "stride"})

    group_width: int = spec_field(1, doc="g: channels per group of the 3x3 conv (groups = w_b / g; 1 is "
                                         "depthwise). Set per stage by the regnet stage rule.", example=16,
                                  minimum=1, maximum=MAX_WIDTH)
    bottleneck_ratio: float = spec_field(1.0, doc="b: the 3x3 conv has w_b = round(width * b) channels.",
                                         example=1.0, minimum=0, maximum=64, exclusive_minimum=True)
    se_ratio: float = spec_field(0.0, doc="Squeeze-and-excitation after the 3x3 conv, squeezing to "
                                          "round(se_ratio * the block's INPUT width) channels (pycls, "
                                          "torchvision, timm: 0.25 for RegNetY); 0: none (RegNetX).",
                                 example=0.25, minimum=0, maximum=4)

    def bottleneck(self, at: Placement) -> int:
        """w_b = round(w * b): torchvision's and timm's int(round(...)) (pycls makes the same widths)."""
        return int(round(at.width * self.bottleneck_ratio))

    def se_width(self, at: Placement) -> int:
        return int(round(self.se_ratio * at.in_chs))

    def out_chs(self, at: Placement) -> int:
        return at.width

    def default_stride(self, stage_index: int) -> int:
        return 2

    def check(self, at: Placement) -> tuple[str, str] | None:
        w_b = self.bottleneck(at)
        if w_b < 1 or w_b % self.group_width:
            return "group_width", (f"the bottleneck width round({at.width} x {self.bottleneck_ratio}) = {w_b} is "
                                   f"not a multiple of group_width {self.group_width}; the regnet stage rule "
                                   "adjusts widths so that it is")
        if self.se_ratio > 0 and self.se_width(at) < 1:
            return "se_ratio", (f"se_ratio {self.se_ratio} of {at.in_chs} input channels squeezes to no "
                                "channels; raise it or use 0 for no squeeze-and-excitation")
        return shortcut_problem(at, self.out_chs(at))

    def layers(self, at: Placement) -> BlockLayers:
        w_b, out = self.bottleneck(at), self.out_chs(at)
        branch = (conv_bn_act(1, at.in_chs, w_b, 1, "relu")
                  + conv_bn_act(2, w_b, w_b, 3, "relu", stride=at.stride, groups=w_b // self.group_width))
        if self.se_ratio > 0:
            branch.append(SqueezeExcite("se", w_b, self.se_width(at)))
        branch += conv_bn_act(3, w_b, out, 1, "relu", with_act=False)
        return BlockLayers(branch=tuple(branch), shortcut=shortcut_layers(at, out), merge=residual_merge(at),
                           post=(Act("act_out", out),), survival=at.survival, inverted_drop=at.inverted_drop)

    def notation(self, at: Placement) -> str:
        w_b = self.bottleneck(at)
        se = f"; SE, {self.se_width(at)}" if self.se_ratio > 0 else ""
        return f"1x1, {w_b}; 3x3, {w_b}, g={self.group_width}{se}; 1x1, {at.width}"


@register_stage_rule("regnet")
@dataclass
class RegNetRule(StageRule):
    """RegNet's quantized linear rule (Radosavovic et al. 2020, Sec. 3.3), with block type `regnet`: `stages:
    {regnet: {depth: d, w0: w0, wa: wa, wm: wm, group_width: g}}`. For each block j < d: u_j = w0 + wa * j,
    s_j = round(log(u_j / w0) / log(wm)), w_j = round(w0 * wm^s_j / q) * q (q = `quantum`, 8; halves round
    to even, as numpy and torch do). Runs of equal w_j are the stages (each strides by `stride`, 2). Then each
    stage's bottleneck width v = w * b (b = `bottleneck_ratio`) is made a multiple of its group width
    g' = min(g, v): `group_rounding: nearest` (pycls, timm) takes round(v / g') * g', `make_divisible`
    (torchvision) rounds halves up and adds a group when that falls more than 10% below v; the stage's width is
    v / b and its group width g'. The two roundings differ for RegNetX-400MF, RegNetY-800MF and RegNetY-8.0GF,
    which is why torchvision's `regnet_x_400mf` has 5,495,976 parameters and pycls's 5,157,512. The rule's
    stages take the `block:` fields except `group_width` and `bottleneck_ratio`, which it sets."""

    sets = ("group_width", "bottleneck_ratio")

    depth: int = spec_field(None, doc="d: blocks in all, over every stage.", example=22, minimum=1,
                            maximum=MAX_DEPTH, required=True)
    w0: int = spec_field(None, doc="Initial width (a multiple of `quantum`).", example=24, minimum=1,
                         maximum=MAX_WIDTH, required=True)
    wa: float = spec_field(None, doc="Slope of the linear widths u_j = w0 + wa * j.", example=24.48, minimum=0,
                           maximum=MAX_WIDTH, required=True)
    wm: float = spec_field(None, doc="Width multiplier between stages (> 1).", example=2.54, minimum=1,
                           maximum=100, exclusive_minimum=True, required=True)
    group_width: int = spec_field(None, doc="g: channels per group of each block's 3x3 conv.", example=16,
                                  minimum=1, maximum=MAX_WIDTH, required=True)
    bottleneck_ratio: float = spec_field(1.0, doc="b: the bottleneck width is round(w * b).", example=1.0,
                                         minimum=0, maximum=64, exclusive_minimum=True)
    quantum: int = spec_field(8, doc="q: block widths are rounded to multiples of q.", example=8, minimum=1,
                              maximum=MAX_WIDTH)
    stride: int = spec_field(2, doc="Stride of every stage's first block.", example=2, minimum=1, maximum=8)
    group_rounding: Literal["nearest", "make_divisible"] = spec_field(
        "nearest", doc="How w * b becomes a multiple of the group width: 'nearest' (round(w * b / g) * g, halves "
                       "to even; pycls and timm) or 'make_divisible' (halves up, never 10% below; torchvision).",
        example="nearest")

    def problem(self) -> tuple[str, str] | None:
        if self.w0 % self.quantum:
            return "w0", (f"w0 {self.w0} is not a multiple of the quantum {self.quantum}; RegNet's widths start at "
                          "w0 and are multiples of the quantum")
        return None

    def expand(self, doc: SpecDoc) -> dict[str, Any]:
        return {"stages": regnet_stages(self)}


def width_runs(rule: RegNetRule) -> list[list[int]]:
    """[width, depth] per run of equal consecutive block widths: the stages. Block j's width is
    u_j = w0 + wa * j snapped to w0 * wm^s_j, s_j = round(log(u_j / w0) / log(wm)), then to a multiple of q
    (round() halves to even, as numpy and torch round in pycls, timm and torchvision).

    s_j never falls (wa >= 0, wm > 1), so a run of equal s_j ends where u_j first reaches w0 * wm^(s + 1/2):
    that j is estimated in closed form and then settled by s_j itself, so the runs are exactly those of the
    formula block by block (tests/test_regnet.py compares the two) at a few evaluations per stage instead of
    one per block: this is the design path's costliest step for a RegNet candidate."""
    w0, wa, wm, q, depth, log = rule.w0, rule.wa, rule.wm, rule.quantum, rule.depth, math.log
    log_wm = log(wm)

    def step(j: int) -> int:
        return round(log((w0 + wa * j) / w0) / log_wm)

    runs: list[list[int]] = []
    start, s = 0, 0  # s_0 = round(log(1)) = 0
    while start < depth:
        bound = w0 * (wm ** (s + 0.5) - 1) / wa if wa > 0 else math.inf
        end = depth if bound >= depth else max(start + 1, math.ceil(bound))
        after = step(end) if end < depth else None  # s of the block after the run: the next run's
        while after == s:
            end += 1
            after = step(end) if end < depth else None
        while end - 1 > start:  # s_start is s: the run holds at least its first block
            last = step(end - 1)
            if last == s:
                break
            end, after = end - 1, last
        width = int(round(w0 * wm ** s / q)) * q
        if runs and runs[-1][0] == width:
            runs[-1][1] += end - start
        else:
            runs.append([width, end - start])
        start, s = end, after
    return runs


def compatible(width: int, b: float, g: int, rounding: str) -> tuple[int, int]:
    """(width, group width) such that w * b is a multiple of the group width min(g, w * b).

    'nearest' is pycls's adjust_block_compatibility (and timm's): max(m, round(v / m) * m), m = lcm(g, b) for
    b > 1; 'make_divisible' is torchvision's: halves round up, and a result more than 10% below v gains a group.
    They differ where v / g ends in .5 (RegNetX-400MF's last stage: 392 / 16 = 24.5 gives 384 or 400) and where
    rounding down loses more than 10% (RegNetY-8.0GF's first stage: 192 / 56 gives 168 or 224)."""
    v = int(max(1, width * b))
    g = int(min(g, v))
    if rounding == "nearest":
        m = math.lcm(g, int(b)) if b > 1 else g
        v = max(m, int(round(v / m) * m))
    else:
        new = max(g, int(v + g / 2) // g * g)
        v = new + g if new < 0.9 * v else new
    return int(v / b), g


def regnet_stages(rule: RegNetRule) -> list[Stage]:
    """The stages the rule generates, each with its width, depth, stride, group width and bottleneck ratio."""
    b, g, rounding, stride = rule.bottleneck_ratio, rule.group_width, rule.group_rounding, rule.stride
    stages = []
    for width, depth in width_runs(rule):
        key = (width, depth, b, g, rounding, stride)
        stage = _stages.get(key)
        if stage is None:
            w, args = stage_width(width, b, g, rounding)
            stage = _stages.keep(key, Stage(depth=depth, width=w, stride=stride, args=args))
        stages.append(stage)
    return stages


def stage_width(width: int, b: float, g: int, rounding: str) -> tuple[int, dict]:
    """A generated stage's compatible width and its block arguments, made once per width: a design space's
    candidates share a few hundred, and nothing writes into a generated stage (an axis over `stages:` writes
    the rule)."""
    key = (width, b, g, rounding)
    known = _stage_widths.get(key)
    if known is None:
        w, g = compatible(width, b, g, rounding)
        known = _stage_widths.keep(key, (w, {"group_width": g, "bottleneck_ratio": b}))
    return known


_stage_widths = Memo(4096, "regnet: stage widths")
#: Generated stages by width, depth and block arguments: shared between candidates, as nothing writes into a
#: generated stage.
_stages = Memo(16_384, "regnet: generated stages")
