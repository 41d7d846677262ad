"""The kernel-level latency model (archgen.bench.latency_model): fitted on kernels whose ms follow a known formula
(conftest.synthetic_ms), it recovers the formula on networks it never saw; its file round-trips, refuses what
is corrupt, edited or malformed, and warns when made elsewhere; a spec walked stage by stage predicts what
its kernel units predict; units outside the calibrated ranges are counted. No assertion is made on any real
timing: predicted against measured lives in benchmarks/latency_bench.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import archgen
from archgen.bench import latency_fit as lf
from archgen.bench import latency_model as lm
from archgen.bench.kernel_units import KernelUnit, kernel_units, nchwc_block
from archgen.design import Evaluator, Rejections, load_space, sample
from archgen.planner import plan
from conftest import synthetic_ms


@pytest.fixture(scope="module")
def model(latency_model_file):
    return lm.load_model(latency_model_file)


def truth(name: str, batch: int = 1, size=None) -> float:
    """The whole pass the synthetic calibration's networks follow: 1.1 x the kernels' sum + 0.05 ms."""
    return 1.1 * sum(map(synthetic_ms, kernel_units(name, "eager", batch, input_size=size))) + 0.05


@pytest.mark.parametrize("name, size", [("resnet56_cifar", None), ("regnetx_004", 64), ("mobilenet_v3_large", 64),
                                        ("efficientnet_b0", 64), ("preact_resnet110_cifar", None)])
def test_fit_recovers_the_formula_on_networks_it_never_saw(model, name, size):
    """Held-out networks (deeper, wider, with other blocks) predicted within 3% of the formula's whole pass."""
    assert model.predict(name, 1, size).total_ms == pytest.approx(truth(name, 1, size), rel=0.03)


