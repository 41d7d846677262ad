"""One block as records: what every family's `layers` returns and what counting, building and fusing read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from archgen.layer_kinds.base import LayerKind, MergeKind
from archgen.layer_kinds.merges import NO_MERGE


@dataclass(frozen=True)
class BlockLayers:
    """One block: out = post(merge(branch(pre(x)), shortcut(x or pre(x)))).

    - `pre`: layers before the split (a pre-activation unit's BN-ReLU);
    - `branch`: the residual function, or the whole layer of a plain block;
    - `merge`: a merge kind (archgen.layer_kinds.merges, .gate); a residual one adds the shortcut;
    - `shortcut`: the shortcut's one record, named `downsample` (a projection's Sequence, a zero padding),
      or None for the identity (and for a merge that reads no shortcut);
    - `split`: which tensor the shortcut (and a gate) reads, the block's 'input' or its 'pre'-activated input;
    - `post`: layers after the merge (the activation after the add);
    - `survival`, `inverted_drop`: stochastic depth of the branch.
    """

    branch: tuple[LayerKind, ...]
    pre: tuple[LayerKind, ...] = ()
    shortcut: Optional[LayerKind] = None
    merge: MergeKind = NO_MERGE
    split: str = "input"
    post: tuple[LayerKind, ...] = ()
    survival: float = 1.0
    inverted_drop: bool = False

    def leaves(self) -> list[LayerKind]:
        """Every plain record that builds a module of the block (the planner's checks read them all)."""
        out: list[LayerKind] = []
        for layer in self.pre + self.branch + ((self.shortcut,) if self.shortcut is not None else ()) + self.post:
            out += layer.leaves()  # a loop, not a generator: the design hot path checks every new block
        return out

    @property
    def depth(self) -> int:
        """Weight layers (convs, linear layers) on the block's longest path: all but the shortcut's and the
        merge's (what a design space's `depth` adds up)."""
        return sum(layer.weight_layers for layer in self.pre + self.branch + self.post)
