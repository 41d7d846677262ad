"""archgen's counter (archgen.complexity), faster, for sampling and search: a candidate's figures.

Same answers as `archgen.profile` (tests/test_fast_count.py checks every
bundled spec and sampled candidates against it), from the same planner (its
stage loop, archgen.planner.walk_stages) and the same layer records, with two
shortcuts that leave both untouched:

- **Repeated blocks are planned once.** A stage's blocks after its first are
  alike (same channels, stride 1), so each stage is expanded to at most
  `PLANNED_DEPTH` blocks; when the last two are equal, the rest of the stage
  repeats the last, and it is counted that many times. A stage whose blocks
  keep changing (a dense stage, whose input grows) is planned in full.
- **A stage is costed once per shape.** Those first blocks' figures are
  memoised across candidates by the plain values that place the stage (its
  family, width, stride, dilation, input channels and size), since a design
  space reuses the same few widths over and over; a candidate then costs its
  stem, its frame and one lookup per stage.

Every error comes from the full path: a candidate the shortcuts cannot settle
(a shape too small, too many blocks) is planned and profiled as written, so
what it reports is what `archgen profile` would.
"""

from __future__ import annotations

from typing import NamedTuple

from archgen.blocks.registry import Family, Placement
from archgen.complexity import block_cost, profile
from archgen.design.figures import Figures
from archgen.grammar.loader import Spec
from archgen.heads import HeadPlan
from archgen.layer_kinds.block import BlockLayers
from archgen.memo import Memo
from archgen.planner import (Framed, framed, head_plan, misgrouped_norm, placement, plan, stage_blocks,
                             walk_stages)
from archgen.stems import StemArgs
from archgen.tally import Totals, Uncountable

#: Blocks expanded per stage: the first, and two to see whether the rest repeat.
PLANNED_DEPTH = 3
#: Stage and block shapes remembered across candidates (a few hundred bytes each: a few MB at most).
MEMO_SIZE = 16_384


class Counted(NamedTuple):
    """Figures of some layers, and the size of the map they output."""

    params: int
    macs: int
    acts: int
    depth: int
    h: int
    w: int


class StagePrefix(NamedTuple):
    """A stage placed and its first blocks counted: their sum, the last block (what the rest of the stage
    repeats, when `repeats`), and what the stage hands the next (walk_stages reads its dilation and out_chs)."""

    stride: int
    dilation: int
    total: Counted
    last: Counted
    repeats: bool
    out_chs: int


def figures(spec: Spec | Framed) -> Figures:
    """Params, MACs, activations and depth of a validated spec, as `archgen.profile` counts them."""
    spec, f = framed(spec)
    size = spec.doc.input.size
    stem = stem_figures(f.stem, size)
    if stem is None:
        return full_figures(spec)
    params, macs, acts, depth, h, w = stem
    reduction = f.stem.reduction

    def place(i: int, family: Family, stage_depth: int, in_chs: int, prev_dilation: int,
              input_from: str) -> StagePrefix | None:
        # h and w as the loop below leaves them: the map the stages before feed stage i
        return placed_stage(spec, i, family, in_chs, prev_dilation, min(stage_depth, PLANNED_DEPTH), input_from,
                            f.norm_groups, h, w)

    for stage_depth, prefix in zip(f.depths, walk_stages(f, place)):
        if prefix is None or (stage_depth > PLANNED_DEPTH and not prefix.repeats):
            return full_figures(spec)
        total, last = prefix.total, prefix.last
        extra = stage_depth - PLANNED_DEPTH if stage_depth > PLANNED_DEPTH else 0
        params += total.params + extra * last.params
        macs += total.macs + extra * last.macs
        acts += total.acts + extra * last.acts
        depth += total.depth + extra * last.depth
        h, w = last.h, last.w
        reduction *= prefix.stride
    head = head_plan(spec, f.families[-1])
    if size < reduction:
        return full_figures(spec)
    top = head_figures(head, prefix.out_chs, h, w)
    if top is None:
        return full_figures(spec)
    return Figures(params + top.params, macs + top.macs, acts + top.acts, depth + top.depth)


#: Stems counted, by the stem and the input size.
_stems = Memo(256, "fast_count: stems")


