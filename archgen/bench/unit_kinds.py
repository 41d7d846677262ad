"""Kernel kinds, one unit each: every reader of a kernel unit (archgen.bench.kernel_units) asks its kind, and
none branches on the kind's name. A kind says

- its output's height and width (`out_size`), which the grouping, the latency model's features and the timing
  all read, so that what is timed is what is predicted;
- its weights and multiply-adds (`weights`, `macs`), the latency model's features;
- how calibration's perturbed copies stay valid for it (`side_multiple`, `min_side`, `rechannel`);
- the torch modules that run it, eager or fused (`torch_call`), and the ONNX graph torch's exporter writes
  for it (`onnx_graph`): what a unit is timed as.

A new kind is a class here registered with `@unit_kind`. Pure Python: torch is imported inside `torch_call`,
and `onnx_graph` writes through the graph writer it is handed (archgen.bench.kernel_timing), so that grouping
and predicting import neither.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

if TYPE_CHECKING:
    from archgen.bench.kernel_units import KernelUnit

#: Every kernel kind, by the name a unit carries.
UNIT_KINDS: dict[str, "UnitKind"] = {}


def unit_kind(name: str) -> Callable[[type], type]:
    """Class decorator: the kind registered under `name` (one instance; kinds hold no state)."""

    def register(cls: type) -> type:
        if name in UNIT_KINDS:
            raise ValueError(f"kernel kind '{name}' registered twice")
        cls.name = name
        UNIT_KINDS[name] = cls()
        return cls

    return register


def round_to(x: float, step: int) -> int:
    """x rounded to a multiple of `step`, at least `step`."""
    return max(step, int(round(x / step)) * step)


class UnitKind:
    """What a kernel kind is to every reader of a unit; the defaults are an elementwise kernel's (its output the
    shape of its input, no weights)."""

    name: ClassVar[str] = ""
    #: The output is the input at the unit's stride ('same' padding): a window, a strided slice.
    strided: ClassVar[bool] = False
    #: It reads a vector (batch x channels), not a map.
    reads_vector: ClassVar[bool] = False
    #: It writes a vector.
    writes_vector: ClassVar[bool] = False
    #: It reads a second tensor of its output's shape and sums it in (its bytes count twice).
    sums: ClassVar[bool] = False
    #: Its `k` is the side it pools to (an adaptive pool), not a window.
    pools_to: ClassVar[bool] = False
    #: A convolution: a runtime folds a norm after it into its weights and applies what follows in its pass.
    folds_norm: ClassVar[bool] = False
    #: ONNX Runtime runs it in whatever layout its input has (a pool), blocked or not.
    keeps_layout: ClassVar[bool] = False
    #: It only reshapes: OpenVINO runs it as a view or a reorder, with the kernel before it.
    reshapes: ClassVar[bool] = False
    #: It applies an act alone (what a kernel before it may take in).
    act_only: ClassVar[bool] = False

    def out_size(self, u: "KernelUnit") -> tuple[int, int]:
        if self.strided:
            return -(-u.h // u.stride), -(-u.w // u.stride)
        return u.h, u.w

    def weights(self, u: "KernelUnit") -> int:
        return 0

    def macs(self, u: "KernelUnit") -> int:
        """Multiply-adds: a map kernel's weights at each output position, a vector kernel's once per image."""
        weights = self.weights(u)
        if not weights or self.reads_vector:
            return u.batch * weights
        ho, wo = self.out_size(u)
        return u.batch * ho * wo * weights

    def side_multiple(self, u: "KernelUnit") -> int:
        """What a perturbed input side must be a multiple of for the kind to output what out_size says."""
        return 1

    def min_side(self, u: "KernelUnit") -> int:
        return 1

    def rechannel(self, u: "KernelUnit", f: float, rng: random.Random, spread: float) -> "KernelUnit":
        """The unit with its channels scaled by about f, in steps of 8 from 8 channels on (c_in by a draw of its
        own where it differs from c_out), kept valid for the kind."""
        step = 8 if u.c_out >= 8 else 1
        c_out = round_to(u.c_out * f, step)
        if u.c_in == u.c_out:
            return u._replace(c_in=c_out, c_out=c_out, mid=max(1, int(round(u.mid * f))) if u.mid else 0)
        c_in = u.c_in if u.c_in <= 4 else round_to(u.c_in * math.exp(rng.uniform(-spread, spread)), step)
        return u._replace(c_in=c_in, c_out=c_out)

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        """A call of the unit's modules on its input `t.x` (`t`: kernel_timing's torch maker: tensors and
        modules in the unit's device, dtype and layout, and whether it runs fused)."""
        raise NotImplementedError

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        """The unit written into `g` (kernel_timing's graph writer) from its input x, as torch's exporter writes
        it inside a network; its output's name."""
        raise NotImplementedError


