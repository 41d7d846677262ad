"""Spec -> ModelPlan: every stage expanded into concrete blocks (timm's "one
normalisation step, then a dumb loop"). The builder and the counter both read
the plan, so they cannot disagree about what the network is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from archgen.blocks.registry import BlockArgs, BlockFamily, block_names, get_block
from archgen.errors import did_you_mean
from archgen.spec import schema
from archgen.spec.loader import Spec, SpecLike, load_spec
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

    if doc.stem.type not in STEMS:
        raise spec.error(("stem", "type"), f"unknown stem type '{doc.stem.type}'.{did_you_mean(doc.stem.type, STEMS)}"
                                           f" Allowed: {', '.join(STEMS)}")
    stem_cls = STEMS[doc.stem.type]
    stem = stem_cls.resolve(doc.stem, doc.input.channels, doc.block.act or "relu",
                            lambda w: scale_width(w, mult.width))

    families: list[BlockFamily] = []
    for i, stage in enumerate(doc.stages):
        type_name = stage.type or doc.block.type
        where = ("stages", i, "type") if stage.type else ("block", "type")
        if type_name is None:
            raise spec.error(("block",), "no block type: set 'block: {type: ...}' (one of "
                                         f"{', '.join(block_names())})")
        try:
            families.append(get_block(type_name))
        except KeyError as exc:
            raise spec.error(where, exc.args[0]) from None

    depths = [scale_depth(s.depth, mult.depth) for s in doc.stages]
    if sum(depths) > MAX_TOTAL_BLOCKS:
        raise spec.error(("stages",), f"the stages hold {sum(depths):,} blocks in all; archgen builds at most "
                                      f"{MAX_TOTAL_BLOCKS:,} (ResNet-1202 has 600)")
    total_blocks = sum(scale_depth(s.depth, mult.depth) for s, f in zip(doc.stages, families) if f.residual)
    stages: list[StagePlan] = []
    in_chs = stem.out_chs
    reduction = stem.reduction
    prev_dilation = 1
    residual_index = 0
    for i, (stage, family) in enumerate(zip(doc.stages, families)):
        params = {**BLOCK_DEFAULTS, **family.defaults}
        for source in (doc.block, stage):
            for name in schema.block_field_names():
                value = getattr(source, name)
                if value is not None:
                    params[name] = value
        params["type"] = family.name
        if stage.width is None and "width" in family.uses:
            raise spec.error(("stages", i), f"the required field 'width' is missing (block type '{family.name}')")
        width = scale_width(stage.width, mult.width) if stage.width is not None else 0
        if "growth_rate" in family.uses and mult.width != 1.0:
            params["growth_rate"] = scale_width(params["growth_rate"], mult.width)
        template = BlockArgs(**{**params, "in_chs": in_chs, "width": width, "stride": stage.stride,
                                "dilation": stage.dilation,
                                "first_dilation": prev_dilation if stage.first_dilation is None
                                else stage.first_dilation,
                                "shortcut": doc.shortcut, "stride_on": doc.stride_on})
        problem = family.check(template)
        if problem:
            field, message = problem
            at = ("stages", i, field) if getattr(stage, field, None) is not None else ("block", field)
            if at not in spec.locs and field in ("width", "stride", "dilation"):
                at = ("stages", i, field)
            raise spec.error(at, message)
        blocks = family.expand_stage(template, scale_depth(stage.depth, mult.depth), i)
        if i == 0:
            blocks[0] = dataclasses.replace(blocks[0], input_from="stem_act" if stem.norm else "stem")
        if doc.stochastic_depth is not None and family.residual:
            sd = doc.stochastic_depth
            with_survival = []
            for b in blocks:
                if b.type != family.name:  # a transition or downsampling conv is never dropped
                    with_survival.append(b)
                    continue
                residual_index += 1
                p = sd.final_survival if sd.rule == "uniform" else \
                    1.0 - residual_index / total_blocks * (1.0 - sd.final_survival)
                with_survival.append(dataclasses.replace(b, survival=p, inverted_drop=sd.inverted))
            blocks = with_survival
        out_chs = get_block(blocks[-1].type).out_chs(blocks[-1])
        reduction *= stage.stride
        stages.append(StagePlan(f"layer{i + 1}", blocks, out_chs, reduction))
        in_chs = out_chs
        prev_dilation = stage.dilation

    classes = doc.head.classes if doc.head.classes is not None else doc.input.classes
    return ModelPlan(spec=spec, in_chans=doc.input.channels, input_size=doc.input.size, stem=stem, stages=stages,
                     final_norm=any(f.final_norm for f in families[-1:]), final_act=doc.block.act or "relu",
                     pool=doc.head.pool, dropout=doc.head.dropout, classes=classes)
