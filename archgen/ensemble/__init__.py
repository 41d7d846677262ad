"""The ensemble view of residual networks (Veit et al. 2016, "Residual Networks
Behave Like Ensembles of Relatively Shallow Networks", arXiv 1605.06431).

Unraveled, a network of n residual blocks y = f(x) + s(x) is a sum of 2^n
paths, one per choice of branch or shortcut at every block; C(n, k) of them go
through k residual branches, so path lengths follow Binomial(n, 1/2), mean n/2.
`path_lengths` computes that distribution from the plan alone (no model
built). `lesion` deletes chosen residual branches from a built model, the
paper's lesion study: a block whose shortcut is an identity becomes that
shortcut. The CLI commands `archgen paths` and `archgen lesion` live here too.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Union

from archgen.errors import UserError


if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.grammar.loader import SpecLike


class LesionError(UserError):
    """A block that cannot be lesioned: not a residual block, or its shortcut is not an identity."""


@dataclass(frozen=True)
class PathLengths:
    """The distribution of path lengths, in residual branches taken, of an unraveled network."""

    name: str
    blocks: int  # residual blocks n
    counts: list[int]  # counts[k] = C(n, k) paths through k residual branches

    @property
    def paths(self) -> int:
        return 2 ** self.blocks

    @property
    def mean(self) -> float:
        return self.blocks / 2

    @property
    def std(self) -> float:
        return math.sqrt(self.blocks) / 2

    def fraction(self, k: int) -> float:
        """Share of all paths that are k branches long (exact ratio of integers, then rounded to a float)."""
        return self.counts[k] / self.paths

    def to_dict(self) -> dict:
        return {"name": self.name, "residual_blocks": self.blocks, "paths": self.paths, "mean_length": self.mean,
                "std_length": self.std,
                "histogram": [{"length": k, "paths": c, "fraction": self.fraction(k)}
                              for k, c in enumerate(self.counts)]}


def residual_block_names(spec: "SpecLike") -> list[str]:
    """Module names (`layer2.3`) of the blocks that add a residual branch to a shortcut, in forward order."""
    from archgen.planner import plan

    p = plan(spec)
    # A residual family may place non-residual helpers in its stages (DarkNet's downsampling `conv`, DenseNet's
    # transitions), so each block's own type decides; plain nets (shortcut: none) add no branch.
    return [f"{stage.name}.{i}" for stage in p.stages for i, b in enumerate(stage.blocks)
            if b.is_residual]


def path_lengths(spec: "SpecLike") -> PathLengths:
    """Binomial path-length distribution of the spec's unraveled network (Veit et al. 2016, Sec. 3)."""
    from archgen.grammar.loader import load_spec

    loaded = load_spec(spec)
    n = len(residual_block_names(loaded))
    return PathLengths(loaded.name, n, [math.comb(n, k) for k in range(n + 1)])


BlockRef = Union[str, int]


def lesion(model: "nn.Module", blocks: Iterable[BlockRef]) -> "nn.Module":
    """A copy of `model` with the residual branches of `blocks` deleted; the original is left as it was.

    Blocks are named by module path ('layer2.3') or by index among the residual blocks in forward order
    (0-based). A block becomes its shortcut (followed by the block's activation after the add, if any), so
    only blocks whose shortcut is an identity can be lesioned: LesionError names any other, and any name
    that is not a residual block.
    """
    candidates = residual_modules(model)
    names = list(candidates)
    chosen: list[str] = []
    for ref in blocks:
        if isinstance(ref, int) and not isinstance(ref, bool):
            if not 0 <= ref < len(names):
                raise LesionError(f"block index {ref} is out of range: the model has {len(names)} residual blocks "
                                  f"(0 to {len(names) - 1})")
            chosen.append(names[ref])
            continue
        name = str(ref)
        if name not in candidates:
            raise LesionError(f"'{name}' is not a residual block of the model; residual blocks are named like "
                              f"{', '.join(names[:3]) or '(none: the model has no residual blocks)'}"
                              f"{' ...' if len(names) > 3 else ''}")
        chosen.append(name)
    for name in chosen:
        if not candidates[name].shortcut_is_identity():
            raise LesionError(f"block '{name}' has a {shortcut_kind(candidates[name])} shortcut, not an identity: "
                              "deleting its residual branch would not leave the block's input, so it cannot be "
                              "lesioned (Veit et al. lesion only blocks with identity shortcuts)")
    lesioned = copy.deepcopy(model)
    for name in dict.fromkeys(chosen):
        parent_name, _, child = name.rpartition(".")
        parent = lesioned.get_submodule(parent_name)
        setattr(parent, child, parent.get_submodule(child).without_branch())
    return lesioned


def residual_modules(model: "nn.Module") -> dict[str, "nn.Module"]:
    """name -> block for every residual block of an archgen model, in forward order."""
    out = {}
    for stage_name in getattr(model, "stage_names", []):
        for index, block in getattr(model, stage_name).named_children():
            if getattr(block, "residual", False) and hasattr(block, "shortcut_is_identity"):
                out[f"{stage_name}.{index}"] = block
    return out


def shortcut_kind(block: "nn.Module") -> str:
    """'identity', 'projection', 'zero-padding' or 'pre-activated identity', as the lesion table prints it."""
    from archgen.modules import ZeroPadShortcut

    down = getattr(block, "downsample", None)
    if down is None:
        return "identity" if block.shortcut_is_identity() else "pre-activated identity"
    return "zero-padding" if isinstance(down, ZeroPadShortcut) else "projection"
