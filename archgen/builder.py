"""ModelPlan -> nn.Module: a stem, stages `layer1..N` (torchvision's names, so
weights and habits carry over) and a head, with feature info for backbone use."""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
import torch.nn as nn

from archgen.blocks.common import make_act
from archgen.blocks.registry import get_block
from archgen.complexity import DEFAULT_MAX_PARAMS, check_size, profile
from archgen.planner import ModelPlan, plan
from archgen.grammar.loader import SpecLike
from archgen.stems import STEMS



class Head(nn.Module):
    """Final BN + act for pre-activation designs, global pooling, dropout, classifier."""

    def __init__(self, p: ModelPlan) -> None:
        super().__init__()
        c = p.num_features
        if p.final_norm:
            self.norm = nn.BatchNorm2d(c)
            self.act = make_act(p.final_act)
        self.pool = {"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1), "none": nn.Identity()}[p.pool]
        self.flatten = nn.Flatten(1) if p.pool != "none" else nn.Identity()
        self.drop = nn.Dropout(p.dropout) if p.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c, p.classes) if p.classes > 0 and p.pool != "none" else nn.Identity()

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

    def __init__(self, p: ModelPlan) -> None:
        super().__init__()
        self.name = p.spec.name
        self.stem = STEMS[p.stem.type].module(p.stem)
        self.stage_names: list[str] = []
        self.feature_info: list[dict] = []
        for stage in p.stages:
            blocks = [get_block(b.type).module(b) for b in stage.blocks]
            self.add_module(stage.name, nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(blocks))))
            self.stage_names.append(stage.name)
            self.feature_info.append({"num_chs": stage.out_chs, "reduction": stage.reduction, "module": stage.name})
        self.head = Head(p)
        self.num_features = p.num_features

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


def build(spec: SpecLike, *, max_params: int = DEFAULT_MAX_PARAMS, device: str | torch.device | None = None
          ) -> ArchNet:
    """Compile a spec (bundled name, path, mapping or Spec) into a model.

    The parameters are counted from the spec first, and a model above
    `max_params` is refused with a SpecError before anything is allocated.
    Initialisation follows torchvision: Kaiming-normal convs, BN weight 1 and bias 0.
    """
    p = plan(spec)
    check_size(profile(p), p.spec, max_params)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = ArchNet(p)
    if device is None or torch.device(device).type != "meta":
        init_weights(model)
    return model


def init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
