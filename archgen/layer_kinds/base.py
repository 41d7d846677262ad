"""What a layer kind and a merge kind declare, the registries that check it, and the style records are built in.

Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Optional, TypeVar

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from archgen.tally import Tally

#: DarkNet's leaky ReLU slope (YOLOv3).
LEAKY_SLOPE = 0.1

#: What `archgen.fuse` and the kernel units may do with a layer (a kind's `fusable`), one word each:
FUSE_ROLES = {
    "conv": "a conv the kernel may end: with the norm and act after it, or with its own bias and the act after it",
    "norm": "a norm the kernel may apply as a per-channel scale and shift, or fold into the conv before it, when "
            "its module keeps running statistics (batch norm, frozen or not; group norm does not)",
    "act": "an activation the kernel may apply after a norm or a conv's bias (`kernel_act(module)` says which, "
           "or None for one it does not compute)",
    "gate": "a squeeze-and-excitation gate (children fc1, act, fc2) the kernel may apply to a conv-norm output "
            "before the add",
    "drop": "nothing in eval mode (dropout, identity): fuse leaves it out",
    "sequence": "a run of records (its `layers`), fused in turn",
}

#: What fuse may do with a block's merge (a merge kind's `fusable`):
MERGE_ROLES = {
    "run": "no merge: pre-activation, branch and the layers after it are one run",
    "join": "the branch is fused and the merge runs in PyTorch after it (a concat)",
    "add": "the kernel may add the shortcut in the branch's last norm-act pass",
}


class LayerKind:
    """A layer kind: a frozen dataclass subclass registered with `@layer_kind`. Its `name` is its module's
    name, so counts, modules, state-dict keys and other counters' per-module figures line up by name."""

    name: str
    #: A key of FUSE_ROLES, or None: fuse leaves the layer eager.
    fusable: ClassVar[Optional[str]] = None
    #: The weight layers it puts on a path (a conv or a linear layer: 1), what a network's depth counts.
    weight_layers: ClassVar[int] = 0
    #: Its weight is what `zero_init_last` zeroes when it is the last such layer of a residual branch.
    scales_output: ClassVar[bool] = False
    #: Why torch's ONNX exporter may refuse a network with this layer, and what to do instead ("": no known case).
    onnx_note: ClassVar[str] = ""
    #: The kernel kind (archgen.bench.unit_kinds) the record runs as on its own; by default the name it is
    #: registered by.
    unit: ClassVar[str] = ""

    def unit_kind(self, h_out: int, w_out: int, norm: str) -> str:
        """The kernel kind this record runs as, given its output size and the network's norm kind ('norm', or
        'group_norm' for group norm, a kernel of another kind)."""
        return self.unit

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        """Record the layer's figures in `t` for an input of h x w; return its output size."""
        raise NotImplementedError

    def module(self, first: bool = False) -> "nn.Module":
        """The torch module, initialised (`first`: it reads a tensor the caller still needs, so nothing may run
        in place). The only place a kind imports torch."""
        raise NotImplementedError

    def leaves(self) -> tuple["LayerKind", ...]:
        """The plain records this one stands for: itself, or a sequence's own (the planner's checks read every
        conv and norm wherever it sits)."""
        return (self,)


class MergeKind:
    """A merge kind: how a block joins its branch with what the branch started from, registered with
    `@merge_kind`."""

    #: The module name of the merge's own weights (a highway gate's); a merge without weights has none.
    name: str
    #: Whether it adds a shortcut (what stochastic depth drops and a lesion may delete).
    residual: ClassVar[bool] = False
    #: A key of MERGE_ROLES, or None: fuse leaves the whole block eager.
    fusable: ClassVar[Optional[str]] = None
    #: Whether deleting the branch leaves the shortcut as it is (a lesion's premise).
    branch_deletable: ClassVar[bool] = False
    #: What a lesion calls a shortcut this merge joins when deleting the branch would not leave it (a gate's).
    shortcut_text: ClassVar[str] = ""
    #: The kernel kind (archgen.bench.unit_kinds) the merge runs as; by default the name it is registered by.
    unit: ClassVar[str] = ""
    #: Whether the merge's own kernel reads the tensor the shortcut reads (the block's input, or its pre-activated
    #: input), at the merge's `stride`, as a highway gate's conv does; else it reads the branch's output.
    reads_split: ClassVar[bool] = False

    def cost(self, t: "Tally", c: int, h: int, w: int, hb: int, wb: int) -> None:
        """Record the merge's figures: the block's input (after any pre-activation) is h x w, the branch's
        output c x hb x wb."""

    def out_channels(self, c_in: int, c_branch: int) -> int:
        """The merged tensor's channels, from the block's input's and the branch's output's (what the layers
        after the merge, and the next block, read)."""
        return c_branch

    def module(self) -> Optional["nn.Module"]:
        """The merge's own weights as a module named `name`, or None."""
        return None

    def join(self, block: "nn.Module", x: "torch.Tensor", pre: "torch.Tensor", out: "torch.Tensor") -> "torch.Tensor":
        """The merged tensor of a block whose input is x, pre-activated input `pre` and branch output `out`
        (the block's `split`, `downsample`, `drop_path` and merge module are the merge's to read)."""
        raise NotImplementedError


K = TypeVar("K", bound=type)

#: Every registered kind, by name (archgen.layer_kinds lists them).
LAYER_KINDS: dict[str, type] = {}
MERGE_KINDS: dict[str, type] = {}


def _register(registry: dict[str, type], roles: dict[str, str], base: type, what: str, name: str) -> Callable[[K], K]:
    def add(cls: K) -> K:
        role = getattr(cls, "fusable", None)
        if not issubclass(cls, base) or not (role is None or role in roles):
            raise TypeError(f"{what} '{name}' ({cls.__qualname__}) must subclass {base.__name__} and declare "
                            f"fusable as one of {', '.join(roles)} or None, not {role!r}")
        if name in registry:
            raise TypeError(f"{what} '{name}' is registered twice ({registry[name].__qualname__}, "
                            f"{cls.__qualname__})")
        registry[name] = cls
        if "unit" not in cls.__dict__:
            cls.unit = name
        return cls

    return add


def layer_kind(name: str) -> Callable[[K], K]:
    """Class decorator: a layer kind, checked to be one and to name a role fuse knows (a typo in `fusable`
    would otherwise leave the layer eager without a word)."""
    return _register(LAYER_KINDS, FUSE_ROLES, LayerKind, "layer kind", name)


def merge_kind(name: str) -> Callable[[K], K]:
    """Class decorator: a merge kind, checked likewise."""
    return _register(MERGE_KINDS, MERGE_ROLES, MergeKind, "merge kind", name)


@dataclass(frozen=True)
class LayerStyle:
    """How records become modules network-wide: the spec's `norm:` and `leaky_slope`. It changes no count, so
    the planner and the counter never read it; the builder sets it while it makes a network's modules."""

    norm: str = "batch"  # batch, group, frozen_batch
    groups: int = 32
    leaky_slope: float = LEAKY_SLOPE
    eps: float = 1e-5
    momentum: float = 0.1


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
