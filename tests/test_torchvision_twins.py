"""The bundled specs that torchvision also ships equal torchvision's models:
the same parameter count, and torchvision's state dict loads by name (layout
"torchvision") and gives the same logits (reference data from torchvision 0.29.1)."""

from __future__ import annotations

import pytest
import torch

import archgen
from archgen.weights import WeightsMismatch
from conftest import TORCHVISION_TWINS, assert_reference_logits, filled_state_dict, torchvision_reference


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_analytic_params_equal_torchvision(name):
    assert archgen.profile(name).params == torchvision_reference(name)["params"]


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_torchvision_weights_load_by_name_and_give_torchvision_logits(name):
    ref = torchvision_reference(name)
    assert archgen.load_spec(name).doc.torchvision == name
    model = assert_reference_logits(name, ref, "torchvision")
    assert sum(p.numel() for p in model.parameters()) == ref["params"]


def test_torchvisions_keys_are_found_by_name_whatever_their_order():
    model = archgen.build("densenet121")
    entries = torchvision_reference("densenet121")["state_dict"]
    archgen.load_weights(model, filled_state_dict(entries[::-1]), layout="torchvision")
    torch.testing.assert_close(model.layer3[0].conv.weight,
                               filled_state_dict(entries)["features.transition2.conv.weight"])


def test_a_state_dict_of_another_network_is_refused_naming_the_keys_grouped():
    model = archgen.build("resnet18")
    other = filled_state_dict(torchvision_reference("resnet34")["state_dict"])
    with pytest.raises(WeightsMismatch, match=r"unexpected .*layer1\.2\.\* \(12\)") as info:
        archgen.load_weights(model, other, layout="torchvision")
    assert "layer3.5.bn2.weight" in info.value.unexpected and not info.value.missing
    wrong_shape = filled_state_dict(torchvision_reference("resnet18")["state_dict"])
    wrong_shape["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(WeightsMismatch, match=r"1 mis-shaped: layer1\.0\.conv1\.weight \(checkpoint 64x64x1x1"):
        archgen.load_weights(model, wrong_shape, layout="torchvision")
