"""ModelPlan -> nn.Module: a stem, stages `layer1..N` (torchvision's names, so
weights and habits carry over) and a head, with feature info for backbone use."""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
import torch.nn as nn

from archgen.blocks.registry import get_block
from archgen.complexity import DEFAULT_MAX_PARAMS, check_size, profile
from archgen.planner import ModelPlan, plan
from archgen.grammar.loader import SpecLike
from archgen.network import ArchNet, Head
from archgen.stems import STEMS



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
        model = make_network(p)
    if device is None or torch.device(device).type != "meta":
        init_weights(model)
    return model


def make_network(p: ModelPlan) -> ArchNet:
    stages = [(stage.name, [get_block(b.type).module(b) for b in stage.blocks]) for stage in p.stages]
    feature_info = [{"num_chs": s.out_chs, "reduction": s.reduction, "module": s.name} for s in p.stages]
    head = Head(p.num_features, p.final_norm, p.final_act, p.pool, p.dropout, p.classes)
    return ArchNet(p.spec.name, STEMS[p.stem.type].module(p.stem), stages, head, feature_info, p.num_features)


def init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
