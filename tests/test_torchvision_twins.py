"""The bundled specs that torchvision also ships equal torchvision's models:
the same parameter count, and torchvision's state dict loads strictly and
gives the same logits (reference data from torchvision 0.29.1)."""

from __future__ import annotations

import pytest
import torch

import archgen
from archgen.interop import StateDictMismatch, load_torchvision_state_dict
from conftest import TORCHVISION_TWINS, filled_state_dict, torchvision_reference


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_analytic_params_equal_torchvision(name):
    assert archgen.profile(name).params == torchvision_reference(name)["params"]


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_torchvision_weights_give_torchvision_logits(name):
    ref = torchvision_reference(name)
    model = archgen.build(name).eval()
    assert sum(p.numel() for p in model.parameters()) == ref["params"]
    assert archgen.load_spec(name).doc.torchvision == name
    load_torchvision_state_dict(model, filled_state_dict(ref["state_dict"]))
    x = torch.randn(*ref["input"]["shape"], generator=torch.Generator().manual_seed(ref["input"]["generator_seed"]))
    with torch.no_grad():
        logits = model(x)
    expected = torch.tensor(ref["logits"])
    assert logits.shape == expected.shape
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_a_state_dict_of_another_network_is_refused_with_both_names():
    model = archgen.build("resnet18")
    other = filled_state_dict(torchvision_reference("resnet34")["state_dict"])
    with pytest.raises(StateDictMismatch, match="entries"):
        load_torchvision_state_dict(model, other)
    wrong_shape = filled_state_dict(torchvision_reference("resnet18")["state_dict"])
    wrong_shape["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(StateDictMismatch, match="layer1.0.conv1.weight"):
        load_torchvision_state_dict(model, wrong_shape)
