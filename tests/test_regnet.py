"""RegNet (Radosavovic et al. 2020) and the squeeze-and-excitation ResNets: the stage rule generates
torchvision's and pycls's networks exactly, and their weights give their logits.

References: torchvision's reference files (tests/data/regnet/) and timm's (tests/data/timm/, loaded by name in
tests/test_weights.py), the shared set's fill rule,
pycls's golden counts (tests/data/pycls/regnet_complexity.json) and torchvision's weight metadata. The
reference state dicts are loaded by name (archgen.load_weights' torchvision and timm layouts).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from pathlib import Path

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import archgen
from archgen.blocks.regnet import RegNetRule, width_runs
from archgen.design.sample import draw
from archgen.design.space import load_space
from archgen.errors import SpecError
from archgen.grammar.loader import bundled_names
from archgen.printed import within
from conftest import assert_reference_logits

DATA = Path(__file__).parent / "data"
TORCHVISION_REFS = sorted(p.stem for p in (DATA / "regnet" / "torchvision").glob("*.json"))
PYCLS = json.loads((DATA / "pycls" / "regnet_complexity.json").read_text())["models"]

#: torchvision's published `num_params` of its large RegNets (torchvision/models/regnet.py weights metadata), a
#: second anchor beside their reference files (made by tests/data/tools/make_reference.py).
TORCHVISION_NUM_PARAMS = {"regnet_x_8gf": 39_572_648, "regnet_x_16gf": 54_278_536, "regnet_x_32gf": 107_811_560,
                          "regnet_y_8gf": 39_381_472, "regnet_y_16gf": 83_590_140, "regnet_y_32gf": 145_046_770}


def reference(kind: str, name: str) -> dict:
    return json.loads((DATA / "regnet" / kind / f"{name}.json").read_text())


@pytest.mark.parametrize("name", TORCHVISION_REFS)
def test_torchvision_regnet_has_torchvisions_params_and_fvcore_total(name):
    ref, p = reference("torchvision", name), archgen.profile(name)
    assert p.params == ref["params"]
    bn = sum(layer.other_ops for layer in p.layers if layer.op == "bn")
    global_pools = sum(layer.other_ops for layer in p.layers if layer.op == "pool")  # the head's and every SE's
    assert p.macs + 2 * bn + global_pools == ref["fvcore_total_224"]


@pytest.mark.parametrize("name", TORCHVISION_REFS)
def test_torchvision_regnet_weights_give_torchvisions_logits(name):
    ref = reference("torchvision", name)
    assert archgen.load_spec(name).doc.torchvision == name
    assert_reference_logits(name, ref, "torchvision")


@pytest.mark.parametrize("name", sorted(TORCHVISION_NUM_PARAMS))
def test_large_torchvision_regnets_have_torchvisions_num_params(name):
    assert archgen.profile(name).params == TORCHVISION_NUM_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PYCLS))
def test_pycls_regnet_counts_equal_pycls_golden_counts(name):
    """pycls counts conv and fc biases as flops; archgen's MACs leave them out, so they are added back."""
    gold, p = PYCLS[name], archgen.profile(name)
    biases = sum(layer.out[0] for layer in p.layers
                 if layer.op == "linear" or (layer.op == "conv" and layer.name.endswith((".se.fc1", ".se.fc2"))))
    assert (p.params, p.acts, p.macs + biases) == (gold["params"], gold["acts"], gold["flops"])


def test_regnetx_400mf_differs_from_torchvision_only_in_its_last_stage():
    """392 / 16 = 24.5 groups: pycls rounds the half to even (384 channels), torchvision up (400)."""
    pycls, tv = archgen.plan("regnetx_004"), archgen.plan("regnet_x_400mf")
    assert [s.out_chs for s in pycls.stages] == [32, 64, 160, 384]
    assert [s.out_chs for s in tv.stages] == [32, 64, 160, 400]
    assert [len(s.blocks) for s in pycls.stages] == [len(s.blocks) for s in tv.stages] == [1, 2, 7, 12]
    assert archgen.profile("regnet_x_400mf").params - archgen.profile("regnetx_004").params == 338_464


CITED_ACTS = [name for name in bundled_names() if (archgen.load_spec(name).doc.paper or None) is not None
              and archgen.load_spec(name).doc.paper.acts is not None]


@pytest.mark.parametrize("name", CITED_ACTS)
def test_printed_activations_hold_within_their_rounding(name):
    paper = archgen.load_spec(name).doc.paper
    acts = archgen.profile(name).acts
    assert within(paper.acts, acts) != ("acts" in (paper.unmet or [])), f"{name}: {acts:,} acts vs {paper.acts}"


