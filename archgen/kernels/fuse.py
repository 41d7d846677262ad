"""`fuse(model)`: an eval-mode copy of a model whose blocks end in the one-pass `bn_act` kernel.

What is rewritten (everything else is left as it is, running eagerly): every block archgen builds is one
generic `Block` made from layer records, and it keeps them, so fuse reads each layer's kind, never a
family's or a module type's. Each layer kind says what fuse may do with it (its `fusable` role, see
archgen.layer_kinds.base.FUSE_ROLES), and each merge kind what fuse may do with the merge (MERGE_ROLES):

- a block whose merge adds the shortcut and whose branch ends in conv + norm (basic, bottleneck): each
  conv-norm-act of the branch becomes conv + `bn_act`, and the tail becomes one `bn_act` doing norm +
  shortcut (identity, zero-padding, or a projection's norm) + act;
- the same with a squeeze-and-excitation gate after that norm (SE-ResNet, SE-ResNeXt; without stochastic
  depth): the gate is computed from the conv's pooled output through the norm's affine map, and one
  `bn_act` does act(norm(x) * gate + shortcut) (`GatedTail`);
- an adding block whose branch ends otherwise (pre-activation's bare conv, DarkNet's act before the add):
  its norm-act and conv-norm-act runs in `bn_act`, the add in PyTorch;
- blocks with no merge or a concat (plain layers, dense layers, transitions, the stem) and the head: their
  conv-norm[-act] and norm[-act] runs, and a conv with bias followed by its act (VGG without BN) as conv +
  bias-act;
- a merge kind fuse does not know (highway's gate) leaves its whole block eager.

A norm folds only when its module keeps running statistics (batch norm, frozen or not), and an act only
when the kernel computes it; group norm and GELU stay eager, and `fuse` says so once.

With `fold_bn=True` a norm that follows a conv is folded into it (W' = W * scale, bias b' = shift, kept out
of the conv so that the kernel adds it with the shortcut and the act: bias + add + act); a norm that
precedes its conv (pre-activation) cannot fold and stays a scale/shift in the kernel. With `fold_bn=False`
every norm is a scale/shift in the kernel. The statistics are read once, when `fuse` runs.

Modules of the user's own can bring their rule (`register_fuse_rule`, by module type); a module with no
rule is left eager, its children untouched; containers (nn.Sequential, nn.ModuleList, nn.ModuleDict,
ArchNet and the root model) are walked.

The fused model is for inference. Put back in training mode, its fused modules run the same arithmetic in
PyTorch (differentiable, but with the BN statistics frozen or folded) and say so once with a warning.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from archgen.kernels.bn_act import RepeatedLaunch, bn_act_reference, bn_scale_shift, uses_triton
from archgen.layer_kinds.act import FUNCTIONS, apply_act
from archgen.layer_kinds.base import LayerKind, MergeKind
from archgen.layer_kinds.merges import carry

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
    _say_what_stays_eager(m)
    with torch.no_grad():
        out = _fuse_module(m, fold_bn, root=True)
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


# ------------------------------------------------------------------------------------ records

#: A layer of a built block: its name, its module and the record it was made from.
Item = tuple[str, nn.Module, LayerKind]


def items(owner: nn.Module, layers: tuple[LayerKind, ...]) -> list[Item]:
    """The layers' items, their modules found by name in `owner`."""
    return [(layer.name, owner._modules[layer.name], layer) for layer in layers]


def role(item: Item) -> Optional[str]:
    """What the kernel may do with this layer: its kind's role, where the built module allows it (a norm
    without running statistics, such as group norm, or an act the kernel does not compute stays eager)."""
    _, m, record = item
    wanted = record.fusable
    if wanted == "norm" and getattr(m, "running_var", None) is None:
        return None
    if wanted == "act" and record.kernel_act(m) is None:
        return None
    return wanted


def kernel_act(item: Optional[Item]) -> tuple[str, float]:
    """(kernel act, slope) of an act item the kernel computes (see `role`); no item: no act."""
    return ("none", 0.0) if item is None else item[2].kernel_act(item[1])


def _say_what_stays_eager(model: nn.Module) -> None:
    """One warning naming the norms and acts no kernel computes (group norm, GELU), so a user who chose them
    knows what the fused model leaves eager."""
    counts: dict[str, int] = {}

    def visit(entries: list[Item]) -> None:
        for item in entries:
            _, m, record = item
            if record.fusable == "sequence":
                visit(items(m, record.layers))
            elif record.fusable in ("norm", "act") and role(item) is None:
                counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1

    for m in model.modules():
        if getattr(m, "records", None) is not None:  # a Block or the Head: made from records
            visit(_block_items(m))
    if counts:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
        acts = [name for name, f in FUNCTIONS.items() if f.kernel and f.counted]
        warnings.warn(f"archgen.fuse: no fused kernel for {listed}; those layers run eagerly (the kernel does "
                      f"batch norm, folded or frozen, with {', '.join(acts[:-1])} or {acts[-1]})", RuntimeWarning,
                      stacklevel=3)


