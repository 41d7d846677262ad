"""The network a spec compiles to: a stem, stages `layer1..N` (torchvision's names, so
weights and habits carry over) and a head, with timm's model API.

`archgen.builder` makes the parts from a plan; this module only holds them
together, so the model API (forward_features, forward_head, reset_classifier,
feature_info, gradient checkpointing, a features-only backbone) lives in one
place whatever the block families are.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from archgen.errors import UserError

if TYPE_CHECKING:
    from archgen.heads import HeadPlan


class Head(nn.Module):
    """The head built from its records (archgen.heads.HeadPlan.layers), in their order and under their names;
    the last, `fc`, is the classifier, and everything before it makes the features it reads (`pre_logits`)."""

    def __init__(self, plan: "HeadPlan", c: int) -> None:
        super().__init__()
        self.records = plan.layers(c)
        for layer in self.records.branch:
            self.add_module(layer.name, layer.module())
        self.plan = plan
        #: What the classifier reads: the pooled channels, or the last hidden layer's width.
        self.num_features = plan.features(c)

    def classifier(self, classes: int) -> nn.Module:
        """A fresh classifier for `classes` outputs over the features (Identity: none, or no pooling)."""
        return self.plan.classifier(self.num_features, classes).module()

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name != "fc":
                x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pre_logits(x))


def run_blocks(stage: nn.Sequential, x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """Run a stage block by block, recomputing each block's activations in backward when checkpointed
    (less memory for a second forward; the RNG state is replayed, so stochastic depth drops the same blocks)."""
    if not (checkpointed and torch.is_grad_enabled()):
        return stage(x)
    for block in stage:
        x = checkpoint(block, x, use_reentrant=False)
    return x


class ArchNet(nn.Module):
    """A network compiled from a spec, with timm's model API.

    `feature_info` lists each stage's `num_chs`, `reduction` and `module`
    (timm's convention); `forward_features` returns the last stage's map,
    `forward_stages` every stage's, and `forward_head` the logits (or, with
    `pre_logits=True`, the pooled features the classifier sees).
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
        self.grad_checkpointing = False

    @property
    def stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.stage_names]

    @property
    def num_classes(self) -> int:
        fc = self.head.fc
        return fc.out_features if isinstance(fc, nn.Linear) else 0

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them (training only)."""
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for `num_classes` outputs (0: none, the model returns pooled features)."""
        if num_classes < 0:
            raise UserError(f"num_classes must be 0 or more, not {num_classes}")
        self.head.fc = self.head.classifier(num_classes)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = self.stem(x)
        for stage in self.stages:
            x = run_blocks(stage, x, self.grad_checkpointing and self.training)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = run_blocks(stage, x, self.grad_checkpointing and self.training)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head.pre_logits(x) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FeatureListNet(nn.Module):
    """A backbone: the stem and the stages up to the last one chosen, returning the chosen stages' maps.

    `out_indices` count the stages from 0 (negative from the end); unlike timm, whose index 0 is
    the stem's output, index 0 here is `layer1`. `feature_info` lists the chosen stages only.
    Module names are the full model's, so its state dict (minus the head) loads as it is.
    """

    def __init__(self, model: ArchNet, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        n = len(model.stage_names)
        chosen = list(range(n)) if out_indices is None else list(out_indices)
        if not chosen:
            raise UserError("out_indices is empty; choose at least one stage")
        bad = [i for i in chosen if not -n <= i < n]
        if bad:
            raise UserError(f"out_indices {bad} out of range: {model.name} has {n} stages (indices 0..{n - 1}, "
                            f"or -{n}..-1 from the end; 0 is {model.stage_names[0]})")
        self.out_indices = sorted({i % n for i in chosen})
        self.name = model.name
        self.stem = model.stem
        self.stage_names = model.stage_names[: self.out_indices[-1] + 1]
        for stage_name in self.stage_names:
            self.add_module(stage_name, getattr(model, stage_name))
        self.feature_info = [model.feature_info[i] for i in self.out_indices]
        self.grad_checkpointing = model.grad_checkpointing

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = self.stem(x)
        for i, stage_name in enumerate(self.stage_names):
            x = run_blocks(getattr(self, stage_name), x, self.grad_checkpointing and self.training)
            if i in self.out_indices:
                outs.append(x)
        return outs
