"""Stochastic depth as Huang et al. 2016 define it: block l of L survives each mini-batch with
p_l = 1 - l/L (1 - p_L), a dropped block passes its input through, and at test time every branch runs,
scaled by p_l (or, with `inverted`, scaled by 1/p_l in training and left alone at test time)."""

from __future__ import annotations

import math

import pytest
import torch

import archgen
from archgen.modules import DropPath

L = 54  # residual blocks of the 110-layer CIFAR net


def residual_blocks(model):
    return [b for stage in model.stages for b in stage if isinstance(getattr(b, "drop_path", None), DropPath)]


@pytest.fixture(scope="module")
def resnet110_sd():
    torch.manual_seed(0)
    return archgen.build("resnet110_sd_cifar")


def test_spec_writes_the_rule_and_p_L_not_a_list():
    sd = archgen.load_spec("resnet110_sd_cifar").doc.stochastic_depth
    assert (sd.rule, sd.final_survival, sd.inverted) == ("linear", 0.5, False)


def test_linear_decay_from_1_to_p_L(resnet110_sd):
    survival = [b.drop_path.survival for b in residual_blocks(resnet110_sd)]
    assert len(survival) == L
    assert survival == pytest.approx([1 - l / L * 0.5 for l in range(1, L + 1)])
    assert survival[-1] == 0.5


def test_expected_depth_is_3L_minus_1_over_4(resnet110_sd):
    """Sec. 3: E(L~) = (3L - 1) / 4, about 40 blocks for the 110-layer net."""
    expected = sum(b.drop_path.survival for b in residual_blocks(resnet110_sd))
    assert expected == pytest.approx((3 * L - 1) / 4)


@pytest.mark.parametrize("index", [0, 26, 53])
def test_survival_frequency_matches_p_l(resnet110_sd, index):
    torch.manual_seed(1234 + index)
    drop = residual_blocks(resnet110_sd)[index].drop_path.train()
    trials = 4000
    ones = torch.ones(1, 1, 1, 1)
    survived = sum(int(drop(ones).item() != 0) for _ in range(trials))
    p = drop.survival
    sigma = math.sqrt(trials * p * (1 - p))
    assert abs(survived - trials * p) <= 4.5 * sigma + 1  # a 4.5-sigma band: fails about once in 150,000 runs


def test_a_dropped_block_passes_its_input_and_the_whole_batch_drops_together(resnet110_sd):
    torch.manual_seed(7)
    block = residual_blocks(resnet110_sd)[-1].train()  # p_L = 0.5: both outcomes within a few tries
    x = torch.relu(torch.randn(4, 64, 8, 8))
    with torch.no_grad():
        full = torch.relu(block.branch(x) + x)
        outcomes = set()
        for _ in range(40):
            out = block(x)
            if torch.equal(out, x):
                outcomes.add("dropped")
            else:
                torch.testing.assert_close(out, full)
                outcomes.add("kept")
    assert outcomes == {"dropped", "kept"}


def test_eval_runs_every_branch_scaled_by_p_l_deterministically(resnet110_sd):
    model = resnet110_sd.eval()
    block = residual_blocks(model)[-1]
    x = torch.relu(torch.randn(2, 64, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(0.5 * block.branch(x) + x))
        images = torch.randn(2, 3, 32, 32)
        assert torch.equal(model(images), model(images))


def test_inverted_convention_scales_in_training_and_not_at_test():
    spec = {"name": "tiny_sd", "input": {"channels": 3, "size": 16, "classes": 10},
            "stem": {"type": "cifar", "width": 8}, "block": {"type": "basic"},
            "stages": [{"depth": 2, "width": 8}], "shortcut": "zero_pad",
            "stochastic_depth": {"final_survival": 0.5, "inverted": True}}
    torch.manual_seed(3)
    block = residual_blocks(archgen.build(spec))[-1]
    x = torch.relu(torch.randn(2, 8, 4, 4))
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(block.branch(x) + x))
        block.train()
        scaled = torch.relu(block.branch(x) / 0.5 + x)
        outcomes = set()
        for _ in range(40):
            out = block(x)
            outcomes.add("dropped" if torch.equal(out, x) else "kept")
            if not torch.equal(out, x):
                torch.testing.assert_close(out, scaled)
    assert outcomes == {"dropped", "kept"}


def test_resnet1202_sd_has_600_blocks_decaying_to_one_half():
    plan = archgen.plan("resnet1202_sd_cifar")
    survival = [b.at.survival for stage in plan.stages for b in stage.blocks]
    assert len(survival) == 600
    assert survival[0] == pytest.approx(1 - 0.5 / 600) and survival[-1] == 0.5


@pytest.mark.parametrize("name, total", [("efficientnet_b0", 16), ("efficientnet_b1", 23), ("efficientnet_b3", 26)])
def test_efficientnet_drops_as_torchvision_counting_blocks_from_zero(name, total):
    """torchvision's EfficientNet: sd_prob = 0.2 * k / L for block k = 0..L-1 of all L blocks, applied only by
    the blocks that add their input (so its first block, and every stage's first, never drop)."""
    blocks = [b for stage in archgen.plan(name).stages for b in stage.blocks]
    assert len(blocks) == total
    expected = [1 - 0.2 * k / total if b.is_residual else 1.0 for k, b in enumerate(blocks)]
    assert [b.layers().survival for b in blocks] == pytest.approx(expected, rel=1e-12)
    strided = next(b for b in blocks if b.at.stride == 2)
    assert strided.layers().survival == 1.0 and not strided.is_residual  # no shortcut, nothing to drop


def test_efficientnet_drops_each_sample_apart_and_scales_survivors_in_training():
    torch.manual_seed(5)
    drop = next(b for b in archgen.build("efficientnet_b0").modules() if isinstance(b, DropPath))
    assert (drop.survival, drop.inverted, drop.per_sample) == (0.975, True, True)
    drop = DropPath(0.5, inverted=True, per_sample=True).train()
    out = drop(torch.ones(400, 2, 3, 3))
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/0.5
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # one draw per sample
    kept = int((per_sample[:, 0] > 0).sum())
    assert abs(kept - 200) <= 4.5 * math.sqrt(400 * 0.25) + 1
    x = torch.randn(4, 2, 3, 3)
    assert torch.equal(drop.eval()(x), x)