def _act(kind: Optional[str]) -> Any:
    from archgen.layer_kinds.act import Act

    return Act("act", 1, kind or "none").module()


def _group_count(c: int) -> int:
    """Group norm's groups: the spec's 32 where they divide the channels, else the largest that does."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if c % g == 0)


# ---- convolutions


@unit_kind("conv")
class ConvKind(UnitKind):
    """A conv with what it absorbed: the norm folded in, a squeeze-and-excitation gate, the residual add, the
    act (in that order, as fuse's epilogue and the runtimes' post-ops apply them)."""

    strided = True
    folds_norm = True

    def weights(self, u: "KernelUnit") -> int:
        return u.c_out * (u.c_in // u.groups) * u.k * u.k

    def rechannel(self, u: "KernelUnit", f: float, rng: random.Random, spread: float) -> "KernelUnit":
        if u.groups == 1:
            return super().rechannel(u, f, rng, spread)
        if rng.random() < 0.5:  # the group count scaled, the group width kept
            g = max(1, int(round(u.groups * f)))
            return u._replace(c_in=u.c_in // u.groups * g, c_out=u.c_out // u.groups * g, groups=g)
        # the group width scaled as one group's channels would be, the count kept
        group = super().rechannel(u._replace(c_in=u.c_in // u.groups, c_out=u.c_out // u.groups, groups=1), f, rng,
                                  spread)
        return u._replace(c_in=group.c_in * u.groups, c_out=group.c_out * u.groups)

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        from archgen.layer_kinds.conv import Conv
        from archgen.layer_kinds.norm import Norm
        from archgen.layer_kinds.squeeze_excite import SqueezeExcite

        absorbed, x = set(u.absorbed), t.x
        conv = Conv("conv", u.c_in, u.c_out, u.k, u.stride, u.groups, u.dilation,
                    bias=t.fused and "act" in absorbed and "norm" not in absorbed).module()
        if not t.fused or not absorbed:
            m = t.ready(conv)
            return lambda: m(x)
        from archgen.kernels.fuse import BNAct, ConvBNAct, GatedTail, conv_affine

        r = t.tensor(u.c_out, *self.out_size(u)) if "add" in absorbed else None
        bn = t.ready(Norm("bn", u.c_out).module())
        if "gate" in absorbed:
            se = SqueezeExcite("se", u.c_out, u.mid).module()
            m = t.ready(GatedTail(conv, bn, se, u.act or "none", 0.1))
        else:
            new, _, shift = conv_affine(conv, bn if "norm" in absorbed else None, True)
            m = t.ready(ConvBNAct(new, BNAct(None, shift, u.act or "none", 0.1)))
        return (lambda: m(x, r)) if r is not None else (lambda: m(x))

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        y = g.conv(x, u.c_in, u.c_out, u.k, u.stride, u.groups, u.dilation, bias="norm" in u.absorbed)
        return g.tail(y, u)


@unit_kind("dwconv")
class DepthwiseConvKind(ConvKind):
    """A depthwise conv; also ONNX Runtime's BatchNormalization on blocked input, which it runs as a 1x1
    depthwise conv (kernel_units makes that norm this kind), exported as the norm the network has."""

    def rechannel(self, u: "KernelUnit", f: float, rng: random.Random, spread: float) -> "KernelUnit":
        if u.groups == 1:
            return UnitKind.rechannel(self, u, f, rng, spread)
        c = round_to(u.c_out * f, 8 if u.c_out >= 8 else 1)
        return u._replace(c_in=c, c_out=c, groups=c)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        if blocked_norm(u):
            return g.tail(g.batch_norm(x, u.c_in), u)
        return super().onnx_graph(g, x, u)


def blocked_norm(u: "KernelUnit") -> bool:
    """A 1x1 depthwise unit of stride 1: what a norm on ONNX Runtime's blocked input runs as (a depthwise conv of
    kernel 1, were a network to have one, would run the same kernel)."""
    return u.kind == "dwconv" and u.k == 1 and u.stride == 1 and u.groups == u.c_in == u.c_out


@unit_kind("highway_gate")
class HighwayGateKind(UnitKind):
    """A highway block's merge: its transform gate T (a conv with a sigmoid) reads the block's input, and the
    branch's output and the carry meet as branch x T + carry x (1 - T)."""

    strided = True
    weights = ConvKind.weights

    def carries_its_input(self, u: "KernelUnit") -> bool:
        """Whether the carry is the tensor the gate reads (an identity shortcut: the block keeps its shape); else
        the carry is a projection's output, an input of the output's shape."""
        return (u.c_in, u.h, u.w) == (u.c_out, *self.out_size(u))

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        import torch.nn as nn

        from archgen.layer_kinds.conv import Conv

        out = self.out_size(u)
        x, r = t.x, t.tensor(u.c_out, *out)
        gate = t.ready(nn.Sequential(Conv("conv", u.c_in, u.c_out, u.k, u.stride, bias=True).module(), nn.Sigmoid()))
        carried = x if self.carries_its_input(u) else t.tensor(u.c_out, *out)

        def highway() -> Any:
            gated = gate(x)
            return r * gated + carried * (1 - gated)

        return highway

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        ho, wo = self.out_size(u)
        gated = g.op("Sigmoid", g.conv(x, u.c_in, u.c_out, u.k, u.stride))
        carried = x if self.carries_its_input(u) else g.input(u.c_out, ho, wo)
        carry = g.op("Mul", carried, g.op("Sub", g.const((), fill=1.0), gated))
        return g.op("Add", g.op("Mul", g.input(u.c_out, ho, wo), gated), carry)


