"""The ensemble view (Veit et al. 2016): n residual blocks unravel into 2^n paths, C(n, k) of them k
blocks long; a lesion deletes residual branches whose shortcut is an identity, and refuses any other."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.ensemble import LesionError, lesion, path_lengths, residual_block_names, residual_modules


def test_resnet110_unravels_into_2_to_the_54_paths_of_mean_length_27():
    dist = path_lengths("resnet110_cifar")
    assert dist.blocks == 54 and dist.paths == 2 ** 54 and sum(dist.counts) == 2 ** 54
    assert dist.counts[:3] == [1, 54, math.comb(54, 2)] and dist.mean == 27
    assert sum(k * c for k, c in enumerate(dist.counts)) == 27 * 2 ** 54


@pytest.mark.parametrize("name, blocks", [("resnet20_cifar", 9), ("resnet50", 16), ("darknet53", 23),
                                          ("preact_resnet1001_cifar", 333), ("plain34", 0), ("densenet121", 0),
                                          ("drn_d_54", 16), ("drn_c_26", 10)])
def test_residual_blocks_counted_from_the_plan_match_the_built_model(name, blocks):
    names = residual_block_names(name)
    assert len(names) == blocks == path_lengths(name).blocks
    assert names == list(residual_modules(archgen.build(name, device="meta")))


def test_a_net_without_residual_blocks_has_one_path():
    dist = path_lengths("plain20_cifar")
    assert (dist.paths, dist.counts, dist.mean) == (1, [1], 0)


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return archgen.build("resnet20_cifar").eval()


def test_lesioned_block_becomes_its_identity_shortcut(resnet20):
    cut = lesion(resnet20, ["layer1.1", 7])  # index 7 = layer3.1
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = resnet20.stem(x)
        h = resnet20.layer1[0](h)
        h = torch.relu(h)  # layer1.1 deleted: its shortcut, then the ReLU after the add
        h = resnet20.layer1[2](h)
        h = resnet20.layer2(h)
        h = resnet20.layer3[0](h)
        h = resnet20.layer3[2](torch.relu(h))
        expected = resnet20.head(h)
        torch.testing.assert_close(cut(x), expected)
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in resnet20.parameters())
    assert "layer1.1" in residual_modules(resnet20), "the original model is left as it was"


def test_lesion_of_a_preact_unit_leaves_exactly_its_input():
    model = archgen.build("preact_resnet110_cifar").eval()
    cut = lesion(model, ["layer2.5"])
    x = torch.randn(1, 32, 16, 16)
    assert torch.equal(cut.layer2[5](x), x)


@pytest.mark.parametrize("name, block, words", [
    ("resnet20_cifar", "layer2.0", "zero-padding shortcut"),
    ("resnet50", "layer1.0", "projection shortcut"),
    ("preact_resnet110_cifar", "layer1.0", "pre-activated identity"),
    ("resnet20_cifar", "layer9.0", "not a residual block"),
    ("densenet121", "layer1.0", "not a residual block"),
    ("darknet53", "layer1.0", "not a residual block"),
    ("resnet20_cifar", 9, "out of range"),
])
def test_lesion_refuses_blocks_whose_shortcut_is_not_an_identity(name, block, words):
    model = archgen.build(name, device="meta")
    with pytest.raises(LesionError, match=words):
        lesion(model, [block])


def test_paths_command_prints_the_histogram_as_json():
    result = CliRunner().invoke(app, ["paths", "resnet32_cifar", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["residual_blocks"] == 15 and data["paths"] == 2 ** 15 and data["mean_length"] == 7.5
    assert [row["paths"] for row in data["histogram"]] == [math.comb(15, k) for k in range(16)]


def test_paths_command_renders_every_format():
    for fmt in ("rich", "csv", "markdown", "latex"):
        result = CliRunner().invoke(app, ["paths", "resnet20_cifar", "-f", fmt])
        assert result.exit_code == 0 and "126" in result.stdout


def test_lesion_command_reports_the_change_and_refuses_with_exit_2():
    runner = CliRunner()
    ok = runner.invoke(app, ["lesion", "resnet20_cifar", "--blocks", "layer1.1,layer3.2", "-f", "json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["deleted"] == ["layer1.1", "layer3.2"] and data["params_removed"] == 4672 + 73984
    listing = json.loads(runner.invoke(app, ["lesion", "resnet20_cifar", "-f", "json"]).stdout)
    assert [b["lesionable"] for b in listing["blocks"]].count("no") == 2
    bad = runner.invoke(app, ["lesion", "resnet20_cifar", "--blocks", "layer2.0"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: block 'layer2.0' has a zero-padding shortcut")
    assert "Traceback" not in bad.output
    missing = runner.invoke(app, ["paths", "resnet21_cifar"])
    assert missing.exit_code == 2 and "Did you mean" in missing.stderr
