"""`archgen calibrate` and what it stands on: kernel configurations timed one by one on every backend, whole
networks timed interleaved, the sampler that chooses the configurations (covering every kind of kernel the zoo
runs, its perturbations valid ones), the request's refusals as one paragraph with exit 2, and a tiny run end to
end whose file the latency model loads. No assertion is made on a timing beyond its being a positive number."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from archgen.bench import kernel_timing
from archgen.bench.calibration import CalibrationRequest, Sampler, correction_networks, perturb, sampled, work
from archgen.bench.kernel_timing import onnx_unit, time_networks, time_units, torch_unit, unit_statistic
from archgen.bench.kernel_units import KernelUnit, kernel_units, out_size
from archgen.cli.app import app
from archgen.errors import UserError
from archgen.grammar.loader import bundled_names
from archgen.render import render
from conftest import TINY_SPEC
from test_80_columns import assert_reads_at_80

TINY_SPACE = """\
name: tiny_space
description: two basic-block stages on 32x32 images, widths drawn, for fast calibration tests
input: {channels: 3, size: 32, classes: 10}
stem: {type: cifar, width: 16}
block: {type: basic}
stages:
  - {depth: 1, width: {choice: [8, 16, 24]}}
  - {depth: {range: [1, 2]}, width: {choice: [16, 32, 48]}, stride: 2}
"""
#: Specs whose units, at 32 px, hold every structure the zoo has (SE gates, depthwise convs, hard-swish, dense
#: concatenations, zero-padding shortcuts, highway gates, pools, VGG's hidden fc layers).
STRUCTURES = ("seresnet50", "mobilenet_v3_small", "efficientnet_b0", "densenet121", "resnet20_cifar",
              "highway20_cifar", "resnet26d", "vgg11_bn", "darknet53", "mobilenet_v2")


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("space") / "tiny_space.yaml"
    path.write_text(TINY_SPACE)
    return str(path)


def patterns(backend: str, size: int = 32) -> list[KernelUnit]:
    """One configuration of each (kind, what it absorbed, act) the STRUCTURES run on the backend (VGG's hidden
    fc layers at 512 inputs, not 25,088: 400 MB of weights would only slow the test)."""
    seen: dict[tuple, KernelUnit] = {}
    for name in STRUCTURES:
        for u in kernel_units(name, backend, 2, input_size=None if name.endswith("cifar") else size):
            small = u._replace(c_in=512) if u.kind == "linear" and u.c_in > 4096 else u
            seen.setdefault((u.kind, u.absorbed, u.act), small._replace(names=()))
    return list(seen.values())


@pytest.mark.parametrize("backend", ["eager", "fused", "onnxruntime", "openvino"])
def test_every_kind_of_kernel_the_zoo_runs_is_timed_to_a_positive_time(backend):
    units = patterns(backend)
    done: list[int] = []
    ms = time_units(units, backend, warmup=0, reps=1, on_unit=done.append)
    assert done == list(range(len(units)))
    bad = [(u.kind, u.absorbed, u.act, t) for u, t in zip(units, ms) if not (math.isfinite(t) and t > 0)]
    assert not bad


@pytest.mark.parametrize("backend", ["eager", "onnxruntime", "openvino"])
def test_a_configuration_is_the_tenth_percentile_of_its_timed_calls(backend, monkeypatch):
    """A call slowed by something else only adds to a kernel's time, so one slow call of ten does not move the
    figure; and every backend's timing hands its timed calls (warm-up left out) to that one statistic."""
    assert unit_statistic([1.0] * 9 + [10.0]) == 1.0
    assert unit_statistic([float(i) for i in range(11, 0, -1)]) == 2.0
    handed: list[list[float]] = []
    monkeypatch.setattr(kernel_timing, "unit_statistic", lambda calls: handed.append(list(calls)) or 0.5)
    units = patterns(backend)[:2]
    assert time_units(units, backend, warmup=1, reps=3) == [0.5, 0.5]
    assert [len(calls) for calls in handed] == [3, 3]
    assert all(t > 0 for calls in handed for t in calls)


