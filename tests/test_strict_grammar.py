"""The strict grammar: every field means something, and whatever validates builds.

Each test is one of the mistakes a new user hit (issue 8): the spec was accepted and then crashed the
build, built something else than meant, or had a field silently ignored.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app

RESNET = textwrap.dedent("""\
    name: mine
    stem: {type: imagenet, width: 64}
    block: {type: bottleneck}
    stages:
      - {depth: 3, width: 64}
      - {depth: 4, width: 128, stride: 2}
    """)

DENSE = textwrap.dedent("""\
    name: dense_mine
    stem: {type: imagenet, width: 64}
    block: {type: dense, growth_rate: 32, bn_size: 4, compression: 0.5}
    stages: [{depth: 6}, {depth: 12}, {depth: 24}, {depth: 16}]
    """)


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def spec_error(source: str) -> archgen.SpecError:
    with pytest.raises(archgen.SpecError) as info:
        archgen.profile(source)
    return info.value


def test_an_even_stem_kernel_is_refused_at_its_line(tmp_path):
    err = spec_error(write(tmp_path, RESNET.replace("width: 64}\nblock", "width: 64, kernel: 4}\nblock")))
    assert (err.line, err.field) == (2, "stem.kernel") and "odd kernel" in err.message


def test_an_even_stem_kernel_fails_validate_with_exit_2_not_build_with_a_traceback(tmp_path):
    path = write(tmp_path, RESNET.replace("width: 64}\nblock", "width: 64, kernel: 4}\nblock"))
    for command in (["validate", path], ["build", path]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_classifier_without_pooling_is_refused_and_a_backbone_without_it_builds(tmp_path):
    err = spec_error(write(tmp_path, RESNET + "head: {pool: none}\n"))
    assert err.field == "head.pool" and "classes: 0" in err.message
    path = write(tmp_path, RESNET + "head: {pool: none, classes: 0}\n", "backbone.yaml")
    counted = archgen.profile(path)
    assert counted.stages[-1].out == (512, 28, 28)  # the head passes the last stage's map through
    result = CliRunner().invoke(app, ["build", path])
    assert result.exit_code == 0, result.output


def test_a_densenet_written_without_strides_downsamples_in_its_transitions(tmp_path):
    """DenseNet-121's layout written without strides is DenseNet-121: 2.83 G MACs (fvcore's conv + linear),
    not every stage at 56x56."""
    written = archgen.profile(write(tmp_path, DENSE))
    bundled = archgen.profile("densenet121")
    assert written.params == 7_978_856  # torchvision's densenet121 (tests/data/torchvision/densenet121.json)
    assert (written.macs, written.acts) == (bundled.macs, bundled.acts)
    assert [s.out[1] for s in written.stages[1:-1]] == [56, 28, 14, 7]


def test_a_stride_on_the_first_dense_stage_is_an_error_not_ignored(tmp_path):
    err = spec_error(write(tmp_path, DENSE.replace("[{depth: 6}", "[{depth: 6, stride: 2}")))
    assert err.field == "stages[0].stride" and "no transition before it" in err.message


def test_a_dense_stage_takes_no_width(tmp_path):
    err = spec_error(write(tmp_path, DENSE.replace("{depth: 12}", "{depth: 12, width: 128}")))
    assert err.field == "stages[1].width" and "'dense' stage takes no 'width'" in err.message


@pytest.mark.parametrize("spec, field, family", [
    (DENSE.replace("compression: 0.5}", "compression: 0.5, cardinality: 32}"), "block.cardinality", "dense"),
    (RESNET.replace("{type: bottleneck}", "{type: bottleneck, growth_rate: 32}"), "block.growth_rate",
     "bottleneck"),
    (RESNET.replace("{depth: 3, width: 64}", "{depth: 3, width: 64, growth_rate: 12}"), "stages[0].growth_rate",
     "bottleneck"),
], ids=["cardinality-on-dense", "growth_rate-on-bottleneck", "growth_rate-on-a-stage"])
def test_a_field_outside_the_family_names_the_family_and_its_fields(tmp_path, spec, field, family):
    err = spec_error(write(tmp_path, spec))
    assert err.field == field and f"block type '{family}'" in err.message and "takes:" in err.message


def test_deep_widths_belong_to_the_deep_stem_and_are_two(tmp_path):
    err = spec_error(write(tmp_path, RESNET.replace("width: 64}\nblock", "width: 64, deep_widths: [32, 32]}\n"
                                                                         "block")))
    assert err.field == "stem.deep_widths" and "'deep' stem" in err.message
    one = RESNET.replace("{type: imagenet, width: 64}", "{type: deep, width: 64, deep_widths: [32]}")
    err = spec_error(write(tmp_path, one, "one.yaml"))
    assert err.field == "stem.deep_widths" and "exactly two" in err.message


def test_a_network_field_no_stage_reads_is_an_error(tmp_path):
    basic = RESNET.replace("bottleneck", "basic") + "stride_on: 1x1\n"
    err = spec_error(write(tmp_path, basic))
    assert err.field == "stride_on" and "basic" in err.message
    err = spec_error(write(tmp_path, DENSE + "shortcut: zero_pad\n", "dense.yaml"))
    assert err.field == "shortcut"


def test_a_cardinality_that_does_not_divide_the_stem_channels_is_an_error_not_a_torch_crash(tmp_path):
    err = spec_error(write(tmp_path, RESNET.replace("bottleneck}", "basic, cardinality: 3}")
                           .replace("width: 64}\n  -", "width: 96}\n  -").replace("width: 128,", "width: 192,")))
    assert err.field == "block.cardinality" and "does not divide" in err.message


def test_describing_a_network_imports_no_torch():
    code = ("import sys, archgen; archgen.profile(archgen.load_spec('resnet50')); archgen.plan('densenet121'); "
            "from archgen.grammar.loader import bundled_names; [archgen.profile(n) for n in bundled_names()]; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_plans_once(monkeypatch):
    import archgen.planner as planner

    planned = archgen.plan("resnet18")
    calls = []
    real = planner.load_spec
    monkeypatch.setattr(planner, "load_spec", lambda s: calls.append(s) or real(s))
    archgen.build(planned, device="meta")
    assert calls == [], "a plan handed to build is not planned again"
