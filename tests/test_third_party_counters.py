"""archgen, fvcore and ptflops on the same model and input, reconciled layer by layer.

The totals at 224 are pinned to the torchvision reference data (fvcore_total_224,
ptflops_macs_224); per-layer checks run at a small input, where the rules are
the same and the tracers fast.
"""

from __future__ import annotations

import pytest
import yaml

import archgen
from archgen import third_party_counters
from archgen.third_party_counters import RULES, Rule, reconcile
from archgen.grammar.loader import bundled_names, load_spec
from archgen.planner import expand_stage_rule
from archgen.cli.profile_view import memory
from conftest import torchvision_reference

SMALL = 32


def test_resnet50_totals_are_the_reference_fvcore_and_ptflops_figures_with_nothing_unexplained():
    r = reconcile("resnet50", 224)
    ref = torchvision_reference("resnet50")
    assert r.totals == {"archgen": 4_089_184_256, "fvcore": ref["fvcore_total_224"],
                        "ptflops": ref["ptflops_macs_224"]}
    assert r.flagged == []
    kinds = r.by_kind()
    # Why fvcore says 4.11 G and ptflops 4.13 G: BN twice per element in both; ReLU and pools twice in ptflops.
    assert kinds["bn"]["fvcore"] == kinds["bn"]["ptflops"] == 2 * kinds["bn"]["archgen"]
    assert kinds["act"] == {"archgen": 9_608_704, "fvcore": 0, "ptflops": 2 * 9_608_704}
    assert kinds["add"]["fvcore"] == kinds["add"]["ptflops"] == 0
    assert sum(k["ptflops"] for k in kinds.values()) == r.totals["ptflops"]
    assert sum(k["fvcore"] for k in kinds.values()) == r.totals["fvcore"]


def test_densenet121_ptflops_differs_from_torchvision_by_its_functional_final_relu_and_pool():
    """torchvision calls the last ReLU and pool as functions, which ptflops counts once; archgen's are
    modules, counted twice (hook + functional patch)."""
    r = reconcile("densenet121", 224)
    ref = torchvision_reference("densenet121")
    assert r.totals["fvcore"] == ref["fvcore_total_224"]
    head_act = next(x for x in r.layers if x.name == "head.act")
    head_pool = next(x for x in r.layers if x.name == "head.pool")
    assert r.totals["ptflops"] - ref["ptflops_macs_224"] == head_act.counted["archgen"] + head_pool.counted["archgen"]
    assert r.flagged == []


def _one_spec_per_design() -> list[str]:
    """The shallowest bundled spec for each combination of block types, stem, shortcut, stride placement,
    head pooling and activation: every design the rules must cover, at the least tracing cost."""
    chosen: dict[tuple, tuple[int, str]] = {}
    for name in bundled_names():
        doc = load_spec(name).doc
        key = (tuple(sorted({s.type or doc.block.type for s in doc.stages})), doc.stem.type, doc.shortcut,
               doc.stride_on, doc.head.pool, doc.block.args.get("act"))
        depth = sum(s.depth for s in doc.stages)
        chosen[key] = min(chosen.get(key, (depth, name)), (depth, name))
    return sorted(name for _, name in chosen.values())


@pytest.mark.parametrize("name", _one_spec_per_design())
def test_every_layer_count_of_fvcore_and_ptflops_follows_its_rule(name, tmp_path):
    # Two blocks a stage keep every kind of layer (first and repeated blocks) and make tracing quick.
    spec = load_spec(name)
    if spec.doc.stage_rule is None:
        stages = ", ".join("{depth: 2}" for _ in spec.doc.stages)
        shallow_text = f"name: {name}_shallow\nextends: {name}\nstages: [{stages}]\n"
    else:  # a rule's stages, written out with two blocks each
        rows = [{"depth": 2, "width": s.width, "stride": s.stride, **s.args} for s in expand_stage_rule(spec).doc.stages]
        shallow_text = yaml.safe_dump({"name": f"{name}_shallow", "extends": name, "stages": rows})
    shallow = tmp_path / f"{name}_shallow.yaml"
    shallow.write_text(shallow_text)
    r = reconcile(shallow, min(SMALL, load_spec(name).doc.input.size))
    assert r.flagged == []
    # archgen's MACs equal fvcore's conv + linear count layer by layer, as integers.
    for layer in r.layers:
        if layer.op in ("conv", "linear"):
            assert layer.counted["fvcore"] == layer.counted["archgen"], layer.name


def test_a_count_no_rule_explains_is_flagged(monkeypatch):
    wrong = dict(RULES["fvcore"], bn=Rule("1 per element (wrong on purpose)", lambda layer, seen: layer.other_ops))
    monkeypatch.setitem(third_party_counters.RULES, "fvcore", wrong)
    r = reconcile("resnet18", 32, ("archgen", "fvcore"))
    assert r.flagged and all("fvcore counts" in f and "(bn)" in f for f in r.flagged)
    assert len(r.flagged) == sum(1 for x in r.layers if x.op == "bn")


def test_unknown_counter_is_refused():
    with pytest.raises(ValueError, match="unknown counter"):
        reconcile("resnet18", 32, ("archgen", "thop"))


def test_weights_memory_is_parameters_and_bn_running_statistics_of_the_built_model():
    model = archgen.build("resnet50", device="meta")
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    m = memory(archgen.profile("resnet50"), batch=1, dtype="float32")
    assert m.weights == 4 * (25_557_032 + stats)


def test_activation_memory_scales_with_batch_and_dtype():
    p = archgen.profile("resnet18")
    one = memory(p, 1, "float32")
    many = memory(p, 8, "float16")
    assert many.training_activations == 4 * one.training_activations
    assert many.inference_activations == 4 * one.inference_activations
    assert one.inference_activations < one.training_activations


def test_training_activations_are_the_outputs_of_the_models_modules_plus_the_image():
    """Every analytic layer's output, checked against what the built model's modules output."""
    import torch

    model = archgen.build("resnet18").eval()
    p = archgen.profile("resnet18", input_size=32)
    names = {x.name for x in p.layers}
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o.numel()))
             for n, m in model.named_modules() if n in names]
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    adds = sum(x.out[0] * x.out[1] * x.out[2] for x in p.layers if x.op == "add")  # functional: no module
    assert memory(p).training_activations == 4 * (3 * 32 * 32 + sum(seen.values()) + adds)
