"""The torch side of layer kinds and blocks: one generic `Block` made from a `BlockLayers` of records, and the
few modules a kind builds that torch does not have.

Every family's block is a `Block`: its children are the records' modules, under the records' names
(torchvision's `conv1`, `bn1`, ..., `downsample`, in torchvision's order), so state dicts and per-module
counts line up. It keeps its records (`records`), which `archgen.fuse` reads to ask each layer's kind what
it may do; `residual`, `downsample`, `drop_path`, `act_out`, `pre_names` and `branch_names` are what
`archgen.fuse` and `archgen.lesion` read, and the merge kind (`merge`) joins the branch with the shortcut.
Nothing here imports another archgen module: the kinds import these classes, inside their `module`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from archgen.layer_kinds.block import BlockLayers


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample by the stride, pad the new channels with zeros; no parameters."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


class Rescale(nn.Module):
    """x times what its children compute from x, run in turn: a squeeze-and-excitation gate (children `pool`,
    `fc1`, `act`, `fc2`, `gate`, torchvision's and timm's names, so their weights load by name)."""

    def __init__(self, children: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        for name, child in children:
            self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for child in self.children():
            y = child(y)
        return x * y


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with fixed statistics and affine parameters (detection backbones fine-tuned at small
    batch): it always normalises by its running statistics and learns nothing. A BatchNorm2d to every
    reader (state dicts, `archgen.fuse`'s folding), so checkpoints load into it unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) on a residual branch.

    Training: the branch survives with probability `survival`, decided once per
    mini-batch as in the paper (a dropped block passes its shortcut through), or
    with `per_sample` for each sample apart, as torchvision's StochasticDepth
    ('row') and timm's drop_path draw it.
    Eval: the branch is scaled by `survival` (the paper), or, with `inverted`,
    surviving branches are scaled by 1/survival in training and eval is plain.
    """

    def __init__(self, survival: float, inverted: bool = False, per_sample: bool = False) -> None:
        super().__init__()
        self.survival = survival
        self.inverted = inverted
        self.per_sample = per_sample

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if self.survival >= 1.0:
            return branch
        if self.training:
            if self.per_sample:  # torchvision's draw: a Bernoulli mask over the batch, divided when inverted
                keep = branch.new_empty((branch.shape[0],) + (1,) * (branch.dim() - 1)).bernoulli_(self.survival)
                return branch * (keep.div_(self.survival) if self.inverted else keep)
            if torch.rand((), device=branch.device) >= self.survival:
                return torch.zeros_like(branch)
            return branch / self.survival if self.inverted else branch
        return branch if self.inverted else branch * self.survival

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4f}, inverted={self.inverted}, per_sample={self.per_sample}"


class Block(nn.Module):
    """out = act_out(merge(drop_path(branch(pre(x))), shortcut(x or pre(x)))); see BlockLayers."""

    def __init__(self, d: "BlockLayers", per_sample_drop: bool = False) -> None:
        super().__init__()
        self.records = d
        self.pre_names = [layer.name for layer in d.pre]
        self.branch_names = [layer.name for layer in d.branch]
        for i, layer in enumerate(d.pre + d.branch):
            # These read a tensor that the shortcut or a concat still needs: nothing in place.
            reads_kept = i == 0 or (i == len(d.pre) and d.split == "pre")
            self.add_module(layer.name, layer.module(first=reads_kept))
        self.merge = d.merge
        self.split = d.split
        self.residual = d.merge.residual
        self.downsample = d.shortcut.module() if d.merge.residual and d.shortcut is not None else None
        merge_weights = d.merge.module()
        if merge_weights is not None:
            self.add_module(d.merge.name, merge_weights)
        self.drop_path = DropPath(d.survival, d.inverted_drop, per_sample_drop) \
            if d.merge.residual and d.survival < 1.0 else nn.Identity()
        posts = [layer.module() for layer in d.post]
        self.act_out = nn.Identity() if not posts else posts[0] if len(posts) == 1 else nn.Sequential(*posts)

    @property
    def mode(self) -> str:
        """A pre-activation unit's split: 'both' (the shortcut reads the activated input), 'branch' (only the
        branch is activated) or 'none' (no pre-activation: the stem already did it)."""
        if not self.pre_names:
            return "none"
        return "both" if self.split == "pre" else "branch"

    def preactivate(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.pre_names:
            x = self._modules[name](x)
        return x

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function on an already pre-activated input."""
        for name in self.branch_names:
            x = self._modules[name](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preactivate(x)
        return self.act_out(self.merge.join(self, x, pre, self.branch(pre)))

    def shortcut_is_identity(self) -> bool:
        """Whether the shortcut passes the block's input on unchanged, so that a lesion may delete the branch
        (not a gated carry: deleting a highway block's branch would leave x * (1 - T(x)), not x)."""
        return self.residual and self.merge.branch_deletable and self.downsample is None and self.mode != "both"

    def without_branch(self) -> nn.Module:
        """The block with its residual branch deleted: what is left is act_out(x)."""
        return ShortcutOnly(self.act_out)


class ShortcutOnly(nn.Module):
    """A residual block whose branch was deleted (Veit et al. 2016's lesion): only the activation after the add."""

    def __init__(self, act_out: nn.Module) -> None:
        super().__init__()
        self.act_out = act_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Out of place: the input may be a tensor the caller still holds.
        if isinstance(self.act_out, nn.Identity):
            return x
        return self.act_out(x.clone())
