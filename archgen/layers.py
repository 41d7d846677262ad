"""Plain layer records: the one description of a block that everything reads.

A family turns its arguments into a `BlockLayers` of records (Conv, Norm,
Act, ...). The analytic counter walks the records (`cost`), the builder turns
each into a torch module (`module`, the only place torch is imported, inside
the method), and `archgen.fuse` reads the block's layer names from the module
the builder made from them. A record's name is its module's name, so counts,
modules, state-dict keys and fvcore's per-module figures line up by name.

A family that needs a layer of its own (squeeze-and-excitation, a highway
gate) defines a record class beside it with the same three methods.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Optional, Protocol

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.complexity import Tally

#: DarkNet's leaky ReLU slope (YOLOv3).
LEAKY_SLOPE = 0.1


class Layer(Protocol):
    name: str

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        """Record the layer's cost in `t` for an input of h x w; return its output size."""

    def module(self, first: bool = False) -> "nn.Module":
        """The torch module (`first`: it reads a tensor the caller still needs, so nothing may run in place)."""


@dataclass(frozen=True)
class Conv:
    name: str
    c_in: int
    c_out: int
    k: int
    stride: int = 1
    groups: int = 1
    dilation: int = 1
    bias: bool = False

    @property
    def padding(self) -> int:
        """'Same' padding for odd kernels: the size changes by the stride alone."""
        return self.dilation * (self.k - 1) // 2

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return t.conv(self.name, self.c_in, self.c_out, self.k, h, w, stride=self.stride, groups=self.groups,
                      dilation=self.dilation, padding=self.padding, bias=self.bias)

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Conv2d(self.c_in, self.c_out, self.k, self.stride, self.padding, self.dilation, self.groups,
                         bias=self.bias)


@dataclass(frozen=True)
class Norm:
    """The network's normalisation over `c` channels (batch norm unless the spec's `norm:` says otherwise;
    group norm and frozen batch norm count the same: two parameters per channel, one op per element)."""

    name: str
    c: int

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        t.bn(self.name, self.c, h, w)
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        style = current_style()
        if style.norm == "group":
            return nn.GroupNorm(style.groups, self.c)
        if style.norm == "frozen_batch":
            from archgen.modules import FrozenBatchNorm2d

            return FrozenBatchNorm2d(self.c)
        return nn.BatchNorm2d(self.c)


@dataclass(frozen=True)
class Act:
    name: str
    c: int
    kind: str = "relu"  # relu, leaky_relu, none

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        t.act(self.name, self.kind, self.c, h, w)
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        return make_act(self.kind, inplace=not first)


@dataclass(frozen=True)
class Pool:
    name: str
    c: int
    kind: str  # max, avg
    k: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return t.pool(self.name, self.c, self.k, h, w, stride=self.stride, padding=self.padding,
                      ceil_mode=self.ceil_mode)

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        if self.kind == "max":
            return nn.MaxPool2d(self.k, self.stride, self.padding, ceil_mode=self.ceil_mode)
        return nn.AvgPool2d(self.k, self.stride, self.padding, ceil_mode=self.ceil_mode,
                            count_include_pad=self.count_include_pad)


@dataclass(frozen=True)
class Dropout:
    name: str
    p: float

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Dropout(self.p)


@dataclass(frozen=True)
class Identity:
    """A placeholder that keeps a layout's numbering (timm's `downsample.0` when a ResNet-D shortcut does not pool)."""

    name: str

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.Identity()


@dataclass(frozen=True)
class ZeroPad:
    """Option A of He et al. 2015: subsample by the stride, pad the new channels with zeros; no parameters."""

    name: str
    stride: int
    extra_channels: int

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        return -(-h // self.stride), -(-w // self.stride)

    def module(self, first: bool = False) -> "nn.Module":
        from archgen.modules import ZeroPadShortcut

        return ZeroPadShortcut(self.stride, self.extra_channels)


@dataclass(frozen=True)
class SqueezeExcite:
    """Squeeze-and-excitation (Hu et al. 2018): x * sigmoid(fc2(relu(fc1(avgpool(x))))), fc1/fc2 1x1 convs with bias.

    `c_mid` is the family's to choose (RegNetY: round(0.25 * the block's input width); SE-ResNet: out / 16).
    Counted as pycls and fvcore count it: the two convs run on a 1x1 map, so they add c * c_mid MACs each
    (bias excluded, as everywhere) and c_mid + c activations; the global pool, the sigmoid and the gating
    multiply are element-wise work, counted under `other_ops` only (fvcore counts the pool, not the rest).
    """

    name: str
    c: int
    c_mid: int

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        with t.scope(self.name):
            t.pool("pool", self.c, 0, h, w, stride=1, global_pool=True)
            t.conv("fc1", self.c, self.c_mid, 1, 1, 1, bias=True)
            t.act("act", "relu", self.c_mid, 1, 1)
            t.conv("fc2", self.c_mid, self.c, 1, 1, 1, bias=True)
            t.act("gate", "sigmoid", self.c, 1, 1)
            t.mul("scale", self.c, h, w)
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        from archgen.modules import SqueezeExcite as SqueezeExciteModule

        return SqueezeExciteModule(self.c, self.c_mid)


@dataclass(frozen=True)
class LocalResponseNorm:
    """Local response normalisation across channels (Krizhevsky et al. 2012, Sec. 3.3): VGG's configuration
    A-LRN, whose parameters are AlexNet's (Simonyan and Zisserman 2014, Sec. 2.2): n = 5, alpha =
    1e-4, beta = 0.75, k = 2. No parameters; element-wise work, counted under `other_ops` as size ops each."""

    name: str
    c: int
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        t.norm(self.name, self.c, h, w, ops_per_element=self.size)
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        return nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)


