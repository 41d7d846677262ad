"""What a spec is read from: a mapping that extends, a directory, a binary or huge file, and a child whose
list of stages does not merge with its parent's. Each mistake is a SpecError naming file, line and field,
and the CLI prints it as one paragraph with exit status 2."""

from __future__ import annotations

import tracemalloc

import pytest
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.grammar.loader import MAX_FILE_BYTES
from conftest import TINY_SPEC

runner = CliRunner()



def _cli_error(args: list[str]) -> str:
    """The one paragraph the CLI prints for a mistake (asserting exit 2 and no traceback)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_a_mapping_extends_a_bundled_spec_and_changes_only_what_it_says():
    spec = archgen.load_spec({"name": "narrow18", "extends": "resnet18",
                              "stages": [{"width": 32}, {}, {}, {}]})
    assert spec.name == "narrow18"
    assert [s.width for s in spec.doc.stages] == [32, 128, 256, 512]
    assert spec.doc.stem.type == "imagenet" and spec.doc.block.type == "basic"


def test_a_mapping_extends_a_relative_path_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text(TINY_SPEC)
    monkeypatch.chdir(tmp_path)
    spec = archgen.load_spec({"name": "child", "extends": "base.yaml", "stem": {"width": 8}})
    assert (spec.name, spec.doc.stem.width, spec.doc.stem.type) == ("child", 8, "cifar")
    assert [s.width for s in spec.doc.stages] == [16, 32]


def test_a_mapping_that_extends_a_missing_file_names_its_extends_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(archgen.SpecError, match="no spec file 'nowhere.yaml'") as info:
        archgen.load_spec({"name": "x", "extends": "nowhere.yaml"})
    assert (info.value.path, info.value.field) == ("<dict>", "extends")


def test_a_directory_is_called_a_directory_and_its_yaml_files_suggested(tmp_path):
    (tmp_path / "mine.yaml").write_text(TINY_SPEC)
    with pytest.raises(archgen.SpecError, match="is a directory, not a spec file") as info:
        archgen.load_spec(str(tmp_path))
    assert str(tmp_path / "mine.yaml") in info.value.message
    assert "is a directory" in _cli_error(["validate", str(tmp_path)])


def test_a_nul_byte_is_reported_at_its_line_and_column(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(TINY_SPEC.replace("{type: basic}", "{type: basic}\x00").encode())
    with pytest.raises(archgen.SpecError, match="a NUL byte is not allowed") as info:
        archgen.load_spec(str(path))
    assert (info.value.line, info.value.column) == (4, 21)
    assert _cli_error(["validate", str(path)]).startswith(f"error: {path}:4:21: a NUL byte")


def test_a_50_mb_file_is_refused_from_its_size_without_being_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(50_000_000)  # sparse: costs no disk
    tracemalloc.start()
    try:
        with pytest.raises(archgen.SpecError, match=f"50,000,000 bytes; a spec is at most {MAX_FILE_BYTES:,}"):
            archgen.load_spec(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak:,} bytes allocated: the file was read"
    assert "a spec is at most" in _cli_error(["validate", str(path)])


def test_stages_of_another_length_than_the_parents_explain_the_merge_rule(tmp_path):
    """ResNet-18 has four stages; a child giving three depths replaces the list, so its stages lack widths."""
    path = tmp_path / "three.yaml"
    path.write_text("name: three\nextends: resnet18\nstages: [{depth: 1}, {depth: 1}, {depth: 1}]\n")
    with pytest.raises(archgen.SpecError) as info:
        archgen.profile(str(path))
    error = info.value
    assert (error.path, error.line, error.field) == (str(path), 3, "stages[0]")
    assert "the required field 'width' is missing" in error.message
    assert "'stages' has 3 items and the parent 'resnet18' has 4" in error.message
    assert "merges a list of mappings item by item only when both have the same length" in error.message
    assert "merges a list of mappings" in _cli_error(["validate", str(path)])


def test_the_merge_rule_is_not_offered_for_a_mistake_outside_the_replaced_list(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text("name: three\nextends: resnet18\nblock: {type: basic, widht: 2}\n"
                    "stages: [{depth: 1, width: 8}]\n")
    with pytest.raises(archgen.SpecError, match="unknown field 'widht'") as info:
        archgen.load_spec(str(path))
    assert info.value.field == "block.widht" and "merges a list" not in info.value.message
