"""The papers' tables as data: which specs, in which order, under which labels, in which shape.

No printed number lives here: each comes from the specs' `paper:` sections
(the citation whose arXiv id is the layout's), so a number is written once.
A layout names its specs; one that is not bundled is left out with a note, so
a layout can name a spec before it lands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Source:
    """The paper and table a layout reproduces."""

    authors: str
    year: int
    title: str
    arxiv: str
    table: str

    @property
    def cite(self) -> str:
        return f"{self.authors} {self.year}, {self.table} (arXiv:{self.arxiv})"


@dataclass(frozen=True)
class Entry:
    """One model of a table: a bundled spec, printed under `label`."""

    spec: str
    label: str
    setting: str = ""  # the paper's second column where it has one ("32 x 4d")


@dataclass(frozen=True)
class Row:
    """An architecture table's row: its label and the parts it shows ('stem', 'stem.pool', 'layer2',
    'layer2.transition', 'head'; see compare.architecture_parts)."""

    label: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    key: str
    source: Source
    #: 'operators': one model in MobileNetV2 Table 2's columns (input, operator, t, c, n, s).
    shape: Literal["architecture", "complexity", "operators"]
    entries: tuple[Entry, ...]
    #: What the regenerated table reproduces of the paper's conventions, in words.
    convention: str
    rows: tuple[Row, ...] = ()  # architecture and operator tables only (an operator table's label: the operator)
    notes: tuple[str, ...] = field(default=())


def _resnet_rows(name: str) -> tuple[Row, ...]:
    """He et al.'s and Xie et al.'s rows: conv1, then the max pool heading the first stage's row."""
    return (Row("conv1", ("stem",)), Row(f"conv2{name}", ("stem.pool", "layer1")),
            Row(f"conv3{name}", ("layer2",)), Row(f"conv4{name}", ("layer3",)), Row(f"conv5{name}", ("layer4",)),
            Row("", ("head",)))


MULTIPLY_ADDS = "FLOPs are multiply-adds of the convs and the fc layer, bias excluded: archgen's MACs."

