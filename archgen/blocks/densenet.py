"""DenseNet (Huang et al. 2017): the dense layer (BN-ReLU-1x1-BN-ReLU-3x3, its
output concatenated to its input) and the transition between dense blocks.

Downsampling, as the paper lays a DenseNet out: every dense stage after the
first begins with a transition (BN-ReLU-1x1 conv to floor(compression * c)
channels, then average pooling by the stage's stride, 2 unless the stage says
otherwise; stride 1 keeps the size and leaves the pool out). The first dense
stage has no transition before it, so it cannot stride: the stem downsamples.
Each stage's output is a dense block's, as a backbone wants it. Module names
are torchvision's within a layer (norm1, relu1, conv1, norm2, relu2, conv2).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from archgen.blocks.common import dropout_field
from archgen.blocks.registry import Family, Placement, PlannedBlock, register_block
from archgen.grammar.schema import MAX_WIDTH, spec_field
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.merges import CONCAT
from archgen.layer_kinds.norm import Norm
from archgen.layer_kinds.plain import Dropout
from archgen.layer_kinds.pool import Pool


def compression_field() -> float:
    return spec_field(0.5, doc="DenseNet-C: a transition keeps floor(compression * c) channels.", example=0.5,
                      minimum=0, maximum=1, exclusive_minimum=True)


@register_block("dense")
@dataclass(frozen=True)
class Dense(Family):
    """One dense layer; a stage of `depth` of them is a dense block, after a transition from the previous stage."""

    final_norm = True
    residual = False
    stage_fields = frozenset({"stride"})
    network_fields = frozenset()

    growth_rate: int = spec_field(32, doc="DenseNet's k: channels each dense layer adds (scaled by the width "
                                          "multiplier).", example=32, minimum=1, maximum=MAX_WIDTH)
    bn_size: int = spec_field(4, doc="DenseNet-B bottleneck: the 1x1 conv has bn_size * k channels; 0 drops the "
                                     "1x1 conv (plain DenseNet).", example=4, minimum=0, maximum=64)
    compression: float = compression_field()
    dropout: float = dropout_field("Dropout after each conv (the paper's, without data augmentation).")

    def out_chs(self, at: Placement) -> int:
        return at.in_chs + self.growth_rate

    def default_stride(self, stage_index: int) -> int:
        return 2 if stage_index > 0 else 1

    def stride_problem(self, stride: int, stage_index: int) -> str | None:
        if stage_index == 0 and stride != 1:
            return ("the first dense stage has no transition before it, so it cannot downsample; leave its "
                    "stride at 1 and let the stem downsample (later dense stages stride in their transition)")
        return None

    def scaled(self, scale_width: Callable[[int], int]) -> "Dense":
        return dataclasses.replace(self, growth_rate=scale_width(self.growth_rate))

    def expand_stage(self, at: Placement, depth: int, stage_index: int) -> list[PlannedBlock]:
        blocks: list[PlannedBlock] = []
        in_chs = at.in_chs
        if stage_index > 0:
            transition = PlannedBlock(Transition(self.compression, self.dropout), at)
            blocks.append(transition)
            in_chs = transition.out_chs
        for _ in range(depth):
            layer = PlannedBlock(self, at.moved(in_chs=in_chs, stride=1))
            blocks.append(layer)
            in_chs = layer.out_chs
        return blocks

    def layers(self, at: Placement) -> BlockLayers:
        k, c, layers = self.growth_rate, at.in_chs, []
        convs = ([Conv("conv1", c, self.bn_size * k, 1), Conv("conv2", self.bn_size * k, k, 3)]
                 if self.bn_size > 0 else [Conv("conv1", c, k, 3)])
        for i, conv in enumerate(convs, 1):
            layers += [Norm(f"norm{i}", conv.c_in), Act(f"relu{i}", conv.c_in), conv]
            if self.dropout > 0:
                layers.append(Dropout(f"drop{i}", self.dropout))  # after each conv, as in the paper
        return BlockLayers(branch=tuple(layers), merge=CONCAT)

    def notation(self, at: Placement) -> str:
        if self.bn_size > 0:
            return f"1x1, {self.bn_size * self.growth_rate}; 3x3, {self.growth_rate}"
        return f"3x3, {self.growth_rate}"


@register_block("transition")
@dataclass(frozen=True)
class Transition(Family):
    """Between dense blocks: BN-ReLU-1x1 conv (compression), average pool by the stride. Placed by `dense`."""

    residual = False
    internal = True
    network_fields = frozenset()

    compression: float = compression_field()
    dropout: float = dropout_field("Dropout after the conv.")

    def out_chs(self, at: Placement) -> int:
        return max(1, math.floor(at.in_chs * self.compression))

    def layers(self, at: Placement) -> BlockLayers:
        out = self.out_chs(at)
        layers: list = [Norm("norm", at.in_chs), Act("relu", at.in_chs), Conv("conv", at.in_chs, out, 1)]
        if self.dropout > 0:
            layers.append(Dropout("drop", self.dropout))
        if at.stride > 1:
            layers.append(Pool("pool", out, "avg", at.stride, at.stride))
        return BlockLayers(branch=tuple(layers))

    def notation(self, at: Placement) -> str:
        pool = f"; {at.stride}x{at.stride} avg pool, stride {at.stride}" if at.stride > 1 else ""
        return f"1x1, {self.out_chs(at)}{pool}"