def test_regnety_se_squeezes_the_block_input_and_seresnet_the_output():
    y = archgen.build("regnety_004", device="meta")
    first = y.layer2[0]  # 48 -> 104 channels
    assert (first.se.fc1.in_channels, first.se.fc1.out_channels) == (104, 12)  # round(0.25 * 48)
    se = archgen.build("seresnet50", device="meta").layer1[0]
    assert (se.se.fc1.in_channels, se.se.fc1.out_channels) == (256, 16)  # 256 / 16
    names = [n for n, _ in se.named_children()]
    assert names.index("bn3") < names.index("se") < names.index("downsample")


def test_squeeze_excite_gates_channels_by_the_sigmoid_of_the_pooled_input():
    torch.manual_seed(0)
    se = archgen.build("regnety_002").eval().layer1[0].se
    x = torch.randn(2, se.fc1.in_channels, 5, 5)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)


# ---- the rule in the grammar ----

def rule_spec(**changes) -> dict:
    rule = {"depth": 13, "w0": 24, "wa": 36.44, "wm": 2.49, "group_width": 8, **changes.pop("rule", {})}
    return {"name": "tiny_regnet", "input": {"size": 64}, "stem": {"type": "cifar", "stride": 2, "width": 32},
            "block": {"type": "regnet"}, "stages": {"regnet": rule}, **changes}


def test_a_rule_written_as_a_mapping_equals_the_bundled_spec():
    assert archgen.profile(rule_spec(input={"size": 224})).params == PYCLS["regnetx_002"]["params"]


@pytest.mark.parametrize("changes, field, message", [
    ({"rule": {"w0": 20}}, "stages.regnet.w0", "not a multiple of the quantum 8"),
    ({"rule": {"wm": 1.0}}, "stages.regnet.wm", "above 1"),
    ({"block": {"type": "bottleneck"}}, "stages.regnet", "use block: {type: regnet}"),
    ({"block": {"type": "regnet", "group_width": 8}}, "block.group_width", "set by the stage rule"),
    ({"stages": {"regnet": {"depth": 13}, "other": {}}}, "stages", "one mapping naming one rule"),
    ({"stages": {"linear": {"depth": 13}}}, "stages.linear",
     "unknown stage rule 'linear'. Registered rules: efficientnet, regnet"),
    ({"block": {}}, "stages.regnet", "and no block type is set: use block: {type: regnet}"),
])
def test_a_bad_rule_is_refused_at_its_field(changes, field, message):
    with pytest.raises(SpecError, match=re.escape(message)) as info:
        archgen.profile(rule_spec(**changes))
    assert info.value.field == field


def runs_block_by_block(rule) -> list[list[int]]:
    """The widths of the RegNet paper's formula, computed for every block and then grouped into runs: what
    width_runs' shortcut must equal."""
    widths = []
    for j in range(rule.depth):
        s = round(math.log((rule.w0 + rule.wa * j) / rule.w0) / math.log(rule.wm))
        widths.append(int(round(rule.w0 * rule.wm ** s / rule.quantum)) * rule.quantum)
    return [[w, len(list(run))] for w, run in itertools.groupby(widths)]


@given(depth=st.integers(1, 64), w0=st.integers(1, 32).map(lambda k: 8 * k),
       wa=st.one_of(st.just(0.0), st.floats(1e-6, 500.0), st.integers(0, 200).map(float)),
       wm=st.one_of(st.floats(1.0001, 4.0), st.sampled_from([1.5, 2.0, 2.25, 2.5, 3.0])))
@example(depth=4, w0=8, wa=8.0, wm=4.0)  # a tie: u_1 / w0 = 2 = 4^(1/2) exactly, and round(0.5) is 0
def test_width_runs_equal_the_formula_block_by_block(depth, w0, wa, wm):
    rule = RegNetRule(depth=depth, w0=w0, wa=wa, wm=wm, group_width=8)
    assert width_runs(rule) == runs_block_by_block(rule)


@pytest.mark.parametrize("name", ["regnetx_400mf", "regnety_400mf", "resnet_budget"])
def test_width_runs_equal_the_formula_on_every_rule_a_space_draws(name):
    space, rng = load_space(name), random.Random(0)
    rules = [spec.doc.stage_rule["regnet"] for spec in (space.spec(draw(space, rng)) for _ in range(500))
             if spec.doc.stage_rule and "regnet" in spec.doc.stage_rule]
    assert rules or name == "resnet_budget"
    for rule in rules:
        assert width_runs(rule) == runs_block_by_block(rule), rule
