"""ModelPlan -> nn.Module: each block's layer records become a generic `Block`
(archgen.modules), the stem likewise, and the head's a `Head`; archgen.network holds them.
This is where describing a network meets torch: each record makes its own module, initialised."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from archgen.complexity import DEFAULT_MAX_PARAMS, Profile, check_size, profile
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
    counted = profile(p)
    check_size(counted, p.spec, max_params)
    doc = p.spec.doc
    style = LayerStyle(norm=doc.norm.type, groups=doc.norm.groups, leaky_slope=doc.leaky_slope, eps=doc.norm.eps,
                       momentum=doc.norm.momentum)
    with torch.device(device) if device is not None else contextlib.nullcontext(), layer_style(style):
        model = make_network(p, counted)
    if doc.zero_init_last:
        zero_init_last(model)
    return model


def make_network(p: ModelPlan, counted: Profile) -> ArchNet:
    stem = Block(p.stem.layers())
    sd = p.spec.doc.stochastic_depth
    per_sample = sd is not None and sd.per_sample
    stages = [(stage.name, [Block(b.layers(), per_sample) for b in stage.blocks]) for stage in p.stages]
    head = Head(p.head, p.num_features)
    parts = [("stem", stem)] + [(f"{name}.{j}", block) for name, blocks in stages for j, block in enumerate(blocks)]
    first_conv = next(f"{prefix}.{name}" for prefix, part in parts for name, m in part.named_modules()
                      if isinstance(m, nn.Conv2d))
    cfg = pretrained_cfg(p, counted.stages[-2].out[1:], first_conv)
    return ArchNet(p.spec.name, stem, stages, head, feature_info(p), p.num_features, cfg)


def feature_info(p: ModelPlan) -> list[dict]:
    """The feature maps timm's `features_only` would return for this network, in order.

    timm taps the stem before its max-pool (ResNet's act1, stride 2), then every stage; a VGG stage is
    tapped before its closing pool, and the last one after it too (six maps, the first at full
    resolution); a pre-activation network's last map is taken after the head's final norm and act
    (DenseNet's norm5), because the last stage's sum is never normalised otherwise. `module` names the
    archgen module whose output the map is.
    """
    info = []
    stem = p.stem.layers().branch
    if stem:
        before_pool = p.stem.pool and len(stem) > 1
        info.append({"num_chs": p.stem.out_chs, "reduction": p.stem.stride if before_pool else p.stem.reduction,
                     "module": f"stem.{stem[-2].name}" if before_pool else "stem"})
    for i, stage in enumerate(p.stages):
        last = stage.blocks[-1]
        if last.type == "maxpool" and len(stage.blocks) > 1:
            info.append({"num_chs": stage.out_chs, "reduction": stage.reduction // last.at.stride,
                         "module": f"{stage.name}.{len(stage.blocks) - 2}"})
            if i < len(p.stages) - 1:
                continue
        info.append({"num_chs": stage.out_chs, "reduction": stage.reduction, "module": stage.name})
    if p.head.final_norm:
        info[-1]["module"] = "head.act"
    return info


#: torchvision's and timm's ImageNet normalisation (per RGB channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pretrained_cfg(p: ModelPlan, pool_size: tuple[int, int], first_conv: str) -> dict:
    """timm's `pretrained_cfg` for a model archgen built, which has no weights of its own: it describes
    the model as specified (input size, classes) with ImageNet's normalisation, so that timm-style
    preprocessing (`model.pretrained_cfg["mean"]`, `timm.data.resolve_data_config`) works; module names
    are archgen's, so `model.get_submodule(cfg["first_conv"])` finds the layer. An input of other than
    three channels gets the mean of ImageNet's three values on each channel.
    """
    c = p.in_chans
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else (
        (round(sum(IMAGENET_MEAN) / 3, 4),) * c, (round(sum(IMAGENET_STD) / 3, 4),) * c)
    return {"architecture": p.spec.name, "input_size": (c, p.input_size, p.input_size), "mean": mean, "std": std,
            "num_classes": p.head.classes, "pool_size": tuple(pool_size), "first_conv": first_conv,
            "classifier": "head.fc"}


def zero_init_last(model: nn.Module) -> None:
    """Start every residual branch at zero: zero the weight of its last layer that scales its output (a norm,
    or a conv when the branch ends in one, as pre-activation units do)."""
    for m in model.modules():
        if isinstance(m, Block) and m.residual:
            last = next(layer for layer in reversed(m.records.branch) if layer.scales_output)
            nn.init.zeros_(m.get_submodule(last.name).weight)
