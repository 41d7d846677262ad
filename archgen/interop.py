"""Load torchvision state dicts into archgen models, whatever archgen names its modules.

archgen registers every block's parameters in torchvision's order (stem, then
each stage's blocks with conv/bn pairs and the `downsample` last, then the
classifier), so the two state dicts pair up entry by entry. The pairing is
checked strictly: the same number of entries, each pair of the same kind
(weight, bias, running_mean, ...) and the same shape; the first mismatch is
reported with both names.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from archgen.errors import UserError


class StateDictMismatch(UserError):
    """A torchvision state dict that does not fit the model entry by entry."""


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def map_torchvision_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """torchvision key -> archgen key, checked entry by entry; raises StateDictMismatch."""
    ours = model.state_dict()
    theirs = list(state_dict.items())
    if len(ours) != len(theirs):
        raise StateDictMismatch(f"the torchvision state dict has {len(theirs)} entries, the model "
                                f"{len(ours)}: they describe different networks")
    mapping = {}
    for (their_key, their_value), (our_key, our_value) in zip(theirs, ours.items()):
        if _kind(their_key) != _kind(our_key) or tuple(their_value.shape) != tuple(our_value.shape):
            raise StateDictMismatch(f"torchvision's '{their_key}' {tuple(their_value.shape)} does not fit "
                                    f"'{our_key}' {tuple(our_value.shape)}")
        mapping[their_key] = our_key
    return mapping


def load_torchvision_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a torchvision model's state dict strictly (every key used once, every shape equal)."""
    mapping = map_torchvision_keys(model, state_dict)
    model.load_state_dict({mapping[k]: v for k, v in state_dict.items()}, strict=True)
    return model


def to_torchvision_state_dict(model: nn.Module, reference_keys: list[str]) -> dict[str, torch.Tensor]:
    """The model's state dict under torchvision's names (given in torchvision's order)."""
    ours = list(model.state_dict().items())
    if len(ours) != len(reference_keys):
        raise StateDictMismatch(f"{len(reference_keys)} torchvision keys for {len(ours)} model entries")
    return {key: value for key, (_, value) in zip(reference_keys, ours)}
