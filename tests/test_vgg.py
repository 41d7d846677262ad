"""VGG (Simonyan and Zisserman 2014): the bundled configurations equal torchvision's VGGs in parameters, and the
filled torchvision state dicts give torchvision's logits; the paper's Table 2 counts; the 7x7 classifier."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.errors import SpecError
from conftest import DATA, filled_state_dict

#: torchvision 0.29.1's num_params, as its model docs print them (VGG11_Weights ... VGG19_BN_Weights).
TORCHVISION_PARAMS = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
                      "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
                      "vgg19_bn": 143_678_248}


def vgg_reference(name: str) -> dict:
    # Kept beside, not in, tests/data/torchvision/: archgen's torchvision layout maps no `features.N` keys.
    return json.loads((DATA / "torchvision" / "vgg" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_vgg_params_equal_torchvisions(name):
    assert archgen.profile(name).params == TORCHVISION_PARAMS[name]
    assert archgen.load_spec(name).doc.torchvision == name


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_torchvision_state_dict_in_its_order_gives_torchvisions_logits(name):
    ref = vgg_reference(name)
    model = archgen.build(name).eval()
    ours = model.state_dict()
    assert [list(v.shape) for v in ours.values()] == [shape for _, shape in ref["state_dict"]]
    model.load_state_dict(dict(zip(ours, filled_state_dict(ref["state_dict"]).values())))
    x = torch.randn(*ref["input"]["shape"], generator=torch.Generator().manual_seed(ref["input"]["generator_seed"]))
    with torch.no_grad():
        logits = model(x)
    expected = torch.tensor(ref["logits"])
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert ref["params"] == TORCHVISION_PARAMS[name]


def test_fvcore_total_is_our_macs_plus_the_adaptive_pool():
    p = archgen.profile("vgg11")
    pool = next(layer for layer in p.layers if layer.name == "head.pool")
    assert p.macs + pool.other_ops == vgg_reference("vgg11")["fvcore_total_224"]


def test_head_is_torchvisions_classifier_under_its_numbers():
    model = archgen.build("vgg11", device="meta")
    head = [name for name, _ in model.head.named_parameters()]
    assert head == ["hidden.0.weight", "hidden.0.bias", "hidden.3.weight", "hidden.3.bias", "fc.weight", "fc.bias"]
    assert model.head.num_features == 4096 and model.num_features == 512


def test_a_32_pixel_input_runs_and_a_smaller_one_is_refused_at_the_input_line(tmp_path):
    model = archgen.build("vgg11").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    spec = tmp_path / "tiny_vgg.yaml"
    spec.write_text("name: tiny_vgg\nextends: vgg11\ninput: {size: 16}\n")
    with pytest.raises(SpecError, match="too small") as info:
        archgen.profile(str(spec))
    assert info.value.field == "input.size" and info.value.line == 3


def test_table_2_counts_hold_within_their_printed_millions():
    printed = {"vgg11": 133, "vgg11_lrn": 133, "vgg13": 133, "vgg16_c": 134, "vgg16": 138, "vgg19": 144}
    assert {name: round(archgen.profile(name).params / 1e6) for name in printed} == printed


def test_configuration_c_ends_stages_3_to_5_with_a_1x1_conv_and_a_lrn_follows_a_s_first_conv():
    stages = archgen.profile("vgg16_c", input_size=32).stages
    assert [s.notation for s in stages[3:6]] == ["[conv3-256] x 2 [conv1-256] x 1 [maxpool] x 1",
                                                 "[conv3-512] x 2 [conv1-512] x 1 [maxpool] x 1",
                                                 "[conv3-512] x 2 [conv1-512] x 1 [maxpool] x 1"]
    model = archgen.build("vgg11_lrn", device="meta")
    assert isinstance(model.layer1[0].lrn, torch.nn.LocalResponseNorm)


def test_paper_vgg_prints_tables_1_and_2():
    result = CliRunner().invoke(app, ["table", "--paper", "vgg", "-f", "markdown"])
    assert result.exit_code == 0, result.output
    assert "conv3-64, LRN" in result.stdout and "conv1-256" in result.stdout and "144M" in result.stdout


@pytest.mark.parametrize("stem", ["width: 64", "kernel: 3"])
def test_a_none_stem_refuses_fields_it_would_ignore(tmp_path, stem):
    spec = tmp_path / "v.yaml"
    spec.write_text(f"name: v\nextends: vgg11\nstem: {{type: none, {stem}}}\n")
    with pytest.raises(SpecError, match="'none' stem has no layers"):
        archgen.profile(str(spec))
