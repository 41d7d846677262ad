"""The grammar of a spec, as dataclasses: one definition feeds the validator,
the JSON Schema that editors use, and docs/spec.md's field list.

Every field carries its documentation, an example and its allowed range in the
dataclass metadata, so adding a field is one edit.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from archgen.layer_kinds.act import ACT_NAMES, GATE_NAMES
from archgen.memo import Memo

#: The activations a spec may name, read from the act kind's table (archgen.layer_kinds.act), so a new one is
#: one row there.
Act = Literal[ACT_NAMES]
#: What a squeeze-and-excitation gate applies to its excitation before scaling the input.
Gate = Literal[GATE_NAMES]
Shortcut = Literal["projection", "zero_pad", "avgpool_projection", "none"]
StrideOn = Literal["1x1", "3x3"]

#: Ranges are generous for research but keep a spec from asking for absurd work.
MAX_DEPTH = 2_000
MAX_WIDTH = 65_536


def spec_field(default: Any = None, *, doc: str, example: Any = None, minimum: float | None = None,
               maximum: float | None = None, exclusive_minimum: bool = False,
               required: bool = False, factory: Any = None) -> Any:
    """A dataclass field with the metadata the validator and docs read."""
    meta = {"doc": doc, "example": example, "minimum": minimum, "maximum": maximum,
            "exclusive_minimum": exclusive_minimum, "required": required}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Citation:
    """A paper, the table that prints this model, and the numbers it printed."""

    title: Optional[str] = spec_field(doc="Paper title.", example="Deep Residual Learning for Image Recognition")
    authors: Optional[str] = spec_field(doc="First author et al.", example="He et al.")
    year: Optional[int] = spec_field(doc="Year of the arXiv version cited.", example=2015, minimum=1950, maximum=2100)
    arxiv: Optional[str] = spec_field(doc="arXiv identifier.", example="1512.03385")
    table: Optional[str] = spec_field(doc="The table (or section) the spec reproduces.", example="Table 1")
    params: Optional[str] = spec_field(
        doc="Parameter count as printed, with its unit (K, M, G); its printed precision is the tolerance.",
        example="25.0M")
    macs: Optional[str] = spec_field(
        doc="Multiply-accumulates as printed (most ResNet-era papers call these 'FLOPs').", example="4.2G")
    flops: Optional[str] = spec_field(
        doc="Floating-point operations as printed, when the paper counts a multiply-add as two "
            "(YOLOv3's 'Bn Ops').", example="18.7G")
    acts: Optional[str] = spec_field(
        doc="Activations as printed (pycls's: output elements of every conv and linear layer).", example="3.1M")
    input_size: Optional[int] = spec_field(
        doc="Image side at which the printed MACs/FLOPs were measured (default: the spec's input.size).",
        example=224, minimum=1, maximum=8192)
    note: Optional[str] = spec_field(doc="Where the spec departs from the paper, or how a number was read.",
                                     example="FLOPs in the paper are multiply-adds.")
    unmet: Optional[list[Literal["params", "macs", "flops", "acts"]]] = spec_field(
        doc="Printed figures this architecture does not round to (a misprint, or a paper that truncates); `note` "
            "says why. Tests check that they are indeed off, so a fix to the spec shows up.", example=["macs"])


@dataclass
class Paper(Citation):
    """The paper the architecture comes from, and other papers that print numbers for it."""

    also: Optional[list[Citation]] = spec_field(
        doc="Other papers' tables that print this model's numbers (each number lives once, here).",
        example=[{"title": "Wide Residual Networks", "arxiv": "1605.07146", "table": "Table 8", "params": "25.6M"}])


@dataclass
class Input:
    """The images the network takes."""

    channels: int = spec_field(3, doc="Input channels.", example=3, minimum=1, maximum=1024)
    size: int = spec_field(224, doc="Image side in pixels (square), used for counting and checks.",
                           example=224, minimum=1, maximum=8192)
    classes: int = spec_field(1000, doc="Number of classes of the dataset.", example=1000, minimum=1,
                              maximum=1_000_000)


@dataclass
class Stem:
    """The layers before the first stage. A 'none' stem takes no other field."""

    type: str = spec_field("imagenet", doc="'imagenet' (7x7/2 conv, 3x3/2 max-pool), 'cifar' (3x3/1 conv; also "
                           "DarkNet's first layer), 'deep' (three 3x3 convs, the first with stride 2, then the "
                           "max-pool; ResNet-C), 'none' (no layers: the first stage reads the image; VGG).",
                           example="imagenet")
    kernel: Optional[int] = spec_field(doc="Kernel of the stem conv(s), overriding the type's (7 for 'imagenet', "
                                       "3 otherwise).", example=7, minimum=1, maximum=15)
    stride: Optional[int] = spec_field(doc="Stride of the stem's first conv, overriding the type's (2 for "
                                       "'imagenet' and 'deep', 1 for 'cifar'); DRN-C/D use a 7x7/1 conv.",
                                       example=1, minimum=1, maximum=8)
    width: int = spec_field(64, doc="Output channels of the stem.", example=64, minimum=1, maximum=MAX_WIDTH)
    deep_widths: Optional[list[int]] = spec_field(
        doc="'deep' stem only: widths of its first two convs (the third is 'width').", example=[32, 32], minimum=1, maximum=MAX_WIDTH)
    norm: bool = spec_field(True, doc="Batch norm and activation after the stem convs (false for pre-activation "
                            "CIFAR nets, whose first block normalises).", example=True)
    pool: Optional[bool] = spec_field(doc="Max-pool 3x3/2 after the convs (default: true for 'imagenet' and "
                                      "'deep', false for 'cifar').", example=True)
    act: Optional[Act] = spec_field(doc="The stem's activation (default: the first stage's block `act`); "
                                    "MobileNetV3's stem is h-swish before ReLU blocks.", example="hardswish")


@dataclass
class Block:
    """The block every stage repeats: its `type`, and the fields that type's family takes (listed per family
    below); a field the family does not take is an error."""

    #: Marks Block and Stage: their other keys are the family's own fields, validated against the family.
    family_args = True

    type: Optional[str] = spec_field(
        doc="A registered block type; each family, what it is and the fields it takes are listed under "
            "[Block families](#block-families).", example="bottleneck")
    #: The family's fields as written (name -> validated value); filled by the validator, not a key of its own.
    args: dict = field(default_factory=dict)


@dataclass
class Stage:
    """One stage: `depth` blocks at one width; the first block applies the stride. A stage may name its own
    `type` and override its family's fields; which of width, stride, dilation and first_dilation a stage
    takes depends on its family."""

    family_args = True

    depth: int = spec_field(None, doc="Number of blocks (dense layers for 'dense', residual units for "
                            "'darknet').", example=3, minimum=1, maximum=MAX_DEPTH, required=True)
    type: Optional[str] = spec_field(doc="This stage's block type, overriding `block.type` (the block's fields "
                                     "then do not apply to it).", example="conv")
    width: Optional[int] = spec_field(doc="The stage's width (ResNet's 'planes'; not taken by 'dense', whose "
                                      "width grows by the growth rate).", example=64, minimum=1, maximum=MAX_WIDTH)
    stride: Optional[int] = spec_field(doc="Stride of the stage's first block (default 1; 2 for a dense stage "
                                       "after the first, which strides in its transition).", example=2, minimum=1,
                                       maximum=8)
    dilation: Optional[int] = spec_field(doc="Dilation of the stage's 3x3 convs (dilated ResNets; default 1).",
                                         example=2, minimum=1, maximum=64)
    first_dilation: Optional[int] = spec_field(
        doc="Dilation of the first block's first 3x3 conv (default: the previous stage's dilation, as torchvision "
            "and timm do; DRN-A keeps 1, DRN-C/D use the stage's own).", example=2, minimum=1, maximum=64)
    args: dict = field(default_factory=dict)


#: The stage fields that place a block (the families say which they take).
PLACEMENT_FIELDS = ("width", "stride", "dilation", "first_dilation")


@dataclass
class Multipliers:
    """Scale depths and widths. Rule: depth -> max(round(d * depth), 1); width -> nearest multiple of 8, at
    least 8 and never 10% below w * width (a multiplier of 1 leaves every width as written; EfficientNet's
    round_filters is this rule)."""

    depth: float = spec_field(1.0, doc="Multiplies every stage depth.", example=0.5, minimum=0, maximum=100,
                              exclusive_minimum=True)
    width: float = spec_field(1.0, doc="Multiplies every stage and stem width.", example=1.5, minimum=0,
                              maximum=100, exclusive_minimum=True)


@dataclass
class StochasticDepth:
    """Huang et al. 2016: residual branches dropped at random while training."""

    final_survival: float = spec_field(0.5, doc="p_L: with the 'linear' rule the survival probability of the "
                                       "last block (block l of L survives with 1 - l/L * (1 - p_L)); with "
                                       "'uniform' every block's.", example=0.5, minimum=0, maximum=1,
                                       exclusive_minimum=True)
    rule: Literal["linear", "linear_from_zero", "linear_span", "uniform"] = spec_field(
        "linear", doc="'linear' decay (the paper's, l = 1..L), 'linear_from_zero' (torchvision's EfficientNet: "
                      "l counts from 0, so the first block always runs and the last survives with "
                      "1 - (L - 1)/L * (1 - p_L)), 'linear_span' (timm's drop_path_rate: block l = 0..L-1 drops "
                      "with l/(L - 1) * (1 - p_L), so the first always runs and the last survives with p_L) "
                      "or 'uniform'. L counts every block of the residual families, "
                      "those that cannot add their input included, as torchvision does.", example="linear")
    inverted: bool = spec_field(False, doc="Scale surviving branches by 1/p_l while training and run eval "
                                "unscaled (timm's convention) instead of scaling by p_l at eval (the paper's).",
                                example=False)
    per_sample: bool = spec_field(False, doc="Drop each sample's branch apart (torchvision's 'row' mode, timm's "
                                  "drop_path) instead of the whole mini-batch's at once (the paper's).",
                                  example=True)


@dataclass
class Head:
    """What follows the last stage."""

    pool: Literal["avg", "max", "none"] = spec_field("avg", doc="Pooling after the last stage (global, or to "
                                                     "`pool_size`).", example="avg")
    pool_size: int = spec_field(1, doc="Side of the pooled map: 1 pools globally; VGG's classifier pools "
                                "adaptively to 7x7 and flattens the 7 * 7 * c features (a smaller map is "
                                "repeated to fill the 7x7, as torch's adaptive pooling does).", example=7,
                                minimum=1, maximum=64)
    hidden: Optional[list[int]] = spec_field(doc="Widths of fully connected layers before the classifier, each "
                                             "followed by the network's activation and dropout (VGG's "
                                             "[4096, 4096]).", example=[4096, 4096], minimum=1,
                                             maximum=MAX_WIDTH)
    conv: Optional[int] = spec_field(doc="Width of a 1x1 conv, BN and the last block's activation before the "
                                     "pool (MobileNetV2's and EfficientNet-B0's 1280, MobileNetV3-Large's 960); "
                                     "scaled by the width multiplier.", example=1280, minimum=1,
                                     maximum=MAX_WIDTH)
    dropout: float = spec_field(0.0, doc="Dropout before the classifier (and after each hidden layer).",
                                example=0.2, minimum=0, maximum=0.99)
    classes: Optional[int] = spec_field(doc="Classifier outputs (default: input.classes; 0 for a backbone with "
                                        "no classifier).", example=1000, minimum=0, maximum=1_000_000)


@dataclass
class NormChoice:
    """The normalisation every norm layer of the network uses. Counts do not change with it (two parameters
    per channel, one op per element); `archgen.fuse` folds batch and frozen batch norm and leaves group norm
    eager."""

    type: Literal["batch", "group", "frozen_batch"] = spec_field(
        "batch", doc="'batch' (BatchNorm2d), 'group' (GroupNorm, Wu and He 2018) or 'frozen_batch' (batch norm "
                     "with fixed statistics and affine parameters, as detection backbones fine-tune).",
        example="group")
    groups: int = spec_field(32, doc="Groups of group norm (it must divide every normalised layer's channels).",
                             example=32, minimum=1, maximum=MAX_WIDTH)
    eps: float = spec_field(1e-5, doc="Batch norm's epsilon (torch's default 1e-5; MobileNetV3 as torchvision "
                            "builds it: 1e-3). It changes the logits of loaded weights, no count.", example=0.001,
                            minimum=0, maximum=1, exclusive_minimum=True)
    momentum: float = spec_field(0.1, doc="Batch norm's running-statistics momentum while training (torch's "
                                 "default 0.1; MobileNetV3: 0.01, MNASNet: 0.0003).", example=0.01, minimum=0,
                                 maximum=1)


@dataclass
class SpecDoc:
    """A whole spec as written (before `extends` and multipliers are applied)."""

    name: str = spec_field(None, doc="The model's name.", example="resnet50", required=True)
    description: Optional[str] = spec_field(doc="One line for people.", example="ResNet-50, torchvision layout")
    extends: Optional[str] = spec_field(doc="A bundled spec's name or a path (relative to this file) whose fields "
                                        "this one overrides.", example="resnet50")
    torchvision: Optional[str] = spec_field(doc="The torchvision model this spec equals, if any.",
                                            example="resnet50")
    paper: Optional[Paper] = spec_field(doc="The paper, its table and its printed numbers.", factory=None)
    input: Input = spec_field(doc="The input images.", factory=Input)
    stem: Stem = spec_field(doc="The stem.", factory=Stem)
    block: Block = spec_field(doc="The block type and its parameters.", factory=Block)
    stages: list[Stage] = spec_field(doc="The stages, in order; or a mapping naming one [stage rule](#stage-rules) "
                                     "that generates them (`{regnet: {...}}`).", factory=list, required=True)
    multipliers: Multipliers = spec_field(doc="Depth and width multipliers.", factory=Multipliers)
    shortcut: Shortcut = spec_field("projection", doc="Shortcut when a block changes shape: 'projection' "
                                    "(1x1 conv + BN, option B), 'zero_pad' (subsample and pad with zeros, option A), "
                                    "'avgpool_projection' (2x2 average pool, then 1x1 conv + BN; ResNet-D), 'none' "
                                    "(plain nets).", example="projection")
    stride_on: StrideOn = spec_field("3x3", doc="Which conv of a bottleneck strides: '1x1' (He et al. 2015) or "
                                     "'3x3' (torchvision, 'v1.5', ResNet-B).", example="3x3")
    stochastic_depth: Optional[StochasticDepth] = spec_field(doc="Stochastic depth (absent: off).")
    norm: NormChoice = spec_field(doc="The normalisation layers' kind.", factory=NormChoice)
    leaky_slope: float = spec_field(0.1, doc="Negative slope of every 'leaky_relu' (YOLOv3's DarkNet: 0.1; "
                                    "timm's darknet53: 0.01).", example=0.01, minimum=0, maximum=1)
    zero_init_last: bool = spec_field(False, doc="Start each residual branch at zero: its last norm layer's scale "
                                      "(its last conv for pre-activation units) initialised to 0 (Goyal et al. "
                                      "2017; Bag of Tricks).", example=True)
    head: Head = spec_field(doc="Pooling, dropout and classifier.", factory=Head)
    #: The top-level keys written (after `extends`): a field a spec sets must be one the network reads.
    written: frozenset = field(default_factory=frozenset)
    #: `stages:` as written when it is a rule, {its name: its fields} (an archgen.blocks.StageRule, which the
    #: planner expands into `stages`); None for a list.
    stage_rule: Optional[dict] = None


# ---- introspection used by the validator, the JSON Schema and the docs ----

def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    """The fields a spec writes (a Block's or Stage's `args` holds its family's and is not one of them)."""
    return {f.name: f for f in dataclasses.fields(cls) if "doc" in f.metadata}


def hints_of(cls: type) -> dict[str, Any]:
    """Resolved annotations (remembered: resolving them is most of validating a spec)."""
    known = _hints.get(cls)
    if known is None:
        known = _hints.keep(cls, typing.get_type_hints(cls))
    return known


#: hints_of by class (the schema's and the families' few dozen).
_hints = Memo(1024, "schema: type hints")


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """Optional[X] -> (X, True); X -> (X, False)."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def shallow_copy(obj: Any, **changes: Any) -> Any:
    """A dataclass instance's shallow copy with `changes` set: `dataclasses.replace` without re-running
    __init__ (which checks nothing on these classes) and without copy.copy's pickling protocol. The one such
    shortcut, kept because the design hot path copies a spec document per candidate and a Placement per new
    block, where replace costs 4.7 us against 1.3 us (a 10-field Placement, measured 2026-12-02)."""
    out = object.__new__(type(obj))
    out.__dict__.update(obj.__dict__, **changes)
    return out