def test_the_trees_learn_what_the_baseline_cannot_see(latency_model_doc):
    """Grouped convs cost 1.6x their MACs' share: the baseline alone misses them, the trees do not."""
    conv = lm._KindModel(latency_model_doc["kinds"]["conv"]["baseline"], latency_model_doc["kinds"]["conv"]["trees"],
                         None, None)
    grouped = [u for u in kernel_units("regnetx_004", "eager", 1, input_size=64) if u.kind == "conv" and u.groups > 1]
    x = lm.feature_matrix(grouped)
    real = [synthetic_ms(u) for u in grouped]
    trees = sorted(abs(p / r - 1) for p, r in zip(lm._Forest([conv]).ms(x, 0), real))
    base = sorted(abs(p / r - 1) for p, r in zip(lm.baseline_ms(conv.baseline, x), real))
    assert trees[len(trees) // 2] < 0.05 < base[len(base) // 2]


def test_a_kind_without_macs_gets_no_macs_coefficient():
    """A column of zeros (the MACs of flatten, act, add) takes no part in the baseline's fit. Least squares gave
    it a coefficient of rounding noise, which dividing out the column's scale blew up (to 8.7e11 for two
    flattens of 4,096 and 16,384 bytes at 7.4 and 8.0 us), and calibrate then wrote a model its own loader
    refused: 17 of these 2,000 draws of one to four samples did so before the fix."""
    import random

    import numpy as np

    rng = random.Random(0)
    for _ in range(2000):
        n = rng.choice([1, 2, 3, 4])
        moved = np.array([rng.choice([128, 192, 256, 4096]) * rng.choice([1, 4]) for _ in range(n)], float)
        ms = np.array([rng.uniform(0.001, 0.01) for _ in range(n)])
        coef = lf._baseline(np.zeros(n), moved, ms)
        assert coef[0] == 0.0 and all(0 <= c <= lm.MAX_COEFFICIENT for c in coef), (moved, ms, coef)


@pytest.mark.parametrize("c_in, c_out, groups, in_align, out_align", [
    (192, 192, 24, 8, 8), (192, 192, 12, 16, 16), (192, 192, 8, 8, 8), (192, 192, 6, 32, 32), (192, 192, 4, 16, 16),
    (3, 64, 1, 1, 64), (96, 256, 1, 32, 64), (1024, 2048, 1, 64, 64), (120, 120, 120, 1, 1)])
def test_the_features_say_which_vector_path_a_groups_channels_allow(c_in, c_out, groups, in_align, out_align):
    """A group's channels as the largest power of two dividing them, at most 64: RegNetX's group widths 8, 16,
    24, 32 and 48 (at 192 channels) are 8, 16, 8, 32 and 16, so that ONNX Runtime's NCHWc blocks (16 on an
    AVX-512 CPU, 8 on others) are one split of a tree away; a depthwise conv's group is one channel."""
    unit = KernelUnit("conv" if groups < c_in else "dwconv", c_in, c_out, 3, 1, groups, 1, 14, 14, 1, "float32",
                      "nchw", ("norm", "act"), "relu")
    f = dict(zip(lm.FEATURES, lm.features(unit)))
    assert (f["in_align"], f["out_align"]) == (in_align, out_align)
    for block in (nchwc_block("avx512f"), nchwc_block("avx2")):
        assert (f["in_align"] >= block and f["out_align"] >= block) == (
            (c_in // groups) % block == 0 and (c_out // groups) % block == 0)


def test_the_file_says_how_each_kind_is_modelled_and_what_whole_passes_add(latency_model_doc):
    kinds = latency_model_doc["kinds"]
    assert kinds["conv"]["trees"] and kinds["conv"]["how"] == "baseline and trees"
    assert kinds["zero_pad"]["trees"] is None and kinds["zero_pad"]["how"].startswith("baseline alone: 4 samples")
    assert kinds["conv"]["cross_validated"]["within_10"] > 0.9
    net = latency_model_doc["network"]
    assert net["networks"] == 3 and net["pass_over_kernels"]["1"] == pytest.approx(1.1, abs=0.05)
    # three networks, fewer than the three-term fit needs: the median ratio of passes to kernel sums alone
    assert 3 < lf.MIN_FIT_NETWORKS and net["pooled"][1:] == [0.0, 0.0]
    assert net["pooled"][0] == pytest.approx(net["pass_over_kernels"]["1"])


def test_cross_validation_gives_each_sample_its_out_of_fold_error():
    """A sample's error comes from a model that never saw it: tripling its own measured time leaves what it is
    predicted unchanged (an in-sample score would follow it), on kinds with trees and with the baseline alone."""
    units = list(dict.fromkeys(u._replace(names=()) for name in ("resnet20_cifar", "regnetx_004")
                               for size in (32, 64, 96) for u in kernel_units(name, "eager", 1, input_size=size)))
    samples = [(u, synthetic_ms(u)) for u in units]
    errors = lf.cross_validate(samples)
    assert len(errors) == len(samples) and errors == lf.cross_validate(samples)
    assert sorted(map(abs, errors))[len(errors) // 2] < 0.05
    counts = {kind: sum(u.kind == kind for u in units) for kind in {u.kind for u in units}}
    assert max(counts.values()) >= lf.MIN_TREE_SAMPLES and min(counts.values()) < lf.MIN_TREE_SAMPLES
    for kind in (max(counts, key=counts.get), min((k for k in counts if counts[k] > 1), key=counts.get)):
        j = next(i for i, (u, _) in enumerate(samples) if u.kind == kind)
        edited = list(samples)
        edited[j] = (samples[j][0], 3 * samples[j][1])
        predicted = (errors[j] + 1) * samples[j][1]
        assert (lf.cross_validate(edited)[j] + 1) * edited[j][1] == pytest.approx(predicted, rel=1e-9), kind


def test_each_fold_is_scored_as_the_model_the_kind_ships(monkeypatch):
    """A kind of 45 samples ships trees; its folds train on 36, below MIN_TREE_SAMPLES, and were scored as the
    baseline alone. Each fold now fits the form the whole kind's samples give it."""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(1)
    x_units = [KernelUnit("conv", int(c), int(c), 3, 1, int(g), 1, 14, 14, 1, "float32", "nchw", (), None, 0, ())
               for c, g in zip(rng.choice([64, 96, 128, 192, 256], 45), rng.choice([1, 2, 4, 8], 45))]
    samples = [(u, synthetic_ms(u)) for u in x_units]
    fitted = []
    real = lf._fit_kind

    def spy(x, y, trees=None):
        coef, booster = real(x, y, trees)
        fitted.append((len(y), booster is not None))
        return coef, booster

    monkeypatch.setattr(lf, "_fit_kind", spy)
    lf.cross_validate(samples)
    assert fitted == [(36, True)] * 5


def test_the_correction_is_scored_left_one_out_as_the_form_it_stores():
    """At MIN_FIT_NETWORKS networks (the default) the stored correction has three terms; each left-one-out
    refit, on one network fewer, was the median ratio instead. Passes that follow three terms exactly are now
    predicted exactly left-one-out."""
    import numpy as np

    rows = [(1, k, u, 1.2 * k + 0.02 * u + 3.0) for k, u in
            [(2, 30), (5, 120), (9, 60), (14, 200), (20, 90), (31, 150), (45, 40), (60, 260)]]
    data = np.array(rows[:lf.MIN_FIT_NETWORKS], dtype=float)
    assert len(data) == lf.MIN_FIT_NETWORKS
    assert lf.fit_correction(data) == pytest.approx([1.2, 0.02, 3.0], rel=1e-6)
    assert np.abs(lf._loo(data)).max() < 1e-6


def test_the_model_round_trips_through_its_file(latency_model_doc, latency_model_file, model):
    on_disk = json.loads(latency_model_file.read_text())
    assert {k: v for k, v in on_disk.items() if k != "checksum"} == latency_model_doc
    again = lm.LatencyModel(latency_model_doc, "in memory")
    assert again.predict("resnet32_cifar") == model.predict("resnet32_cifar")


def _edited(path, tmp_path, edit) -> str:
    """The model file with `edit` applied to its document and the checksum made to match again."""
    doc = json.loads(path.read_text())
    edit(doc)
    out = tmp_path / "edited.json"
    lm.write_model(out, {k: v for k, v in doc.items() if k != "checksum"})
    return str(out)


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["kinds"]["conv"].__setitem__("baseline", "fast"), "field 'kinds.conv.baseline' must be a list"),
    (lambda d: d.pop("network"), "field 'network' is missing"),
    (lambda d: d["kinds"]["conv"]["trees"]["left"].__setitem__(0, 10 ** 9), "field 'kinds.conv.trees.left' must index"),
    (lambda d: d["kinds"]["act"]["ranges"].pop("h"), "field 'kinds.act.ranges.h' is missing"),
    (lambda d: d.__setitem__("backend", "tvm"), "unknown backend 'tvm'"),
    (lambda d: d.__setitem__("features", None), "field 'features' must be a list"),
    (lambda d: d["kinds"]["conv"]["baseline"].__setitem__(0, 10 ** 400), "'kinds.conv.baseline' must hold finite"),
    # values that pass the checksum and would predict a negative, infinite or NaN latency
    (lambda d: d["network"].__setitem__("pooled", [-5, 0, 0]), "'network.pooled' must be three numbers .* from 0"),
    (lambda d: d["kinds"]["conv"]["baseline"].__setitem__(2, 1e300), "'kinds.conv.baseline' must be three numbers"),
    (lambda d: d["fallback"].__setitem__(0, 1e308), "'fallback' must be three numbers"),
    (lambda d: d["kinds"]["conv"]["trees"]["value"].__setitem__(0, 800.0), "'kinds.conv.trees.value' must be leaves"),
    (lambda d: d["kinds"]["conv"]["trees"].__setitem__("roots", []), "'kinds.conv.trees.roots' must list"),
    (lambda d: d["kinds"]["act"]["ranges"].__setitem__("h", [64, 8]), "'kinds.act.ranges.h' must be .* low <= high"),
    (lambda d: d["network"].__setitem__("by", "bogus"), "'network.by' must be 'batch' or 'pooled'"),
    (lambda d: d["device"].__setitem__("device", "tpu"), "'backend' does not fit .* not 'tpu'"),
    (lambda d: d.update(backend="onnxruntime", dtype="float16"), "'backend' does not fit .* float32 NCHW"),
])
def test_a_malformed_model_is_refused_naming_the_field(latency_model_file, tmp_path, edit, words):
    with pytest.raises(lm.LatencyModelError, match=words):
        lm.load_model(_edited(latency_model_file, tmp_path, edit))


@pytest.mark.parametrize("edit, field, key", [
    (lambda d: d["kinds"]["act"]["ranges"].__setitem__("h", [64, 8]), "kinds.act.ranges.h", '"h": ['),
    (lambda d: d["network"].__setitem__("by", "bogus"), "network.by", '"by": "bogus"'),
    (lambda d: d["kinds"]["conv"]["trees"]["value"].__setitem__(0, 800.0), "kinds.conv.trees.value", '"value": ['),
    # a field the file lacks: the line of the mapping that should hold it
    (lambda d: d["kinds"]["act"]["ranges"].pop("h"), "kinds.act.ranges.h", '"ranges": {'),
])
def test_a_malformed_model_names_the_line_its_field_is_on(latency_model_file, tmp_path, edit, field, key):
    path = _edited(latency_model_file, tmp_path, edit)
    with pytest.raises(lm.LatencyModelError) as caught:
        lm.load_model(path)
    line = int(re.search(r"', line (\d+): the latency model's field '" + re.escape(field) + "'",
                         str(caught.value)).group(1))
    lines = Path(path).read_text().splitlines()
    assert key in lines[line - 1]
    if field.startswith("kinds."):  # the key of its own kind, not the same key of another kind before it
        headers = [t for t in lines[:line] if re.fullmatch(r'  "\w+": \{', t)]
        assert headers[-1] == f'  "{field.split(".")[1]}": {{'


def test_a_tampered_byte_breaks_the_checksum(latency_model_file, tmp_path):
    text = latency_model_file.read_text()
    at = text.index('"threshold": [') + len('"threshold": [')
    digit = next(i for i in range(at, len(text)) if text[i].isdigit())
    bad = tmp_path / "tampered.json"
    bad.write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:])
    with pytest.raises(lm.LatencyModelError, match="checksum does not match its content"):
        lm.load_model(bad)


