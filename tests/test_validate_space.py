"""`archgen validate` takes design spaces as well as specs, each checked by its own grammar; and a spec field
written at the top level, one indent short, is told where it belongs."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.design.space import SPACES_DIR, bundled_spaces

runner = CliRunner()


@pytest.mark.parametrize("ref", [*bundled_spaces(), str(SPACES_DIR / "resnext50_cxd.yaml")])
def test_a_bundled_space_validates_as_a_space(ref):
    result = runner.invoke(app, ["validate", ref])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"ok  {ref}") and ": design space, " in result.stdout
    assert "unknown field 'space'" not in result.output


def test_resnext_space_reports_its_axes_and_size():
    result = runner.invoke(app, ["validate", "resnext50_cxd"])
    # 5 cardinalities x 128 base widths (1..128)
    assert result.stdout == "ok  resnext50_cxd: design space, 2 axes (cardinality, base_width), " \
                            "640 candidates\n"


def test_a_spec_and_a_space_validate_together(tmp_path):
    result = runner.invoke(app, ["validate", "resnet50", "wrn28_width"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["ok  resnet50: 25.56M params, 4.09G MACs at 224px",
                                          "ok  wrn28_width: design space, 1 axis (width_factor), "
                                          "16 candidates"]


@pytest.mark.parametrize("text,where,words", [
    ("""\
     name: bad_step
     extends: resnet50
     block:
       cardinality: {choice: [1, 2]}
       base_width: {range: [4, 64], step: 7}
     """, "5:32: block.base_width.step", "a step of 7 does not divide the range 4..64"),
    ("""\
     name: bad_space_key
     extends: resnet50
     block: {cardinality: {choice: [1, 2]}}
     space:
       minimise: [macs]
     """, "5:3: space.minimise", "Did you mean 'minimize'?"),
    ("""\
     name: no_axis
     extends: resnet50
     space: {constraints: ['macs <= 4.1G']}
     """, "1:1", "no field holds a distribution, so this is a spec, not a design space"),
])
def test_a_bad_space_is_an_error_at_its_line(tmp_path, text, where, words):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    result = runner.invoke(app, ["validate", "resnet50", str(path)])
    assert result.exit_code == 2
    assert result.stdout.startswith("ok  resnet50")  # the good one is still reported
    assert result.stderr.startswith(f"error: {path}:{where}")
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_distribution_without_a_space_block_is_a_space(tmp_path):
    path = tmp_path / "free.yaml"
    path.write_text("name: free\nextends: resnet18\nstem: {width: {choice: [32, 64]}}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "free.yaml (free): design space, 1 axis (stem_width), 2 candidates" in result.stdout


def test_building_a_space_says_what_a_space_block_is():
    with pytest.raises(archgen.SpecError, match="A `space:` block makes this file a design space") as info:
        archgen.load_spec(str(SPACES_DIR / "resnext50_cxd.yaml"))
    assert info.value.field == "space" and info.value.line == 10
    assert "Did you mean 'paper'" not in str(info.value)


# ---- a field one indent short ----

@pytest.mark.parametrize("line,hint", [
    ("act: silu", "`act` belongs under `block:` (every block type but dense, regnet) or `stem:`, not at the "
                  "top level."),
    ("kernel: 3", "`kernel` belongs under `block:` (block type inverted_residual) or `stem:`, not at the top "
                  "level."),
    ("growth_rate: 12", "`growth_rate` belongs under `block:` (block type dense), not at the top level"),
    ("pool: max", "`pool` belongs under `stem:` or `head:`, not at the top level."),
    ("size: 160", "`size` belongs under `input:`, not at the top level, e.g. input: {size: 160}."),
    ("dilation: 2", "`dilation` belongs under each item of `stages:`, not at the top level."),
    ("groups: 32", "`groups` belongs under `norm:`, not at the top level, e.g. norm: {groups: 32}."),
    ("final_survival: 0.8", "`final_survival` belongs under `stochastic_depth:`"),
])
def test_a_top_level_field_of_a_section_says_where_it_belongs(tmp_path, line, hint):
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: indent\nextends: resnet18\n{line}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    key = line.split(":")[0]
    assert result.stderr.startswith(f"error: {path}:3:1: {key}: unknown field '{key}'. {hint}")
    assert "Did you mean" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_near_miss_that_is_no_section_field_still_gets_did_you_mean(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: typo\nextends: resnet18\npape: {}\n")
    with pytest.raises(archgen.SpecError, match="Did you mean 'paper'?"):
        archgen.load_spec(str(path))
