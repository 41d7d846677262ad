"""Pieces every family shares: activations, shortcuts, stochastic depth and the residual block contract."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from archgen.blocks.registry import BlockArgs
    from archgen.complexity import Tally

#: DarkNet's leaky ReLU slope (YOLOv3).
LEAKY_SLOPE = 0.1


def make_act(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
    return nn.Identity()


def needs_shortcut_change(a: "BlockArgs", out_chs: int) -> bool:
    return a.stride != 1 or a.in_chs != out_chs


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


def shortcut_module(a: "BlockArgs", out_chs: int, norm: bool = True) -> nn.Module | None:
    """The `downsample` branch (torchvision's name), or None for an identity or no shortcut.

    `norm=False` leaves out the BN after a projection, as pre-activation units do (He et al. 2016's code).
    """
    if a.shortcut == "none" or not needs_shortcut_change(a, out_chs):
        return None
    if a.shortcut == "zero_pad":
        if out_chs < a.in_chs:
            raise ValueError("zero-padding shortcuts cannot reduce channels")
        return ZeroPadShortcut(a.stride, out_chs - a.in_chs)
    conv = nn.Conv2d(a.in_chs, out_chs, 1, 1 if a.shortcut == "avgpool_projection" else a.stride, bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_chs)] if norm else [conv]
    if a.shortcut == "avgpool_projection":
        pool = nn.AvgPool2d(2, a.stride, ceil_mode=True, count_include_pad=False) if a.stride > 1 else nn.Identity()
        layers.insert(0, pool)
    return nn.Sequential(*layers)


def shortcut_cost(a: "BlockArgs", out_chs: int, t: "Tally", h: int, w: int, norm: bool = True) -> None:
    """Mirror of `shortcut_module` for the analytic counter (h, w: the block's input size)."""
    if a.shortcut in ("none", "zero_pad") or not needs_shortcut_change(a, out_chs):
        return
    with t.scope("downsample"):
        index = 0
        if a.shortcut == "avgpool_projection":
            if a.stride > 1:
                h, w = t.pool("0", a.in_chs, 2, h, w, stride=a.stride, ceil_mode=True)
            index = 1
            ho, wo = t.conv(str(index), a.in_chs, out_chs, 1, h, w)
        else:
            ho, wo = t.conv("0", a.in_chs, out_chs, 1, h, w, stride=a.stride)
        if norm:
            t.bn(str(index + 1), out_chs, ho, wo)


def shortcut_check(a: "BlockArgs", out_chs: int) -> tuple[str, str] | None:
    if a.shortcut == "zero_pad" and out_chs < a.in_chs:
        return ("width", f"a zero-padding shortcut cannot shrink {a.in_chs} channels to {out_chs}; "
                         "use shortcut: projection")
    return None


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) on a residual branch.

    Training: the branch survives with probability `survival`, decided once per
    mini-batch as in the paper (a dropped block passes its shortcut through).
    Eval: the branch is scaled by `survival` (the paper), or, with `inverted`,
    surviving branches are scaled by 1/survival in training and eval is plain.
    """

    def __init__(self, survival: float, inverted: bool = False) -> None:
        super().__init__()
        self.survival = survival
        self.inverted = inverted

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if self.survival >= 1.0:
            return branch
        if self.training:
            if torch.rand((), device=branch.device) >= self.survival:
                return torch.zeros_like(branch)
            return branch / self.survival if self.inverted else branch
        return branch if self.inverted else branch * self.survival

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4f}, inverted={self.inverted}"


class ResidualBlock(nn.Module):
    """act_out(drop_path(branch(x)) + shortcut(x)); no add for plain nets.

    Subclasses define `branch(x)`. The attributes `residual`, `downsample`,
    `drop_path` and `act_out` are the contract that `archgen.fuse` and
    `archgen.lesion` read. `out_act` overrides the activation after the add
    ('none' for DarkNet's linear shortcut and for pre-activation units).
    """

    def __init__(self, a: "BlockArgs", out_chs: int, out_act: str | None = None, shortcut_norm: bool = True) -> None:
        super().__init__()
        self.residual = a.shortcut != "none"
        self.downsample = shortcut_module(a, out_chs, shortcut_norm)
        self.drop_path = DropPath(a.survival, a.inverted_drop) if a.survival < 1.0 else nn.Identity()
        self.act_out = make_act(a.act if out_act is None else out_act)

    def downsample_last(self) -> None:
        """torchvision registers `downsample` after the convs; keep its state-dict order."""
        if self.downsample is not None:
            self._modules["downsample"] = self._modules.pop("downsample")

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function; every block class defines its own (an abstract method)."""
        raise NotImplementedError(f"{type(self).__name__} must define branch()")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.residual:
            shortcut = x if self.downsample is None else self.downsample(x)
            out = self.drop_path(out) + shortcut
        return self.act_out(out)

    def shortcut_is_identity(self) -> bool:
        """Whether the shortcut passes the block's input on unchanged (so a lesion may delete the branch)."""
        return self.residual and self.downsample is None

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
