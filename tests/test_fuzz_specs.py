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
