"""Spec -> ModelPlan: every stage expanded into concrete blocks (timm's "one
normalisation step, then a dumb loop"). The counter, the builder and fuse all
read the plan's layer records, so they cannot disagree about what the network
is. Pure Python: planning imports no torch.

Every shape is computed here (by the counter, at the spec's input size) and
whatever the network cannot do is refused as a SpecError at the field's line,
so a spec that plans is a spec that builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Protocol, TypeVar

from archgen.blocks import spec_family
from archgen.blocks.registry import Family, Placement, PlannedBlock
from archgen.errors import did_you_mean
from archgen.grammar import schema
from archgen.grammar.schema import shallow_copy
from archgen.grammar.loader import Spec, SpecLike, load_spec
from archgen.heads import HeadPlan
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.norm import Norm
from archgen.memo import Memo
from archgen.stems import STEMS, StemArgs


@dataclass(frozen=True)
class StagePlan:
    name: str
    blocks: list[PlannedBlock]
    out_chs: int
    reduction: int


@dataclass(frozen=True)
class ModelPlan:
    spec: Spec
    in_chans: int
    input_size: int
    stem: StemArgs
    stages: list[StagePlan]
    head: HeadPlan

    @property
    def num_features(self) -> int:
        return self.stages[-1].out_chs

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def depth(self) -> int:
        """Weight layers on the longest path, each block's as its records count them (ResNet-50's is 50): the
        design figure the fast counter sums stage by stage (archgen.design.fast_count)."""
        return (self.stem.layers().depth + sum(b.layers().depth for s in self.stages for b in s.blocks)
                + self.head.layers(self.num_features).depth)


#: Blocks in a whole network, after the depth multiplier; keeps a typo from asking for hours of work.
MAX_TOTAL_BLOCKS = 10_000


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


@dataclass(frozen=True)
class Frame:
    """What a network settles before its stages are expanded. The planner and the fast counter
    (archgen.design.fast_count) both start from it, so they refuse the same specs at the same lines."""

    families: list[Family]
    #: Blocks per stage, after the depth multiplier.
    depths: list[int]
    stem: StemArgs
    #: What feeds the first block: a stem ending in BN + activation, a bare conv, or the image.
    first_input: str
    #: Group norm's groups, 0 for other norms: the one network field the per-block checks read.
    norm_groups: int


class Framed(NamedTuple):
    """A spec with its stages listed (expand_stage_rule) and its frame: where counting, predicting and
    planning a network all start, so a design search that counts a candidate and then predicts its latency
    settles both once."""

    spec: Spec
    frame: Frame


def framed(spec: Spec | Framed) -> Framed:
    """The spec's stages listed and its frame (a Framed is returned as it is)."""
    if isinstance(spec, Framed):
        return spec
    spec = expand_stage_rule(spec)
    return Framed(spec, frame(spec))


def plan(spec: SpecLike | Framed | ModelPlan) -> ModelPlan:
    """Resolve a spec into stages of concrete blocks, raising SpecError at the field that cannot be built.

    A ModelPlan is returned as it is, so every command plans once and hands the plan on.
    """
    if isinstance(spec, ModelPlan):
        return spec
    spec, f = framed(spec if isinstance(spec, Framed) else load_spec(spec))
    doc = spec.doc
    residual_total = sum(d for d, family in zip(f.depths, f.families) if family.residual)
    stages: list[StagePlan] = []
    reduction, residual_done = f.stem.reduction, 0

    def place(i: int, family: Family, depth: int, in_chs: int, prev_dilation: int, input_from: str) -> PlacedStage:
        at = placement(spec, i, family, in_chs, prev_dilation)
        return PlacedStage(at, stage_blocks(family, at, depth, i, input_from))

    for i, (family, placed) in enumerate(zip(f.families, walk_stages(f, place))):
        blocks = placed.blocks
        if doc.stochastic_depth is not None and family.residual:
            blocks = _with_survival(blocks, family, doc.stochastic_depth, residual_done, residual_total)
            residual_done += sum(b.family is family for b in blocks)
        for block in blocks:
            _check_groups(spec, i, block)
        reduction *= placed.stride
        stages.append(StagePlan(f"layer{i + 1}", blocks, placed.out_chs, reduction))
    return ModelPlan(spec=spec, in_chans=doc.input.channels, input_size=doc.input.size, stem=f.stem, stages=stages,
                     head=head_plan(spec, f.families[-1]))


