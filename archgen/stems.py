"""The layers before the first stage, by name: 'imagenet', 'cifar', 'deep'; a spec may override the
kernel and stride of the type (DRN-C/D's 7x7/1 conv)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from archgen.blocks.common import make_act

if TYPE_CHECKING:
    from archgen.complexity import Tally
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
        return self.widths[-1]

    @property
    def reduction(self) -> int:
        return self.stride * (2 if self.pool else 1)


class ConvStem:
    """One conv (7x7/2 for ImageNet, 3x3/1 for CIFAR) or several 3x3s (the deep stem), BN + act, optional max-pool.

    Module names follow torchvision (`conv1`, `bn1`) for a single conv and timm's
    deep stem (`conv1.0`, `conv1.1`, ...) otherwise.
    """

    def __init__(self, kernel: int, stride: int, pool: bool, deep: bool = False) -> None:
        self.kernel, self.stride, self.pool, self.deep = kernel, stride, pool, deep

    def resolve(self, stem: "Stem", in_chs: int, act: str, scale: Callable[[int], int]) -> StemArgs:
        widths = (*(stem.deep_widths or [32, 32]), stem.width) if self.deep else (stem.width,)
        return StemArgs(type=stem.type, in_chs=in_chs, widths=tuple(scale(w) for w in widths),
                        kernel=self.kernel if stem.kernel is None else stem.kernel,
                        stride=self.stride if stem.stride is None else stem.stride,
                        pool=self.pool if stem.pool is None else stem.pool, norm=stem.norm, act=act)

    @staticmethod
    def cost(s: StemArgs, t: "Tally", h: int, w: int) -> tuple[int, int]:
        with t.scope("stem"):
            cin = s.in_chs
            for i, width in enumerate(s.widths):
                stride = s.stride if i == 0 else 1
                h, w = t.conv(f"conv{i + 1}", cin, width, s.kernel, h, w, stride=stride)
                last = i == len(s.widths) - 1
                if s.norm or not last:
                    t.bn(f"bn{i + 1}", width, h, w)
                    t.act(f"act{i + 1}", s.act, width, h, w)
                cin = width
            if s.pool:
                h, w = t.pool("pool", cin, 3, h, w, stride=2, padding=1)
        return h, w

    @staticmethod
    def module(s: StemArgs):  # -> nn.Module
        import torch.nn as nn

        layers: dict[str, nn.Module] = {}
        cin = s.in_chs
        for i, width in enumerate(s.widths):
            stride = s.stride if i == 0 else 1
            layers[f"conv{i + 1}"] = nn.Conv2d(cin, width, s.kernel, stride, s.kernel // 2, bias=False)
            if s.norm or i < len(s.widths) - 1:
                layers[f"bn{i + 1}"] = nn.BatchNorm2d(width)
                layers[f"act{i + 1}"] = make_act(s.act)
            cin = width
        if s.pool:
            layers["pool"] = nn.MaxPool2d(3, 2, 1)
        return nn.Sequential(OrderedDict(layers))


STEMS: dict[str, ConvStem] = {
    "imagenet": ConvStem(kernel=7, stride=2, pool=True),
    "cifar": ConvStem(kernel=3, stride=1, pool=False),
    "deep": ConvStem(kernel=3, stride=2, pool=True, deep=True),
}
