"""torchvision state dicts in and out, by name: the torchvision layout of `archgen.weights`.

Kept for callers of the earlier API; new code calls `archgen.load_weights(model, source,
layout="torchvision")`, which also reads files and knows timm's names.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from archgen.weights import WeightsMismatch, key_map, load_weights, match_state_dict

#: The error a torchvision state dict that does not fit raises (names the missing, unexpected, mis-shaped keys).
StateDictMismatch = WeightsMismatch


def map_torchvision_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """torchvision key -> archgen key, checked to fit the model exactly; raises StateDictMismatch."""
    match_state_dict(model, state_dict, "torchvision")
    return key_map(list(state_dict), "torchvision", set(model.state_dict()))


def load_torchvision_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a torchvision model's state dict strictly (every key used once, every shape equal)."""
    return load_weights(model, state_dict, "torchvision")