def test_a_units_onnx_graph_is_a_valid_model_with_a_dynamic_batch():
    for u in patterns("onnxruntime") + patterns("openvino"):
        model, shapes = onnx_unit(u, blocked_inputs=True)
        onnx.checker.check_model(model, full_check=True)
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert all(shape[0] == u.batch for shape in shapes.values())


def test_a_unit_timed_alone_writes_the_shape_the_model_reads():
    """What the model's features say a unit outputs (kernel_units.out_size) is what its timed kernel writes, on
    torch and in the ONNX graph: a strided highway gate (its conv reads the block's input), a zero-padding
    shortcut, VGG's adaptive pool (to 7 x 7 from 14 x 14 and 7 x 7), a strided conv, a global pool."""
    units = [u._replace(names=()) for name in ("highway20_cifar", "resnet20_cifar") for u in
             kernel_units(name, "eager", 2)]
    units += [u._replace(names=()) for size in (224, 448) for u in kernel_units("vgg11", "eager", 1, input_size=size)
              if u.kind == "adaptive_pool"]
    units += [u._replace(names=()) for backend in ("eager", "fused") for u in
              kernel_units("densenet121", backend, 1, input_size=64)]  # concats: the next layer reads both
    kinds = {u.kind for u in units}
    assert {"highway_gate", "zero_pad", "adaptive_pool", "global_pool", "conv", "concat"} <= kinds
    gates = [u for u in units if u.kind == "highway_gate"]
    assert any(u.stride == 2 and (u.c_in, u.h) == (16, 32) and u.c_out == 32 for u in gates)  # reads the input
    assert {u.h for u in units if u.kind == "adaptive_pool"} == {7, 14}
    for u in dict.fromkeys(units):
        ho, wo = out_size(u)
        out = torch_unit(u, False, "cpu")()
        if out.dim() == 4:
            assert tuple(out.shape) == (u.batch, u.c_out, ho, wo), u
        model, _ = onnx_unit(u)
        dims = onnx.shape_inference.infer_shapes(model).graph.output[0].type.tensor_type.shape.dim
        if len(dims) == 4:
            assert [d.dim_value for d in dims[1:]] == [u.c_out, ho, wo], u


def test_every_unit_reads_the_channels_the_layer_before_it_wrote():
    """A norm, act, add or pool keeps its input's channels, on every backend, in every bundled network: a dense
    block's concat hands the next layer its input and its branch's channels (both), and a unit timed on other
    channels than the network runs would teach the model the wrong kernel."""
    keeps = {"norm", "group_norm", "act", "add", "max_pool", "avg_pool", "global_pool", "adaptive_pool"}
    for name in sorted(bundled_names()):
        for backend in ("eager", "fused", "onnxruntime", "openvino"):
            units = kernel_units(name, backend, 1)
            wrong = [(u.names[0], u.c_in, u.c_out) for u in units if u.kind in keeps and u.c_in != u.c_out]
            assert not wrong, (name, backend, wrong[:3])
            for u in units:
                if u.kind == "concat":
                    assert u.c_out > u.c_in, (name, backend, u)


