"""The layers after the last stage, as records like any block's: final norm and act (pre-activation designs), a
1x1 conv-BN-act widening the features (mobile networks: `conv`, `bn`, `conv_act`), pooling (global, or adaptive to pool_size x pool_size and flattened: VGG's 7x7), hidden fc-act-dropout layers
(VGG's two of 4096), dropout, classifier. The counter, the builder and fuse read the same records. Pure Python.

Module names: `norm`, `act`, `pool`, `flatten`, `hidden` (numbered as torchvision numbers VGG's `classifier`:
fc at 3i, act at 3i + 1, dropout at 3i + 2 between them), `drop` (the last dropout) and the classifier `fc`, so
VGG's classifier.6 is `head.fc`.
"""

from __future__ import annotations

from dataclasses import dataclass

from archgen.layer_kinds.act import Act
from archgen.layer_kinds.base import LayerKind
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.linear import Flatten, Linear
from archgen.layer_kinds.norm import Norm
from archgen.layer_kinds.plain import Dropout, Identity, Sequence
from archgen.layer_kinds.pool import AdaptivePool


@dataclass(frozen=True)
class HeadPlan:
    final_norm: bool
    final_act: str
    pool: str  # avg, max, none
    dropout: float
    classes: int
    #: Side of the pooled map (1: global pooling) and the hidden fc widths before the classifier (VGG's).
    pool_size: int = 1
    hidden: tuple[int, ...] = ()
    #: Width of a 1x1 conv-BN-act before the pool (MobileNets', EfficientNet's, MNASNet's last layer); 0: none.
    conv: int = 0

    @property
    def pooled(self) -> bool:
        return self.pool != "none"

    def features(self, c: int) -> int:
        """What the classifier reads from a last stage of c channels: the pooled map's values, or the last
        hidden layer's width."""
        if self.hidden:
            return self.hidden[-1]
        c = self.conv or c
        return c * self.pool_size ** 2 if self.pooled else c

    def out_chs(self, c: int) -> int:
        return self.classes if self.classes > 0 and self.pooled else self.features(c)

    def classifier(self, features: int, classes: int) -> LayerKind:
        """`fc`: a linear layer to `classes`, or a placeholder (no classes, or no pooling: a backbone)."""
        return Linear("fc", features, classes) if classes > 0 and self.pooled else Identity("fc")

    def dropout_layer(self, name: str) -> LayerKind:
        return Dropout(name, self.dropout) if self.dropout > 0 else Identity(name)

    def layers(self, c: int) -> BlockLayers:
        """The head's records on a last stage of c channels."""
        layers: list[LayerKind] = [Norm("norm", c), Act("act", c, self.final_act)] if self.final_norm else []
        if self.conv:
            layers += [Conv("conv", c, self.conv, 1), Norm("bn", self.conv), Act("conv_act", self.conv,
                                                                                 self.final_act)]
            c = self.conv
        if self.pooled:
            layers += [AdaptivePool("pool", c, self.pool, self.pool_size), Flatten("flatten")]
        else:
            layers += [Identity("pool"), Identity("flatten")]
        if self.hidden:
            hidden: list[LayerKind] = []
            features = c * self.pool_size ** 2
            for i, width in enumerate(self.hidden):
                hidden += [Linear(str(3 * i), features, width), Act(str(3 * i + 1), width, self.final_act)]
                if i < len(self.hidden) - 1:
                    hidden.append(self.dropout_layer(str(3 * i + 2)))
                features = width
            layers.append(Sequence("hidden", tuple(hidden)))
        layers += [self.dropout_layer("drop"), self.classifier(self.features(c), self.classes)]
        return BlockLayers(branch=tuple(layers))

    def parts(self) -> list[tuple[str, str]]:
        """(record name, the papers' notation) of each weighted or pooling step, in order: what a paper's table
        lists as rows of its own (MobileNetV2's Table 2: conv2d 1x1, avgpool, conv2d 1x1)."""
        out = [("conv", f"1x1, {self.conv}")] if self.conv else []
        if not self.pooled:
            return out + [("pool", "no pool")]
        out.append(("pool", f"{self.pool_size}x{self.pool_size} adaptive {self.pool} pool" if self.pool_size > 1
                    else f"global {self.pool} pool"))
        out += [(f"hidden.{3 * i}", f"fc {width}") for i, width in enumerate(self.hidden)]
        return out + ([("fc", f"{self.classes}-d fc")] if self.classes else [])

    def notation(self) -> str:
        """'global avg pool, 1000-d fc'; VGG's '7x7 adaptive avg pool; fc 4096; fc 4096; 1000-d fc'; a mobile
        network's '1x1, 1280; global avg pool, 1000-d fc'."""
        texts = [text for _, text in self.parts()]
        conv = [texts.pop(0)] if self.conv else []
        return "; ".join(conv + [", ".join(texts) if not self.hidden and self.pool_size == 1 else "; ".join(texts)])
