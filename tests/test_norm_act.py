"""The normalisation and activation a spec chooses (issue 10): batch, group or frozen batch norm; relu,
leaky_relu (with its slope), silu, gelu; and zero_init_last. None changes a count; fuse takes what its kernel
computes and says what it leaves eager."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

import archgen
from archgen.kernels import fuse


def resnet18_with(**fields) -> dict:
    return {"extends": "resnet18", "name": "resnet18_variant", **fields}


def _randomise_bns(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(1 + 0.25 * torch.rand(m.num_features, generator=g))
    return model.eval()


@pytest.mark.parametrize("fields, norm_type, act_type", [
    ({"norm": {"type": "group", "groups": 32}}, nn.GroupNorm, nn.ReLU),
    ({"norm": {"type": "frozen_batch"}}, nn.BatchNorm2d, nn.ReLU),
    ({"block": {"act": "silu"}}, nn.BatchNorm2d, nn.SiLU),
    ({"block": {"act": "gelu"}}, nn.BatchNorm2d, nn.GELU),
], ids=["group_norm", "frozen_batch_norm", "silu", "gelu"])
def test_a_norm_or_act_choice_builds_those_layers_and_keeps_resnet18s_counts(fields, norm_type, act_type):
    model = archgen.build(resnet18_with(**fields))
    assert isinstance(model.stem.bn1, norm_type) and isinstance(model.layer2[0].bn2, norm_type)
    assert isinstance(model.layer1[0].act1, act_type) and isinstance(model.stem.act1, act_type)
    counted = archgen.profile(resnet18_with(**fields))
    assert counted.params == sum(p.numel() for p in model.parameters()) == 11_689_512  # torchvision's
    assert counted.macs == archgen.profile("resnet18").macs


def test_frozen_batch_norm_learns_nothing_and_uses_its_statistics_in_training():
    model = archgen.build(resnet18_with(norm={"type": "frozen_batch"}))
    bn = model.layer1[0].bn1
    assert not bn.weight.requires_grad and not bn.bias.requires_grad
    model.train()
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("fields, eager", [
    ({"block": {"act": "silu"}}, None),
    ({"norm": {"type": "frozen_batch"}}, None),
    # stem 1 + 2 per block x 4 + three projections (stages 2-4 keep resnet18's stride 2); GELU: stem 1 + 2 x 4
    ({"norm": {"type": "group", "groups": 16}, "block": {"act": "gelu"}}, "GELU (9), GroupNorm (12)"),
], ids=["silu-in-the-kernel", "frozen-bn-folds", "group-norm-and-gelu-stay-eager"])
def test_fuse_computes_what_its_kernel_can_and_names_what_stays_eager(fields, eager, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the Triton kernel itself, interpreted on the CPU
    torch.manual_seed(0)
    model = _randomise_bns(archgen.build({**resnet18_with(**fields), "stages": [
        {"depth": 1, "width": 16}, {"depth": 1, "width": 32}, {"depth": 1, "width": 32}, {"depth": 1, "width": 32}],
        "stem": {"width": 16}}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fused = fuse(model)
    said = [str(w.message) for w in caught if "archgen.fuse" in str(w.message)]
    if eager is None:
        assert said == []
    else:
        assert len(said) == 1 and eager in said[0]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)


def test_zero_init_last_starts_every_residual_branch_at_zero():
    model = archgen.build(resnet18_with(zero_init_last=True)).eval()
    block = model.layer1[0]
    assert torch.count_nonzero(block.bn2.weight) == 0 and torch.count_nonzero(model.layer1[0].bn1.weight) > 0
    x = torch.relu(torch.randn(1, 64, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x + block.bn2.bias.reshape(1, -1, 1, 1)))
    preact = archgen.build({"extends": "preact_resnet164_cifar", "name": "p", "zero_init_last": True})
    assert torch.count_nonzero(preact.layer1[1].conv3.weight) == 0  # a branch ending in its conv


def test_the_leaky_slope_is_the_specs():
    yolo, timm_like = archgen.build("darknet53", device="meta"), archgen.build(
        {"extends": "darknet53", "name": "darknet53_slope_001", "leaky_slope": 0.01}, device="meta")
    assert yolo.layer1[1].act1.negative_slope == 0.1 and timm_like.layer1[1].act1.negative_slope == 0.01


@pytest.mark.parametrize("fields, field, words", [
    ({"norm": {"type": "group", "groups": 24}}, "norm.groups", "cannot normalise the 64 channels"),
    ({"leaky_slope": 0.01}, "leaky_slope", "no layer of this network is a leaky_relu"),
    ({"norm": {"type": "layer"}}, "norm.type", "allowed"),
], ids=["groups-not-dividing", "slope-of-no-leaky-relu", "unknown-norm"])
def test_a_norm_or_act_choice_that_cannot_apply_is_an_error(fields, field, words):
    with pytest.raises(archgen.SpecError) as info:
        archgen.profile(resnet18_with(**fields))
    assert info.value.field == field and words in info.value.message


def test_zero_init_last_needs_a_residual_branch():
    with pytest.raises(archgen.SpecError) as info:
        archgen.profile({"extends": "densenet121", "name": "d", "zero_init_last": True})
    assert info.value.field == "zero_init_last"