HE_2015 = ("He et al.", 2015, "Deep Residual Learning for Image Recognition", "1512.03385")
XIE_2017 = ("Xie et al.", 2017, "Aggregated Residual Transformations for Deep Neural Networks", "1611.05431")

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        key="resnet", source=Source(*HE_2015, "Table 1"), shape="architecture",
        entries=(Entry("resnet18", "18-layer"), Entry("resnet34", "34-layer"),
                 Entry("resnet50_v1", "50-layer"), Entry("resnet101_v1", "101-layer"),
                 Entry("resnet152_v1", "152-layer")),
        rows=_resnet_rows("_x"),
        convention=MULTIPLY_ADDS + " Bottlenecks stride on their first 1x1 conv, as the paper's do (the "
                   "*_v1 specs; torchvision's stride on the 3x3 adds about 0.2 G)."),
    Layout(
        key="resnet", source=Source(*HE_2015, "Table 6"), shape="complexity",
        entries=tuple(Entry(f"resnet{n}_cifar", f"ResNet-{n}")
                      for n in (20, 32, 44, 56, 110, 1202)),
        convention="CIFAR-10 ResNets: 3x3 stem, three stages of 16/32/64 channels, option A (zero-padding) "
                   "shortcuts, 10 classes."),
    Layout(
        key="resnext", source=Source(*XIE_2017, "Table 1"), shape="architecture",
        entries=(Entry("resnet50", "ResNet-50"), Entry("resnext50_32x4d", "ResNeXt-50 (32x4d)")),
        rows=_resnet_rows(""),
        convention=MULTIPLY_ADDS + " Both stride on the 3x3 conv, as the paper's do (fb.resnet.torch, "
                   "torchvision)."),
    Layout(
        key="resnext", source=Source(*XIE_2017, "Table 3"), shape="complexity",
        entries=(Entry("resnet50", "ResNet-50", "1 x 64d"),
                 *(Entry(f"resnext50_{s}", "ResNeXt-50", s.replace("x", " x ")) for s in
                   ("2x40d", "4x24d", "8x14d", "32x4d")),
                 Entry("resnet101", "ResNet-101", "1 x 64d"),
                 *(Entry(f"resnext101_{s}", "ResNeXt-101", s.replace("x", " x ")) for s in
                   ("2x40d", "4x24d", "8x14d", "32x4d"))),
        convention=MULTIPLY_ADDS + " Table 3 has no complexity column: its caption's '~4.1 billion' (50 layers) "
                   "and '~7.8 billion' FLOPs (101 layers) stand for every row."),
    Layout(
        key="wrn", source=Source("Zagoruyko and Komodakis", 2016, "Wide Residual Networks", "1605.07146",
                                 "Table 8"), shape="complexity",
        entries=(Entry("resnet50", "ResNet-50"), Entry("resnet101", "ResNet-101"),
                 Entry("resnet152", "ResNet-152"), Entry("wide_resnet50_2", "WRN-50-2-bottleneck"),
                 Entry("preact_resnet200", "pre-ResNet-200")),
        convention="Parameters only, as the paper prints; BN scale and shift are parameters, running "
                   "statistics are not."),
    Layout(
        key="densenet", source=Source("Huang et al.", 2017, "Densely Connected Convolutional Networks",
                                      "1608.06993", "Table 1"), shape="architecture",
        entries=tuple(Entry(f"densenet{n}", f"DenseNet-{n}") for n in (121, 169, 201, 264)),
        rows=(Row("Convolution", ("stem",)), Row("Pooling", ("stem.pool",)),
              Row("Dense Block (1)", ("layer1",)), Row("Transition Layer (1)", ("layer2.transition",)),
              Row("Dense Block (2)", ("layer2",)), Row("Transition Layer (2)", ("layer3.transition",)),
              Row("Dense Block (3)", ("layer3",)), Row("Transition Layer (3)", ("layer4.transition",)),
              Row("Dense Block (4)", ("layer4",)), Row("Classification Layer", ("head",))),
        convention="DenseNet-BC, k = 32; each 'conv' is BN-ReLU-Conv. The paper prints no parameter count or "
                   "FLOPs in this table; archgen's are shown for reference."),
    Layout(
        key="darknet", source=Source("Redmon and Farhadi", 2018, "YOLOv3: An Incremental Improvement",
                                     "1804.02767", "Table 1"), shape="architecture",
        entries=(Entry("darknet53", "Darknet-53"),),
        rows=(Row("Convolutional", ("stem",)),
              *(row for i in range(1, 6) for row in (Row("Convolutional, stride 2", (f"layer{i}.conv",)),
                                                     Row("Residual", (f"layer{i}",)))),
              Row("Avgpool, Connected", ("head",))),
        convention="At 256x256, as the paper measures. YOLOv3's 'Bn Ops' count a multiply-add as two "
                   "operations: archgen's FLOPs (2 x MACs)."),
    Layout(
        key="preact", source=Source("He et al.", 2016, "Identity Mappings in Deep Residual Networks",
                                    "1603.05027", "Table 4"), shape="complexity",
        entries=(Entry("resnet110_cifar", "ResNet-110 [He et al. 2015]"),
                 Entry("resnet1202_cifar", "ResNet-1202 [He et al. 2015]"),
                 Entry("preact_resnet164_cifar", "ResNet-164 (pre-activation)"),
                 Entry("preact_resnet1001_cifar", "ResNet-1001 (pre-activation)")),
        convention="CIFAR-10 models, parameters only, as the paper prints them in parentheses."),
    Layout(
        key="tricks", source=Source("He et al.", 2019, "Bag of Tricks for Image Classification with "
                                    "Convolutional Neural Networks", "1812.01187", "Table 5"),
        shape="complexity",
        entries=(Entry("resnet50_v1", "ResNet-50"), Entry("resnet50_b", "ResNet-50-B"),
                 Entry("resnet50_c", "ResNet-50-C"), Entry("resnet50_d", "ResNet-50-D")),
        convention=MULTIPLY_ADDS + " ResNet-50 here is the original (stride on the first 1x1); B moves the "
                   "stride to the 3x3, C adds the deep stem, D adds the average-pool shortcut."),
)

