"""Highway shortcuts (Srivastava et al. 2015, "Highway Networks", arXiv:1505.00387, and "Training Very Deep
Networks", arXiv:1507.06228): the basic block's two 3x3 convs H, merged with the block's shortcut through a
learned transform gate, y = act(H(x) * T(x) + carry(x) * (1 - T(x))).

T(x) = sigmoid(conv(x) + b_T). The papers' convolutional highway layers give T a conv like H's: 'We used the
same sized receptive fields for both' (1507.06228, Sec. 2.1), so the gate is a 3x3 conv by default
(`gate_kernel: 1` for a cheaper 1x1 gate); it is a learned conv, not a per-channel affine. Its bias starts
negative, the carry bias: 'b_T can be initialized with a negative value (e.g. -1, -3 etc.) such that the
network is initially biased towards carry behavior' (1505.00387 and 1507.06228, Sec. 2.2); -1 by default.
carry(x) is the spec's shortcut: the identity where the shape holds, else zero padding or a projection, as
in the ResNet the block gates. The gate reads the block's input at the block's stride, so T has H's shape. The activation after the merge is
ResNet's, so a highway spec differs from its ResNet twin in the gates alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from archgen.blocks.registry import Placement, register_block
from archgen.blocks.resnet import Basic
from archgen.grammar.schema import spec_field
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.gate import Gate


@register_block("highway")
@dataclass(frozen=True)
class Highway(Basic):
    """ResNet's basic block with a gated shortcut: act(H(x) T(x) + carry(x) (1 - T(x)))."""

    gate_kernel: int = spec_field(3, doc="Kernel of the transform gate's conv: 3, the same receptive field as "
                                         "H's convs (Srivastava et al. 2015), or 1 for a 1x1 gate.", example=3,
                                  minimum=1, maximum=7)
    gate_bias: float = spec_field(-1.0, doc="Initial bias b_T of the transform gate; negative biases the block "
                                            "towards carrying its input ('e.g. -1, -3', Sec. 2.2).", example=-3,
                                  minimum=-20, maximum=20)

    def check(self, at: Placement) -> tuple[str, str] | None:
        if self.gate_kernel % 2 == 0:
            return "gate_kernel", (f"found {self.gate_kernel}; the gate pads by (k - 1) / 2 to keep H's size, "
                                   "which needs an odd kernel: use 1 or 3")
        return super().check(at)

    def layers(self, at: Placement) -> BlockLayers:
        plain = super().layers(at)
        if not plain.merge.residual:  # shortcut: none leaves nothing to gate
            return plain
        gate = Gate("gate", at.in_chs, self.out_chs(at), self.gate_kernel, at.stride, self.gate_bias)
        return dataclasses.replace(plain, merge=gate)

    def notation(self, at: Placement) -> str:
        return f"{super().notation(at)}; gate {self.gate_kernel}x{self.gate_kernel}, {self.out_chs(at)}"