@pytest.mark.parametrize("content, words", [
    ("{not json", "is not a latency model: it is not JSON"),
    ('{"format": "archgen-latency-table/1"}', "its format is not archgen-latency-model/3"),
    ('{"format": "archgen-latency-model/2"}', "its format is not archgen-latency-model/3"),  # before the block
    (b"\xff\xfe\x00", "it is not text"),
    ('{"format": 1' + "0" * 5000 + "}", "it is not JSON archgen reads"),  # past Python's digits for an int
    ("[" * 100_000 + "]" * 100_000, "it is not JSON archgen reads"),  # nested past the recursion limit
])
def test_a_file_that_is_not_a_model_is_refused(tmp_path, content, words):
    path = tmp_path / "x.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(lm.LatencyModelError, match=words):
        lm.load_model(path)
    with pytest.raises(lm.LatencyModelError, match="cannot read the latency model"):
        lm.load_model(tmp_path / "missing.json")


@pytest.mark.parametrize("field, value, words", [
    ("name", "Another CPU", "made with name Another CPU"),
    ("torch", "1.0.0", "made with torch 1.0.0"),
    ("threads", 64, "made with threads 64"),
    ("vector", "sse4_2", "made with vector sse4_2"),
])
def test_a_model_made_elsewhere_warns_naming_the_difference(latency_model_file, tmp_path, field, value, words):
    path = _edited(latency_model_file, tmp_path, lambda d: d["device"].__setitem__(field, value))
    with pytest.warns(lm.LatencyModelWarning, match=words):
        lm.load_model(path)