def stem_figures(stem: StemArgs, size: int) -> Counted | None:
    """The stem counted on a size x size input, or None when the input is too small."""
    key = (stem, size)
    known = _stems.get(key, False)
    if known is False:
        try:
            known = layers_figures(stem.layers(), stem.out_chs, size, size)
        except Uncountable:
            known = None
        _stems.keep(key, known)
    return known


#: Heads counted, by the head and the last stage's output.
_heads = Memo(4096, "fast_count: heads")


def head_figures(head: HeadPlan, c: int, h: int, w: int) -> Counted | None:
    """The head on the last stage's c x h x w output (its depth: the linear layers), or None when too small."""
    key = (head, c, h, w)
    known = _heads.get(key, False)
    if known is False:
        try:
            known = layers_figures(head.layers(c), head.out_chs(c), h, w)
        except Uncountable:
            known = None
        _heads.keep(key, known)
    return known


#: Stages placed and counted so far, by the plain values that place them (placed_stage).
_placed = Memo(MEMO_SIZE, "fast_count: stages")


def placed_stage(spec: Spec, i: int, family: Family, in_chs: int, prev_dilation: int, depth: int, input_from: str,
                 norm_groups: int, h: int, w: int) -> StagePrefix | None:
    """Stage i placed and its first `depth` blocks counted, remembered by the plain values the planner's
    `placement` reads (so a candidate skips building and checking a Placement it has seen); None when the
    shortcuts cannot settle it. A stage the planner refuses raises its SpecError here, at the spec's line, and
    is not remembered."""
    stage, doc = spec.doc.stages[i], spec.doc
    key = (family, i, in_chs, prev_dilation, stage.width, stage.stride, stage.dilation, stage.first_dilation,
           doc.shortcut, doc.stride_on, doc.multipliers.width, depth, input_from, norm_groups, h, w)
    known = _placed.get(key, False)
    if known is False:
        at = placement(spec, i, family, in_chs, prev_dilation)
        known = _placed.keep(key, stage_prefix(family, at, depth, i, input_from, norm_groups, h, w))
    return known


def stage_prefix(family: Family, at: Placement, depth: int, stage_index: int, input_from: str, norm_groups: int,
                 h: int, w: int) -> StagePrefix | None:
    """The stage's first `depth` blocks counted from an h x w input; None when a block cannot be built or its
    input is too small (the full path then says why, at the spec's line)."""
    blocks = stage_blocks(family, at, depth, stage_index, input_from)
    counted = []
    for block in blocks:
        here = block_figures(block.family, block.at, norm_groups, h, w)
        if here is None:
            return None
        counted.append(here)
        h, w = here.h, here.w
    total = Counted(sum(c.params for c in counted), sum(c.macs for c in counted), sum(c.acts for c in counted),
                    sum(c.depth for c in counted), h, w)
    return StagePrefix(at.stride, at.dilation, total, counted[-1], len(blocks) >= 2 and blocks[-1] == blocks[-2],
                       blocks[-1].out_chs)


#: Blocks counted, by family, placement, group norm's groups and input size (a stage's repeated block recurs
#: in many stages).
_blocks = Memo(MEMO_SIZE, "fast_count: blocks")


def block_figures(family: Family, at: Placement, norm_groups: int, h: int, w: int) -> Counted | None:
    """One block counted from an h x w input, or None when it cannot be built (a conv's groups, which counting
    checks in passing, or group norm's, checked here on the same records) or its input is too small. Keyed by
    family and placement, not by the PlannedBlock, which holds its layer records."""
    key = (family, at, norm_groups, h, w)
    known = _blocks.get(key, False)
    if known is False:
        layers = family.layers(at)
        known = None
        if not misgrouped_norm(layers, norm_groups):
            try:
                known = layers_figures(layers, family.out_chs(at), h, w)
            except Uncountable:
                pass
        _blocks.keep(key, known)
    return known


def layers_figures(layers: BlockLayers, out_chs: int, h: int, w: int) -> Counted:
    t = Totals()
    ho, wo = block_cost(layers, t, out_chs, h, w)
    return Counted(t.params, t.macs, t.acts, layers.depth, ho, wo)


def full_figures(spec: Spec) -> Figures:
    """The figures from `archgen.profile` and the full plan's depth (the reference the shortcuts match)."""
    p = plan(spec)
    counted = profile(p)
    return Figures(counted.params, counted.macs, counted.acts, p.depth)
