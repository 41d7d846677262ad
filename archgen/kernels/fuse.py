"""`fuse(model)`: an eval-mode copy of a model whose blocks end in the one-pass `bn_act` kernel.

What is rewritten (everything else is left as it is, running eagerly): every
block archgen builds is one generic `Block` made from layer records, so one
rule covers every family, reading only the layer names the block was made from:

- a residual block whose branch ends in conv + BN (basic, bottleneck): each
  conv-BN-act of the branch becomes conv + `bn_act`, and the tail becomes one
  `bn_act` doing BN + shortcut (identity, zero-padding, or a projection's BN) + act;
- a residual block whose branch ends in conv + BN + squeeze-and-excitation
  (SE-ResNet, SE-ResNeXt; without stochastic depth): the gate is computed from
  the conv's pooled output through the BN's affine map, and one `bn_act` does
  act(BN(x) * gate + shortcut) (`GatedTail`);
- a residual block whose branch ends otherwise (pre-activation's bare conv,
  DarkNet's act before the add): its BN-act and conv-BN-act runs in `bn_act`,
  the add in PyTorch;
- plain blocks, dense layers, transitions and the stem: their conv-BN[-act] and BN[-act] runs, and a
  conv with bias followed by its act (VGG without BN) as conv + bias-act;
- the head's final BN + act (pre-activation designs).

Highway blocks (a gated merge) are left eager: the kernel adds a shortcut, it does not gate one.

With `fold_bn=True` a BN that follows a conv is folded into it (W' = W *
scale, bias b' = shift, kept out of the conv so that the kernel adds it with
the shortcut and the act: bias + add + act); a BN that precedes its conv
(pre-activation) cannot fold and stays a scale/shift in the kernel. With
`fold_bn=False` every BN is a scale/shift in the kernel. The statistics are
read once, when `fuse` runs.

Dispatch is by module type through a small registry (`register_fuse_rule`), so a
module of the user's own can bring its rule. A module with no rule is left eager,
its children untouched; containers (nn.Sequential, nn.ModuleList, nn.ModuleDict,
ArchNet and the root model) are walked.

The fused model is for inference. Put back in training mode, its fused
modules run the same arithmetic in PyTorch (differentiable, but with the BN
statistics frozen or folded) and say so once with a warning.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from archgen.kernels.bn_act import bn_act, bn_act_reference, bn_scale_shift, uses_triton

#: type -> rule(module, fold_bn) returning a replacement, or None to leave the module eager.
FuseRule = Callable[[nn.Module, bool], Optional[nn.Module]]
_RULES: dict[type, FuseRule] = {}
#: Types whose children are walked (the root model always is).
_CONTAINERS: set[type] = {nn.Sequential, nn.ModuleList, nn.ModuleDict}

_warned_training = False


def register_fuse_rule(*types: type) -> Callable[[FuseRule], FuseRule]:
    """Decorator: `rule(module, fold_bn)` rewrites modules of exactly these types (not subclasses,
    whose forward may differ); it returns the replacement, or None to leave the module eager."""

    def add(rule: FuseRule) -> FuseRule:
        for t in types:
            _RULES[t] = rule
        return rule

    return add


def register_container(*types: type) -> None:
    """Modules of these types are walked: their children are fused in place."""
    _CONTAINERS.update(types)


def fuse(model: nn.Module, fold_bn: bool = True, *, inplace: bool = False) -> nn.Module:
    """An eval-mode copy of `model` (the model itself with `inplace=True`) whose blocks end in `bn_act`.

    fold_bn: fold each BN that follows a conv into the conv (the kernel then does bias + add + act);
    False keeps every BN as a per-channel scale and shift in the kernel. Logits equal the eager
    model's in eval mode within the dtype's rounding. Blocks no rule knows stay eager.
    """
    _load_rules()
    m = model if inplace else copy.deepcopy(model)
    m.eval()
    with torch.no_grad():
        out = _fuse_module(m, fold_bn, root=True)
    _say_what_stays_eager(out)
    return out.eval()


def _fuse_module(m: nn.Module, fold_bn: bool, root: bool = False) -> nn.Module:
    rule = _RULES.get(type(m))
    if rule is not None:
        new = rule(m, fold_bn)
        if new is not None:
            return new
    if root or type(m) in _CONTAINERS:
        for name, child in list(m.named_children()):
            new = _fuse_module(child, fold_bn)
            if new is not child:
                setattr(m, name, new)
    return m


# ------------------------------------------------------------------------------------ fused modules

def act_of(m: Optional[nn.Module]) -> Optional[tuple[str, float]]:
    """(kernel act, slope) for an activation module; None when the kernel cannot compute it."""
    if m is None or isinstance(m, nn.Identity):
        return "none", 0.0
    if isinstance(m, nn.ReLU):
        return "relu", 0.0
    if isinstance(m, nn.LeakyReLU):
        return "leaky_relu", float(m.negative_slope)
    if isinstance(m, nn.SiLU):
        return "silu", 0.0
    return None


def _is_act(m: nn.Module) -> bool:
    return isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.SiLU))


#: Choices a spec may make that no kernel computes: fuse leaves them eager and says so.
UNFUSED = (nn.GroupNorm, nn.GELU)


def _say_what_stays_eager(model: nn.Module) -> None:
    counts: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, UNFUSED):
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    if counts:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
        warnings.warn(f"archgen.fuse: no fused kernel for {listed}; those layers run eagerly (the kernel does "
                      "batch norm, folded or frozen, with relu, leaky_relu or silu)", RuntimeWarning, stacklevel=3)


def _eval_identity(m: nn.Module) -> bool:
    """Modules that do nothing in eval mode (and so may sit between a conv and its BN)."""
    return isinstance(m, (nn.Identity, nn.Dropout))


class BNAct(nn.Module):
    """act(x * scale + shift [+ r * rscale | + r]) through `bn_act`; the per-channel vectors are buffers.

    `scale` None: a folded BN (shift is then the conv's bias). `rscale` None: the residual is added as is.
    """

    def __init__(self, scale: Optional[torch.Tensor], shift: torch.Tensor, act: str = "relu", slope: float = 0.0,
                 rscale: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.register_buffer("scale", None if scale is None else scale.detach().float().clone())
        self.register_buffer("shift", shift.detach().float().clone())
        self.register_buffer("rscale", None if rscale is None else rscale.detach().float().clone())
        self.act = act
        self.slope = slope

    def _apply(self, fn, recurse=True):
        # model.half() / .to(bfloat16) would round the per-channel vectors; they stay float32 (C values each).
        super()._apply(fn, recurse)
        for name in ("scale", "shift", "rscale"):
            v = getattr(self, name)
            if v is not None and v.is_floating_point() and v.dtype != torch.float32:
                setattr(self, name, v.float())
        return self

    @classmethod
    def from_bn(cls, bn: nn.BatchNorm2d, act: Optional[nn.Module] = None) -> "BNAct":
        kind, slope = act_of(act) or ("none", 0.0)
        scale, shift = bn_scale_shift(bn)
        return cls(scale, shift, kind, slope)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.training:
            _warn_training()
            return bn_act_reference(x, self.scale, self.shift, residual, self.rscale, self.act, slope=self.slope)
        if not uses_triton(x):
            return self.in_place(torch.addcmul(self._vec(self.shift, x), x, self._vec(self.scale, x))
                                 if self.scale is not None else x + self._vec(self.shift, x), residual)
        return bn_act(x, self.scale, self.shift, residual, self.rscale, act=self.act, slope=self.slope)

    @staticmethod
    def _vec(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.to(x.dtype).view((1, -1) + (1,) * (x.dim() - 2))

    def in_place(self, y: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Where no kernel runs (the CPU): y (a tensor of our own) + residual, then the act, in place, in
        PyTorch's own ops: no per-call checks, no float32 round trip (what bn_act_reference, the oracle, does)."""
        if residual is not None:
            y = y.add_(residual if self.rscale is None else residual * self._vec(self.rscale, residual))
        if self.act == "relu":
            return y.relu_()
        if self.act == "leaky_relu":
            return F.leaky_relu_(y, self.slope)
        if self.act == "silu":
            return F.silu(y, inplace=True)
        return y

    def extra_repr(self) -> str:
        kind = "folded bias" if self.scale is None else "scale/shift"
        res = "" if self.rscale is None else ", residual scaled"
        return f"{kind}, act={self.act}{res}"


class ConvBNAct(nn.Module):
    """conv, then `BNAct` (a BN as scale/shift, or folded into the conv with its bias in the kernel)."""

    def __init__(self, conv: nn.Module, epilogue: BNAct) -> None:
        super().__init__()
        self.conv = conv
        self.epilogue = epilogue

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        ep = self.epilogue
        if ep.scale is None and not ep.training and not uses_triton(x):
            # On the CPU a folded BN is the conv's own bias, which the conv adds in its pass: what is left
            # of the BN costs nothing, and the add and the act run in place.
            conv = self.conv
            y = F.conv2d(x, conv.weight, ep.shift.to(x.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)
            return ep.in_place(y, residual)
        return ep(self.conv(x), residual)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, factor: float = 1.0) -> tuple[nn.Conv2d, torch.Tensor]:
    """(conv', bias): conv'(x) + bias == factor * bn(conv(x)) in eval mode; conv' has no bias of its own."""
    scale, shift = bn_scale_shift(bn)
    scale, shift = scale * factor, shift * factor
    new = copy.copy(conv)  # shallow: the new weight replaces the shared one below
    new._parameters = dict(conv._parameters)
    w = conv.weight.detach().float() * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    new.weight = nn.Parameter(w.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
    bias = shift
    if conv.bias is not None:
        bias = bias + conv.bias.detach().float() * scale
    new.bias = None
    return new, bias


def conv_bn_act(conv: nn.Conv2d, bn: nn.BatchNorm2d, act: Optional[nn.Module], fold_bn: bool,
                factor: float = 1.0) -> Optional[ConvBNAct]:
    """act(factor * bn(conv(x))) as conv + BNAct; None if the act is not one the kernel computes."""
    a = act_of(act)
    if a is None:
        return None
    assert a is not None
    if fold_bn:
        conv2, bias = fold_conv_bn(conv, bn, factor)
        return ConvBNAct(conv2, BNAct(None, bias, *a))
    scale, shift = bn_scale_shift(bn)
    if conv.bias is not None:
        shift = shift + conv.bias.detach().float() * scale
        conv = copy.deepcopy(conv)
        conv.bias = None
    return ConvBNAct(conv, BNAct(scale * factor, shift * factor, *a))


def conv_bias_act(conv: nn.Conv2d, act: nn.Module) -> ConvBNAct:
    """act(conv(x)) for a conv with bias and no BN: the conv without its bias, then bias + act in `bn_act`."""
    bare = copy.copy(conv)  # shallow: the bias is dropped from this copy only
    bare._parameters = dict(conv._parameters)
    bare.bias = None
    return ConvBNAct(bare, BNAct(None, conv.bias.detach().float(), *act_of(act)))


def fuse_sequence(mods: list[tuple[str, nn.Module]], fold_bn: bool) -> list[tuple[str, nn.Module]]:
    """Rewrite a run of (name, module): conv, BN[, act] -> ConvBNAct; conv with bias, act -> ConvBNAct (bias
    and act in the kernel); BN[, act] -> BNAct; eval no-ops
    (Dropout, Identity) are dropped; other modules are fused recursively."""
    mods = [(n, m) for n, m in mods if not _eval_identity(m)]
    out: list[tuple[str, nn.Module]] = []
    i = 0
    while i < len(mods):
        name, m = mods[i]
        nxt = mods[i + 1][1] if i + 1 < len(mods) else None
        after = mods[i + 2][1] if i + 2 < len(mods) else None
        if isinstance(m, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.out_channels:
            act = after if after is not None and _is_act(after) else None
            fused = conv_bn_act(m, nxt, act, fold_bn)
            if fused is not None:
                out.append((name, fused))
                i += 3 if act is not None else 2
                continue
        if isinstance(m, nn.Conv2d) and m.bias is not None and nxt is not None and _is_act(nxt):
            out.append((name, conv_bias_act(m, nxt)))  # a conv without BN (VGG): bias + act in the kernel
            i += 2
            continue
        if isinstance(m, nn.BatchNorm2d):
            act = nxt if nxt is not None and _is_act(nxt) else None
            out.append((name, BNAct.from_bn(m, act)))
            i += 2 if act is not None else 1
            continue
        out.append((name, _fuse_module(m, fold_bn)))
        i += 1
    return out


class FusedSequential(nn.Sequential):
    """An nn.Sequential rewritten by `fuse_sequence` (the stem, a DenseNet transition)."""


@register_fuse_rule(nn.Sequential, FusedSequential)
def _fuse_plain_sequential(m: nn.Sequential, fold_bn: bool) -> nn.Module:
    return FusedSequential(OrderedDict(fuse_sequence(list(m.named_children()), fold_bn)))


def _drop_path_factor(m: Optional[nn.Module]) -> Optional[float]:
    """The eval-mode factor of archgen's DropPath (survival, or 1 when inverted); None if unknown."""
    from archgen.modules import DropPath

    if m is None or isinstance(m, nn.Identity):
        return 1.0
    if isinstance(m, DropPath):
        return 1.0 if (m.inverted or m.survival >= 1.0) else float(m.survival)
    return None


def _shortcut(down: Optional[nn.Module], fold_bn: bool):
    """(module, rscale, extra_shift) for a block's `downsample`: the projection's BN is folded into its conv
    or returned as (rscale, shift) for the kernel; None module: identity. Unknown shortcuts: NotImplemented."""
    from archgen.modules import ZeroPadShortcut

    if down is None:
        return None, None, None
    if isinstance(down, ZeroPadShortcut):
        return down, None, None
    if not isinstance(down, nn.Sequential) or len(down) == 0:
        return NotImplemented
    if len(down) >= 2 and isinstance(down[-1], nn.BatchNorm2d) and isinstance(down[-2], nn.Conv2d):
        pre = list(down.named_children())[:-2]
        dconv, dbn = down[-2], down[-1]
        if fold_bn:
            dconv, shift = fold_conv_bn(dconv, dbn)
            return nn.Sequential(OrderedDict(pre + [("conv", dconv)])), None, shift
        rscale, shift = bn_scale_shift(dbn)
        if dconv.bias is not None:
            shift = shift + dconv.bias.detach().float() * rscale
            dconv = copy.deepcopy(dconv)
            dconv.bias = None
        return nn.Sequential(OrderedDict(pre + [("conv", dconv)])), rscale, shift
    if isinstance(down[-1], nn.Conv2d):  # a projection without BN (pre-activation units): added as is
        return down, None, None
    return NotImplemented


class FusedBlock(nn.Module):
    """A `Block` rewritten: pre-activation and branch as fused runs, and for a residual block whose branch
    ends in conv + BN, the tail in one kernel: act(BN(conv(y)) * drop_path + shortcut). Other residual
    blocks (DarkNet's act before the add, pre-activation's bare conv) keep the add in PyTorch."""

    def __init__(self, pre: nn.Module, body: nn.Module, merge: str, split: str, residual: bool,
                 tail: Optional[ConvBNAct] = None, shortcut: Optional[nn.Module] = None,
                 drop_path: Optional[nn.Module] = None, act_out: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.pre = pre
        self.body = body
        self.tail = tail
        self.shortcut = shortcut
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.act_out = act_out if act_out is not None else nn.Identity()
        self.merge = merge
        self.split = split
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre(x)
        y = self.body(pre)
        if self.merge == "concat":
            return torch.cat([x, y], 1)
        if not self.residual:
            return y
        r = pre if self.split == "pre" else x
        if self.shortcut is not None:
            r = self.shortcut(r)
        if self.tail is not None:
            return self.tail(y, r)
        return self.act_out(self.drop_path(y) + r)


class GatedTail(nn.Module):
    """act(bn(conv(y)) * gate + r), gate = SE(bn(conv(y))), with the BN applied once, in the kernel: the gate
    reads the conv's pooled output through the BN's affine map (the mean of an affine map is the map of the
    mean), so bn(conv(y)) is never written out; SE-ResNet's tail in one pass where eager spends four (BN, the
    gate's product, the add, the act)."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, se: nn.Module, act: str, slope: float) -> None:
        super().__init__()
        scale, shift = bn_scale_shift(bn)
        if conv.bias is not None:
            shift = shift + conv.bias.detach().float() * scale
            conv = copy.deepcopy(conv)
            conv.bias = None
        self.conv = conv
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.fc1, self.se_act, self.fc2 = se.fc1, se.act, se.fc2
        self.act, self.slope = act, slope

    def forward(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = self.conv(y)
        pooled = x.float().mean((2, 3)) * self.scale + self.shift
        gate = torch.sigmoid(self.fc2(self.se_act(self.fc1(pooled.to(x.dtype)[:, :, None, None]))))
        return bn_act(x, self.scale, self.shift, residual, act=self.act, slope=self.slope, gate=gate)

    def extra_repr(self) -> str:
        return f"act={self.act}, squeeze-and-excitation gate in the kernel"


def ends_in_gate(branch: list[tuple[str, nn.Module]]) -> bool:
    """Whether the branch ends in conv, BN and a squeeze-and-excitation gate (SE-ResNet's bn3 -> se)."""
    from archgen.modules import SqueezeExcite

    return (len(branch) >= 3 and isinstance(branch[-3][1], nn.Conv2d) and isinstance(branch[-2][1], nn.BatchNorm2d)
            and type(branch[-1][1]) is SqueezeExcite)


def _run(mods: list[tuple[str, nn.Module]], fold_bn: bool) -> FusedSequential:
    return FusedSequential(OrderedDict(fuse_sequence(mods, fold_bn)))


def fuse_block(block: nn.Module, fold_bn: bool) -> Optional[nn.Module]:
    """The rule for archgen's generic Block: it reads the layer names the block was made from
    (`pre_names`, `branch_names`) and its `downsample`, `drop_path` and `act_out`, never a family's.

    A highway block (a `gate`) is left eager: its merge H * T + carry * (1 - T) is not the kernel's
    act(x * scale + shift + residual)."""
    if getattr(block, "gate", None) is not None:
        return None
    pre = _run([(n, block._modules[n]) for n in block.pre_names], fold_bn)
    branch = [(n, block._modules[n]) for n in block.branch_names]
    common = {"merge": block.merge, "split": block.split, "residual": block.residual}
    if not block.residual:
        tail_act = [] if block.merge == "concat" else [("act_out", block.act_out)]
        return FusedBlock(pre, _run(branch + tail_act, fold_bn), **common)
    act = act_of(block.act_out)
    factor = _drop_path_factor(block.drop_path)
    sc = _shortcut(block.downsample, fold_bn)
    ends_in_bn = (len(branch) >= 2 and isinstance(branch[-2][1], nn.Conv2d)
                  and isinstance(branch[-1][1], nn.BatchNorm2d))
    if (ends_in_gate(branch) and sc is not NotImplemented and act is not None and factor == 1.0):
        shortcut, _, extra_shift = _shortcut(block.downsample, True)
        if extra_shift is not None:  # the gate must not scale the shortcut's BN shift: the conv adds it
            shortcut.conv.bias = nn.Parameter(extra_shift.to(shortcut.conv.weight.dtype))
        (_, conv), (_, bn), (_, se) = branch[-3:]
        return FusedBlock(pre, _run(branch[:-3], fold_bn), tail=GatedTail(conv, bn, se, *act), shortcut=shortcut,
                          **common)
    if sc is NotImplemented or not ends_in_bn or act is None or factor is None:
        down = block.downsample
        shortcut = None if down is None else _fuse_module(down, fold_bn)  # its conv-BN as conv + BNAct
        return FusedBlock(pre, _run(branch, fold_bn), shortcut=shortcut, drop_path=copy.deepcopy(block.drop_path),
                          act_out=copy.deepcopy(block.act_out), **common)
    shortcut, rscale, extra_shift = sc
    (_, conv), (_, bn) = branch[-2], branch[-1]
    tail = conv_bn_act(conv, bn, None, fold_bn, factor)
    assert tail is not None  # act None: always computable
    ep = tail.epilogue
    ep.act, ep.slope = act
    if extra_shift is not None:
        ep.shift += extra_shift.to(ep.shift)
    if rscale is not None:
        ep.rscale = rscale.float().clone()
    return FusedBlock(pre, _run(branch[:-2], fold_bn), tail=tail, shortcut=shortcut, **common)


_loaded = False


def _load_rules() -> None:
    """The rules for archgen's own modules (imported late: they import torch)."""
    global _loaded
    if _loaded:
        return
    _loaded = True

    from archgen.modules import Block
    from archgen.network import ArchNet, Head

    register_container(ArchNet)
    register_fuse_rule(Block)(fuse_block)

    def _head(m: nn.Module, fold_bn: bool) -> Optional[nn.Module]:
        if hasattr(m, "norm"):
            a = act_of(m.act)
            if a is None:
                return None
            m.norm = BNAct.from_bn(m.norm, m.act)
            m.act = nn.Identity()
        return m

    register_fuse_rule(Head)(_head)


def _warn_training() -> None:
    global _warned_training
    if not _warned_training:
        _warned_training = True
        warnings.warn("archgen.fuse: a fused model is for inference; in training mode its fused blocks run "
                      "eagerly in PyTorch with the BN statistics frozen (or folded into the convs). "
                      "Train the original model instead.", RuntimeWarning, stacklevel=3)