def test_a_device_name_prints_no_terminal_escapes(latency_model_file, tmp_path):
    with pytest.warns(lm.LatencyModelWarning):
        model = lm.load_model(_edited(latency_model_file, tmp_path,
                                      lambda d: d["device"].__setitem__("name", "CPU\x1b[2J\x1b[31mred")))
    assert "\x1b" not in model.describe and model.describe.endswith("CPU[2J[31mred")


def test_a_model_of_another_runtime_warns_when_its_version_differs(tmp_path):
    doc = synthetic_latency_model_of("onnxruntime")
    doc["device"]["onnxruntime"] = "0.1"
    path = tmp_path / "ort.json"
    lm.write_model(path, doc)
    with pytest.warns(lm.LatencyModelWarning, match="made with onnxruntime 0.1"):
        assert lm.load_model(path).backend == "onnxruntime"


def test_an_onnx_runtime_model_groups_units_by_the_block_of_the_cpu_it_was_made_on(tmp_path):
    """MobileNetV3's hard swish runs inside the convs ONNX Runtime blocks, so its units depend on the CPU's NCHWc
    block: a model predicts with the block it was calibrated with (its file's), on any machine."""
    doc = synthetic_latency_model_of("onnxruntime")
    assert doc["device"]["nchwc_block"] == nchwc_block(doc["device"]["vector"])
    units = {}
    for block in (8, 16):
        doc["device"]["nchwc_block"] = block
        path = tmp_path / f"ort{block}.json"
        lm.write_model(path, {k: v for k, v in doc.items() if k != "checksum"})
        model = lm.load_model(path)
        expected = kernel_units("mobilenet_v3_small", "onnxruntime", input_size=64, nchwc_block=block)
        units[block] = model.predict("mobilenet_v3_small", input_size=64).units
        assert units[block] == len(expected)
        assert model.predict(archgen.plan("mobilenet_v3_small"), input_size=64).units == len(expected)
    assert units[8] < units[16]  # more convs run blocked, and take their hard swish in


