"""What the residual families share: their common fields, the shortcut rule and the tail after the add.
Pure Python: these make layer records, never modules."""

from __future__ import annotations

from typing import Any, Optional

from archgen.blocks.registry import Placement
from archgen.grammar.schema import MAX_WIDTH, Act as ActKind, spec_field
from archgen.layer_kinds.act import ACT_NAMES, FUNCTIONS, Act
from archgen.layer_kinds.base import LayerKind, MergeKind
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.merges import ADD, NO_MERGE
from archgen.layer_kinds.norm import Norm
from archgen.layer_kinds.plain import Identity, Sequence
from archgen.layer_kinds.pool import Pool
from archgen.layer_kinds.zero_pad import ZeroPad


def act_field(default: str = "relu") -> Any:
    names = [f"'{name}'" + (" (slope: the spec's `leaky_slope`)" if FUNCTIONS[name].slope else "")
             for name in ACT_NAMES]
    return spec_field(default, doc=f"Activation: {', '.join(names[:-1])} or {names[-1]}.", example=default)


def cardinality_field() -> Any:
    return spec_field(1, doc="Groups of the 3x3 convs (ResNeXt's C).", example=32, minimum=1, maximum=MAX_WIDTH)


def width_factor_field(doc: str) -> Any:
    return spec_field(1.0, doc=doc, example=2, minimum=0, maximum=64, exclusive_minimum=True)


def dropout_field(doc: str) -> Any:
    return spec_field(0.0, doc=doc, example=0.3, minimum=0, maximum=0.99)


def expansion_field(default: int) -> Any:
    return spec_field(default, doc=f"Output channels = width * expansion (default {default}).", example=default,
                      minimum=1, maximum=64)


def base_width_field() -> Any:
    return spec_field(64, doc="Width of each group at a stage of width 64 (ResNeXt's d); the 3x3 conv has "
                              "int(width * base_width / 64 * width_factor) * cardinality channels.",
                      example=4, minimum=1, maximum=MAX_WIDTH)


def changes_shape(at: Placement, out_chs: int) -> bool:
    return at.stride != 1 or at.in_chs != out_chs


def residual_merge(at: Placement) -> MergeKind:
    """The add of a residual block, or none at all for `shortcut: none` (a plain net)."""
    return NO_MERGE if at.shortcut == "none" else ADD


def shortcut_layers(at: Placement, out_chs: int, norm: bool = True) -> Optional[LayerKind]:
    """The shortcut as `BlockLayers.shortcut`: None for the identity (or no shortcut), else the `downsample`.

    `norm=False` leaves out the BN after a projection, as pre-activation units do (He et al. 2016's code).
    Layer names are torchvision's (`downsample.0` conv, `.1` BN) and timm's for ResNet-D (`.0` pool, `.1`
    conv, `.2` BN, with an identity at `.0` when the block does not stride).
    """
    if at.shortcut == "none" or not changes_shape(at, out_chs):
        return None
    if at.shortcut == "zero_pad":
        return ZeroPad("downsample", at.stride, out_chs - at.in_chs)
    layers: list[LayerKind] = []
    if at.shortcut == "avgpool_projection":
        layers.append(Pool("0", at.in_chs, "avg", 2, at.stride, ceil_mode=True, count_include_pad=False)
                      if at.stride > 1 else Identity("0"))
        layers.append(Conv("1", at.in_chs, out_chs, 1))
    else:
        layers.append(Conv("0", at.in_chs, out_chs, 1, at.stride))
    if norm:
        layers.append(Norm(str(len(layers)), out_chs))
    return Sequence("downsample", tuple(layers))


def shortcut_problem(at: Placement, out_chs: int) -> tuple[str, str] | None:
    if at.shortcut == "zero_pad" and out_chs < at.in_chs:
        return ("width", f"a zero-padding shortcut cannot shrink {at.in_chs} channels to {out_chs}; "
                         "use shortcut: projection")
    return None


def conv_bn_act(index: int, c_in: int, c_out: int, k: int, act: ActKind, *, stride: int = 1, groups: int = 1,
                dilation: int = 1, with_act: bool = True) -> list:
    """conv{i}, bn{i}[, act{i}]: torchvision's names."""
    layers: list = [Conv(f"conv{index}", c_in, c_out, k, stride, groups, dilation), Norm(f"bn{index}", c_out)]
    if with_act:
        layers.append(Act(f"act{index}", c_out, act))
    return layers


def groups_suffix(cardinality: int, dilation: int) -> str:
    out = f", C={cardinality}" if cardinality > 1 else ""
    return out + (f", dilation {dilation}" if dilation > 1 else "")
