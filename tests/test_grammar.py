"""The grammar's rules: extends, multipliers, per-stage overrides, and the generated schema and docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import archgen
from archgen.planner import plan, scale_depth, scale_width
from archgen.grammar.docs import spec_markdown
from archgen.grammar.jsonschema import json_schema_text

ROOT = Path(__file__).resolve().parents[1]


def test_resnet101_is_resnet50_with_other_depths():
    r101 = archgen.load_spec("resnet101")
    assert [s.depth for s in r101.doc.stages] == [3, 4, 23, 3]
    assert [s.width for s in r101.doc.stages] == [64, 128, 256, 512]
    assert r101.doc.block.type == "bottleneck" and r101.doc.extends == "resnet50"


def test_extends_merges_mappings_and_replaces_lists_of_other_lengths(tmp_path):
    (tmp_path / "child.yaml").write_text(
        "extends: resnet18\nname: three_stage\nblock: {cardinality: 2}\n"
        "stages:\n  - {depth: 1, width: 64}\n  - {depth: 1, width: 128, stride: 2}\n  - {depth: 1, width: 256, stride: 2}\n")
    spec = archgen.load_spec(str(tmp_path / "child.yaml"))
    assert spec.doc.block.type == "basic" and spec.doc.block.args == {"cardinality": 2}
    assert len(spec.doc.stages) == 3 and spec.doc.stem.type == "imagenet"
    assert spec.locs[("block", "cardinality")].file == str(tmp_path / "child.yaml")
    assert spec.locs[("stem", "type")].file.endswith("resnet18.yaml")


def test_the_multiplier_rules():
    assert [scale_depth(d, 0.5) for d in (1, 2, 3, 6)] == [1, 1, 2, 3]
    assert scale_depth(3, 1 / 3) == 1 and scale_depth(23, 2.0) == 46
    assert scale_width(64, 1.0) == 64 and scale_width(12, 1.0) == 12
    assert scale_width(64, 0.5) == 32 and scale_width(64, 1.5) == 96
    assert scale_width(24, 0.25) == 8  # never below the divisor
    assert scale_width(100, 0.9) == 88  # 90 -> 88, within 10%


def test_multipliers_scale_a_spec(tmp_path):
    (tmp_path / "half.yaml").write_text("extends: resnet50\nname: half\nmultipliers: {depth: 0.5, width: 0.5}\n")
    p = plan(str(tmp_path / "half.yaml"))
    assert [len(s.blocks) for s in p.stages] == [2, 2, 3, 2]
    assert [s.blocks[0].at.width for s in p.stages] == [32, 64, 128, 256]
    assert p.stem.out_chs == 32


def test_a_stage_overrides_a_block_parameter(tmp_path):
    (tmp_path / "mixed.yaml").write_text(
        "extends: resnet50\nname: mixed\nstages:\n  - {cardinality: 2, base_width: 32}\n  - {}\n  - {}\n  - {}\n")
    p = plan(str(tmp_path / "mixed.yaml"))
    assert p.stages[0].blocks[0].family.cardinality == 2 and p.stages[1].blocks[0].family.cardinality == 1
    assert archgen.profile(p).stages[1].notation.startswith("[1x1, 64; 3x3, 64, C=2;")


def test_shipped_json_schema_is_generated_from_the_grammar():
    shipped = (ROOT / "archgen" / "schema" / "spec.schema.json").read_text()
    assert shipped == json_schema_text(), "regenerate: archgen schema -o archgen/schema/spec.schema.json"
    schema = json.loads(shipped)
    assert schema["required"] == ["name", "stages"]
    assert schema["$defs"]["Stage"]["properties"]["depth"]["minimum"] == 1
    assert set(schema["properties"]["shortcut"]["enum"]) == {"projection", "zero_pad", "avgpool_projection", "none"}


def test_docs_list_every_field_and_are_current():
    shipped = (ROOT / "docs" / "spec.md").read_text()
    assert shipped == spec_markdown(), "regenerate: python -m archgen.grammar.docs > docs/spec.md"


def test_the_docs_and_the_schema_list_every_registered_block_type_and_stage_rule(monkeypatch):
    """Read from the registries: a family or rule registered later (here a stand-in) shows up with no edit to
    the docs' generator."""
    from dataclasses import dataclass

    from archgen.blocks import StageRule, block_names, family_class, registry, stage_rule_names
    from archgen.grammar.schema import spec_field

    @dataclass(frozen=True)
    class Later(family_class("conv")):
        """A family registered after the others."""

    @dataclass
    class LaterRule(StageRule):
        """A rule registered after the others."""

        depth: int = spec_field(1, doc="Blocks.", example=1)

        def expand(self, doc):
            return {}

    monkeypatch.setitem(registry.REGISTRY, "later", Later)
    monkeypatch.setitem(registry.STAGE_RULES, "later_rule", LaterRule)
    monkeypatch.setattr(Later, "name", "later", raising=False)
    monkeypatch.setattr(LaterRule, "name", "later_rule", raising=False)
    markdown = spec_markdown()
    block = markdown[markdown.index("### Block\n"):markdown.index("### Stage\n")]
    type_row = next(line for line in block.splitlines() if line.startswith("| `type` |"))
    schema = json.loads(json_schema_text())
    assert "later" in block_names() and "later_rule" in stage_rule_names()
    for name in block_names():
        assert f"### `{name}`" in markdown.split("## Block families")[1] and f"'{name}'" in type_row
    assert schema["$defs"]["Block"]["properties"]["type"]["anyOf"][0]["enum"] == block_names()
    for name in stage_rule_names():
        assert f"### `{name}`" in markdown.split("## Stage rules")[1]
    assert sorted(schema["$defs"]["StageRule"]["properties"]) == stage_rule_names()


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_a_mapping_spec_equals_its_file(name):
    import yaml

    from archgen.grammar.loader import bundled_dir

    raw = yaml.safe_load((bundled_dir() / f"{name}.yaml").read_text())
    assert archgen.profile(raw).params == archgen.profile(name).params
