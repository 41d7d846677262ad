"""Fuzz the grammar: mutations of the bundled specs either build or raise SpecError, nothing else."""

from __future__ import annotations

import copy
import dataclasses
import functools
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import archgen
from archgen.blocks import block_names, family_class
from archgen.complexity import check_size
from archgen.grammar.loader import bundled_dir, bundled_names, load_spec
from archgen.grammar.schema import Head, Input, Stem, fields_of
from archgen.stems import STEMS

#: Larger models are refused by validate and build alike (a mutant can multiply a width many times over).
MAX_PARAMS = 300_000_000

BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.builds(list), st.builds(dict),
    st.builds(lambda: [1, 2]), st.sampled_from([0, -1, 1, 2, 3, 7, 10**9, 0.5, "relu", "basic", "dense", "1x1"]),
)


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


def parent_and_key(doc, path):
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


@st.composite
def mutated_specs(draw):
    name = draw(st.sampled_from(bundled_names()))
    doc = yaml.safe_load((bundled_dir() / f"{name}.yaml").read_text())
    mutated = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in paths(mutated) if p]))
        parent, key = parent_and_key(mutated, path)
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            parent[key] = draw(BAD_VALUES)
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["depth", "width", "stride", "typo", "cardinality", "growth_rate",
                                         "extends", "dilation"]))] = draw(BAD_VALUES)
        else:
            parent.append(draw(BAD_VALUES))
    return mutated


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_a_mutated_spec_builds_or_raises_spec_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            model = archgen.build(str(path), device="meta", max_params=MAX_PARAMS)
        except archgen.SpecError as err:
            assert err.path is not None and str(err)
            return
        assert sum(p.numel() for p in model.parameters()) == archgen.profile(str(path)).params


#: Mutations a user could mean: values inside the grammar's types and ranges, so many mutants validate and
#: the property below is exercised on networks that build, not only on refusals.
PLAUSIBLE = {
    "depth": st.integers(1, 4), "width": st.sampled_from([8, 16, 24, 48, 64]), "stride": st.integers(1, 3),
    "dilation": st.integers(1, 3), "first_dilation": st.integers(1, 2), "kernel": st.integers(1, 8),
    "cardinality": st.sampled_from([1, 2, 3, 4, 8]), "base_width": st.sampled_from([1, 4, 64]),
    "growth_rate": st.integers(1, 16), "bn_size": st.integers(0, 4), "compression": st.sampled_from([0.5, 1.0]),
    "expansion": st.integers(1, 4), "width_factor": st.sampled_from([0.5, 1, 2]), "pool": st.sampled_from(
        ["avg", "max", "none", True, False]), "classes": st.integers(0, 10), "size": st.sampled_from([16, 32, 64]),
    "group_width": st.sampled_from([1, 8, 16, 24]), "bottleneck_ratio": st.sampled_from([0.25, 0.5, 1.0]),
    "se_ratio": st.sampled_from([0, 0.0625, 0.25]), "gate_kernel": st.sampled_from([1, 2, 3]),
    "batch_norm": st.booleans(), "lrn": st.booleans(), "last_kernel": st.sampled_from([1, 3]),
    "dropout": st.sampled_from([0.0, 0.3]),
    # Every block type a spec may name and every stem type, from their registries, so a new family is fuzzed.
    "type": st.sampled_from(block_names() + sorted(STEMS)),
    "shortcut": st.sampled_from(["projection", "zero_pad", "avgpool_projection", "none"]),
    "stride_on": st.sampled_from(["1x1", "3x3"]), "deep_widths": st.sampled_from([[8, 8], [16], [8, 8, 8]]),
}


#: The fields each section takes whatever the block type (a block, a stage and the top level take the family's).
SECTION_FIELDS = {"input": fields_of(Input), "stem": fields_of(Stem), "head": fields_of(Head)}