def test_an_onnx_runtime_model_without_its_block_is_refused(tmp_path):
    doc = synthetic_latency_model_of("onnxruntime")
    for block, words in ((None, "'device.nchwc_block' is missing"), (12, "must be 0, 8 or 16")):
        if block is None:
            del doc["device"]["nchwc_block"]
        else:
            doc["device"]["nchwc_block"] = block
        path = tmp_path / "ort.json"
        lm.write_model(path, {k: v for k, v in doc.items() if k != "checksum"})
        with pytest.raises(lm.LatencyModelError, match=words):
            lm.load_model(path)


def synthetic_latency_model_of(backend: str) -> dict:
    """A minimal model of another backend: the eager kinds' baselines alone (no trees), on this machine."""
    from conftest import synthetic_latency_model

    return synthetic_latency_model(backend)


def test_units_outside_the_calibrated_ranges_are_counted(model):
    """Calibrated at batches 1 and 2 on CIFAR and 64 px inputs: at batch 16 every unit is extrapolated, at 224 px
    the large early maps are, and a calibrated network at batch 1 has none."""
    seen = model.predict("resnet20_cifar")
    assert seen.extrapolated == 0 and seen.units == len(kernel_units("resnet20_cifar", "eager"))
    assert model.predict("resnet20_cifar", batch=16).extrapolated == seen.units
    wide = model.predict("mobilenet_v3_small")
    assert 0 < wide.extrapolated < wide.units


