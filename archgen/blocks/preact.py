"""Full pre-activation units (He et al. 2016, "Identity Mappings in Deep Residual
Networks", Fig. 4e): BN-ReLU-conv, twice (basic) or three times (bottleneck),
added to the shortcut with nothing after the add. The network ends with one
more BN-ReLU before the head (`final_norm`).

Where the pre-activation sits follows the authors' code (fb.resnet.torch
`preresnet.lua`, KaimingHe/resnet-1k-layers):
- a unit that changes shape pre-activates its input *before* the split, so its
  projection shortcut (a 1x1 conv without BN) sees the activated input;
- the network's first unit does the same after a stem that ends in a bare conv
  ("we adopt the first activation right after conv1 and before splitting into
  two paths"), and has no pre-activation at all after a stem that already ends
  in BN-ReLU (fb.resnet.torch's 'no_preact' first unit);
- every other unit pre-activates its residual branch only, so its shortcut is
  an identity.

With `width_factor` and `dropout`, `preact_basic` is the Wide ResNet block
(Zagoruyko and Komodakis 2016): dropout between the two convs, after the ReLU.
Layer names: bn1/act1 (the pre-activation), then conv1, bn2, act2, conv2, ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from archgen.blocks.common import changes_shape, residual_merge, shortcut_layers
from archgen.blocks.registry import Placement, register_block
from archgen.blocks.resnet import Basic, Bottleneck, dropout_layers
from archgen.grammar.schema import Act as ActKind
from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.norm import Norm


def preact_mode(at: Placement, out_chs: int) -> str:
    """'both' (activate before the split), 'branch' (activate the branch only) or 'none' (the stem did it)."""
    if at.input_from == "stem_act":
        return "none"
    if at.input_from == "stem" or changes_shape(at, out_chs):
        return "both"
    return "branch"


def renumbered(layers: list) -> list:
    """conv{i} keeps its name, bn{i}/act{i} become bn{i+1}/act{i+1}: bn1 is the pre-activation's."""
    out = []
    for layer in layers:
        if layer.name[:-1] in ("bn", "act"):
            layer = dataclasses.replace(layer, name=f"{layer.name[:-1]}{int(layer.name[-1]) + 1}")
        out.append(layer)
    return out


def preact_block(convs: list, at: Placement, in_chs: int, out_chs: int, act: ActKind) -> BlockLayers:
    """BN-act, then the convs each preceded by BN-act (conv, [BN, act, conv]...), added to the shortcut."""
    mode = preact_mode(at, out_chs)
    pre = () if mode == "none" else (Norm("bn1", in_chs), Act("act1", in_chs, act))
    return BlockLayers(branch=tuple(convs), pre=pre, shortcut=shortcut_layers(at, out_chs, norm=False),
                       merge=residual_merge(at), split="pre" if mode == "both" else "input", survival=at.survival,
                       inverted_drop=at.inverted_drop)


@register_block("preact_basic")
@dataclass(frozen=True)
class PreActBasic(Basic):
    """BN-ReLU-3x3 conv, twice (pre-activation ResNet-110 on CIFAR; Wide ResNets with width_factor and dropout)."""

    final_norm = True

    def layers(self, at: Placement) -> BlockLayers:
        first, second = self.convs(at)  # conv1, bn1, act1 | conv2, bn2
        conv1, bn, act = renumbered(first)
        branch = [conv1, bn, act, *dropout_layers(self.dropout), second[0]]
        return preact_block(branch, at, at.in_chs, self.out_chs(at), self.act)


@register_block("preact_bottleneck")
@dataclass(frozen=True)
class PreActBottleneck(Bottleneck):
    """BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (pre-activation ResNet-164/1001 on CIFAR, ResNet-200 on ImageNet)."""

    final_norm = True

    def layers(self, at: Placement) -> BlockLayers:
        reduce, middle, expand = self.convs(at)
        branch = [*renumbered(reduce), *renumbered(middle), *dropout_layers(self.dropout), expand[0]]
        return preact_block(branch, at, at.in_chs, self.out_chs(at), self.act)