@functools.lru_cache(maxsize=None)
def specs_by_block_type() -> dict[str, list[str]]:
    """The bundled specs grouped by block type, so that the three highway nets are drawn as often as the 44
    RegNets (the 1001- and 1202-layer nets are left out: building them is most of a run)."""
    groups: dict[str, list[str]] = {}
    for name in bundled_names():
        if "1202" not in name and "1001" not in name:
            groups.setdefault(load_spec(name).doc.block.type, []).append(name)
    return groups


def fields_taken(section: str, target: dict, block_type: str) -> list[str]:
    """The PLAUSIBLE keys this section of the spec takes, for a block of `block_type` unless it names its own."""
    if section in SECTION_FIELDS:
        return sorted(SECTION_FIELDS[section] & PLAUSIBLE.keys())
    own = target.get("type") if section != "top" else None
    family = family_class(own if own in block_names() else block_type)
    taken = {"top": family.network_fields, "stage": family.stage_fields | {"depth", "type"},
             "block": {f.name for f in dataclasses.fields(family)} | {"type"}}[section]
    return sorted(taken & PLAUSIBLE.keys()) or sorted(PLAUSIBLE)


@st.composite
def plausible_mutants(draw):
    block_type = draw(st.sampled_from(sorted(specs_by_block_type())))
    name = draw(st.sampled_from(specs_by_block_type()[block_type]))
    doc = yaml.safe_load((bundled_dir() / f"{name}.yaml").read_text())
    doc.pop("paper", None)
    doc.setdefault("input", {})["size"] = 64
    for _ in range(draw(st.integers(1, 3))):
        stages = doc.get("stages")
        has_stages = isinstance(stages, list) and stages  # not a stage rule, nor left to `extends`
        section = draw(st.sampled_from(["input", "stem", "block", "head", "top"] + ["stage"] * bool(has_stages)))
        if section == "stage":
            target = draw(st.sampled_from(stages))
        elif section == "top":
            target = doc
        else:
            target = doc.setdefault(section, {}) if isinstance(doc.get(section, {}), dict) else {}
        # Mostly a field this section takes, so that many mutants build; one time in four any, which it may refuse.
        anywhere = draw(st.integers(0, 3)) == 0
        key = draw(st.sampled_from(sorted(PLAUSIBLE) if anywhere else fields_taken(section, target, block_type)))
        target[key] = draw(PLAUSIBLE[key])
    return doc


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_mutants())
# Issue 17's draw: a 1x1 map before the head, which batch norm refuses in training mode at batch 1.
@example({"name": "d", "extends": "densenet121", "input": {"size": 64}, "stem": {"stride": 3}})
# 1,273,668,904 parameters: validate refuses it at the limit, as build does.
@example({"name": "r", "extends": "resnext101_32x4d", "input": {"size": 64}, "block": {"base_width": 64}})
def test_validate_accepts_exactly_what_build_builds(doc):
    """validate ok <=> build ok, and the built model's every stage shape and parameter count equal the plan's."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:  # what `archgen validate --max-params` runs
            spec = load_spec(str(path))
            counted = archgen.profile(spec)
            check_size(counted, spec, MAX_PARAMS)
        except archgen.SpecError:
            try:
                archgen.build(str(path), device="meta", max_params=MAX_PARAMS)
            except archgen.SpecError:
                return
            raise AssertionError("validate refused a spec that build builds")
        # Eval mode, as `archgen build` checks shapes: training-mode batch norm refuses a batch of one on a 1x1
        # map (densenet121 at 64 px with a stride-3 stem), and stochastic depth draws a number on the meta device.
        model = archgen.build(str(path), device="meta", max_params=MAX_PARAMS).eval()
        assert sum(p.numel() for p in model.parameters()) == counted.params
        x = torch.empty(1, doc.get("input", {}).get("channels", 3), counted.input_size, counted.input_size,
                        device="meta")
        with torch.no_grad():
            outs = model.forward_stages(x)
            logits = model.head(outs[-1])
        assert [tuple(o.shape[1:]) for o in outs] == [s.out for s in counted.stages[1:-1]]
        head_out = counted.stages[-1].out  # (classes or channels, 1, 1), or the unpooled map of a backbone
        assert tuple(logits.shape[1:]) == (head_out if logits.dim() == 4 else head_out[:1])
