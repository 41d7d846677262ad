"""Every mistake in a spec raises SpecError naming the file, line and field; the CLI prints one
paragraph and exits 2, never a traceback."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from conftest import TINY_SPEC


# (case, file text, expected line, expected field, words the message must contain)
CASES = [
    ("yaml syntax", "name: x\nblock: {type: basic\nstages:\n", 3, None, ["YAML syntax error"]),
    ("empty file", "", 1, None, ["empty"]),
    ("top level a list", "- a\n- b\n", 1, None, ["top level is a list", "mapping"]),
    ("top level a scalar", "just text\n", 1, None, ["top level is a single value"]),
    ("unknown key", TINY_SPEC + "strides: 2\n", 8, "strides", ["unknown field 'strides'", "Allowed here"]),
    ("near-miss key", TINY_SPEC.replace("{depth: 1, width: 16}", "{depth: 1, widht: 16}"), 6, "stages[0].widht",
     ["Did you mean 'width'?"]),
    ("wrong type", TINY_SPEC.replace("depth: 1, width: 16", "depth: three, width: 16"), 6, "stages[0].depth",
     ["the text 'three'", "an integer from 1 to 2000"]),
    ("depth 0", TINY_SPEC.replace("depth: 1, width: 16", "depth: 0, width: 16"), 6, "stages[0].depth",
     ["found 0", "from 1 to 2000"]),
    ("negative width", TINY_SPEC.replace("width: 32", "width: -32"), 7, "stages[1].width", ["found -32"]),
    ("boolean for a number", TINY_SPEC.replace("size: 32", "size: true"), 2, "input.size", ["boolean true"]),
    ("cardinality", TINY_SPEC.replace("{type: basic}", "{type: basic, cardinality: 3}"), 4, "block.cardinality",
     ["does not divide"]),
    ("unknown block", TINY_SPEC.replace("{type: basic}", "{type: bottlenek}"), 4, "block.type",
     ["unknown block type 'bottlenek'", "Did you mean 'bottleneck'?"]),
    ("unknown stem", TINY_SPEC.replace("type: cifar", "type: cifra"), 3, "stem.type", ["Did you mean 'cifar'?"]),
    ("bad literal", TINY_SPEC + "shortcut: projektion\n", 8, "shortcut", ["Did you mean 'projection'?"]),
    ("missing stages", "name: x\nblock: {type: basic}\n", 1, None, ["'stages' is missing"]),
    ("input too small", TINY_SPEC.replace("size: 32", "size: 1"), 2, "input.size", ["smaller than", "stride of 2"]),
    ("too large", TINY_SPEC.replace("depth: 1, width: 16", "depth: 2000, width: 65536"), 5, "stages",
     ["parameters, above the limit", "--max-params"]),
    ("code-running tag", "name: !!python/object/apply:os.system [echo]\n", 1, "name", ["tag", "not allowed"]),
    ("duplicate key", TINY_SPEC + "name: again\n", 8, "name", ["appears twice"]),
    ("alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                   "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", None, None, ["expands to more than"]),
    ("stochastic depth without shortcuts", TINY_SPEC + "shortcut: none\nstochastic_depth: {final_survival: 0.5}\n", 9,
     "stochastic_depth", ["has none", "remove it"]),
    ("zero-pad shrinking", TINY_SPEC.replace("width: 32", "width: 8") + "shortcut: zero_pad\n", 7, "stages[1].width",
     ["cannot shrink 16 channels to 8"]),
]


@pytest.mark.parametrize("case,text,line,field,words", CASES, ids=[c[0] for c in CASES])
def test_mistake_raises_spec_error_at_its_line(tmp_path, case, text, line, field, words):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(archgen.SpecError) as info:
        archgen.build(str(path), device="meta")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    if line is not None:
        assert err.line == line
    assert err.field == field
    for word in words:
        assert word in str(err)


@pytest.mark.parametrize("case,text,line,field,words", CASES, ids=[c[0] for c in CASES])
def test_cli_prints_one_paragraph_and_exits_2(tmp_path, case, text, line, field, words):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    for command in (["validate", str(path)], ["build", str(path)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        message = result.stderr.strip()
        assert message.startswith(f"error: {path}")
        assert "\n" not in message


def test_extends_cycle_points_at_the_extends_line(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("name: b\n\nextends: a.yaml\n")
    with pytest.raises(archgen.SpecError, match="cycle: a.yaml -> b.yaml -> a.yaml") as info:
        archgen.load_spec(str(tmp_path / "a.yaml"))
    assert (info.value.path, info.value.line, info.value.field) == (str(tmp_path / "b.yaml"), 3, "extends")


def test_extends_of_a_missing_file_names_the_extending_file(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nextends: nowhere.yaml\n")
    with pytest.raises(archgen.SpecError, match="no spec file 'nowhere.yaml'") as info:
        archgen.load_spec(str(tmp_path / "a.yaml"))
    assert (info.value.line, info.value.field) == (2, "extends")


def test_an_error_in_a_parent_spec_points_into_the_parent(tmp_path):
    (tmp_path / "base.yaml").write_text(TINY_SPEC.replace("width: 32", "width: 0"))
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\n")
    with pytest.raises(archgen.SpecError) as info:
        archgen.load_spec(str(tmp_path / "child.yaml"))
    assert (info.value.path, info.value.line) == (str(tmp_path / "base.yaml"), 7)


def test_unknown_spec_name_suggests_a_bundled_one():
    with pytest.raises(archgen.SpecError, match="Did you mean 'resnet50'"):
        archgen.load_spec("resnet05")
    result = CliRunner().invoke(app, ["build", "resnet05"])
    assert result.exit_code == 2 and "Did you mean 'resnet50'" in result.stderr


def test_max_params_flag_raises_the_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(TINY_SPEC.replace("depth: 1, width: 16", "depth: 1, width: 4096"))
    assert CliRunner().invoke(app, ["validate", str(path), "--max-params", "1000000"]).exit_code == 2
    assert CliRunner().invoke(app, ["validate", str(path), "--max-params", "1000000000"]).exit_code == 0


def test_spec_error_is_raised_for_a_mapping_spec_too():
    with pytest.raises(archgen.SpecError, match="stages"):
        archgen.load_spec({"name": "x", "block": {"type": "basic"}})


def test_a_block_type_placed_by_another_family_cannot_be_named(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(TINY_SPEC.replace("{type: basic}", "{type: transition}"))
    with pytest.raises(archgen.SpecError, match="unknown block type 'transition'") as info:
        archgen.load_spec(str(path)) and archgen.profile(str(path))
    assert info.value.line == 4 and "transition" not in str(info.value).split("Registered:")[1]