VGG_2014 = ("Simonyan and Zisserman", 2014, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
            "1409.1556")
VGG_CONFIGURATIONS = (Entry("vgg11", "A", "11 weight layers"), Entry("vgg11_lrn", "A-LRN", "11 weight layers"),
                      Entry("vgg13", "B", "13 weight layers"), Entry("vgg16_c", "C", "16 weight layers"),
                      Entry("vgg16", "D", "16 weight layers"), Entry("vgg19", "E", "19 weight layers"))

LAYOUTS = LAYOUTS + (
    Layout(
        key="vgg", source=Source(*VGG_2014, "Table 1"), shape="architecture", entries=VGG_CONFIGURATIONS,
        rows=tuple(row for i in range(1, 6) for row in (Row(f"conv, stage {i}", (f"layer{i}.vgg",)),
                                                        Row("maxpool", (f"layer{i}",))))
        + (Row("FC-4096, FC-4096, FC-1000", ("head",)),),
        convention="'conv<receptive field>-<channels>', as the paper writes them; ReLU after every conv, not "
                   "shown. The classifier pools adaptively to 7x7 first, as torchvision does (an identity at "
                   "224x224)."),
    Layout(
        key="vgg", source=Source(*VGG_2014, "Table 2"), shape="complexity", entries=VGG_CONFIGURATIONS,
        convention="Parameters in millions, as the paper prints them; A and A-LRN count alike, LRN having no "
                   "weights."),
)

LAYOUTS = LAYOUTS + (
    Layout(
        key="mobilenetv2", source=Source("Sandler et al.", 2018, "MobileNetV2: Inverted Residuals and Linear "
                                         "Bottlenecks", "1801.04381", "Table 2"), shape="operators",
        entries=(Entry("mobilenet_v2", "MobileNetV2 1.0"),),
        rows=(Row("conv2d", ("stem",)), *(Row("bottleneck", (f"layer{i}",)) for i in range(1, 8)),
              Row("conv2d 1x1", ("head.conv",)), Row("avgpool 7x7", ("head.pool",)),
              Row("conv2d 1x1", ("head.fc",))),
        convention=MULTIPLY_ADDS + " The paper's columns, from the spec: the input (h x w x c), t (the expansion "
                   "conv's width over the input's), c (output channels), n (repeats) and s (the first "
                   "repeat's stride); each bottleneck is the expansion, the 3x3 depthwise conv and the linear "
                   "1x1 projection. The last 1x1 conv2d of the paper's table is the classifier (its k: 1000)."),
    Layout(
        key="efficientnet", source=Source("Tan and Le", 2019, "EfficientNet: Rethinking Model Scaling for "
                                          "Convolutional Neural Networks", "1905.11946", "Table 1"),
        shape="architecture", entries=(Entry("efficientnet_b0", "EfficientNet-B0"),),
        rows=(Row("Conv3x3", ("stem",)), *(Row(f"MBConv, stage {i + 1}", (f"layer{i}",)) for i in range(1, 8)),
              Row("Conv1x1 & Pooling & FC", ("head",))),
        convention=MULTIPLY_ADDS + " MBConv1/MBConv6 expand by 1/6 and squeeze-and-excite a quarter of the "
                   "block's input width; the paper prints the stage's input resolution, archgen its output."),
)

PAPERS: tuple[str, ...] = tuple(dict.fromkeys(layout.key for layout in LAYOUTS))


def layouts_for(paper: str) -> list[Layout]:
    """The tables of one paper key ('resnet', 'resnext', 'wrn', 'densenet', 'darknet', 'preact', 'tricks', 'vgg',
    'mobilenetv2', 'efficientnet')."""
    return [layout for layout in LAYOUTS if layout.key == paper]
