"""The layers before the first stage, by name: 'imagenet', 'cifar', 'deep', 'none'; a spec may override the
kernel, stride and pooling of the type (DRN-C/D's 7x7/1 conv). Pure Python: the stem is layer records
like any block, read by the counter and the builder alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from archgen.layer_kinds.act import Act
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.norm import Norm
from archgen.layer_kinds.pool import Pool

if TYPE_CHECKING:
    from archgen.grammar.schema import Stem


@dataclass(frozen=True)
class StemArgs:
    type: str
    in_chs: int
    widths: tuple[int, ...]  # one per conv
    kernel: int
    stride: int
    pool: bool
    norm: bool
    act: str

    @property
    def out_chs(self) -> int:
        return self.widths[-1] if self.widths else self.in_chs

    @property
    def reduction(self) -> int:
        return self.stride * (2 if self.pool else 1)

    def layers(self) -> BlockLayers:
        """conv1[, bn1, act1], conv2, ...: torchvision's names for one conv, timm's deep stem for several;
        no layers for a 'none' stem."""
        layers: list = []
        cin = self.in_chs
        for i, width in enumerate(self.widths, 1):
            layers.append(Conv(f"conv{i}", cin, width, self.kernel, self.stride if i == 1 else 1))
            if self.norm or i < len(self.widths):
                layers += [Norm(f"bn{i}", width), Act(f"act{i}", width, self.act)]
            cin = width
        if self.pool:
            layers.append(Pool("pool", cin, "max", 3, 2, 1))
        return BlockLayers(branch=tuple(layers))

    def notation(self) -> str:
        if not self.widths:
            return "none"
        convs = ", ".join(f"{self.kernel}x{self.kernel}, {w}" + (f", stride {self.stride}"
                                                                 if i == 0 and self.stride > 1 else "")
                          for i, w in enumerate(self.widths))
        return convs + ("; 3x3 max pool, stride 2" if self.pool else "")


@dataclass(frozen=True)
class StemType:
    """A stem's defaults: one conv (7x7/2 for ImageNet, 3x3/1 for CIFAR) or several 3x3s (the deep stem)."""

    kernel: int
    stride: int
    pool: bool
    deep: bool = False
    #: No layers at all (VGG reads the image with its first stage).
    empty: bool = False

    def resolve(self, stem: "Stem", in_chs: int, act: str, scale: Callable[[int], int]) -> StemArgs:
        if self.empty:
            return StemArgs(type=stem.type, in_chs=in_chs, widths=(), kernel=1, stride=1, pool=False, norm=False,
                            act=act)
        widths = (*(stem.deep_widths or [32, 32]), stem.width) if self.deep else (stem.width,)
        return StemArgs(type=stem.type, in_chs=in_chs, widths=tuple(scale(w) for w in widths),
                        kernel=self.kernel if stem.kernel is None else stem.kernel,
                        stride=self.stride if stem.stride is None else stem.stride,
                        pool=self.pool if stem.pool is None else stem.pool, norm=stem.norm, act=act)


STEMS: dict[str, StemType] = {
    "imagenet": StemType(kernel=7, stride=2, pool=True),
    "cifar": StemType(kernel=3, stride=1, pool=False),
    "deep": StemType(kernel=3, stride=2, pool=True, deep=True),
    "none": StemType(kernel=1, stride=1, pool=False, empty=True),
}
