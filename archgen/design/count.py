"""The figures of a candidate, fast: the sampling and search hot path.

Same answers as `archgen.profile` (tests/test_design_count.py checks every
bundled spec and sampled candidates against it), from the same planner and
the same layer records, with two shortcuts that leave both untouched:

- **Repeated blocks are planned once.** A stage's blocks after its first are
  alike (same channels, stride 1), so each stage is planned with at most
  `PLANNED_DEPTH` blocks; when the last two planned are equal, the rest of the
  stage repeats the last, and it is counted that many times. A stage whose
  blocks keep changing (a dense stage, whose input grows) is planned in full.
- **A block is costed once per shape.** Its figures are memoised by (block,
  input size) across candidates, since a design space reuses the same few
  widths over and over.

Every error comes from the full path: a candidate the shortcuts cannot settle
(a shape too small, too many blocks) is planned and profiled as written, so
what it reports is what `archgen profile` would.
"""

from __future__ import annotations

import dataclasses
import functools

from archgen.blocks.registry import PlannedBlock
from archgen.complexity import Tally, TooSmall, block_cost, head_cost, profile
from archgen.design.figures import Figures
from archgen.grammar.loader import Spec
from archgen.layers import BlockLayers, Conv
from archgen.planner import MAX_TOTAL_BLOCKS, ModelPlan, expand_stage_rule, plan, scale_depth

#: Blocks planned per stage: the first, and two to see whether the rest repeat.
PLANNED_DEPTH = 3
#: Block shapes remembered across candidates (a few hundred bytes each: a few MB at most).
MEMO_SIZE = 16_384


def figures(spec: Spec) -> Figures:
    """Params, MACs, activations and depth of a validated spec, as `archgen.profile` counts them."""
    spec = expand_stage_rule(spec)
    doc = spec.doc
    depths = [scale_depth(s.depth, doc.multipliers.depth) for s in doc.stages]
    if sum(depths) > MAX_TOTAL_BLOCKS:
        return full_figures(spec)
    capped = dataclasses.replace(
        doc, stages=[dataclasses.replace(s, depth=min(d, PLANNED_DEPTH)) for s, d in zip(doc.stages, depths)],
        multipliers=dataclasses.replace(doc.multipliers, depth=1.0), stage_rule=None)
    short = plan(Spec(doc=capped, file=spec.file, locs=spec.locs, replaced_lists=spec.replaced_lists))
    repeats = [repeat_count(stage.blocks, d) for stage, d in zip(short.stages, depths)]
    if any(r is None for r in repeats):
        return full_figures(spec)
    counted = count_plan(short, repeats)
    return counted if counted is not None else full_figures(spec)




def repeat_count(blocks: list[PlannedBlock], depth: int) -> int | None:
    """How many more times the stage's last planned block repeats at its written depth; None when its
    blocks do not settle into a repeat (then the stage is planned in full)."""
    if depth <= PLANNED_DEPTH:
        return 0
    if len(blocks) < 2 or cost_key(blocks[-1]) != cost_key(blocks[-2]):
        return None
    return depth - PLANNED_DEPTH


def cost_key(block: PlannedBlock) -> PlannedBlock:
    """The block without its stochastic-depth survival, which changes no figure."""
    if block.at.survival == 1.0 and not block.at.inverted_drop:
        return block
    return PlannedBlock(block.family, dataclasses.replace(block.at, survival=1.0, inverted_drop=False))


def count_plan(p: ModelPlan, repeats: list[int]) -> Figures | None:
    """Figures of a plan whose stage i's last block repeats `repeats[i]` more times; None if a shape is too
    small (the full path then says so, at the spec's line)."""
    size = p.input_size
    try:
        stem = layers_figures(p.stem.layers(), p.stem.out_chs, size, size)
        params, macs, acts, depth, h, w = stem
        for stage, extra in zip(p.stages, repeats):
            for i, block in enumerate(stage.blocks):
                bp, bm, ba, bd, h, w = block_figures(cost_key(block), h, w)
                times = 1 + (extra if i == len(stage.blocks) - 1 else 0)
                params, macs, acts, depth = params + times * bp, macs + times * bm, acts + times * ba, \
                    depth + times * bd
        if size < p.stages[-1].reduction:
            return None
        t = Tally()
        head_cost(p, t, h, w)
    except TooSmall:
        return None
    return Figures(params + t.params, macs + t.macs, acts + t.acts,
                   depth + sum(layer.op == "linear" for layer in t.layers))


@functools.lru_cache(maxsize=MEMO_SIZE)
def block_figures(block: PlannedBlock, h: int, w: int) -> tuple[int, int, int, int, int, int]:
    """(params, macs, acts, depth, out h, out w) of one block at an h x w input."""
    return layers_figures(block.layers(), block.out_chs, h, w)


def layers_figures(layers: BlockLayers, out_chs: int, h: int, w: int) -> tuple[int, int, int, int, int, int]:
    t = Tally()
    ho, wo = block_cost(layers, t, out_chs, h, w)
    return t.params, t.macs, t.acts, path_convs(layers), ho, wo


def path_convs(layers: BlockLayers) -> int:
    """Convs on the block's longest path: all but the shortcut's."""
    return sum(isinstance(layer, Conv) for layer in layers.pre + layers.branch + layers.post)


def full_figures(spec: Spec) -> Figures:
    """The figures from `archgen.profile`, with depth from the full plan (the reference the shortcuts match)."""
    p = plan(spec)
    counted = profile(p)
    depth = (path_convs(p.stem.layers()) + sum(path_convs(b.layers()) for s in p.stages for b in s.blocks)
             + sum(layer.op == "linear" for layer in counted.layers))
    return Figures(counted.params, counted.macs, counted.acts, depth)
