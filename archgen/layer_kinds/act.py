"""Activations, one record kind with a row per function: what torch module computes it, whether it may run in
place, and whether the fused kernel computes it too."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from archgen.layer_kinds.base import LayerKind, current_style, layer_kind

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from archgen.tally import Tally


@dataclass(frozen=True)
class Function:
    #: The torch.nn class.
    module: str
    #: torch.nn.functional's name for it (fuse's eager paths call it where no kernel runs); None: the identity.
    functional: Optional[str]
    #: Whether the class and the function take `inplace`.
    inplace: bool
    #: Whether bn_act computes it (then fuse may take it into a kernel pass; archgen.kernels.bn_act.ACTS holds
    #: its code, and the kernel's body its arithmetic).
    kernel: bool
    #: Whether it reads the spec's `leaky_slope`.
    slope: bool = False
    #: Whether it does any work (counted as one op per element).
    counted: bool = True
    #: Only ever a squeeze-and-excitation gate: a spec names it as `se_gate`, never as an `act`.
    gate: bool = False
    #: How torch's exporter writes it at archgen's opset: onnx(g, x) -> y through a graph writer's `op` and
    #: `const` (archgen.bench.kernel_timing's, which times a kernel as the runtimes run it in a network).
    onnx: Callable[[Any, str], str] = field(default=lambda g, x: x, compare=False)


def _onnx_gelu(g: Any, x: str) -> str:
    """The exact GELU, x * (1 + erf(x / sqrt(2))) / 2."""
    erf = g.op("Erf", g.op("Div", x, g.const((), fill=math.sqrt(2))))
    return g.op("Mul", g.op("Mul", x, g.op("Add", erf, g.const((), fill=1.0))), g.const((), fill=0.5))


#: Every activation, by the name a spec writes (in this order, the grammar's lists and errors name them).
FUNCTIONS: dict[str, Function] = {
    "relu": Function("ReLU", "relu", inplace=True, kernel=True, onnx=lambda g, x: g.op("Relu", x)),
    "leaky_relu": Function("LeakyReLU", "leaky_relu", inplace=True, kernel=True, slope=True,
                           onnx=lambda g, x: g.op("LeakyRelu", x, alpha=0.1)),
    "silu": Function("SiLU", "silu", inplace=True, kernel=True, onnx=lambda g, x: g.op("Mul", x, g.op("Sigmoid", x))),
    "gelu": Function("GELU", "gelu", inplace=False, kernel=False, onnx=_onnx_gelu),
    # MobileNetV2's clipped ReLU, and MobileNetV3's piecewise-linear swish and sigmoid (Howard et al. 2019,
    # Sec. 5.2): x * relu6(x + 3) / 6 and relu6(x + 3) / 6. The kernel computes the first two after a BN; the
    # hard sigmoid is only ever an SE gate, which runs in PyTorch.
    "relu6": Function("ReLU6", "relu6", inplace=True, kernel=True,
                      onnx=lambda g, x: g.op("Clip", x, g.const((), fill=0.0), g.const((), fill=6.0))),
    "hardswish": Function("Hardswish", "hardswish", inplace=True, kernel=True,
                          onnx=lambda g, x: g.op("HardSwish", x)),
    "none": Function("Identity", None, inplace=False, kernel=True, counted=False),
    "sigmoid": Function("Sigmoid", "sigmoid", inplace=False, kernel=False, gate=True,
                        onnx=lambda g, x: g.op("Sigmoid", x)),
    "hardsigmoid": Function("Hardsigmoid", "hardsigmoid", inplace=True, kernel=False, gate=True,
                            onnx=lambda g, x: g.op("HardSigmoid", x, alpha=1 / 6)),
}

#: What a spec may write as an `act`, and as an SE's `se_gate` (grammar.schema's Act and Gate).
ACT_NAMES = tuple(name for name, f in FUNCTIONS.items() if not f.gate)
GATE_NAMES = tuple(name for name, f in FUNCTIONS.items() if f.gate)


def apply_act(kind: str, y: "torch.Tensor", slope: float = 0.0, inplace: bool = False) -> "torch.Tensor":
    """`kind` applied to y with torch's function for it (where fuse runs no kernel), the module's arithmetic;
    `slope` for the leaky ReLU."""
    f = FUNCTIONS[kind]
    if f.functional is None:
        return y
    import torch.nn.functional as F

    return getattr(F, f.functional)(y, *((slope,) if f.slope else ()), **({"inplace": inplace} if f.inplace else {}))


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
