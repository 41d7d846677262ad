"""Scale a network to a MACs target along a rule, quantized to the grammar.

A rule gives the exponents (e_d, e_w, e_r) with e_d + 2 e_w + 2 e_r = 1, so
scaling MACs by s multiplies depth by s^e_d, width by s^e_w and resolution by
s^e_r (MACs grow as d w^2 r^2):

- `depth` (1, 0, 0), `width` (0, 1/2, 0), `resolution` (0, 0, 1/2);
- `compound`: EfficientNet's (Tan and Le 2019, arXiv:1905.11946): depth 1.2,
  width 1.1, resolution 1.15 per step phi, each step multiplying MACs by
  1.2 * 1.1^2 * 1.15^2 = 1.92, so e_x = ln(x) / ln(1.92);
- `dwr`: Dollar et al. 2021's fast compound scaling (arXiv:2103.06877, Table 4)
  at their alpha = 0.8: e_d = (1 - alpha)/2 = 0.1, e_w = alpha/2 = 0.4,
  e_r = (1 - alpha)/4 = 0.05 (pycls's "d1_w8_g8_r1"); most of the growth in width.

Quantization is the grammar's own: `multipliers.depth` rounds each stage's
depth, `multipliers.width` takes each width to a multiple of 8 (archgen.planner),
and the input side is a whole number of pixels. Those steps make MACs a step
function of s; the scaled spec is the step along the rule's path nearest the
target, and the steps on either side of the target are reported: the landing
is one of them, so it is within one quantization step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from archgen.design.count import figures
from archgen.planner import expand_stage_rule
from archgen.design.figures import Figures
from archgen.errors import UserError
from archgen.grammar import schema
from archgen.grammar.loader import Spec
from archgen.planner import scale_depth, scale_width

#: Rule -> (e_d, e_w, e_r).
_COMPOUND = (1.2, 1.1, 1.15)
_PER_STEP = math.log(_COMPOUND[0] * _COMPOUND[1] ** 2 * _COMPOUND[2] ** 2)
_ALPHA = 0.8
RULES: dict[str, tuple[float, float, float]] = {
    "depth": (1.0, 0.0, 0.0),
    "width": (0.0, 0.5, 0.0),
    "resolution": (0.0, 0.0, 0.5),
    "compound": tuple(math.log(x) / _PER_STEP for x in _COMPOUND),
    "dwr": ((1 - _ALPHA) / 2, _ALPHA / 2, (1 - _ALPHA) / 4),
}
#: Points along the rule's path tried per octave of s (then deduplicated by what they quantize to).
POINTS_PER_OCTAVE = 400
#: Multipliers are written with this many decimals.
DECIMALS = 4


@dataclass(frozen=True)
class Step:
    """One quantized point on the rule's path."""

    s: float
    depth: float
    width: float
    size: int
    #: Each stage's depth after the multiplier.
    stage_depths: tuple[int, ...]
    #: The stem's and each stage's written width after the multiplier.
    widths: tuple[int, ...]
    figures: Figures


@dataclass(frozen=True)
class Scaled:
    rule: str
    exponents: tuple[float, float, float]
    target: float
    base: Figures
    landing: Step
    below: Step | None
    above: Step | None

    @property
    def error(self) -> float:
        """The landing's MACs relative to the target (0.01 is 1% over)."""
        return self.landing.figures.macs / self.target - 1


def scale(spec: Spec, target_macs: float, rule: str) -> Scaled:
    """The quantized scaling of `spec` along `rule` whose MACs come nearest `target_macs`."""
    if rule not in RULES:
        raise UserError(f"unknown rule '{rule}'; rules: {', '.join(RULES)}")
    if target_macs <= 0:
        raise UserError(f"the target must be positive MACs, not {target_macs:g}")
    base = figures(spec)
    factor = target_macs / base.macs
    exponents = RULES[rule]
    stages_of = expand_stage_rule(spec)  # a RegNet rule's stages, whose depths and widths the multipliers scale
    steps: dict[tuple, Step | None] = {}
    span = 1.0
    while True:
        for s in path_points(factor, span):
            depth, width, size = point(spec, s, exponents)
            key = quantized(stages_of, depth, width, size)
            if key not in steps:
                steps[key] = counted_step(spec, s, depth, width, size, key)
        below, above = bracket([x for x in steps.values() if x is not None], target_macs)
        if (below is not None and above is not None) or span >= 4:
            break
        span *= 2  # a coarse rule (depth) may need a wider path to step over the target
    if below is None and above is None:
        raise UserError(f"no scaling of {spec.name} along '{rule}' could be counted near {target_macs:,.0f} MACs")
    landing = min((x for x in (below, above) if x is not None),
                  key=lambda x: abs(x.figures.macs - target_macs))
    return Scaled(rule, exponents, target_macs, base, landing, below, above)


def path_points(factor: float, span: float) -> list[float]:
    """s from factor / 2^span to factor * 2^span, POINTS_PER_OCTAVE per octave."""
    n = int(2 * span * POINTS_PER_OCTAVE)
    return [factor * 2 ** (span * (2 * i / n - 1)) for i in range(n + 1)]


def point(spec: Spec, s: float, exponents: tuple[float, float, float]) -> tuple[float, float, int]:
    """The depth and width multipliers (written to DECIMALS) and the input side at point s of the path."""
    e_d, e_w, e_r = exponents
    doc = spec.doc
    return (round(doc.multipliers.depth * s ** e_d, DECIMALS), round(doc.multipliers.width * s ** e_w, DECIMALS),
            max(1, round(doc.input.size * s ** e_r)))


def quantized(spec: Spec, depth: float, width: float, size: int) -> tuple:
    """What the grammar makes of these multipliers: each stage's depth, each written width, the input side.
    Points of the path that quantize alike are one network, counted once; a network with stages of no
    written width (dense stages, whose growth rate the multiplier scales) keys on the multiplier itself."""
    doc = spec.doc
    widths = [doc.stem.width, *(s.width for s in doc.stages if s.width is not None)]
    held = () if all(s.width is not None for s in doc.stages) else (width,)
    return (tuple(scale_depth(s.depth, depth, doc.multipliers.depth_rounding) for s in doc.stages), tuple(scale_width(w, width) for w in widths),
            size, *held)


def counted_step(spec: Spec, s: float, depth: float, width: float, size: int, key: tuple) -> Step | None:
    """The network at this point, counted; None where the grammar refuses it (too small an input)."""
    try:
        counted = figures(scaled_spec(spec, depth, width, size))
    except UserError:
        return None
    return Step(s, depth, width, size, key[0], key[1], counted)


def scaled_spec(spec: Spec, depth: float, width: float, size: int) -> Spec:
    """`spec` with these multipliers and input side (its validated document copied, not re-read)."""
    if not (0 < depth <= 100 and 0 < width <= 100 and size <= 8192):
        raise UserError(f"the scaled multipliers (depth {depth}, width {width}, input {size}) leave the grammar's "
                        "range")
    doc = dataclasses.replace(spec.doc, multipliers=schema.Multipliers(depth=depth, width=width),
                              input=dataclasses.replace(spec.doc.input, size=size))
    return Spec(doc=doc, file=spec.file, locs=spec.locs, replaced_lists=spec.replaced_lists)


def bracket(steps, target: float) -> tuple[Step | None, Step | None]:
    """The step with the most MACs at or under the target, and the one with the fewest at or over it."""
    below = [x for x in steps if x.figures.macs <= target]
    above = [x for x in steps if x.figures.macs >= target]
    return (max(below, key=lambda x: x.figures.macs) if below else None,
            min(above, key=lambda x: x.figures.macs) if above else None)
