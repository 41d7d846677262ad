"""Highway shortcuts (Srivastava et al. 2015): y = act(H(x) T(x) + carry(x) (1 - T(x))), T a sigmoid of a 3x3
conv whose bias starts at the carry bias; counted analytically, left eager by fuse, refused by lesion."""

from __future__ import annotations

import pytest
import torch

import archgen
from archgen.ensemble import LesionError, lesion
from archgen.kernels.fuse import fuse


def test_gates_add_one_conv_with_bias_per_block_to_resnet110():
    resnet, highway = archgen.profile("resnet110_cifar"), archgen.profile("highway110_cifar")
    gates = [layer for layer in highway.layers if layer.name.endswith(".gate.conv")]
    assert len(gates) == 54
    # 18 blocks per stage, a 3x3 gate of c -> c channels with bias (the first of stages 2, 3: c / 2 -> c).
    expected = sum(18 * (c * c * 9 + c) - (c // 2 * c * 9 if c > 16 else 0) for c in (16, 32, 64))
    assert highway.params - resnet.params == sum(g.params for g in gates) == expected
    assert highway.macs - resnet.macs == sum(g.macs for g in gates)
    model = archgen.build("highway110_cifar", device="meta")
    assert sum(p.numel() for p in model.parameters()) == highway.params


def test_block_computes_the_gated_merge_with_the_carry_bias():
    torch.manual_seed(0)
    model = archgen.build("highway20_cifar").eval()
    block = model.layer2[0]  # strides: the carry is the zero-padding shortcut
    assert torch.all(block.gate.conv.bias == -1)
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        h = block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x)))))
        t = torch.sigmoid(block.gate.conv(x))
        expected = torch.relu(h * t + block.downsample(x) * (1 - t))
        torch.testing.assert_close(block(x), expected)


def test_fused_highway_net_keeps_its_gated_blocks_eager_and_its_logits():
    model = archgen.build("highway20_cifar").eval()
    fused = fuse(model)
    assert type(fused.layer1[0]) is type(model.layer1[0])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


def test_lesion_refuses_a_gated_block():
    with pytest.raises(LesionError, match="gated"):
        lesion(archgen.build("highway20_cifar", device="meta"), ["layer1.1"])
