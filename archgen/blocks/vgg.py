"""VGG (Simonyan and Zisserman 2014, arXiv:1409.1556): stages of plain convs with ReLU, each stage ending in
2x2 max-pooling with stride 2, and no shortcuts.

A `vgg` stage of depth N is N conv layers (conv-[BN]-ReLU, the convs with bias as in the paper and in
torchvision) at the stage's width, then the max-pool (a stage's stride, 2 by default; stride 1 leaves the
pool out). The paper's configurations are fields: `batch_norm` (torchvision's vgg*_bn), `lrn` (A-LRN's local
response normalisation after the first layer), `last_kernel` (C's 1x1 conv ending stages 3-5). Layer names
are conv, bn, act, lrn; each layer is one block, so a lesion can delete one of a stage's repeated convs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from archgen.blocks.common import act_field
from archgen.blocks.registry import Family, Placement, PlannedBlock, register_block
from archgen.grammar.schema import Act as ActKind, spec_field
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.norm import LocalResponseNorm, Norm
from archgen.layer_kinds.pool import Pool

#: The paper's pooling: max-pooling over a 2 x 2 window with stride 2 (Sec. 2.1; torchvision's MaxPool2d(2, 2)).
POOL_STRIDE = 2


@register_block("vgg")
@dataclass(frozen=True)
class VGGLayer(Family):
    """One conv layer of a VGG stage: conv (with bias), BN (batch_norm), activation, LRN (lrn)."""

    residual = False
    stage_fields = frozenset({"width", "stride"})
    network_fields = frozenset()

    batch_norm: bool = spec_field(False, doc="Batch norm after each conv, before the activation (torchvision's "
                                             "vgg11_bn ... vgg19_bn; the paper has none).", example=True)
    lrn: bool = spec_field(False, doc="Local response normalisation (AlexNet's: n = 5, alpha = 1e-4, beta = "
                                      "0.75, k = 2) after the stage's first layer: configuration A-LRN's "
                                      "first stage.", example=True)
    last_kernel: int = spec_field(3, doc="Kernel of the stage's last conv (the others are 3x3): configuration "
                                         "C ends stages 3-5 with a 1x1 conv.", example=1, minimum=1, maximum=7)
    act: ActKind = act_field()

    def out_chs(self, at: Placement) -> int:
        return at.width

    def check(self, at: Placement) -> tuple[str, str] | None:
        if self.last_kernel % 2 == 0:
            return "last_kernel", (f"found {self.last_kernel}; a conv pads by (k - 1) / 2 to keep the map's "
                                   "size, which needs an odd kernel: use 1 or 3")
        return None

    def default_stride(self, stage_index: int) -> int:
        return POOL_STRIDE

    def stride_problem(self, stride: int, stage_index: int) -> str | None:
        if stride not in (1, POOL_STRIDE):
            return (f"found {stride}; a VGG stage ends in the paper's 2x2 max-pool with stride 2, or with no "
                    "pool at stride 1")
        return None

    def expand_stage(self, at: Placement, depth: int, stage_index: int) -> list[PlannedBlock]:
        """depth conv layers, then the max-pool. Each placed layer carries its own kernel and LRN in the
        stage's fields: the last keeps `last_kernel` (the others 3), the first keeps `lrn` (the others none),
        so equal layers compare (and are counted) as equal."""
        blocks = []
        in_chs = at.in_chs
        for i in range(depth):
            layer = dataclasses.replace(self, lrn=self.lrn and i == 0,
                                        last_kernel=self.last_kernel if i == depth - 1 else 3)
            blocks.append(PlannedBlock(layer, at.moved(in_chs=in_chs, stride=1)))
            in_chs = at.width
        if at.stride > 1:
            blocks.append(PlannedBlock(MaxPool(), at.moved(in_chs=in_chs)))
        return blocks

    def layers(self, at: Placement) -> BlockLayers:
        layers: list = [Conv("conv", at.in_chs, at.width, self.last_kernel, bias=True)]
        if self.batch_norm:
            layers.append(Norm("bn", at.width))
        layers.append(Act("act", at.width, self.act))
        if self.lrn:
            layers.append(LocalResponseNorm("lrn", at.width))
        return BlockLayers(branch=tuple(layers))

    def notation(self, at: Placement) -> str:
        """The paper's 'conv<receptive field>-<channels>', e.g. 'conv3-64', 'conv1-256', 'conv3-64, LRN'."""
        return f"conv{self.last_kernel}-{at.width}" + (", LRN" if self.lrn else "")


@register_block("maxpool")
@dataclass(frozen=True)
class MaxPool(Family):
    """The max-pool ending a VGG stage (window and stride: the stage's stride). Placed by `vgg`."""

    residual = False
    internal = True
    network_fields = frozenset()

    def out_chs(self, at: Placement) -> int:
        return at.in_chs

    def layers(self, at: Placement) -> BlockLayers:
        return BlockLayers(branch=(Pool("pool", at.in_chs, "max", at.stride, at.stride),))

    def notation(self, at: Placement) -> str:
        return "maxpool"