# ---- norms and acts


@unit_kind("norm")
class NormKind(UnitKind):
    """A batch norm no conv took (fused: with its act, one scale-shift pass)."""

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        from archgen.layer_kinds.norm import Norm

        x, bn = t.x, t.ready(Norm("bn", u.c_in).module())
        if t.fused:
            from archgen.kernels.fuse import BNAct

            m = t.ready(BNAct.from_bn(bn, u.act or "none", 0.1))
            return lambda: m(x)
        return lambda: bn(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.tail(g.batch_norm(x, u.c_in), u)


@unit_kind("group_norm")
class GroupNormKind(UnitKind):
    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        import torch.nn as nn

        x, m = t.x, t.ready(nn.GroupNorm(_group_count(u.c_in), u.c_in))
        return lambda: m(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        """The exporter's reshapes around an instance norm, then the affine map."""
        groups = _group_count(u.c_in)
        y = g.op("InstanceNormalization", g.op("Reshape", x, g.ints([0, groups, -1])),
                 g.const((groups,), fill=1.0), g.const((groups,), fill=0.0), epsilon=1e-5)
        y = g.op("Reshape", y, g.op("Shape", x))
        return g.op("Add", g.op("Mul", y, g.const((u.c_in, 1, 1))), g.const((u.c_in, 1, 1)))


@unit_kind("lrn")
class LocalResponseNormKind(UnitKind):
    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        from archgen.layer_kinds.norm import LocalResponseNorm

        x, m = t.x, LocalResponseNorm("lrn", u.c_in).module()
        return lambda: m(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.op("LRN", x, size=5, alpha=1e-4, beta=0.75, bias=2.0)


@unit_kind("act")
class ActKind(UnitKind):
    act_only = True

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        x, m = t.x, t.ready(_act(u.act))
        return lambda: m(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.act(x, u.act)


# ---- merges


@unit_kind("add")
class AddKind(UnitKind):
    sums = True

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        x, r = t.x, t.tensor(u.c_out, *self.out_size(u))
        return lambda: x + r

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.tail(g.op("Add", x, g.input(u.c_out, u.h, u.w)), u)


class _AppendsChannels(UnitKind):
    """A kind whose output is its input with channels appended (c_in the input's, c_out the output's)."""

    def rechannel(self, u: "KernelUnit", f: float, rng: random.Random, spread: float) -> "KernelUnit":
        if u.c_in == u.c_out:
            return super().rechannel(u, f, rng, spread)
        step = 8 if u.c_out >= 8 else 1
        c_in = round_to(u.c_in * f, step)
        return u._replace(c_in=c_in, c_out=c_in + round_to((u.c_out - u.c_in) * f, step) if u.c_out > u.c_in
                          else round_to(u.c_out * f, step))


@unit_kind("concat")
class ConcatKind(_AppendsChannels):
    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        import torch

        x, r = t.x, t.tensor(u.c_out - u.c_in, *self.out_size(u))
        return lambda: torch.cat([x, r], 1)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.op("Concat", x, g.input(u.c_out - u.c_in, u.h, u.w), axis=1)


@unit_kind("zero_pad")
class ZeroPadKind(_AppendsChannels):
    """ResNet's option-A shortcut: a strided slice, then zero channels appended."""

    strided = True

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        from archgen.modules import ZeroPadShortcut

        x, m = t.x, ZeroPadShortcut(u.stride, u.c_out - u.c_in)
        return lambda: m(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        y = g.op("Slice", x, g.ints([0, 0]), g.ints([2 ** 62, 2 ** 62]), g.ints([2, 3]),
                 g.ints([u.stride, u.stride]))
        return g.op("Pad", y, g.ints([0, 0, 0, 0, 0, u.c_out - u.c_in, 0, 0]), mode="constant")


# ---- pools


class _WindowPool(UnitKind):
    strided = True
    keeps_layout = True

    def side_multiple(self, u: "KernelUnit") -> int:
        # out_size's ceil(h / stride) is what a timed pool (no ceil mode) outputs only at multiples of its stride
        return u.stride

    def min_side(self, u: "KernelUnit") -> int:
        return u.k

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        from archgen.layer_kinds.pool import Pool

        x, m = t.x, t.ready(Pool("pool", u.c_in, self.name[:3], u.k, u.stride, (u.k - 1) // 2).module())
        return lambda: m(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        pad = (u.k - 1) // 2
        return g.op("MaxPool" if self.name == "max_pool" else "AveragePool", x, kernel_shape=[u.k, u.k],
                    strides=[u.stride, u.stride], pads=[pad] * 4)


@unit_kind("max_pool")
class MaxPoolKind(_WindowPool):
    """A max pool over k x k windows (the stem's, VGG's)."""


@unit_kind("avg_pool")
class AvgPoolKind(_WindowPool):
    """An average pool over k x k windows (DenseNet's transitions, ResNet-D's shortcut)."""


class _AdaptiveAvg(UnitKind):
    keeps_layout = True

    def min_side(self, u: "KernelUnit") -> int:
        return u.k

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        import torch.nn as nn

        x, m = t.x, t.ready(nn.AdaptiveAvgPool2d(self.out_size(u)))
        return lambda: m(x)


@unit_kind("global_pool")
class GlobalPoolKind(_AdaptiveAvg):
    def out_size(self, u: "KernelUnit") -> tuple[int, int]:
        return 1, 1

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.op("GlobalAveragePool", x)  # OpenVINO's flatten after it is a view, counted with it


@unit_kind("adaptive_pool")
class AdaptivePoolKind(_AdaptiveAvg):
    """An adaptive average pool to k x k (`k`: the side it pools to)."""

    pools_to = True

    def out_size(self, u: "KernelUnit") -> tuple[int, int]:
        return u.k, u.k

    def side_multiple(self, u: "KernelUnit") -> int:
        return u.k  # as any exported network's is

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        # torch exports one only where the side is a multiple of what it pools to
        window = [max(1, u.h // u.k), max(1, u.w // u.k)]
        return g.op("AveragePool", x, kernel_shape=window, strides=window)


# ---- the head's vector kernels, and the rest


@unit_kind("flatten")
class FlattenKind(UnitKind):
    writes_vector = reshapes = True

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        import torch

        x = t.x
        return lambda: torch.flatten(x, 1)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.op("Flatten", x, axis=1)


@unit_kind("linear")
class LinearKind(UnitKind):
    reads_vector = writes_vector = True

    def weights(self, u: "KernelUnit") -> int:
        return u.c_in * u.c_out

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        import torch.nn as nn

        x, fc = t.x, t.ready(nn.Linear(u.c_in, u.c_out))
        if u.act is None:
            return lambda: fc(x)
        act = _act(u.act)
        return lambda: act(fc(x))

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.act(g.op("Gemm", x, g.const((u.c_out, u.c_in)), g.const((u.c_out,)), transB=1), u.act)


@unit_kind("se_gate")
class SqueezeExciteKind(UnitKind):
    """A squeeze-and-excitation gate: pool, two 1x1 convs with their acts, the multiply (`mid`: its width)."""

    def weights(self, u: "KernelUnit") -> int:
        return 2 * u.c_in * u.mid

    def macs(self, u: "KernelUnit") -> int:
        return u.batch * self.weights(u)

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        from archgen.layer_kinds.squeeze_excite import SqueezeExcite

        x, m = t.x, t.ready(SqueezeExcite("se", u.c_in, u.mid).module())
        return lambda: m(x)

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.tail(g.se(x, u.c_in, u.mid), u)


@unit_kind("nop")
class NopKind(UnitKind):
    """Dropout or identity in eval mode: nothing runs."""

    def torch_call(self, u: "KernelUnit", t: Any) -> Callable[[], object]:
        x = t.x
        return lambda: x

    def onnx_graph(self, g: Any, x: str, u: "KernelUnit") -> str:
        return g.op("Identity", x)
