"""A highway network's gated merge (Srivastava et al. 2015): y = H(x) T(x) + carry(x) (1 - T(x)), the transform
gate T(x) = sigmoid(conv(x) + b_T) learned beside the branch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from archgen.layer_kinds.act import Act
from archgen.layer_kinds.base import MergeKind, merge_kind
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.merges import carry
from archgen.layer_kinds.plain import Sequence

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from archgen.tally import Tally


@merge_kind("gate")
@dataclass(frozen=True)
class Gate(MergeKind):
    """The gate's conv reads the same tensor as the shortcut, from the block's input to its output channels
    at its stride, with a bias initialised to `bias` (negative: the block starts out carrying its input;
    'b_T can be initialized with a negative value (e.g. -1, -3 etc.)', Sec. 2.2).

    Counted: the gate (conv with bias, sigmoid), 1 - T, the products H * T and carry * (1 - T), and their sum.
    fuse leaves a gated block eager: the kernel adds a shortcut, it does not gate one; and deleting its branch
    would leave carry * (1 - T), not the carry, so a lesion may not."""

    residual = True
    shortcut_text = "gated (highway)"
    reads_split = True
    unit = "highway_gate"  # one kernel unit: the conv, sigmoid, products and sum

    name: str
    c_in: int
    c_out: int
    k: int
    stride: int
    bias: float

    def transform(self) -> Sequence:
        return Sequence(self.name, (Conv("conv", self.c_in, self.c_out, self.k, self.stride, bias=True),
                                    Act("sigmoid", self.c_out, "sigmoid")))

    def cost(self, t: "Tally", c: int, h: int, w: int, hb: int, wb: int) -> None:
        ho, wo = self.transform().cost(t, h, w)
        for name, op in (("carry_gate", "add"), ("transform", "mul"), ("carry", "mul"), ("add", "add")):
            t.record(name, op, 0, 0, 0, c * ho * wo, (c, ho, wo))

    def module(self) -> Optional["nn.Module"]:
        import torch.nn as nn

        gate = self.transform().module()
        nn.init.constant_(gate.conv.bias, self.bias)
        return gate

    def join(self, block: "nn.Module", x: "torch.Tensor", pre: "torch.Tensor", out: "torch.Tensor") -> "torch.Tensor":
        t = getattr(block, self.name)(pre if block.split == "pre" else x)
        return block.drop_path(out) * t + carry(block, x, pre) * (1 - t)
