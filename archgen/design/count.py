"""The figures of a candidate, fast: the sampling and search hot path.

Same answers as `archgen.profile` (tests/test_design_count.py checks every
bundled spec and sampled candidates against it), from the same planner and
the same layer records, with two shortcuts that leave both untouched:

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

import functools
from typing import NamedTuple

from archgen.blocks.registry import Family, Placement
from archgen.complexity import block_cost, profile
from archgen.design.figures import Figures
from archgen.grammar.loader import Spec
from archgen.heads import HeadPlan
from archgen.layer_kinds.block import BlockLayers
from archgen.memo import Memo
from archgen.planner import (expand_stage_rule, frame, head_plan, misgrouped_conv, misgrouped_norm, placement,
                             plan, stage_blocks)
from archgen.stems import StemArgs
from archgen.tally import Totals, TooSmall

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
    """A stage's first blocks, counted: their sum, the last block (what the rest of the stage repeats, when
    `repeats`), and the stage's output channels."""

    total: Counted
    last: Counted
    repeats: bool
    out_chs: int


def figures(spec: Spec) -> Figures:
    """Params, MACs, activations and depth of a validated spec, as `archgen.profile` counts them."""
    spec = expand_stage_rule(spec)
    f = frame(spec)
    size = spec.doc.input.size
    stem = stem_figures(f.stem, size)
    if stem is None:
        return full_figures(spec)
    params, macs, acts, depth, h, w = stem
    in_chs, prev_dilation, reduction = f.stem.out_chs, 1, f.stem.reduction
    for i, (family, stage_depth) in enumerate(zip(f.families, f.depths)):
        stride, dilation, prefix = placed_stage(spec, i, family, in_chs, prev_dilation, min(stage_depth, PLANNED_DEPTH),
                                                f.first_input if i == 0 else "block", f.norm_groups, h, w)
        if prefix is None or (stage_depth > PLANNED_DEPTH and not prefix.repeats):
            return full_figures(spec)
        total, last = prefix.total, prefix.last
        extra = stage_depth - PLANNED_DEPTH if stage_depth > PLANNED_DEPTH else 0
        params += total.params + extra * last.params
        macs += total.macs + extra * last.macs
        acts += total.acts + extra * last.acts
        depth += total.depth + extra * last.depth
        h, w = last.h, last.w
        in_chs, prev_dilation, reduction = prefix.out_chs, dilation, reduction * stride
    head = head_plan(spec, f.families[-1])
    if size < reduction:
        return full_figures(spec)
    top = head_figures(head, in_chs, h, w)
    if top is None:
        return full_figures(spec)
    return Figures(params + top.params, macs + top.macs, acts + top.acts, depth + top.depth)


@functools.lru_cache(maxsize=256)
def stem_figures(stem: StemArgs, size: int) -> Counted | None:
    try:
        return layers_figures(stem.layers(), stem.out_chs, size, size)
    except TooSmall:
        return None


@functools.lru_cache(maxsize=4096)
def head_figures(head: HeadPlan, c: int, h: int, w: int) -> Counted | None:
    """The head on the last stage's c x h x w output (its depth: the linear layers), or None when too small."""
    try:
        return layers_figures(head.layers(c), head.out_chs(c), h, w)
    except TooSmall:
        return None


#: (stride, dilation, prefix) of the stages placed so far, by the plain values that place them (placed_stage).
_placed = Memo(MEMO_SIZE)


def placed_stage(spec: Spec, i: int, family: Family, in_chs: int, prev_dilation: int, depth: int, input_from: str,
                 norm_groups: int, h: int, w: int) -> tuple[int, int, StagePrefix | None]:
    """Stage i's stride, dilation and first `depth` blocks counted, remembered by the plain values the
    planner's `placement` reads (so a candidate skips building and checking a Placement it has seen). A stage
    the planner refuses raises its SpecError here, at the spec's line, and is not remembered."""
    stage, doc = spec.doc.stages[i], spec.doc
    key = (family, i, in_chs, prev_dilation, stage.width, stage.stride, stage.dilation, stage.first_dilation,
           doc.shortcut, doc.stride_on, doc.multipliers.width, depth, input_from, norm_groups, h, w)
    known = _placed.get(key)
    if known is None:
        at = placement(spec, i, family, in_chs, prev_dilation)
        known = _placed.keep(key, (at.stride, at.dilation,
                                   stage_prefix(family, at, depth, i, input_from, norm_groups, h, w)))
    return known


def clear_memos() -> None:
    """Forget every remembered shape (benchmarks time the cold path from here)."""
    _placed.clear()
    for memo in (stem_figures, head_figures, block_figures):
        memo.cache_clear()


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
    return StagePrefix(total, counted[-1], len(blocks) >= 2 and blocks[-1] == blocks[-2], blocks[-1].out_chs)


@functools.lru_cache(maxsize=MEMO_SIZE)
def block_figures(family: Family, at: Placement, norm_groups: int, h: int, w: int) -> Counted | None:
    """One block counted from an h x w input (a stage's repeated block recurs in many stages), or None when it
    cannot be built (the planner's group checks, on the same records) or its input is too small. Keyed by
    family and placement, not by the PlannedBlock, which holds its layer records."""
    layers = family.layers(at)
    if misgrouped_conv(layers) or misgrouped_norm(layers, norm_groups):
        return None
    try:
        return layers_figures(layers, family.out_chs(at), h, w)
    except TooSmall:
        return None


def layers_figures(layers: BlockLayers, out_chs: int, h: int, w: int) -> Counted:
    t = Totals()
    ho, wo = block_cost(layers, t, out_chs, h, w)
    return Counted(t.params, t.macs, t.acts, layers.depth, ho, wo)


def full_figures(spec: Spec) -> Figures:
    """The figures from `archgen.profile`, with depth from the full plan (the reference the shortcuts match)."""
    p = plan(spec)
    counted = profile(p)
    depth = (p.stem.layers().depth + sum(b.layers().depth for s in p.stages for b in s.blocks)
             + p.head.layers(p.num_features).depth)
    return Figures(counted.params, counted.macs, counted.acts, depth)
