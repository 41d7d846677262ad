"""Weights in by name and out whole: timm's state dicts (its ResNets, RegNets, DenseNet and VGG) load by name and
give timm's logits,
`.safetensors` and `.pt` files round-trip, and every kind of bad checkpoint is refused with a clear
UserError (exit 2 at the CLI) that leaves the model unchanged."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.errors import UserError
from archgen.weights import WeightsError, WeightsMismatch, match_state_dict, read_metadata, save_weights
from conftest import DATA, assert_reference_logits, filled_state_dict

#: tests/data/timm/ also holds feature_info.json (timm's feature maps, tests/test_timm_conventions.py).
TIMM_TWINS = sorted(p.stem for p in (DATA / "timm").glob("*.json") if p.stem != "feature_info")
runner = CliRunner()


def timm_reference(name: str) -> dict:
    return json.loads((DATA / "timm" / f"{name}.json").read_text())


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before), "a failed load changed the model"


@pytest.fixture
def resnet20():
    return archgen.build("resnet20_cifar")


def test_the_timm_twins_hold_the_shared_reference_set_and_the_files_made_like_it():
    """The seven shared files, and those tests/data/tools/make_reference.py made from timm 1.0.31 by the same
    fill rule (it reproduces the shared seresnet50.json to 1e-6 first: `--library timm --check seresnet50`)."""
    shared = {"resnet26", "resnet26d", "seresnet50", "regnetx_002", "regnetx_004", "densenet121", "vgg11"}
    assert shared <= set(TIMM_TWINS)
    assert all(timm_reference(n)["source"] == f"timm 1.0.31 create_model('{n}', pretrained=False)" for n in TIMM_TWINS)
    assert {"seresnext50_32x4d", "resnext50d_32x4d"} <= set(TIMM_TWINS)


@pytest.mark.parametrize("name", TIMM_TWINS)
def test_timm_weights_load_by_name_and_give_timms_logits(name):
    ref = timm_reference(name)
    assert archgen.profile(name).params == ref["params"]
    assert_reference_logits(name, ref, "timm")


def test_timms_deep_stem_bn1_is_the_stems_third_norm():
    state = filled_state_dict(timm_reference("resnet26d")["state_dict"])
    model = archgen.create_model("resnet26d", pretrained=None)
    archgen.load_weights(model, state, layout="timm")
    torch.testing.assert_close(model.stem.bn3.weight, state["bn1.weight"])
    torch.testing.assert_close(model.stem.conv2.weight, state["conv1.3.weight"])


def test_auto_layout_finds_the_one_that_fits():
    model = archgen.build("resnet26d")
    state = filled_state_dict(timm_reference("resnet26d")["state_dict"])
    archgen.load_weights(model, state, layout="auto")
    torch.testing.assert_close(model.head.fc.weight, state["fc.weight"])


def meta_state_dict(entries: list) -> dict[str, torch.Tensor]:
    """A reference's keys and shapes without their values (matching names and shapes needs no memory)."""
    return {k: torch.empty(shape, device="meta", dtype=torch.long if k.endswith("num_batches_tracked") else None)
            for k, shape in entries}


def test_timms_vgg_pre_logits_convs_map_onto_the_heads_linear_layers():
    """timm holds VGG's first classifier layer as a 7x7 conv over the map (fc1) and the second as a 1x1 conv;
    flattened, they are the head's linear layers (the logits test above shows they compute the same)."""
    entries = timm_reference("vgg11")["state_dict"]
    mapped = match_state_dict(archgen.build("vgg11", device="meta"), meta_state_dict(entries), "timm")
    assert dict(entries)["pre_logits.fc1.weight"] == [4096, 512, 7, 7]
    assert mapped["head.hidden.0.weight"].shape == (4096, 512 * 7 * 7)
    assert mapped["head.hidden.3.weight"].shape == (4096, 4096)
    assert mapped["layer5.1.conv.weight"].shape == tuple(dict(entries)["features.18.weight"])


@pytest.mark.parametrize("name, reference, asked, fits", [
    ("resnet26d", lambda: timm_reference("resnet26d"), "torchvision", "timm"),
    ("vgg11", lambda: json.loads((DATA / "torchvision" / "vgg" / "vgg11.json").read_text()), "timm", "torchvision"),
    ("vgg11", lambda: timm_reference("vgg11"), "archgen", "timm"),
])
def test_a_checkpoint_of_another_layout_is_refused_naming_the_layout_it_fits(name, reference, asked, fits):
    model = archgen.build(name, device="meta")
    with pytest.raises(WeightsMismatch, match=f"Its keys fit the '{fits}' layout: pass layout='{fits}'"):
        match_state_dict(model, meta_state_dict(reference()["state_dict"]), asked)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_round_trip_through_a_file(resnet20, tmp_path, suffix):
    path = tmp_path / f"r20{suffix}"
    save_weights(resnet20, path, spec_name="resnet20_cifar")
    fresh = archgen.build("resnet20_cifar")
    archgen.load_weights(fresh, path)
    assert_unchanged(fresh, resnet20.state_dict())
    if suffix == ".pt":  # a plain state dict, readable without archgen
        assert isinstance(torch.load(path, weights_only=True), dict)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_safetensors_metadata_records_the_spec_and_archgens_version(tmp_path):
    path = tmp_path / "r20.safetensors"
    result = runner.invoke(app, ["build", "resnet20_cifar", "-o", str(path)])
    assert result.exit_code == 0, result.output
    meta = read_metadata(path)
    assert meta["spec"] == "resnet20_cifar" and meta["archgen_version"] == archgen.__version__
    assert archgen.create_model("resnet20_cifar", pretrained=path).state_dict().keys() == \
        archgen.build("resnet20_cifar").state_dict().keys()


