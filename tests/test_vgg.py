"""VGG (Simonyan and Zisserman 2014): the bundled configurations equal torchvision's VGGs in parameters, and
torchvision's state dicts load by name (layout='torchvision') and give torchvision's logits; the paper's Table 2
counts; the 7x7 classifier."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.errors import SpecError
from archgen.weights import match_state_dict
from conftest import DATA, assert_reference_logits

#: torchvision 0.29.1's num_params, as its model docs print them (VGG11_Weights ... VGG19_BN_Weights).
TORCHVISION_PARAMS = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
                      "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
                      "vgg19_bn": 143_678_248}


def vgg_reference(name: str) -> dict:
    # In their own folder: the tests over tests/data/torchvision/*.json hold four-stage ResNet/DenseNet twins.
    return json.loads((DATA / "torchvision" / "vgg" / f"{name}.json").read_text())


#: torchvision's `cfgs` as the paper's Table 1 prints configurations A, B, D and E: conv widths, "M" a max-pool.
TABLE_1 = {"vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
           "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
           "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
           "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512,
                     512, "M"]}


def torchvision_vgg_keys(name: str) -> list:
    """torchvision's VGG state dict, [key, shape] in order: one `features` Sequential numbering every layer
    (conv, [bn], relu; max-pool), then `classifier` (fc 25088-4096, relu, dropout, fc 4096-4096, relu, dropout,
    fc 4096-1000)."""
    entries, i, c_in = [], 0, 3
    for v in TABLE_1[name.removesuffix("_bn")]:
        if v == "M":
            i += 1
            continue
        entries += [[f"features.{i}.weight", [v, c_in, 3, 3]], [f"features.{i}.bias", [v]]]
        if name.endswith("_bn"):
            entries += [[f"features.{i + 1}.{k}", [v]] for k in ("weight", "bias", "running_mean", "running_var")]
            entries.append([f"features.{i + 1}.num_batches_tracked", []])
        i += 3 if name.endswith("_bn") else 2
        c_in = v
    for j, (n_in, n_out) in zip((0, 3, 6), ((512 * 7 * 7, 4096), (4096, 4096), (4096, 1000))):
        entries += [[f"classifier.{j}.weight", [n_out, n_in]], [f"classifier.{j}.bias", [n_out]]]
    return entries


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_vgg_params_equal_torchvisions(name):
    assert archgen.profile(name).params == TORCHVISION_PARAMS[name]
    assert archgen.load_spec(name).doc.torchvision == name


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_torchvision_state_dict_loads_by_name_and_gives_torchvisions_logits(name):
    ref = vgg_reference(name)
    assert ref["params"] == TORCHVISION_PARAMS[name]
    assert ref["state_dict"] == torchvision_vgg_keys(name)
    assert_reference_logits(name, ref, "torchvision")


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_every_torchvision_vgg_checkpoint_fits_its_twin_by_name(name):
    entries = torchvision_vgg_keys(name)
    assert sum(math.prod(shape) for key, shape in entries if "running" not in key
               and "num_batches" not in key) == TORCHVISION_PARAMS[name]
    state = {k: torch.empty(shape, device="meta", dtype=torch.long if k.endswith("num_batches_tracked") else None)
             for k, shape in entries}
    model = archgen.build(name, device="meta")
    mapped = match_state_dict(model, state, "torchvision")  # every key used once, every shape equal
    assert mapped.keys() == model.state_dict().keys()
    assert match_state_dict(model, state, "auto").keys() == mapped.keys()


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