def frame(spec: Spec) -> Frame:
    """The stage families, depths and stem of a spec whose stages are a list (see expand_stage_rule), with
    every check that needs no block expanded."""
    doc = spec.doc
    families = _families(spec)
    _check_network_fields(spec, families)
    stem = _resolve_stem(spec, families[0])
    if doc.norm.type == "group":
        _check_norm_groups(spec, stem.layers(), "the stem")
    depths = [scale_depth(s.depth, doc.multipliers.depth) for s in doc.stages]
    if sum(depths) > MAX_TOTAL_BLOCKS:
        raise spec.error(("stages",), f"the stages hold {sum(depths):,} blocks in all; archgen builds at most "
                                      f"{MAX_TOTAL_BLOCKS:,} (ResNet-1202 has 600)")
    residual = any(d for d, f in zip(depths, families) if f.residual)
    if doc.stochastic_depth is not None and (doc.shortcut == "none" or not residual):
        raise spec.error(("stochastic_depth",), "stochastic depth drops residual branches, and this network has "
                                                "none (shortcut: none, or no residual block type); remove it")
    first_input = "stem_act" if stem.norm else "stem"
    return Frame(families, depths, stem, first_input, doc.norm.groups if doc.norm.type == "group" else 0)


class Placed(Protocol):
    """What a placed stage hands the next: the dilation its first conv continues, and its output channels."""

    @property
    def dilation(self) -> int: ...

    @property
    def out_chs(self) -> int: ...


P = TypeVar("P", bound=Placed)


def walk_stages(f: Frame, place: Callable[[int, Family, int, int, int, str], P]) -> Iterator[P]:
    """Each stage of the frame placed by `place(i, family, depth, in_chs, prev_dilation, input_from)`, fed what
    the stages before it hand on: the one stage loop of the planner and of the fast counter
    (archgen.design.fast_count), so both place every stage alike. A consumer may stop at any stage (the fast
    counter does where its shortcuts cannot settle a stage); the next stage is placed only when asked for."""
    in_chs, prev_dilation = f.stem.out_chs, 1
    for i, (family, depth) in enumerate(zip(f.families, f.depths)):
        placed = place(i, family, depth, in_chs, prev_dilation, f.first_input if i == 0 else "block")
        yield placed
        in_chs, prev_dilation = placed.out_chs, placed.dilation


class PlacedStage(NamedTuple):
    """A stage as the planner places it: its first block's placement and its blocks."""

    at: Placement
    blocks: list[PlannedBlock]

    @property
    def stride(self) -> int:
        return self.at.stride

    @property
    def dilation(self) -> int:
        return self.at.dilation

    @property
    def out_chs(self) -> int:
        return self.blocks[-1].out_chs


def stage_blocks(family: Family, at: Placement, depth: int, stage_index: int, input_from: str) -> list[PlannedBlock]:
    """The stage's blocks, its first fed by `input_from` (the stem, for the network's first stage)."""
    blocks = family.expand_stage(at, depth, stage_index)
    if input_from != "block":
        first = blocks[0]
        blocks[0] = PlannedBlock(first.family, first.at.moved(input_from=input_from))
    return blocks


def expand_stage_rule(spec: Spec) -> Spec:
    """A spec whose `stages:` is a rule, with the stages it generates in their place (errors point at the rule's
    fields, or at the stage written for a rule that generates stages one for one)."""
    if spec.doc.stage_rule is None:
        return spec
    ((name, rule),) = spec.doc.stage_rule.items()
    problem = rule.problem()
    if problem:
        field, message = problem
        raise spec.error(("stages", name, field), message)
    # shallow_copy, not dataclasses.replace (which re-runs __init__): the design hot path expands every candidate
    doc = shallow_copy(spec.doc, stage_rule=None, **rule.expand(spec.doc))
    locs = spec.locs
    if rule.stage_list:
        written = ("stages", name, rule.stage_list)
        locs = {**locs, **{("stages", *path[3:]): loc for path, loc in locs.items() if path[:3] == written}}
    return Spec(doc=doc, file=spec.file, locs=locs, replaced_lists=spec.replaced_lists)


def _families(spec: Spec) -> list[Family]:
    """Each stage's family with its arguments: family defaults < `block:` (same type) < the stage's own."""
    doc = spec.doc
    out = []
    for stage in doc.stages:
        type_name = stage.type or doc.block.type
        args = {**doc.block.args, **stage.args} if type_name == doc.block.type else stage.args
        key = (type_name, tuple(args.items()), doc.multipliers.width)
        try:
            known = _made_families.get(key)
        except TypeError:  # an unhashable argument: made, not remembered
            known = _family(*key)
        if known is None:
            known = _made_families.keep(key, _family(*key))
        out.append(known)
    return out


#: Families by type name, arguments and width multiplier: a design space's candidates share a few, and the fast
#: counter's memo then finds them by identity.
_made_families = Memo(4096, "planner: families")


