"""Spec -> ModelPlan: every stage expanded into concrete blocks (timm's "one
normalisation step, then a dumb loop"). The builder and the counter both read
the plan, so they cannot disagree about what the network is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from archgen.blocks.registry import BlockArgs, BlockFamily, block_names, get_block, spec_block
from archgen.errors import did_you_mean
from archgen.grammar import schema
from archgen.grammar.loader import Spec, SpecLike, load_spec
from archgen.stems import STEMS, StemArgs


@dataclass(frozen=True)
class StagePlan:
    name: str
    blocks: list[BlockArgs]
    out_chs: int
    reduction: int


@dataclass(frozen=True)
class ModelPlan:
    spec: Spec
    in_chans: int
    input_size: int
    stem: StemArgs
    stages: list[StagePlan]
    final_norm: bool
    final_act: str
    pool: str
    dropout: float
    classes: int

    @property
    def num_features(self) -> int:
        return self.stages[-1].out_chs


#: Blocks in a whole network, after the depth multiplier; keeps a typo from asking for hours of work.
MAX_TOTAL_BLOCKS = 10_000

BLOCK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(BlockArgs) if f.default is not dataclasses.MISSING}


def scale_depth(depth: int, multiplier: float) -> int:
    """The depth rule: max(round(depth * multiplier), 1), halves rounding up."""
    return max(int(depth * multiplier + 0.5), 1)


def scale_width(width: int, multiplier: float, divisor: int = 8) -> int:
    """The width rule: unchanged at 1.0; otherwise the nearest multiple of `divisor`,
    at least `divisor`, and never more than 10% below width * multiplier."""
    if multiplier == 1.0:
        return width
    value = width * multiplier
    scaled = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if scaled < 0.9 * value:
        scaled += divisor
    return scaled


def plan(spec: SpecLike) -> ModelPlan:
    """Resolve a spec into stages of concrete blocks, raising SpecError at the field that cannot be built."""
    spec = load_spec(spec)
    doc = spec.doc
    mult = doc.multipliers
    stem = _resolve_stem(spec)
    families = _families(spec)

    depths = [scale_depth(s.depth, mult.depth) for s in doc.stages]
    if sum(depths) > MAX_TOTAL_BLOCKS:
        raise spec.error(("stages",), f"the stages hold {sum(depths):,} blocks in all; archgen builds at most "
                                      f"{MAX_TOTAL_BLOCKS:,} (ResNet-1202 has 600)")
    residual_total = sum(d for d, f in zip(depths, families) if f.residual)
    if doc.stochastic_depth is not None and (doc.shortcut == "none" or residual_total == 0):
        raise spec.error(("stochastic_depth",), "stochastic depth drops residual branches, and this network has "
                                                "none (shortcut: none, or no residual block type); remove it")
    stages: list[StagePlan] = []
    in_chs, reduction, prev_dilation, residual_done = stem.out_chs, stem.reduction, 1, 0
    for i, (stage, family, depth) in enumerate(zip(doc.stages, families, depths)):
        template = _template(spec, i, family, in_chs, prev_dilation)
        blocks = family.expand_stage(template, depth, i)
        if i == 0:
            blocks[0] = dataclasses.replace(blocks[0], input_from="stem_act" if stem.norm else "stem")
        if doc.stochastic_depth is not None and family.residual:
            blocks = _with_survival(blocks, family, doc.stochastic_depth, residual_done, residual_total)
            residual_done += sum(b.type == family.name for b in blocks)
        out_chs = get_block(blocks[-1].type).out_chs(blocks[-1])
        reduction *= stage.stride
        stages.append(StagePlan(f"layer{i + 1}", blocks, out_chs, reduction))
        in_chs, prev_dilation = out_chs, stage.dilation

    classes = doc.head.classes if doc.head.classes is not None else doc.input.classes
    return ModelPlan(spec=spec, in_chans=doc.input.channels, input_size=doc.input.size, stem=stem, stages=stages,
                     final_norm=families[-1].final_norm, final_act=doc.block.act or "relu",
                     pool=doc.head.pool, dropout=doc.head.dropout, classes=classes)


def _resolve_stem(spec: Spec) -> StemArgs:
    doc = spec.doc
    if doc.stem.type not in STEMS:
        raise spec.error(("stem", "type"), f"unknown stem type '{doc.stem.type}'.{did_you_mean(doc.stem.type, STEMS)}"
                                           f" Allowed: {', '.join(STEMS)}")
    return STEMS[doc.stem.type].resolve(doc.stem, doc.input.channels, doc.block.act or "relu",
                                        lambda w: scale_width(w, doc.multipliers.width))


def _families(spec: Spec) -> list[BlockFamily]:
    """Each stage's block family (its own `type`, or the spec's `block.type`)."""
    families = []
    for i, stage in enumerate(spec.doc.stages):
        type_name = stage.type or spec.doc.block.type
        if type_name is None:
            raise spec.error(("block",), "no block type: set 'block: {type: ...}' (one of "
                                         f"{', '.join(block_names())})")
        try:
            families.append(spec_block(type_name))
        except KeyError as exc:
            raise spec.error(("stages", i, "type") if stage.type else ("block", "type"), exc.args[0]) from None
    return families


def _template(spec: Spec, i: int, family: BlockFamily, in_chs: int, prev_dilation: int) -> BlockArgs:
    """Stage i's block arguments: BlockArgs defaults < family defaults < `block:` < the stage's overrides."""
    doc, stage, mult = spec.doc, spec.doc.stages[i], spec.doc.multipliers
    params = {**BLOCK_DEFAULTS, **family.defaults}
    for source in (doc.block, stage):
        for name in schema.block_field_names():
            value = getattr(source, name)
            if value is not None:
                params[name] = value
    params["type"] = family.name
    if stage.width is None and "width" in family.uses:
        raise spec.error(("stages", i), f"the required field 'width' is missing (block type '{family.name}')")
    if "growth_rate" in family.uses and mult.width != 1.0:
        params["growth_rate"] = scale_width(params["growth_rate"], mult.width)
    template = BlockArgs(**{
        **params, "in_chs": in_chs, "width": scale_width(stage.width, mult.width) if stage.width else 0,
        "stride": stage.stride, "dilation": stage.dilation,
        "first_dilation": prev_dilation if stage.first_dilation is None else stage.first_dilation,
        "shortcut": doc.shortcut, "stride_on": doc.stride_on})
    problem = family.check(template)
    if problem:
        field, message = problem
        at = ("stages", i, field) if getattr(stage, field, None) is not None else ("block", field)
        if at not in spec.locs and field in ("width", "stride", "dilation"):
            at = ("stages", i, field)
        raise spec.error(at, message)
    return template


def _with_survival(blocks: list[BlockArgs], family: BlockFamily, sd: schema.StochasticDepth, done: int,
                   total: int) -> list[BlockArgs]:
    """Stochastic depth: residual block l of L survives with 1 - l/L (1 - p_L) (linear rule) or p_L (uniform).
    Blocks the family adds around its own (a transition, a downsampling conv) are never dropped."""
    out = []
    for b in blocks:
        if b.type == family.name:
            done += 1
            p = sd.final_survival if sd.rule == "uniform" else 1.0 - done / total * (1.0 - sd.final_survival)
            b = dataclasses.replace(b, survival=p, inverted_drop=sd.inverted)
        out.append(b)
    return out