def test_the_runtimes_fuse_a_units_add_as_inside_a_network(tmp_path):
    """The add and act a conv took in are fused into it only if the shortcut arrives in the conv's blocked
    layout, as it does in a network: ONNX Runtime's profile then shows one conv and nothing else timed."""
    import json as json_

    import numpy as np
    import onnxruntime as ort

    u = KernelUnit("conv", 32, 64, 1, 1, 1, 1, 8, 8, 1, "float32", "nchw", ("norm", "add", "act"), "relu")
    model, shapes = onnx_unit(u, blocked_inputs=True)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "unit")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {name: np.zeros(shape, np.float32) for name, shape in shapes.items()})
    with open(session.end_profiling()) as f:
        ops = [e["args"]["op_name"] for e in json_.load(f) if e.get("cat") == "Node" and
               e["name"].endswith("_kernel_time") and not e["name"].startswith("helper_")]
    assert sorted(op for op in ops if not op.startswith("Reorder")) == ["Conv"]


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_whole_networks_are_timed_interleaved_to_positive_times(backend, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    built: list[int] = []
    ms = time_networks([str(spec), "resnet20_cifar"], backend, 2, rounds=2, reps=1, on_network=built.append)
    assert built == [0, 1] and len(ms) == 2 and all(math.isfinite(t) and t > 0 for t in ms)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_measuring_on_a_gpu_this_machine_lacks_is_a_sentence():
    """`archgen search --verify` with a model calibrated on a GPU, run where there is none: a UserError naming
    the device and what to do, not torch's assertion."""
    with pytest.raises(UserError, match="CUDA GPU, but torch .* sees none here; measure on the machine"):
        time_networks(["resnet20_cifar"], "eager", 1, "cuda")


def test_torch_compile_has_no_kernels_to_time():
    with pytest.raises(UserError, match="Inductor"):
        time_units([], "compile")


def test_the_sampler_covers_every_kind_of_kernel_the_zoo_runs():
    sampler = Sampler("onnxruntime", [], [1], "float32", "nchw", seed=0, nchwc_block=16)
    handed = list(sampler.base())
    zoo = {u.kind for name in bundled_names() for u in kernel_units(name, "onnxruntime")}
    assert zoo <= {u.kind for u in handed}
    assert len(handed) == len(set(handed))  # each configuration handed out once


def test_a_space_is_covered_at_every_batch_size_and_never_twice(space):
    sampler = Sampler("eager", [space], [1, 4], "float32", "nchw", seed=1, nchwc_block=0)
    base = sampler.base()
    drawn = [next(base) for _ in range(400)]
    assert len(set(drawn)) == len(drawn)
    assert {u.batch for u in drawn} == {1, 4}
    candidate = sampled(space, 1, 1000)[0]
    assert set(sampler.units(candidate)) <= set(drawn)  # the space's first draws are in the stream


#: A zoo for the extremes' test: two CIFAR networks, whose last stage (64 channels) is wider than any of the
#: test space's, and one of them pre-activation.
EXTREMES_ZOO = ["plain20_cifar", "preact_resnet110_cifar"]


def test_the_extremes_come_first_and_span_what_the_zoo_and_the_spaces_draws_meet(space, monkeypatch):
    """Each kind's ranged features, over the zoo and the space's first EXTREME_DRAWS candidates (those the base
    stream takes first), reach their lowest and highest values among the extremes, each end by the cheapest
    configuration that reaches it (none of these is past EXTREME_MAX_WORK), so a model's calibrated ranges span
    what a search of the space and the zoo's networks meet; they are handed out once, and the base stream does
    not repeat them."""
    from archgen.bench.calibration import EXTREME_DRAWS, EXTREME_MAX_WORK
    from archgen.bench.latency_model import RANGED_AT, feature_matrix

    sampler = Sampler("eager", [space], [1, 4], "float32", "nchw", seed=1, nchwc_block=0, zoo=EXTREMES_ZOO)
    ends = sampler.extremes()
    drawn = [c for k in range(EXTREME_DRAWS // 8) for c in sampled(space, 8, 1000 + k)]
    met = {u: None for network in (*EXTREMES_ZOO, *drawn) for u in sampler.units(network)}
    assert len(set(ends)) == len(ends) < len(met) and set(ends) <= set(met)
    assert max(map(work, met)) <= EXTREME_MAX_WORK
    in_draws = {u for c in drawn for u in sampler.units(c)}
    zoo_only = {u for name in EXTREMES_ZOO for u in sampler.units(name)} - in_draws
    assert set(ends) & zoo_only  # the zoo's own ends are among them (its last stage's 64 channels, say)
    chosen = set(ends)
    for kind in {u.kind for u in met}:
        of_kind = [u for u in met if u.kind == kind]
        every = feature_matrix(of_kind)[:, RANGED_AT]
        for j in range(every.shape[1]):
            for end in (every[:, j].min(), every[:, j].max()):
                reach = [u for u, row in zip(of_kind, every) if row[j] == end]
                cheapest = min(map(work, reach))
                assert any(u in chosen and work(u) == cheapest for u in reach), (kind, j, end)
    assert not set(ends) & set(itertools.islice(sampler.base(), 300))
    assert sampler.extremes() == []  # all handed out already
    cap = sorted(map(work, ends))[len(ends) // 2]  # an end costlier than the cap is left to the base stream
    monkeypatch.setattr("archgen.bench.calibration.EXTREME_MAX_WORK", cap)
    capped = Sampler("eager", [space], [1, 4], "float32", "nchw", seed=1, nchwc_block=0,
                     zoo=EXTREMES_ZOO).extremes()
    assert set(capped) == {u for u in ends if work(u) <= cap} != set(ends)


def test_perturbed_configurations_stay_valid():
    """Channels stay divisible by the groups (a depthwise conv stays depthwise), a concat still adds
    channels, sizes stay positive and at least a pool's window, and a group conv's group width moves."""
    rng = random.Random(0)
    units = [u._replace(names=()) for name in (*STRUCTURES, "regnetx_004") for u in kernel_units(name, "fused", 1)]
    group_widths = set()
    for u in units:
        for _ in range(5):
            p = perturb(u, rng, math.log(2))
            if u.kind == "conv" and u.groups > 1 and p.groups == u.groups:
                group_widths.add((u.c_in // u.groups, p.c_in // p.groups))
            assert p.kind == u.kind and p.c_in >= 1 and p.c_out >= 1 and p.h >= 1 and p.w >= 1
            assert p.c_in % p.groups == 0 and p.c_out % p.groups == 0
            if u.kind == "dwconv" and u.groups > 1:
                assert p.groups == p.c_in == p.c_out
            if u.kind in ("concat", "zero_pad") and u.c_out > u.c_in:
                assert p.c_out > p.c_in
            if u.kind.endswith("_pool") and u.kind != "global_pool":
                assert p.h >= p.k
            if u.kind == "adaptive_pool":  # ONNX has such a pool only at a multiple of its output side
                assert p.h % p.k == 0
            if u.kind in ("max_pool", "avg_pool"):  # where a timed pool outputs what out_size says
                assert p.h % p.stride == 0 and p.w % p.stride == 0
    # a group conv's group width moves too (in steps of 8), so that other channel alignments are timed
    assert any(before != after and after % 8 == 0 for before, after in group_widths)


def test_a_perturbed_pool_is_timed_at_the_shape_its_features_say():
    """ResNet-D's 2x2 stride-2 average pools: perturbed to an odd side, out_size's ceil(7 / 2) = 4 against the 3
    a pool without ceil mode outputs; perturbed sides stay multiples of the stride, where the two agree."""
    rng = random.Random(0)
    pools = [u._replace(names=()) for name in ("resnet26d", "resnet20_cifar", "seresnet50") for u in
             kernel_units(name, "eager", 1) if u.kind in ("max_pool", "avg_pool")]
    assert {(u.kind, u.k, u.stride) for u in pools} >= {("avg_pool", 2, 2), ("max_pool", 3, 2)}
    for u in dict.fromkeys(pools):
        for _ in range(8):
            p = perturb(u, rng, math.log(2))
            assert tuple(torch_unit(p, False, "cpu")().shape[2:]) == out_size(p), p


def test_the_worst_predicted_neighbourhoods_are_new_configurations():
    sampler = Sampler("eager", [], [1, 8], "float32", "nchw", seed=0, nchwc_block=0)
    sampler.real(u._replace(names=()) for u in kernel_units("wrn_16_8_cifar", "eager", 8))  # the largest
    worst = sampler.fresh(u._replace(names=()) for u in kernel_units("resnet20_cifar", "eager", 1))[:5]  # timed
    near = sampler.around(worst, 12)
    assert 0 < len(near) <= 12 and not set(near) & set(worst)
    assert any(u.batch == 8 for u in near)  # a configuration is also taken at the other batch sizes
    assert all(work(u) <= sampler.largest[u.kind] for u in near)  # none larger than a real one


@pytest.mark.parametrize("args, words", [
    (["--backend", "compile"], "Inductor"),
    (["--backend", "tensorrt"], "calibrate models eager, fused, onnxruntime, openvino"),
    (["--backend", "eager", "--minutes", "0"], "--minutes must be more than 0"),
    (["--backend", "eager", "--minutes", "-3"], "--minutes must be more than 0"),
    (["--backend", "openvino", "--dtype", "float16"], "float32 NCHW"),
    (["--backend", "eager", "--networks", "0"], "--networks must be 1 or more"),
    (["--backend", "eager", "--batch-sizes", "1,x"], "--batch-sizes takes positive integers"),
    (["--backend", "eager", "--space", "no_such_space"], "no bundled space"),
])
def test_a_request_that_cannot_work_exits_2_with_one_paragraph(args, words, tmp_path):
    r = CliRunner().invoke(app, ["calibrate", *args, "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 2, r.output
    assert words in r.stderr and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.output and not (tmp_path / "m.json").exists()


def test_the_output_must_be_a_json_file(tmp_path):
    r = CliRunner().invoke(app, ["calibrate", "--backend", "eager", "-o", str(tmp_path / "m.csv")])
    assert r.exit_code == 2 and "must end in .json" in r.stderr


def test_a_tiny_calibration_writes_a_model_that_loads_and_predicts(space, tmp_path):
    from archgen.bench.latency_model import load_model

    out = tmp_path / "device.json"
    r = CliRunner().invoke(app, ["calibrate", "--backend", "eager", "--space", space, "--batch-sizes", "1",
                                 "--networks", "2", "--max-configurations", "24", "--minutes", "10", "-o", str(out),
                                 "--format", "json"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    kinds, networks = json.loads(r.stdout)
    assert sum(row["configurations"] for row in kinds["rows"] if row["kind"] != "all") == 24
    assert [row["batch"] for row in networks["rows"]] == [1]
    assert f"wrote {out}: 24 kernel configurations and 2 networks" in r.stderr
    doc = json.loads(out.read_text())
    assert doc["backend"] == "eager" and doc["meta"]["timings"]["configurations"] == 24
    assert doc["meta"]["spaces"] == [space] and doc["network"]["networks"] == 2
    import archgen

    passes = doc["meta"]["networks"]  # what a MACs proxy fitted on the calibration reads
    drawn = correction_networks([space], 2, 0)
    assert [(p["batch"], p["macs"]) for p in passes] == [(1, archgen.profile(s).macs) for s in drawn]
    assert all(p["ms"] > 0 for p in passes)
    prediction = load_model(out).predict(sampled(space, 1, 5)[0])
    assert prediction.total_ms > 0 and set(prediction.per_stage) == {"stem", "layer1", "layer2", "head"}
    from archgen.cli.calibrate import calibration_tables

    tables = calibration_tables(doc)
    assert_reads_at_80(render(tables, "rich", width=80), render(tables, "markdown"))


def test_a_short_calibration_draws_its_correction_networks_smaller():
    """The first chunk of correction networks is timed whatever it costs (a fit needs networks): at the
    default budget it may hold a 4 GMACs network, and a 1-minute run took 2.7 minutes timing one. A shorter
    run draws them at most MAX_NETWORK_MACS x minutes / DEFAULT_MINUTES (a space's cheapest draw where none
    is that small); the default and longer runs draw as before."""
    import archgen
    from archgen.bench.calibration import DEFAULT_MINUTES, MAX_NETWORK_MACS

    def macs(minutes: float) -> list[int]:
        return [archgen.profile(s).macs for s in correction_networks(["resnet_budget"], 8, 0, minutes)]

    full, short = macs(DEFAULT_MINUTES), macs(1.0)
    assert max(full) > MAX_NETWORK_MACS / 8 and max(full) <= MAX_NETWORK_MACS
    assert len(short) >= 1 and max(short) <= max(MAX_NETWORK_MACS / DEFAULT_MINUTES, min(full))
    assert macs(2 * DEFAULT_MINUTES) == full


def test_the_correction_fits_small_passes_too():
    """Of 8 correction networks, the two cheapest drawn are timed again at a quarter of their input size (a
    CIFAR network's MACs), so that the constant of a per-batch correction is fitted on small passes, not
    extrapolated to them; fewer than 4 networks are all drawn ones."""
    import archgen
    from archgen.bench.calibration import SHRINK, SHRUNK_NETWORKS

    nets = correction_networks(["regnetx_400mf", "mobile_mbconv"], 8, 0)
    shrunk = [n for n in nets if n["name"].endswith("px")]
    drawn = {n["name"]: n for n in nets if n not in shrunk}
    assert len(nets) == 8 and len(shrunk) == SHRUNK_NETWORKS
    cheapest = sorted(drawn.values(), key=lambda n: archgen.profile(n).macs)[:SHRUNK_NETWORKS]
    for small, big in zip(sorted(shrunk, key=lambda n: n["name"]), sorted(cheapest, key=lambda n: n["name"])):
        assert small["name"].startswith(big["name"]) and {**small, "name": big["name"], "input": None} == \
            {**big, "input": None}
        assert archgen.profile(small).input_size == archgen.profile(big).input_size // SHRINK
        assert archgen.profile(small).macs < archgen.profile(big).macs / 10
    assert not any(n["name"].endswith("px") for n in correction_networks(["regnetx_400mf"], 3, 0))


def test_a_calibration_too_short_for_this_machine_says_so():
    """A run that fitted on too little, or ran well past --minutes, warns in a sentence; one that met its budget
    on enough samples, or stopped at the cap it was given, does not."""
    from archgen.bench.calibration import _thin

    assert _thin(1500, 8, 470, 480, None, 8) == ""
    assert _thin(24, 2, 30, 600, 24, 2) == ""  # the cap and the networks asked for were reached
    warning = _thin(1, 4, 162, 60, None, 8)
    assert warning.startswith("warning: this calibration took 2.7 of the 1 minutes asked and rests on only 1 kernel "
                              "configuration (") and "--minutes" in warning
    assert "2 whole networks" in _thin(900, 2, 400, 480, None, 8)


@pytest.mark.parametrize("args, says", [(["-f", "csv"], "pick one with --table KEY"),
                                         (["--table", "bogus"], "no table 'bogus' here")])
def test_a_table_calibrate_cannot_print_is_refused_before_any_timing(args, says, tmp_path):
    """CSV holds one of calibrate's two tables: asking for CSV without --table crashed with a traceback after the
    whole run (the model written, the table lost). Refused now before anything is timed, exit 2."""
    out = tmp_path / "device.json"
    r = CliRunner().invoke(app, ["calibrate", "--backend", "eager", "-o", str(out), *args])
    assert r.exit_code == 2 and says in r.stderr and "Traceback" not in r.output
    assert not out.exists() and "networks:" not in r.stderr  # nothing was timed


def test_configurations_a_chunk_did_not_reach_are_offered_again():
    """The clock stops a chunk partway: the configurations it took from the sampler and did not time go back,
    and the base stream offers them before anything new (they were lost, marked handed out, before)."""
    from archgen.bench.calibration import CHUNK, _Run

    class Cut:
        def chunks(self, chunks, more):
            chunk = next(iter(chunks))
            yield chunk[:3], [0.1] * 3

    sampler = Sampler("eager", [], [1], "float32", "nchw", seed=0, nchwc_block=0)
    stream = sampler.base()
    run = _Run(CalibrationRequest("eager", Path("m.json")), Cut(), lambda p: None)
    assert run.time(stream, 1e9, "round 1", sampler.returned) == 3
    assert len(sampler.returned) == CHUNK - 3 and not {u for u, _ in run.samples} & set(sampler.returned)
    again = list(sampler.returned)
    assert [next(stream) for _ in again] == again and not sampler.returned


def test_the_request_defaults_to_every_bundled_space():
    from archgen.design.space import bundled_spaces

    assert CalibrationRequest("eager", Path("m.json")).space_names() == bundled_spaces()


def test_the_correction_networks_are_timed_on_both_sides_of_the_kernels(space, tmp_path):
    """The first chunk of whole networks before the kernels and the rest after them, so that a drift of the
    machine over the run reaches both sides of the pass / kernel-sum ratio; timed all first, however quickly,
    a few minutes' drift skewed every prediction."""
    from archgen.bench.calibration import NETWORK_CHUNK, run_calibration

    phases: list[tuple[str, int]] = []
    request = CalibrationRequest("eager", tmp_path / "m.json", spaces=[space], batch_sizes=[1],
                                 networks=2 * NETWORK_CHUNK, max_configurations=16, minutes=10)
    doc = run_calibration(request, progress=lambda p: phases.append((p.phase, p.done)))
    order = [phase for i, (phase, _) in enumerate(phases) if i == 0 or phases[i - 1][0] != phase]
    assert order == ["networks", "kernels", "networks", "fitting"]
    assert [done for phase, done in phases if phase == "networks"][-1] == 2 * NETWORK_CHUNK
    assert doc["network"]["networks"] == 2 * NETWORK_CHUNK