def _block_items(block: nn.Module) -> list[Item]:
    """Every layer of a block (or the head) made from records: pre, branch, shortcut and post."""
    d = block.records
    out = items(block, d.pre + d.branch)
    if getattr(block, "downsample", None) is not None:
        out.append((d.shortcut.name, block.downsample, d.shortcut))
    return out + _post(block)


def _post(block: nn.Module) -> list[Item]:
    """The layers after the merge, held together as the block's `act_out`."""
    post = block.records.post
    if not post:
        return []
    modules = [block.act_out] if len(post) == 1 else list(block.act_out.children())
    return [(layer.name, m, layer) for layer, m in zip(post, modules)]


class KernelVectors(nn.Module):
    """A module whose per-channel vectors (float buffers named in VECTORS) the kernel reads in float32, and
    whose bn_act calls repeat pass after pass (`launch`, a RepeatedLaunch, plans each shape once)."""

    VECTORS: tuple[str, ...] = ("scale", "shift")

    def __init__(self) -> None:
        super().__init__()
        self.launch = RepeatedLaunch()

    def _apply(self, fn, recurse=True):
        # model.half() / .to(bfloat16) would round the per-channel vectors; they stay float32 (C values each).
        super()._apply(fn, recurse)
        for name in self.VECTORS:
            v = getattr(self, name)
            if v is not None and v.is_floating_point() and v.dtype != torch.float32:
                setattr(self, name, v.float())
        return self


