"""ModelPlan -> nn.Module: each block's layer records become a generic `Block`
(archgen.modules), the stem likewise, and the head; archgen.network holds them.
This is where describing a network meets torch."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from archgen.complexity import DEFAULT_MAX_PARAMS, check_size, profile
from archgen.grammar.loader import SpecLike
from archgen.layers import LayerStyle, layer_style
from archgen.modules import Block
from archgen.network import ArchNet, Head
from archgen.planner import ModelPlan, plan


def build(spec: SpecLike | ModelPlan, *, max_params: int = DEFAULT_MAX_PARAMS,
          device: str | torch.device | None = None) -> ArchNet:
    """Compile a spec (bundled name, path, mapping, Spec or ModelPlan) into a model.

    The parameters are counted from the plan first, and a model above
    `max_params` is refused with a SpecError before anything is allocated.
    Initialisation follows torchvision: Kaiming-normal convs, BN weight 1 and bias 0.
    """
    p = plan(spec)
    check_size(profile(p), p.spec, max_params)
    doc = p.spec.doc
    style = LayerStyle(norm=doc.norm.type, groups=doc.norm.groups, leaky_slope=doc.leaky_slope)
    with torch.device(device) if device is not None else contextlib.nullcontext(), layer_style(style):
        model = make_network(p)
    if device is None or torch.device(device).type != "meta":
        init_weights(model, zero_init_last=doc.zero_init_last)
    return model


def make_network(p: ModelPlan) -> ArchNet:
    stages = [(stage.name, [Block(b.layers()) for b in stage.blocks]) for stage in p.stages]
    feature_info = [{"num_chs": s.out_chs, "reduction": s.reduction, "module": s.name} for s in p.stages]
    h = p.head
    head = Head(p.num_features, h.final_norm, h.final_act, h.pool, h.dropout, h.classes, h.pool_size, h.hidden)
    return ArchNet(p.spec.name, Block(p.stem.layers()), stages, head, feature_info, p.num_features)


def init_weights(model: nn.Module, zero_init_last: bool = False) -> None:
    """torchvision's initialisation; with `zero_init_last`, every residual branch starts at zero (its last
    norm layer's scale, or its last conv when the branch ends in one, as pre-activation units do)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    if zero_init_last:
        for m in model.modules():
            if isinstance(m, Block) and m.residual:
                weighted = (nn.BatchNorm2d, nn.GroupNorm, nn.Conv2d)
                last = next(x for x in reversed([m._modules[n] for n in m.branch_names]) if isinstance(x, weighted))
                nn.init.zeros_(last.weight)
