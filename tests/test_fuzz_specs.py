"""Fuzz the grammar: mutations of the bundled specs either build or raise SpecError, nothing else."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archgen
from archgen.grammar.loader import bundled_dir, bundled_names

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
            model = archgen.build(str(path), device="meta", max_params=300_000_000)
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
    "type": st.sampled_from(["basic", "bottleneck", "dense", "conv", "darknet", "preact_basic", "imagenet",
                             "cifar", "deep"]),
    "shortcut": st.sampled_from(["projection", "zero_pad", "avgpool_projection", "none"]),
    "stride_on": st.sampled_from(["1x1", "3x3"]), "deep_widths": st.sampled_from([[8, 8], [16], [8, 8, 8]]),
}


@st.composite
def plausible_mutants(draw):
    name = draw(st.sampled_from([n for n in bundled_names() if "1202" not in n and "1001" not in n]))
    doc = yaml.safe_load((bundled_dir() / f"{name}.yaml").read_text())
    doc.pop("paper", None)
    doc.setdefault("input", {})["size"] = 64
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["stem", "block", "head", "stage", "top"]))
        key = draw(st.sampled_from(sorted(PLAUSIBLE)))
        value = draw(PLAUSIBLE[key])
        if section == "stage" and isinstance(doc.get("stages"), list) and doc["stages"]:  # not a stage rule
            target = draw(st.sampled_from(doc["stages"]))
        elif section == "top":
            target = doc
        else:
            target = doc.setdefault(section, {}) if isinstance(doc.get(section, {}), dict) else {}
        target[key] = value
    return doc


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_mutants())
def test_validate_accepts_exactly_what_build_builds(doc):
    """validate ok <=> build ok, and the built model's every stage shape and parameter count equal the plan's."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            counted = archgen.profile(str(path))  # what `archgen validate` runs
        except archgen.SpecError:
            try:
                archgen.build(str(path), device="meta", max_params=300_000_000)
            except archgen.SpecError:
                return
            raise AssertionError("validate refused a spec that build builds")
        model = archgen.build(str(path), device="meta", max_params=300_000_000)
        assert sum(p.numel() for p in model.parameters()) == counted.params
        x = torch.empty(1, doc.get("input", {}).get("channels", 3), counted.input_size, counted.input_size,
                        device="meta")
        with torch.no_grad():
            outs = model.forward_stages(x)
            logits = model.head(outs[-1])
        assert [tuple(o.shape[1:]) for o in outs] == [s.out for s in counted.stages[1:-1]]
        head_out = counted.stages[-1].out  # (classes or channels, 1, 1), or the unpooled map of a backbone
        assert tuple(logits.shape[1:]) == (head_out if logits.dim() == 4 else head_out[:1])