def test_a_unit_its_kind_was_never_calibrated_with_is_counted_extrapolated(model, latency_model_doc):
    """Inside every numeric range, a unit is still extrapolated when its kind never absorbed what it absorbs or
    applied its act: an eager model calibrated on ReLU and hardswish (the synthetic specs' acts) predicting a
    SiLU, and an SE gate wider than any calibrated."""
    relu = next(u for u in kernel_units("resnet20_cifar", "eager") if u.kind == "act")._replace(names=())
    assert relu.act == "relu"
    assert "silu" not in [act for _, act in latency_model_doc["kinds"]["act"]["patterns"]] and \
        [[], "relu"] in latency_model_doc["kinds"]["act"]["patterns"]
    assert model.unit_ms([relu]) == [(model.unit_ms([relu])[0][0], False)]
    assert model.unit_ms([relu._replace(act="silu")])[0][1] is True
    gate = next(u for u in kernel_units("mobilenet_v3_small", "eager", 1, input_size=64) if u.kind == "se_gate")
    gate = gate._replace(names=())
    hi = latency_model_doc["kinds"]["se_gate"]["ranges"]["mid"][1]
    assert model.unit_ms([gate])[0][1] is False and model.unit_ms([gate._replace(mid=int(hi) * 4)])[0][1] is True


SPECS = ["resnet50", "densenet121", "mobilenet_v2", "seresnext50_32x4d", "resnet110_sd_cifar", "highway20_cifar",
         "preact_resnet164_cifar", "darknet53", "vgg11_bn"]


@pytest.mark.parametrize("name", SPECS)
def test_a_spec_walked_stage_by_stage_predicts_what_its_kernel_units_predict(model, name):
    """The stage walk (with a long stage's repeated blocks counted, not walked) and kernel_units over the plan
    give the same stages, units and extrapolated units; a second, remembered, walk too."""
    whole = model.predict(plan(name))
    for _ in range(2):
        walked = model.predict(name)
        assert walked.per_stage == pytest.approx(whole.per_stage, rel=1e-9)
        assert (walked.units, walked.extrapolated) == (whole.units, whole.extrapolated)
        assert walked.kernel_ms == pytest.approx(whole.kernel_ms, rel=1e-9)
    assert sum(whole.per_stage.values()) == pytest.approx(whole.total_ms, rel=1e-12)
    a, b, c = model.correction(1)  # the kernel sum is what the correction scales
    assert a * whole.kernel_ms + b * whole.units + c == pytest.approx(whole.total_ms, rel=1e-9)


def test_sampled_regnets_walked_stage_by_stage_match_their_kernel_units(model):
    """Also framed, as the design evaluator hands a candidate on after counting it."""
    from archgen.planner import framed

    space = load_space("regnetx_400mf")
    for verdict in sample(space, 12, 5, Evaluator(space, space.constraints), Rejections()):
        spec = space.spec(verdict.values)
        walked, whole = model.predict(spec), model.predict(plan(spec))
        assert walked.total_ms == pytest.approx(whole.total_ms, rel=1e-9)
        assert (walked.units, walked.extrapolated) == (whole.units, whole.extrapolated)
        assert model.predict(framed(spec)) == walked


