"""Activations, one record kind with a row per function: what torch module computes it, whether it may run in
place, and whether the fused kernel computes it too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from archgen.layer_kinds.base import LayerKind, current_style, layer_kind

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.tally import Tally


@dataclass(frozen=True)
class Function:
    #: The torch.nn class.
    module: str
    #: Whether the class takes `inplace`.
    inplace: bool
    #: Whether bn_act computes it (then fuse may take it into a kernel pass).
    kernel: bool
    #: Whether it reads the spec's `leaky_slope`.
    slope: bool = False
    #: Whether it does any work (counted as one op per element).
    counted: bool = True


FUNCTIONS: dict[str, Function] = {
    "relu": Function("ReLU", inplace=True, kernel=True),
    "leaky_relu": Function("LeakyReLU", inplace=True, kernel=True, slope=True),
    "silu": Function("SiLU", inplace=True, kernel=True),
    # MobileNetV2's clipped ReLU, and MobileNetV3's piecewise-linear swish and sigmoid (Howard et al. 2019,
    # Sec. 5.2): x * relu6(x + 3) / 6 and relu6(x + 3) / 6. The kernel computes the first two after a BN; the
    # hard sigmoid is only ever an SE gate, which runs in PyTorch.
    "relu6": Function("ReLU6", inplace=True, kernel=True),
    "hardswish": Function("Hardswish", inplace=True, kernel=True),
    "hardsigmoid": Function("Hardsigmoid", inplace=True, kernel=False),
    "gelu": Function("GELU", inplace=False, kernel=False),
    "sigmoid": Function("Sigmoid", inplace=False, kernel=False),
    "none": Function("Identity", inplace=False, kernel=True, counted=False),
}


@layer_kind("act")
@dataclass(frozen=True)
class Act(LayerKind):
    fusable = "act"

    name: str
    c: int
    kind: str = "relu"  # a key of FUNCTIONS

    def cost(self, t: "Tally", h: int, w: int) -> tuple[int, int]:
        if FUNCTIONS[self.kind].counted:
            t.record(self.name, "act", 0, 0, 0, self.c * h * w, (self.c, h, w))
        return h, w

    def module(self, first: bool = False) -> "nn.Module":
        import torch.nn as nn

        f = FUNCTIONS[self.kind]
        args = (current_style().leaky_slope,) if f.slope else ()
        return getattr(nn, f.module)(*args, **({"inplace": not first} if f.inplace else {}))

    def kernel_act(self, module: "nn.Module") -> Optional[tuple[str, float]]:
        """The kernel's name for this act and its slope (the built module's: the spec's `leaky_slope`), or None
        when the kernel does not compute it."""
        if not FUNCTIONS[self.kind].kernel:
            return None
        return self.kind, float(getattr(module, "negative_slope", 0.0))
