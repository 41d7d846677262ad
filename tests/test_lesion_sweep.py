"""Lesions of single-path networks and lesion sweeps (Veit et al. 2016): a VGG or plain net loses a layer whose
input and output shapes match, never one that changes a shape; k random deletions, seeded, on a random batch or
on images of the user's own."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.ensemble import LesionError, deletable_blocks, lesion
from archgen.ensemble.lesion_sweep import lesion_sweep

runner = CliRunner()


def test_deleting_one_of_vggs_repeated_convs_leaves_the_others():
    model = archgen.build("vgg11").eval()
    cut = lesion(model, ["layer3.1"], input_size=32)
    assert isinstance(cut.layer3[1], torch.nn.Identity) and not isinstance(model.layer3[1], torch.nn.Identity)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        h = model.layer2(model.layer1(x))
        h = model.layer3[2](model.layer3[0](h))  # layer3.1 gone, its pool (layer3.2) kept
        expected = model.head(model.layer5(model.layer4(h)))
        torch.testing.assert_close(cut(x), expected)


@pytest.mark.parametrize("name, block, shapes", [("vgg11", "layer3.0", "128x8x8 to 256x8x8"),
                                                  ("vgg11", "layer1.1", "64x32x32 to 64x16x16"),
                                                  ("plain20_cifar", "layer2.0", "16x32x32 to 32x16x16")])
def test_a_deletion_that_changes_a_shape_is_refused_naming_the_layer_and_shapes(name, block, shapes):
    with pytest.raises(LesionError, match=f"'{block}' .* maps {shapes}"):
        lesion(archgen.build(name, device="meta"), [block], input_size=32)


def test_single_path_blocks_that_keep_their_shape_are_the_deletable_ones():
    assert deletable_blocks(archgen.build("vgg11", device="meta"), 32) == \
        ["layer3.1", "layer4.1", "layer5.0", "layer5.1"]
    plain = deletable_blocks(archgen.build("plain20_cifar", device="meta"), 32)
    assert len(plain) == 7 and "layer2.0" not in plain


def test_sweep_is_seeded_and_grows_from_zero():
    torch.manual_seed(0)
    model = archgen.build("resnet20_cifar").eval()
    x = torch.randn(4, 3, 32, 32)
    first, again = (lesion_sweep(model, "r20", x, 3, 4, seed=5, input_size=32) for _ in range(2))
    assert first == again and first.candidates == 7
    assert [p.deleted for p in first.points] == [0, 1, 2, 3] and first.points[0].mean_change == 0
    assert all(p.mean_change > 0 for p in first.points[1:]) and first.points[0].agreement is None


def _write_images(root, count: int = 3) -> None:
    from PIL import Image

    for i in range(count):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 36), (40 * i, 255 - 30 * i, 90)).save(folder / f"img{i}.png")


def test_sweep_command_on_images_reports_agreement_and_draws_the_curves(tmp_path):
    _write_images(tmp_path / "images")
    weights, plot = tmp_path / "p20.pt", tmp_path / "sweep.png"
    assert runner.invoke(app, ["build", "plain20_cifar", "-o", str(weights)]).exit_code == 0
    result = runner.invoke(app, ["lesion", "plain20_cifar", "resnet20_cifar", "--sweep", "2", "--sets", "2",
                                 "--weights", str(weights), "--weights", str(weights).replace("p20", "r20"),
                                 "--data", str(tmp_path / "images"), "-f", "json"])
    assert result.exit_code == 2 and "r20.pt" in result.stderr, "a missing weights file is an error"
    result = runner.invoke(app, ["lesion", "plain20_cifar", "--sweep", "2", "--sets", "2", "--weights",
                                 str(weights), "--data", str(tmp_path / "images"), "--plot", str(plot), "-f", "json"])
    assert result.exit_code == 0, result.output
    (sweep,) = json.loads(result.stdout)["sweeps"]
    assert sweep["points"][0]["top1_agreement"] == 1.0
    assert all(0 <= p["top1_agreement"] <= 1 for p in sweep["points"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote the sweep's curves to {plot}" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["vgg11", "--input-size", "32", "-b", "layer9.9"], "not a residual block (or any block)"),
    (["vgg11", "--input-size", "32", "-b", "layer2.0"], "would change the shape"),
    (["resnet20_cifar", "--sweep", "2", "--data", "EMPTY"], "holds no images"),
    (["resnet20_cifar", "--sweep", "2", "--data", "MISSING"], "no such directory"),
    (["vgg11", "--sweep", "1", "--input-size", "16"], "too small"),
    (["vgg11", "resnet20_cifar", "-b", "layer1.0"], "only with --sweep"),
])
def test_bad_lesions_exit_2_with_one_paragraph(tmp_path, args, words):
    (tmp_path / "EMPTY" / "cats").mkdir(parents=True)
    (tmp_path / "EMPTY" / "cats" / "notes.txt").write_text("no image")
    args = [str(tmp_path / a) if a in ("EMPTY", "MISSING") else a for a in args]
    result = runner.invoke(app, ["lesion", *args])
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert "Traceback" not in result.output