def test_build_refuses_an_output_suffix_it_cannot_write(tmp_path):
    result = runner.invoke(app, ["build", "resnet20_cifar", "-o", str(tmp_path / "r20.onnx")])
    assert result.exit_code == 2 and ".safetensors" in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_pretrained_with_new_classes_keeps_the_fresh_classifier(resnet20, tmp_path):
    path = tmp_path / "r20.pt"
    save_weights(resnet20, path)
    tuned = archgen.create_model("resnet20_cifar", pretrained=path, num_classes=5)
    assert tuned.get_classifier().out_features == 5
    torch.testing.assert_close(tuned.layer3[2].conv2.weight, resnet20.layer3[2].conv2.weight)


def test_a_checkpoint_of_another_architecture_names_what_differs_and_loads_nothing(resnet20):
    before = state_of(resnet20)
    other = archgen.build("resnet32_cifar").state_dict()
    with pytest.raises(WeightsMismatch) as info:
        archgen.load_weights(resnet20, other)
    message = str(info.value)
    assert "unexpected" in message and "layer1.3.* (12)" in message and "Nothing was loaded" in message
    assert_unchanged(resnet20, before)


def test_mis_shaped_and_missing_keys_are_named_and_nothing_loads(resnet20):
    before = state_of(resnet20)
    state = {k: torch.ones_like(v) for k, v in resnet20.state_dict().items()}
    state["head.fc.weight"] = torch.ones(100, 64)
    del state["layer2.1.conv1.weight"]
    with pytest.raises(WeightsMismatch, match=r"1 missing .*layer2\.1\.conv1\.weight.*1 mis-shaped: head\.fc\.weight"):
        archgen.load_weights(resnet20, state)
    assert_unchanged(resnet20, before)


def saved(tmp_path: Path, model: torch.nn.Module, suffix: str) -> bytes:
    path = tmp_path / f"good{suffix}"
    save_weights(model, path)
    return path.read_bytes()


def lying_header(data: bytes) -> bytes:
    """The same file with one tensor's shape doubled in the header, its byte range unchanged."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header["stem.conv1.weight"]["shape"][0] *= 2
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    return data[:8] + text.ljust(n) + data[8 + n:]


def torch_saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class RunsCode:
    """A pickle that would create a file if unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


BAD_INPUTS = {
    "truncated .pt": (".pt", lambda d, tmp: d[".pt"][: len(d[".pt"]) // 2], "truncated"),
    "truncated .safetensors": (".safetensors", lambda d, tmp: d[".safetensors"][: len(d[".safetensors"]) // 2],
                               "not a valid safetensors file"),
    "lying safetensors header": (".safetensors", lambda d, tmp: lying_header(d[".safetensors"]),
                                 "header does not match its data"),
    "absurd safetensors header length": (".safetensors", lambda d, tmp: struct.pack("<Q", 10 ** 12) +
                                         d[".safetensors"][8:], "not a valid safetensors file"),
    "pickle of a list": (".pt", lambda d, tmp: torch_saved([1, 2, 3]), "is not a state dict: it holds a list"),
    "pickle of non-tensors": (".pt", lambda d, tmp: torch_saved({"stem.conv1.weight": 3}), "are not tensors"),
    "pickle that runs code": (".pt", lambda d, tmp: torch_saved({"x": RunsCode(tmp / "pwned")}),
                              "never unpickles arbitrary objects"),
    "unknown suffix": (".h5", lambda d, tmp: b"\x89HDF", "cannot tell the format"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_checkpoint_is_a_user_error_and_exit_2_with_the_model_unchanged(case, resnet20, tmp_path):
    suffix, make, message = BAD_INPUTS[case]
    good = {s: saved(tmp_path, resnet20, s) for s in (".pt", ".safetensors")}
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(make(good, tmp_path))
    before = state_of(resnet20)
    with pytest.raises(UserError, match=message):
        archgen.load_weights(resnet20, path)
    assert_unchanged(resnet20, before)
    assert not (tmp_path / "pwned").exists()
    result = runner.invoke(app, ["export", "resnet20_cifar", "--to", "onnx", "--weights", str(path),
                                 "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_a_missing_file_and_an_unknown_layout_are_user_errors(resnet20, tmp_path):
    with pytest.raises(WeightsError, match="no weights file"):
        archgen.load_weights(resnet20, tmp_path / "absent.pt")
    with pytest.raises(UserError, match="unknown weights layout 'keras'"):
        archgen.load_weights(resnet20, resnet20.state_dict(), layout="keras")