@dataclass(frozen=True)
class TransformGate:
    """A highway network's transform gate T(x) = sigmoid(conv(x) + b_T) (Srivastava et al. 2015): a conv with
    bias from the block's input to the block's output channels and stride, its bias initialised to `bias`
    (negative: the block starts out carrying its input). The block merges y = H(x) T(x) + carry(x) (1 - T(x))."""

    name: str
    c_in: int
    c_out: int
    k: int
    stride: int
    bias: float

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        with t.scope(self.name):
            ho, wo = t.conv("conv", self.c_in, self.c_out, self.k, h, w, stride=self.stride, bias=True)
            t.act("sigmoid", "sigmoid", self.c_out, ho, wo)
        return ho, wo

    def module(self, first: bool = False) -> "nn.Module":
        from archgen.modules import TransformGate as TransformGateModule

        return TransformGateModule(self.c_in, self.c_out, self.k, self.stride, self.bias)


@dataclass(frozen=True)
class BlockLayers:
    """One block: out = post(merge(branch(pre(x)), shortcut(x or pre(x)))).

    - `pre`: layers before the split (a pre-activation unit's BN-ReLU);
    - `branch`: the residual function, or the whole layer of a plain block;
    - `shortcut`: None for no shortcut (plain layers), () for an identity, else the `downsample` layers;
    - `merge`: 'add' (residual), 'gate' (highway: branch * T + shortcut * (1 - T), T the `gate`),
      'concat' (a dense layer: [x, branch]) or 'none';
    - `gate`: the highway transform gate (merge 'gate' only), read from the same tensor as the shortcut;
    - `split`: which tensor the shortcut reads, the block's 'input' or its 'pre'-activated input;
    - `post`: layers after the merge (the activation after the add);
    - `survival`, `inverted_drop`: stochastic depth of the branch.
    """

    branch: tuple[Any, ...]
    pre: tuple[Any, ...] = ()
    shortcut: Optional[tuple[Any, ...]] = None
    merge: str = "none"
    split: str = "input"
    post: tuple[Any, ...] = ()
    survival: float = 1.0
    inverted_drop: bool = False
    gate: Optional[TransformGate] = None

    @property
    def residual(self) -> bool:
        return self.merge in ("add", "gate") and self.shortcut is not None


def make_act(kind: str, inplace: bool = True) -> "nn.Module":
    import torch.nn as nn

    if kind == "relu":
        return nn.ReLU(inplace=inplace)
    if kind == "leaky_relu":
        return nn.LeakyReLU(current_style().leaky_slope, inplace=inplace)
    if kind == "silu":
        return nn.SiLU(inplace=inplace)
    if kind == "gelu":
        return nn.GELU()
    return nn.Identity()


@dataclass(frozen=True)
class LayerStyle:
    """How records become modules network-wide: the spec's `norm:` and `leaky_slope`. It changes no count, so
    the planner and the counter never read it; the builder sets it while it makes a network's modules."""

    norm: str = "batch"  # batch, group, frozen_batch
    groups: int = 32
    leaky_slope: float = LEAKY_SLOPE


_STYLE: contextvars.ContextVar[LayerStyle] = contextvars.ContextVar("archgen_layer_style", default=LayerStyle())


def current_style() -> LayerStyle:
    return _STYLE.get()


@contextlib.contextmanager
def layer_style(style: LayerStyle) -> Iterator[None]:
    """Make modules in this style (the builder's `with`, around one network)."""
    token = _STYLE.set(style)
    try:
        yield
    finally:
        _STYLE.reset(token)