def _family(type_name: str, args: tuple[tuple[str, object], ...], width_multiplier: float) -> Family:
    cls = spec_family(type_name)  # the validator has checked the name
    return cls(**dict(args)).scaled(lambda w: scale_width(w, width_multiplier))


def _check_network_fields(spec: Spec, families: list[Family]) -> None:
    """A top-level field a spec writes must be one some stage's family reads."""
    for name in ("shortcut", "stride_on"):
        readers = [f for f in families if name in f.network_fields]
        if name in spec.doc.written and not readers:
            types = sorted({f.name for f in families})
            raise spec.error((name,), f"no stage reads '{name}': block type{'s' if len(types) > 1 else ''} "
                                      f"{', '.join(types)} take{'' if len(types) > 1 else 's'} no {name}; remove "
                                      "it")
    if "leaky_slope" in spec.doc.written and not any(getattr(f, "act", None) == "leaky_relu" for f in families):
        raise spec.error(("leaky_slope",), "no layer of this network is a leaky_relu, so the slope would do "
                                           "nothing; remove it, or set a family's act: leaky_relu")
    if spec.doc.zero_init_last and not any(f.residual for f in families):
        raise spec.error(("zero_init_last",), "this network has no residual branch to start at zero; remove it")


def _resolve_stem(spec: Spec, first: Family) -> StemArgs:
    """The stem, activated as the first stage's blocks are."""
    doc = spec.doc
    stem = doc.stem
    if stem.type not in STEMS:
        raise spec.error(("stem", "type"), f"unknown stem type '{stem.type}'.{did_you_mean(stem.type, STEMS)}"
                                           f" Allowed: {', '.join(STEMS)}")
    kind = STEMS[stem.type]
    if kind.empty:
        _refuse_fields_of_no_stem(spec)
    if stem.deep_widths is not None:
        if not kind.deep:
            raise spec.error(("stem", "deep_widths"), f"deep_widths belongs to the 'deep' stem; a '{stem.type}' "
                                                      "stem has one conv of `width` channels; remove it or use "
                                                      "type: deep")
        if len(stem.deep_widths) != 2:
            raise spec.error(("stem", "deep_widths"), f"found {len(stem.deep_widths)} widths; the deep stem's "
                                                      "first two convs take exactly two (the third is `width`), "
                                                      "e.g. [32, 32]")
    kernel = kind.kernel if stem.kernel is None else stem.kernel
    if kernel % 2 == 0:
        raise spec.error(("stem", "kernel"), f"found {kernel}; the stem's convs pad by (k - 1) / 2 to keep the "
                                             "size up to the stride, which needs an odd kernel: use 3, 5, 7, ...")
    act = stem.act or getattr(first, "act", "relu")
    key = (stem.type, stem.width, stem.kernel, stem.stride, stem.pool, stem.norm,
           None if stem.deep_widths is None else tuple(stem.deep_widths), doc.input.channels, act,
           doc.multipliers.width)
    known = _stems.get(key)
    if known is None:
        known = _stems.keep(key, kind.resolve(stem, doc.input.channels, act,
                                              lambda w: scale_width(w, doc.multipliers.width)))
    return known


#: Resolved stems by the plain values they read (a design space's candidates share a few).
_stems = Memo(256, "planner: stems")


def _refuse_fields_of_no_stem(spec: Spec) -> None:
    """A 'none' stem has no layers, so any other stem field written is one nothing reads."""
    written = sorted({path[1] for path in spec.locs if len(path) == 2 and path[0] == "stem" and path[1] != "type"})
    if written:
        raise spec.error(("stem", written[0]), f"a 'none' stem has no layers, so '{written[0]}' shapes nothing; "
                                               "remove it, or choose a stem type with layers")


def placement(spec: Spec, i: int, family: Family, in_chs: int, prev_dilation: int) -> Placement:
    """Stage i's first-block placement, checked against the family."""
    doc, stage = spec.doc, spec.doc.stages[i]
    if "width" in family.stage_fields and stage.width is None:
        raise spec.error(("stages", i), f"the required field 'width' is missing (block type '{family.name}')")
    stride = family.default_stride(i) if stage.stride is None else stage.stride
    problem = family.stride_problem(stride, i)
    if problem:
        raise spec.error(("stages", i, "stride"), problem)
    dilation = stage.dilation or 1
    at = Placement(in_chs=in_chs, width=scale_width(stage.width, doc.multipliers.width) if stage.width else 0,
                   stride=stride, dilation=dilation,
                   first_dilation=prev_dilation if stage.first_dilation is None else stage.first_dilation,
                   shortcut=doc.shortcut, stride_on=doc.stride_on)
    problem2 = family.check(at)
    if problem2:
        field, message = problem2
        raise spec.error(_field_at(spec, i, field), message)
    return at


