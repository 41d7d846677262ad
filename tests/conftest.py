"""Shared fixtures: the torchvision reference data copied from shared/reference (see tests/data/README.md)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TORCHVISION_TWINS = sorted(p.stem for p in (DATA / "torchvision").glob("*.json"))


def torchvision_reference(name: str) -> dict:
    return json.loads((DATA / "torchvision" / f"{name}.json").read_text())


def filled_state_dict(entries: list) -> dict:
    """torchvision's state dict filled by the reference fill rule (tests/data/README.md)."""
    import torch

    out = {}
    for key, shape in entries:
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            value = torch.zeros((), dtype=torch.long)
        elif key.endswith("running_var"):
            value = 1.0 + 0.25 * torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            value = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("bias"):
            value = 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            value = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            value = torch.randn(shape, generator=g) * math.sqrt(1 / math.prod(shape[1:]))
        out[key] = value
    return out


@pytest.fixture(scope="session")
def reference():
    return torchvision_reference
