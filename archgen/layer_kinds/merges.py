"""How a block's branch meets what it started from: not at all, added to the shortcut, or concatenated to the
block's input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.layer_kinds.base import MergeKind, merge_kind

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from archgen.tally import Tally


def carry(block: "nn.Module", x: "torch.Tensor", pre: "torch.Tensor") -> "torch.Tensor":
    """The shortcut's output: the block's input, or its pre-activated input (`split`), through `downsample`."""
    split = pre if block.split == "pre" else x
    return split if block.downsample is None else block.downsample(split)


@merge_kind("none")
@dataclass(frozen=True)
class NoMerge(MergeKind):
    """A plain layer: the branch is the block."""

    fusable = "run"

    def join(self, block: "nn.Module", x: "torch.Tensor", pre: "torch.Tensor", out: "torch.Tensor") -> "torch.Tensor":
        return out


@merge_kind("add")
@dataclass(frozen=True)
class Add(MergeKind):
    """A residual block: branch + shortcut, one op per element."""

    residual = True
    fusable = "add"
    branch_deletable = True

    def cost(self, t: "Tally", c: int, h: int, w: int, hb: int, wb: int) -> None:
        t.record("add", "add", 0, 0, 0, c * hb * wb, (c, hb, wb))

    def join(self, block: "nn.Module", x: "torch.Tensor", pre: "torch.Tensor", out: "torch.Tensor") -> "torch.Tensor":
        return block.drop_path(out) + carry(block, x, pre)


@merge_kind("concat")
@dataclass(frozen=True)
class Concat(MergeKind):
    """A dense layer: [x, branch] along the channels; a copy, not counted."""

    fusable = "join"

    def out_channels(self, c_in: int, c_branch: int) -> int:
        return c_in + c_branch

    def join(self, block: "nn.Module", x: "torch.Tensor", pre: "torch.Tensor", out: "torch.Tensor") -> "torch.Tensor":
        import torch

        return torch.cat([x, out], 1)


NO_MERGE, ADD, CONCAT = NoMerge(), Add(), Concat()
