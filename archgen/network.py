"""The network a spec compiles to: a stem, stages `layer1..N` (torchvision's names, so
weights and habits carry over) and a head, with timm's model API.

`archgen.builder` makes the parts from a plan; this module only holds them
together, so the model API (forward_features, forward_head, reset_classifier,
feature_info, gradient checkpointing, a features-only backbone) lives in one
place whatever the block families are.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

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
        x = run_block(block, x, checkpointed)
    return x


def run_block(block: nn.Module, x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """One block, checkpointed as `run_blocks` does (a backbone tapping a map inside a stage runs it block by block)."""
    return checkpoint(block, x, use_reentrant=False) if checkpointed and torch.is_grad_enabled() else block(x)


class FeatureInfo:
    """timm's FeatureInfo: the network's feature maps (`num_chs`, `reduction`, `module` and `index` per map)
    and which of them a backbone returns (`out_indices`).

    As in timm, `channels()`, `reduction()` and `module_name()` list the chosen maps (or the maps at `idx`),
    while indexing and `len` see every map the network has, so `info[0]` is always the stem's.
    """

    def __init__(self, info: Sequence[dict], out_indices: Sequence[int]) -> None:
        self.info = [{**entry, "index": i} for i, entry in enumerate(info)]
        self.out_indices = tuple(out_indices)

    def from_other(self, out_indices: Sequence[int]) -> FeatureInfo:
        return FeatureInfo(self.info, out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, Sequence):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        def pick(i: int) -> dict:
            return dict(self.info[i]) if keys is None else {k: self.info[i][k] for k in keys}

        if idx is None:
            return [pick(i) for i in self.out_indices]
        if isinstance(idx, Sequence):
            return [pick(i) for i in idx]
        return pick(idx)

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, i: int) -> dict:
        return self.info[i]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info}, out_indices={self.out_indices})"


class ArchNet(nn.Module):
    """A network compiled from a spec, with timm's model API.

    `feature_info` lists the feature maps timm's `features_only` returns (the stem's, then each
    stage's; see archgen.builder.feature_info); `forward_features` returns the last stage's map,
    `forward_stages` every stage's, and `forward_head` the logits (or, with `pre_logits=True`, the
    pooled features the classifier sees). `pretrained_cfg` (also `default_cfg`) is timm's data config.
    """

    def __init__(self, name: str, stem: nn.Module, stages: list[tuple[str, list[nn.Module]]], head: nn.Module,
                 feature_info: list[dict], num_features: int, pretrained_cfg: dict) -> None:
        super().__init__()
        self.name = name
        self.stem = stem
        self.stage_names: list[str] = []
        for stage_name, blocks in stages:
            self.add_module(stage_name, nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(blocks))))
            self.stage_names.append(stage_name)
        self.feature_info = FeatureInfo(feature_info, range(len(feature_info)))
        self.head = head
        self.num_features = num_features
        self.pretrained_cfg = pretrained_cfg
        self.grad_checkpointing = False

    @property
    def default_cfg(self) -> dict:
        """timm's older name for `pretrained_cfg`."""
        return self.pretrained_cfg

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


def chosen_indices(out_indices: int | Sequence[int] | None, info: FeatureInfo, name: str) -> tuple[int, ...]:
    """timm's out_indices as sorted non-negative indices: None is every map, an int n the last n, a sequence
    the maps it names (negative from the end); a map asked twice is returned once, in the network's order."""
    n = len(info)
    maps = f"{name} has {n} feature maps (0 is {info[0]['module']}'s output at stride {info[0]['reduction']})"
    if out_indices is None:
        return tuple(range(n))
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        if not 0 < out_indices <= n:
            raise UserError(f"out_indices={out_indices} asks for the last {out_indices} feature maps, and {maps}")
        return tuple(range(n - out_indices, n))
    chosen = list(out_indices)
    if not chosen:
        raise UserError("out_indices is empty; choose at least one feature map")
    bad = [i for i in chosen if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n]
    if bad:
        raise UserError(f"out_indices {bad} out of range: {maps}; indices are 0..{n - 1}, or -{n}..-1 from the end")
    return tuple(sorted({i % n for i in chosen}))


def run_stem(stem: nn.Module, x: torch.Tensor, tap: str | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The stem's output, and the output of its layer `tap` (the map before the stem's max-pool, which timm
    takes as the first feature). A stem is a plain block: act_out(branch(pre(x))), nothing merged."""
    if tap is None:
        return stem(x), None
    kept = None
    x = stem.preactivate(x)
    for layer in stem.branch_names:
        x = stem._modules[layer](x)
        if layer == tap:
            kept = x
    return stem.act_out(x), kept


class FeatureListNet(nn.Module):
    """A backbone returning the list of feature maps `out_indices` chooses, counted as timm counts them:
    0 is the stem's map (ResNet's act1, stride 2), then the stages (ResNet's layer1..layer4).

    Only the modules up to the last chosen map are kept (the head only for a pre-activation network's
    final norm), under the full model's names, so its state dict loads as it is.
    """

    def __init__(self, model: ArchNet, out_indices: int | Sequence[int] | None = None) -> None:
        super().__init__()
        chosen = chosen_indices(out_indices, model.feature_info, model.name)
        self.feature_info = model.feature_info.from_other(chosen)
        self.taps = self.feature_info.module_name()
        self.name = model.name
        self.stem = model.stem
        last = self.taps[-1].split(".")[0]
        depth = 0 if last == "stem" else len(model.stage_names) if last == "head" else \
            model.stage_names.index(last) + 1
        self.stage_names = model.stage_names[:depth]
        for stage_name in self.stage_names:
            self.add_module(stage_name, getattr(model, stage_name))
        if last == "head":
            self.head = nn.ModuleDict({"norm": model.head.norm, "act": model.head.act})
        self.pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("num_classes", "classifier")}
        self.grad_checkpointing = model.grad_checkpointing

    @property
    def default_cfg(self) -> dict:
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        checkpointed = self.grad_checkpointing and self.training
        wanted = set(self.taps)
        maps: dict[str, torch.Tensor] = {}
        stem_tap = next((t.split(".", 1)[1] for t in self.taps if t.startswith("stem.")), None)
        x, kept = run_stem(self.stem, x, stem_tap)
        if kept is not None:
            maps[f"stem.{stem_tap}"] = kept
        if "stem" in wanted:
            maps["stem"] = x
        for stage_name in self.stage_names:
            stage = getattr(self, stage_name)
            inner = [f"{stage_name}.{j}" for j in range(len(stage))]
            if wanted.isdisjoint(inner):
                x = run_blocks(stage, x, checkpointed)
            else:  # a VGG stage, tapped before its closing pool
                for block, name in zip(stage, inner):
                    x = run_block(block, x, checkpointed)
                    if name in wanted:
                        maps[name] = x
            if stage_name in wanted:
                maps[stage_name] = x
        if "head.act" in wanted:
            maps["head.act"] = self.head.act(self.head.norm(x))
        return [maps[t] for t in self.taps]
