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
and the input side moves from the spec's in steps of the network's output
stride (32 px for ResNet-50), so a step adds one pixel to the last stage's map
and every stage's map stays a whole fraction of the input (a 1 px step would
only round some maps up, a change of layout nobody would choose). Those steps
make MACs a step function of s; the scaled spec is the step along the rule's
path nearest the target, and the neighbouring steps on either side of the
target are reported: the landing is one of them, so it is within one
quantization step (a block, a width step of one stage, or a resolution step).

The scaled spec is written with the layout it builds (each stage's depth and
width, the stem's widths, a family's own widths such as DenseNet's growth rate)
and no multipliers, so the file shows the network and builds what was counted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from archgen.design.fast_count import figures
from archgen.design.figures import Figures
from archgen.design.space import NOT_WRITTEN
from archgen.errors import UserError
from archgen.grammar import schema
from archgen.grammar.loader import Spec
from archgen.planner import expand_stage_rule, frame, plan, scale_depth, scale_width

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
#: Multipliers are rounded to this many decimals (the table shows them; the written spec holds the layout).
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
    #: The spec as given (s = 1).
    base: Step
    landing: Step
    below: Step | None
    above: Step | None
    #: Pixels per step of the input side: the network's output stride.
    size_step: int

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
    spec = expand_stage_rule(spec)  # a rule's stages (and multipliers), which the path's multipliers then scale
    size_step = plan(spec).stages[-1].reduction
    doc = spec.doc
    base_key = quantized(spec, doc.multipliers.depth, doc.multipliers.width, doc.input.size)
    base = Step(1.0, doc.multipliers.depth, doc.multipliers.width, doc.input.size, base_key[0], base_key[1],
                figures(spec))
    factor = target_macs / base.figures.macs
    exponents = RULES[rule]
    steps: dict[tuple, Step | None] = {}
    span = 1.0
    while True:
        for s in path_points(factor, span):
            depth, width, size = point(spec, s, exponents, size_step)
            key = quantized(spec, depth, width, size)
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
    return Scaled(rule, exponents, target_macs, base, landing, below, above, size_step)


def path_points(factor: float, span: float) -> list[float]:
    """s from factor / 2^span to factor * 2^span, POINTS_PER_OCTAVE per octave."""
    n = int(2 * span * POINTS_PER_OCTAVE)
    return [factor * 2 ** (span * (2 * i / n - 1)) for i in range(n + 1)]


def point(spec: Spec, s: float, exponents: tuple[float, float, float], size_step: int) -> tuple[float, float, int]:
    """The depth and width multipliers (to DECIMALS) and the input side (the spec's, moved by whole steps of
    `size_step` pixels, and at least 1) at point s of the path."""
    e_d, e_w, e_r = exponents
    doc = spec.doc
    base = doc.input.size
    steps = max(round(base * (s ** e_r - 1) / size_step), -((base - 1) // size_step))
    return (round(doc.multipliers.depth * s ** e_d, DECIMALS), round(doc.multipliers.width * s ** e_w, DECIMALS),
            base + steps * size_step)


def quantized(spec: Spec, depth: float, width: float, size: int) -> tuple:
    """What the grammar makes of these multipliers: each stage's depth, each written width, the input side.
    Points of the path that quantize alike are one network, counted once; a network with stages of no
    written width (dense stages, whose growth rate the multiplier scales) keys on the multiplier itself."""
    doc = spec.doc
    widths = [doc.stem.width, *(s.width for s in doc.stages if s.width is not None)]
    held = () if all(s.width is not None for s in doc.stages) else (width,)
    return (tuple(scale_depth(s.depth, depth) for s in doc.stages), tuple(scale_width(w, width) for w in widths), size,
            *held)


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


def written(raw: dict, spec: Spec, step: Step) -> dict[str, Any]:
    """The mapping to write for `step`: `raw` (the spec's document, extends merged) with the layout the step
    builds written out (the input side, each stage's depth and width, the stem's widths, the head's conv, any
    width a family holds itself) and no multipliers; a stage rule becomes the stages it generates. Nothing extended, and not
    the parent's paper or torchvision name: a scaled network is not the paper's model."""
    out = copy.deepcopy({k: v for k, v in raw.items() if k not in NOT_WRITTEN and k != "multipliers"})
    spec = expand_stage_rule(spec)  # as scale() counted it: the step's multipliers replace the rule's
    built = scaled_spec(spec, step.depth, step.width, step.size)
    plain = scaled_spec(spec, 1.0, 1.0, step.size)
    built_frame, plain_frame = frame(built), frame(plain)
    out["input"] = {**out.get("input", {}), "size": step.size}
    stages = out["stages"] if isinstance(out.get("stages"), list) else [stage_mapping(s) for s in plain.doc.stages]
    widths = iter(step.widths[1:])
    for i, (stage, depth) in enumerate(zip(stages, built_frame.depths)):
        stage["depth"] = depth
        if plain.doc.stages[i].width is not None:
            stage["width"] = next(widths)
    out["stages"] = stages
    stem = built_frame.stem
    if stem.widths:  # a stem with layers ('none' has none, and refuses a width)
        out["stem"] = {**out.get("stem", {}), "width": stem.widths[-1]}
        if len(stem.widths) > 1:
            out["stem"]["deep_widths"] = list(stem.widths[:-1])
    if spec.doc.head.conv:  # the head's conv is a width the multiplier scales too
        out["head"] = {**out.get("head", {}), "conv": scale_width(spec.doc.head.conv, step.width)}
    block_type = built.doc.block.type
    for i, (before, after) in enumerate(zip(plain_frame.families, built_frame.families)):
        for f in dataclasses.fields(after):
            value = getattr(after, f.name)
            if value == getattr(before, f.name):
                continue
            in_stage = f.name in built.doc.stages[i].args or (built.doc.stages[i].type or block_type) != block_type
            (stages[i] if in_stage else out.setdefault("block", {}))[f.name] = value
    order = list(schema.fields_of(schema.SpecDoc))
    return dict(sorted(out.items(), key=lambda item: order.index(item[0])))


def stage_mapping(stage: schema.Stage) -> dict[str, Any]:
    """A generated stage as a spec writes it."""
    fields = {name: getattr(stage, name) for name in schema.fields_of(schema.Stage)}
    return {**{k: v for k, v in fields.items() if v is not None}, **stage.args}
