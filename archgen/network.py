"""The network a spec compiles to: a stem, stages `layer1..N` (torchvision's
names, so weights and habits carry over) and a head, with timm's model API.

`archgen.builder` makes the parts from a plan; this module only holds them
together, so the model API (forward_features, forward_head, feature_info, ...)
lives in one place whatever the block families are.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from archgen.blocks.common import make_act


class Head(nn.Module):
    """Final BN + act for pre-activation designs, global pooling, dropout, classifier."""

    def __init__(self, num_features: int, final_norm: bool, final_act: str, pool: str, dropout: float,
                 classes: int) -> None:
        super().__init__()
        c = num_features
        if final_norm:
            self.norm = nn.BatchNorm2d(c)
            self.act = make_act(final_act)
        self.pool = {"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1), "none": nn.Identity()}[pool]
        self.flatten = nn.Flatten(1) if pool != "none" else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c, classes) if classes > 0 and pool != "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "norm"):
            x = self.act(self.norm(x))
        return self.fc(self.drop(self.flatten(self.pool(x))))


class ArchNet(nn.Module):
    """A network compiled from a spec.

    `feature_info` lists each stage's `num_chs`, `reduction` and `module`
    (timm's convention); `forward_features` returns the last stage's map and
    `forward_stages` every stage's, for use as a backbone.
    """

    def __init__(self, name: str, stem: nn.Module, stages: list[tuple[str, list[nn.Module]]], head: nn.Module,
                 feature_info: list[dict], num_features: int) -> None:
        super().__init__()
        self.name = name
        self.stem = stem
        self.stage_names: list[str] = []
        for stage_name, blocks in stages:
            self.add_module(stage_name, nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(blocks))))
            self.stage_names.append(stage_name)
        self.feature_info = feature_info
        self.head = head
        self.num_features = num_features

    @property
    def stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.stage_names]

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
