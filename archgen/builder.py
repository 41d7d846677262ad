"""ModelPlan -> nn.Module: each block's layer records become a generic `Block`
(archgen.modules), the stem likewise, and the head's a `Head`; archgen.network holds them.
This is where describing a network meets torch: each record makes its own module, initialised."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from archgen.complexity import DEFAULT_MAX_PARAMS, check_size, profile
from archgen.grammar.loader import SpecLike
from archgen.layer_kinds.base import LayerStyle, layer_style
from archgen.modules import Block
from archgen.network import ArchNet, Head
from archgen.planner import ModelPlan, plan


def build(spec: SpecLike | ModelPlan, *, max_params: int = DEFAULT_MAX_PARAMS,
          device: str | torch.device | None = None) -> ArchNet:
    """Compile a spec (bundled name, path, mapping, Spec or ModelPlan) into a model.

    The parameters are counted from the plan first, and a model above
    `max_params` is refused with a SpecError before anything is allocated.
    Initialisation follows torchvision (each kind's `module` does it): Kaiming-normal convs, norm weight 1
    and bias 0, linear bias 0.
    """
    p = plan(spec)
    check_size(profile(p), p.spec, max_params)
    doc = p.spec.doc
    style = LayerStyle(norm=doc.norm.type, groups=doc.norm.groups, leaky_slope=doc.leaky_slope, eps=doc.norm.eps,
                       momentum=doc.norm.momentum)
    with torch.device(device) if device is not None else contextlib.nullcontext(), layer_style(style):
        model = make_network(p)
    if doc.zero_init_last:
        zero_init_last(model)
    return model


def make_network(p: ModelPlan) -> ArchNet:
    stages = [(stage.name, [Block(b.layers()) for b in stage.blocks]) for stage in p.stages]
    feature_info = [{"num_chs": s.out_chs, "reduction": s.reduction, "module": s.name} for s in p.stages]
    return ArchNet(p.spec.name, Block(p.stem.layers()), stages, Head(p.head, p.num_features), feature_info,
                   p.num_features)


def zero_init_last(model: nn.Module) -> None:
    """Start every residual branch at zero: zero the weight of its last layer that scales its output (a norm,
    or a conv when the branch ends in one, as pre-activation units do)."""
    for m in model.modules():
        if isinstance(m, Block) and m.residual:
            last = next(layer for layer in reversed(m.records.branch) if layer.scales_output)
            nn.init.zeros_(m.get_submodule(last.name).weight)