class BNAct(KernelVectors):
    """act(x * scale + shift [+ r * rscale | + r]) through `bn_act`; the per-channel vectors are buffers.

    `scale` None: a folded BN (shift is then the conv's bias). `rscale` None: the residual is added as is.
    """

    VECTORS = ("scale", "shift", "rscale")

    def __init__(self, scale: Optional[torch.Tensor], shift: torch.Tensor, act: str = "relu", slope: float = 0.0,
                 rscale: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.register_buffer("scale", None if scale is None else scale.detach().float().clone())
        self.register_buffer("shift", shift.detach().float().clone())
        self.register_buffer("rscale", None if rscale is None else rscale.detach().float().clone())
        self.act = act
        self.slope = slope

    @classmethod
    def from_bn(cls, bn: nn.BatchNorm2d, act: str = "none", slope: float = 0.0) -> "BNAct":
        """act(bn(x)) for a batch norm with running statistics; `act` one the kernel computes (bn_act.ACTS)."""
        return cls(*bn_scale_shift(bn), act, slope)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.training:
            _warn_training()
            return bn_act_reference(x, self.scale, self.shift, residual, self.rscale, self.act, slope=self.slope)
        if not uses_triton(x):
            return self.in_place(torch.addcmul(self._vec(self.shift, x), x, self._vec(self.scale, x))
                                 if self.scale is not None else x + self._vec(self.shift, x), residual)
        return self.launch(x, self.scale, self.shift, residual, self.rscale, act=self.act, slope=self.slope)

    @staticmethod
    def _vec(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.to(x.dtype).view((1, -1) + (1,) * (x.dim() - 2))

    def in_place(self, y: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Where no kernel runs (the CPU): y (a tensor of our own) + residual, then the act, in place, in
        PyTorch's own ops: no per-call checks, no float32 round trip (what bn_act_reference, the oracle, does)."""
        if residual is not None:
            y = y.add_(residual if self.rscale is None else residual * self._vec(self.rscale, residual))
        return apply_act(self.act, y, self.slope, inplace=True)

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


def conv_affine(conv: nn.Conv2d, bn: Optional[nn.Module], fold: bool, factor: float = 1.0) \
        -> tuple[nn.Conv2d, Optional[torch.Tensor], torch.Tensor]:
    """(conv', scale, shift) with conv'(x) * scale + shift == factor * bn(conv(x)) in eval mode, conv' without a
    bias of its own (its bias is in the shift); with `fold`, or no `bn` (the conv's bias alone), scale is None:
    the scale is in conv''s weights. The one place a norm and a conv's bias are folded."""
    bias = None if conv.bias is None else conv.bias.detach().float()
    new = copy.copy(conv)  # shallow: the weight and bias replaced below are this copy's alone
    new._parameters = dict(conv._parameters)
    new.bias = None
    if bn is None:
        return new, None, bias
    scale, shift = bn_scale_shift(bn)
    scale, shift = scale * factor, shift * factor
    if bias is not None:
        shift = shift + bias * scale
    if not fold:
        return new, scale, shift
    w = conv.weight.detach().float() * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    new.weight = nn.Parameter(w.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
    return new, None, shift


def conv_bn_act(conv: nn.Conv2d, bn: nn.Module, act: tuple[str, float], fold_bn: bool,
                factor: float = 1.0) -> ConvBNAct:
    """act(factor * bn(conv(x))) as conv + BNAct."""
    new, scale, shift = conv_affine(conv, bn, fold_bn, factor)
    return ConvBNAct(new, BNAct(scale, shift, *act))


def fuse_run(run: list[Item], fold_bn: bool) -> list[tuple[str, nn.Module]]:
    """Rewrite a run of layers by their roles: conv, norm[, act] -> ConvBNAct; conv with bias, act ->
    ConvBNAct (bias and act in the kernel); norm[, act] -> BNAct; a sequence in turn; what is nothing in eval
    mode (dropout, identity) is left out; anything else stays as it is (or by its module's own rule)."""
    run = [item for item in run if role(item) != "drop"]
    out: list[tuple[str, nn.Module]] = []
    i = 0
    while i < len(run):
        name, m, record = run[i]
        here = role(run[i])
        nxt = run[i + 1] if i + 1 < len(run) else None
        after = run[i + 2] if i + 2 < len(run) else None
        if here == "conv" and nxt is not None and role(nxt) == "norm":
            act = after if after is not None and role(after) == "act" else None
            out.append((name, conv_bn_act(m, nxt[1], kernel_act(act), fold_bn)))
            i += 3 if act is not None else 2
        elif here == "conv" and m.bias is not None and nxt is not None and role(nxt) == "act":
            new, _, bias = conv_affine(m, None, True)  # a conv without norm (VGG): bias + act in the kernel
            out.append((name, ConvBNAct(new, BNAct(None, bias, *kernel_act(nxt)))))
            i += 2
        elif here == "norm":
            act = nxt if nxt is not None and role(nxt) == "act" else None
            out.append((name, BNAct.from_bn(m, *kernel_act(act))))
            i += 2 if act is not None else 1
        elif here == "sequence":
            out.append((name, _run(items(m, record.layers), fold_bn)))
            i += 1
        else:
            out.append((name, _fuse_module(m, fold_bn)))
            i += 1
    return out


class FusedSequential(nn.Sequential):
    """A run of layers rewritten by `fuse_run`."""


def _run(run: list[Item], fold_bn: bool) -> FusedSequential:
    return FusedSequential(OrderedDict(fuse_run(run, fold_bn)))


class FusedBlock(nn.Module):
    """A `Block` rewritten: pre-activation and branch as fused runs, and for a block that adds its shortcut
    after a branch ending in conv + norm, the tail in one kernel: act(norm(conv(y)) * drop_path + shortcut).
    Otherwise the block's merge joins the fused branch in PyTorch."""

    def __init__(self, pre: nn.Module, body: nn.Module, merge: MergeKind, split: str, tail: Optional[nn.Module] = None,
                 downsample: Optional[nn.Module] = None, drop_path: Optional[nn.Module] = None,
                 act_out: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.pre = pre
        self.body = body
        self.tail = tail
        self.downsample = downsample
        self.drop_path = drop_path if drop_path is not None else nn.Identity()
        self.act_out = act_out if act_out is not None else nn.Identity()
        self.merge = merge
        self.split = split
        self.residual = merge.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre(x)
        y = self.body(pre)
        if self.tail is not None:
            return self.tail(y, carry(self, x, pre))
        return self.act_out(self.merge.join(self, x, pre, y))


class GatedTail(KernelVectors):
    """act(bn(conv(y)) * gate + r), gate = SE(bn(conv(y))), with the BN applied once, in the kernel: the gate
    reads the conv's pooled output through the BN's affine map (the mean of an affine map is the map of the
    mean), so bn(conv(y)) is never written out; SE-ResNet's tail in one pass where eager spends four (BN, the
    gate's product, the add, the act)."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, se: nn.Module, act: str, slope: float) -> None:
        super().__init__()
        self.conv, scale, shift = conv_affine(conv, bn, fold=False)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.fc1, self.se_act, self.fc2, self.se_gate = se.fc1, se.act, se.fc2, se.gate
        self.act, self.slope = act, slope

    def forward(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = self.conv(y)
        pooled = x.float().mean((2, 3)) * self.scale + self.shift
        gate = self.se_gate(self.fc2(self.se_act(self.fc1(pooled.to(x.dtype)[:, :, None, None]))))
        return self.launch(x, self.scale, self.shift, residual, act=self.act, slope=self.slope, gate=gate)

    def extra_repr(self) -> str:
        return f"act={self.act}, squeeze-and-excitation gate in the kernel"


def _shortcut(block: nn.Module, fold_bn: bool) -> tuple[Optional[nn.Module], Optional[torch.Tensor],
                                                        Optional[torch.Tensor]]:
    """(module, rscale, extra_shift) for a block's shortcut: a projection ending in conv + norm has the norm
    folded into its conv, or returned as (rscale, shift) for the kernel to apply; any other shortcut (zero
    padding, a projection without norm) is computed as it is and its output added; None module: identity."""
    record, down = block.records.shortcut, block.downsample
    run = items(down, record.layers) if down is not None and record.fusable == "sequence" else []
    if len(run) < 2 or role(run[-2]) != "conv" or role(run[-1]) != "norm":
        return _eager_shortcut(block, fold_bn), None, None
    conv, scale, shift = conv_affine(run[-2][1], run[-1][1], fold_bn)
    return nn.Sequential(OrderedDict([(name, m) for name, m, _ in run[:-2]] + [("conv", conv)])), scale, shift


def _eager_shortcut(block: nn.Module, fold_bn: bool) -> Optional[nn.Module]:
    """The shortcut computing its own output: a projection's layers as a fused run, anything else as it is."""
    record, down = block.records.shortcut, block.downsample
    if down is None or record.fusable != "sequence":
        return down
    return _run(items(down, record.layers), fold_bn)


def fuse_block(block: nn.Module, fold_bn: bool) -> Optional[nn.Module]:
    """The rule for archgen's generic Block: it reads the records the block was made from and asks each
    layer's kind and the merge's kind what the kernel may take, never a family's. A merge kind fuse does not
    know (a highway gate: its H * T + carry * (1 - T) is not the kernel's act(x * scale + shift + residual))
    leaves the block eager."""
    d = block.records
    how = d.merge.fusable
    if how is None:
        return None
    pre = _run(items(block, d.pre), fold_bn)
    branch = items(block, d.branch)
    common = {"merge": d.merge, "split": d.split}
    if how == "run":
        return FusedBlock(pre, _run(branch + _post(block), fold_bn), **common)
    if how == "join":
        return FusedBlock(pre, _run(branch, fold_bn), act_out=_run(_post(block), fold_bn), **common)
    post = _post(block)
    act = kernel_act(post[0]) if len(post) == 1 and role(post[0]) == "act" else None if post else ("none", 0.0)
    factor = 1.0 if d.inverted_drop or d.survival >= 1.0 else d.survival
    roles = [role(item) for item in branch[-3:]]
    if roles == ["conv", "norm", "gate"] and act is not None and factor == 1.0:
        shortcut, _, extra_shift = _shortcut(block, True)
        if extra_shift is not None:  # the gate must not scale the shortcut's BN shift: the conv adds it
            shortcut.conv.bias = nn.Parameter(extra_shift.to(shortcut.conv.weight.dtype))
        (_, conv, _), (_, bn, _), (_, se, _) = branch[-3:]
        return FusedBlock(pre, _run(branch[:-3], fold_bn), tail=GatedTail(conv, bn, se, *act), downsample=shortcut,
                          **common)
    if roles[-2:] != ["conv", "norm"] or act is None:
        return FusedBlock(pre, _run(branch, fold_bn), downsample=_eager_shortcut(block, fold_bn),
                          drop_path=block.drop_path, act_out=block.act_out, **common)
    shortcut, rscale, extra_shift = _shortcut(block, fold_bn)
    tail = conv_bn_act(branch[-2][1], branch[-1][1], act, fold_bn, factor)
    if extra_shift is not None:
        tail.epilogue.shift += extra_shift.to(tail.epilogue.shift)
    if rscale is not None:
        tail.epilogue.rscale = rscale.float().clone()
    return FusedBlock(pre, _run(branch[:-2], fold_bn), tail=tail, downsample=shortcut, **common)


def fuse_head(head: nn.Module, fold_bn: bool) -> nn.Module:
    """The head's layers fused as one run, in place, so the head keeps its `fc` and its model API; a layer
    the run took into the one before it (an act into its norm) or left out is an identity."""
    fused = dict(fuse_run(items(head, head.records.branch), fold_bn))
    for name in list(head._modules):
        setattr(head, name, fused.get(name, nn.Identity()))
    return head


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
    register_fuse_rule(Head)(fuse_head)


def _warn_training() -> None:
    global _warned_training
    if not _warned_training:
        _warned_training = True
        warnings.warn("archgen.fuse: a fused model is for inference; in training mode its fused blocks run "
                      "eagerly in PyTorch with the BN statistics frozen (or folded into the convs). "
                      "Train the original model instead.", RuntimeWarning, stacklevel=3)