def test_prediction_imports_no_torch(latency_model_file):
    code = ("import sys; from archgen.bench.latency_model import load_model; "
            f"p = load_model({str(latency_model_file)!r}).predict('resnet20_cifar'); "
            "assert p.total_ms > 0; assert 'torch' not in sys.modules and 'lightgbm' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_network_correction_never_predicts_a_small_network_below_zero():
    """Passes that grow slower than their kernels' sum (rows: batch, kernel sum, units, measured) fit a
    negative intercept unconstrained, which put a small held-out network below zero; the correction keeps its
    terms non-negative."""
    import numpy as np

    data = np.array([[8, k, u, 0.8 * k - 5.0 + 0.01 * u] for k, u in
                     [(60, 200), (80, 120), (120, 300), (200, 180), (300, 250), (400, 140), (500, 220), (700, 260)]])
    free, *_ = np.linalg.lstsq(np.c_[data[:, 1:3], np.ones(8)], data[:, 3], rcond=None)
    assert free[2] < 0  # the unconstrained fit's intercept
    a, b, c = lf.fit_correction(data)
    assert min(a, b, c) >= 0 and a > 0
    assert a * 2.0 + b * 30 + c > 0  # a CIFAR-size network: 2 ms of kernels in 30 units


def test_the_exported_trees_predict_what_lightgbm_predicts():
    """The model file holds LightGBM's trees as arrays, walked with numpy (no LightGBM, nothing unpickled at
    prediction): on points inside and far outside the fitted data, the walk must give LightGBM's own output."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 500, size=(300, len(lm.FEATURES)))
    y = 1e-3 * x[:, lm.MACS_AT] * (1 + 0.5 * np.sin(x[:, 0] / 40)) + 0.01 * x[:, 2] + 0.1
    coef, booster = lf._fit_kind(x, y)
    assert booster is not None
    walked = lm._KindModel(coef, lf._export(booster.dump_model()), None, None)
    probe = np.vstack([x[:50], rng.uniform(0, 5000, size=(50, len(lm.FEATURES)))])
    expected = lm.baseline_ms(coef, probe) * np.exp(booster.predict(probe))
    forest = lm._Forest([walked])
    assert np.allclose(forest.ms(probe, 0), expected, rtol=1e-9)
    assert np.allclose(forest.ms(probe[:1], 0), expected[:1], rtol=1e-9)


def test_one_walk_of_every_kind_predicts_what_each_kind_predicts_alone(model):
    """unit_ms walks every kind's trees at once: a batch mixing kinds (one with trees, one baseline alone, one the
    file lacks, which the fallback predicts) must give each unit what its own kind's model gives it alone."""
    np = pytest.importorskip("numpy")
    units = kernel_units("regnetx_004", "eager", 1, input_size=64)
    assert "lrn" not in model.kinds  # a kind the file lacks: the fallback's
    units += [u._replace(kind="lrn", c_out=u.c_in, k=1, stride=1) for u in units[:3]]
    shallow = lm._KindModel([1e-6, 2e-6, 0.01], None, [0] * len(lm.RANGED), [1e9] * len(lm.RANGED))
    mixed = lm._Forest([*model.kinds.values(), shallow, lm._KindModel([1e-6, 0, 0], None, None, None)])
    index = {kind: i for i, kind in enumerate(model.kinds)}
    which = np.array([index.get(u.kind, len(index) + 1) for u in units])
    which[::7] = len(index)  # every seventh unit to the baseline-only kind
    x = lm.feature_matrix(units)
    ms, out = mixed.ms(x, which), mixed.outside(x, which)
    assert len(set(which.tolist())) >= 5 and any(model.kinds[k].trees is not None for k in index)
    for row, i in enumerate(which):
        alone = [*model.kinds.values(), shallow, lm._KindModel([1e-6, 0, 0], None, None, None)][i]
        forest = lm._Forest([alone])
        assert ms[row] == pytest.approx(forest.ms(x[row:row + 1], 0)[0], rel=1e-12)
        assert out[row] == forest.outside(x[row:row + 1], 0)[0]
    assert out[which == len(index) + 1].all()  # a kind never calibrated is outside its ranges everywhere
    fallback = lm._KindModel(model.doc["fallback"], None, None, None)
    for row, (unit, (ms_row, out_row)) in enumerate(zip(units, model.unit_ms(units))):  # the model's own mapping
        alone = lm._Forest([model.kinds.get(unit.kind, fallback)])
        assert ms_row == pytest.approx(alone.ms(x[row:row + 1], 0)[0], rel=1e-12)
        assert out_row == alone.outside(x[row:row + 1], 0)[0]