def _field_at(spec: Spec, i: int, field: str) -> tuple:
    """Where a block field was written: the stage's override, else `block:`, else the stage."""
    stage = spec.doc.stages[i]
    if field in stage.args or field in schema.PLACEMENT_FIELDS:
        return ("stages", i, field)
    if field in spec.doc.block.args:
        return ("block", field)
    return ("stages", i)


def _check_groups(spec: Spec, i: int, block: PlannedBlock) -> None:
    """Every grouped conv's groups divide its input and output channels, and group norm's groups every
    normalised layer's (else torch refuses to build it)."""
    layers = block.layers()
    conv = misgrouped_conv(layers)
    if conv is not None:
        raise spec.error(_field_at(spec, i, "cardinality"),
                         f"cardinality {conv.groups} does not divide the {conv.c_in} -> {conv.c_out} "
                         f"channels of {block.type} conv '{conv.name}' in stage {i + 1}; choose a "
                         "cardinality that divides both")
    _check_norm_groups(spec, layers, f"stage {i + 1}")


def misgrouped_conv(layers: BlockLayers) -> Conv | None:
    """A grouped conv of the block whose groups do not divide its channels."""
    for layer in layers.leaves():
        if isinstance(layer, Conv) and layer.misgrouped:
            return layer
    return None


def misgrouped_norm(layers: BlockLayers, groups: int) -> Norm | None:
    """A normalised layer whose channels group norm's `groups` (0: not group norm) does not divide."""
    if groups:
        for layer in layers.leaves():
            if isinstance(layer, Norm) and layer.c % groups:
                return layer
    return None


def _check_norm_groups(spec: Spec, layers: BlockLayers, where: str) -> None:
    norm = spec.doc.norm
    layer = misgrouped_norm(layers, norm.groups if norm.type == "group" else 0)
    if layer is not None:
        raise spec.error(("norm", "groups"), f"group norm of {norm.groups} groups cannot normalise the "
                                             f"{layer.c} channels of '{layer.name}' in {where}; choose groups "
                                             "that divide every layer's channels (e.g. a power of 2 that "
                                             "divides the stem width)")


def head_plan(spec: Spec, last: Family) -> HeadPlan:
    head = spec.doc.head
    classes = head.classes if head.classes is not None else spec.doc.input.classes
    if head.pool == "none" and classes > 0:
        raise spec.error(("head", "pool"), f"a classifier of {classes} classes needs the feature map pooled "
                                           "to a vector; use pool: avg or max, or classes: 0 for a backbone "
                                           "that returns the last stage's feature map")
    if head.dropout > 0 and classes == 0 and not head.hidden:
        raise spec.error(("head", "dropout"), "dropout is applied before the classifier, and classes: 0 has "
                                              "none; remove it")
    if head.pool == "none" and (head.hidden or head.pool_size != 1):
        field = "hidden" if head.hidden else "pool_size"
        raise spec.error(("head", field), f"'{field}' shapes the pooled features, and pool: none pools nothing; "
                                          "remove it or choose pool: avg or max")
    act = getattr(last, "act", "relu")
    return HeadPlan(final_norm=last.final_norm, final_act=act, pool=head.pool, dropout=head.dropout,
                    classes=classes, pool_size=head.pool_size, hidden=tuple(head.hidden or ()),
                    conv=scale_width(head.conv, spec.doc.multipliers.width) if head.conv else 0)


def _with_survival(blocks: list[PlannedBlock], family: Family, sd: schema.StochasticDepth, done: int,
                   total: int) -> list[PlannedBlock]:
    """Stochastic depth: residual block l of L survives with 1 - l/L (1 - p_L), l = 1..L (linear rule) or
    l = 0..L-1 (linear_from_zero), with 1 - l/(L-1) (1 - p_L), l = 0..L-1 (linear_span), or with p_L
    (uniform). Blocks the family adds around its own (a transition,
    a downsampling conv) are never dropped."""
    out = []
    first = 0 if sd.rule in ("linear_from_zero", "linear_span") else 1
    steps = max(total - 1, 1) if sd.rule == "linear_span" else total
    for b in blocks:
        if b.family is family:
            p = sd.final_survival if sd.rule == "uniform" else 1.0 - (done + first) / steps * (1.0 - sd.final_survival)
            done += 1
            b = PlannedBlock(b.family, b.at.moved(survival=p, inverted_drop=sd.inverted))
        out.append(b)
    return out

