"""Specs without a torchvision twin, pinned to figures measured from other public implementations
(tests/data/published.json, copied from the shared reference set): the 2015 stride layout and timm's ResNet-50-D."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import archgen

PUBLISHED = json.loads((Path(__file__).parent / "data" / "published.json").read_text())["models"]


def fvcore_total(p) -> int:
    """fvcore's total from archgen's layers: conv + linear, 2 per BN element, the global average pool
    (fvcore skips max pools, the shortcut's average pool and the residual add; see
    archgen.third_party_counters.RULES)."""
    bn = sum(layer.other_ops for layer in p.layers if layer.op == "bn")
    global_pool = sum(layer.other_ops for layer in p.layers if layer.op == "pool" and layer.name.startswith("head"))
    return p.macs + 2 * bn + global_pool


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_equal_the_published_implementation(name):
    assert archgen.profile(name).params == PUBLISHED[name]["params"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_fvcore_total_equals_the_published_figure(name):
    p = archgen.profile(name, input_size=224)
    assert round(fvcore_total(p) / 1e9, 3) == PUBLISHED[name]["fvcore_total_g"]
    if "fvcore_conv_g" in PUBLISHED[name]:
        conv = sum(layer.macs for layer in p.layers if layer.op == "conv")
        assert round(conv / 1e9, 3) == pytest.approx(PUBLISHED[name]["fvcore_conv_g"], abs=1e-9)
