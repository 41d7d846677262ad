"""Latency tables: a block configuration is timed once however many specs hold it, a prediction sums the
table's stems, blocks and heads without building a model, and a table that cannot answer says why.
No assertion is made on any timing: predicted against measured lives in benchmarks/latency_bench.py."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import archgen
from archgen.bench import latency
from archgen.bench.latency import LatencyTableError, LatencyTableWarning, condition, plan_calibration, predict
from conftest import filled_latency_table, tiny_resnet

TINY = tiny_resnet("tiny_resnet", "two basic blocks per stage at a tenth of the width, for fast calibration tests")


def test_resnet20s_segments_are_its_stem_nine_blocks_and_head_with_their_input_shapes():
    segs = latency.segments(archgen.profile("resnet20_cifar"))
    assert [s.name for s in segs] == ["stem"] + [f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)] + ["head"]
    inputs = {s.name: s.input for s in segs}
    assert inputs["stem"] == (3, 32, 32) and inputs["layer2.0"] == (16, 32, 32) and inputs["head"] == (64, 8, 8)
    # the first block of a stage differs from the rest; the rest of a stage are one configuration
    assert len({s.key for s in segs}) == 7


def test_a_configuration_is_timed_once_however_many_specs_hold_it():
    jobs, entries = plan_calibration(["resnet20_cifar", "resnet56_cifar", "resnet110_cifar"], ["eager", "fused"],
                                     ["float32"], [False], [1, 8])
    assert len(entries) == 7  # ResNet-56 and -110 repeat ResNet-20's seven configurations
    assert {job.spec for job in jobs} == {"resnet20_cifar"}
    assert sum(len(job.segments) for job in jobs) == 7 * 2  # each once per backend


def test_a_prediction_sums_stems_blocks_and_heads_without_building_a_model(monkeypatch):
    table = filled_latency_table(["resnet20_cifar"])
    monkeypatch.setattr("archgen.builder.build", lambda *a, **k: pytest.fail("a model was built"))
    p = predict("resnet56_cifar", table, check_machine=False)
    assert p.total_ms == 1 + 27 + 1
    assert p.stages == {"stem": 1, "layer1": 9, "layer2": 9, "layer3": 9, "head": 1}


def test_a_missing_configuration_is_an_error_naming_it_and_how_to_calibrate():
    table = filled_latency_table(["resnet20_cifar"])
    with pytest.raises(LatencyTableError, match=r"resnet18's stem .* archgen calibrate resnet18"):
        predict("resnet18", table, check_machine=False)
    with pytest.raises(LatencyTableError, match=r"not under fused/float32/nchw/b1 .* --backends fused"):
        predict("resnet20_cifar", table, backend="fused", check_machine=False)


@pytest.mark.parametrize("field, value, words", [
    ("device", "NVIDIA H100 80GB HBM3", "measured on NVIDIA H100 80GB HBM3, not on this machine's"),
    ("torch", "1.0.0", "measured with torch 1.0.0"),
    ("git_revision", "0123abc", "made by archgen 0123abc"),
])
def test_a_table_from_another_device_or_version_warns_naming_the_mismatch(field, value, words):
    table = filled_latency_table(["resnet20_cifar"])
    table["environment"][field] = value
    with pytest.warns(LatencyTableWarning, match=words):
        predict("resnet20_cifar", table)


def test_a_table_of_another_dtype_warns_and_predicts_from_its_own():
    table = filled_latency_table(["resnet20_cifar"])
    with pytest.warns(LatencyTableWarning, match="holds float32 timings, not bfloat16: predicting from float32"):
        p = predict("resnet20_cifar", table, dtype="bfloat16", check_machine=False)
    assert p.condition == condition("eager", "float32", False, 1)


def test_a_file_that_is_not_a_table_is_refused(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"results": []}))
    with pytest.raises(LatencyTableError, match="not a latency table"):
        latency.read_table(path)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A real table of a tiny spec, timed once (1 call per block) through the command."""
    from archgen.cli.app import app

    d = tmp_path_factory.mktemp("latency")
    spec = d / "tiny_resnet.yaml"
    spec.write_text(TINY)
    out = d / "table.json"
    r = CliRunner().invoke(app, ["calibrate", str(spec), "--cpu", "--batch-sizes", "1,2", "--warmup", "0",
                                 "--reps", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    return spec, out


def test_calibrate_times_every_configuration_on_each_backend_and_batch_size(calibrated):
    spec, out = calibrated
    table = json.loads(out.read_text())
    assert table["environment"]["device_type"] == "cpu" and table["environment"]["torch"]
    blocks = table["blocks"]
    assert len(blocks) == len({s.key for s in latency.segments(archgen.profile(str(spec)))})
    for entry in blocks.values():
        assert sorted(entry["ms"]) == sorted(condition(b, "float32", False, n) for b in ("eager", "fused")
                                             for n in (1, 2))
        assert all(ms > 0 for ms in entry["ms"].values())


def test_profile_latency_prints_a_prediction_per_stage_and_backend(calibrated):
    from archgen.cli.app import app

    spec, out = calibrated
    r = CliRunner().invoke(app, ["profile", str(spec), "--latency", str(out), "--batch", "2", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert "predicted latency of tiny_resnet" in r.stdout and '"total"' in r.stdout and '"fused"' in r.stdout


def test_profile_latency_without_the_configuration_exits_2(calibrated):
    from archgen.cli.app import app

    _, out = calibrated
    r = CliRunner().invoke(app, ["profile", "resnet20_cifar", "--latency", str(out)])
    assert r.exit_code == 2
    assert "lacks the configuration of resnet20_cifar's stem" in r.stderr and "archgen calibrate" in r.stderr


def test_calibrate_refuses_torch_compile(tmp_path):
    from archgen.cli.app import app

    r = CliRunner().invoke(app, ["calibrate", "--cpu", "--backends", "compile", "-o", str(tmp_path / "t.json")])
    assert r.exit_code == 2 and "not torch.compile" in r.stderr


def test_calibration_rounds_keep_each_configurations_lowest_median(monkeypatch, tmp_path):
    """time_segments times every batch size in each round and keeps, per configuration, its lowest median."""
    calls = {"n": 0}
    real = latency.segment_times

    def slow_first_round(modules, x, device, cpu_time):
        times, y = real(modules, x, device, cpu_time)
        calls["n"] += 1
        return ([t + 1000.0 for t in times] if calls["n"] <= 6 else times), y  # 2 checks, then round 1's passes

    monkeypatch.setattr(latency, "segment_times", slow_first_round)
    path = tmp_path / "tiny_resnet.yaml"
    path.write_text(TINY)
    segs = latency.segments(archgen.profile(str(path)))
    job = latency.CalibrationJob(str(path), "eager", "float32", False, [1, 2], segs)
    out = latency.time_segments(job, "cpu", warmup=0, reps=2, rounds=2)
    assert all(ms < 1000.0 for times in out.values() for ms in times.values())
    assert all(set(times) == {condition("eager", "float32", False, b) for b in (1, 2)} for times in out.values())


def test_interleaved_timing_runs_each_network_and_call_once_per_repetition(tmp_path):
    """Every repetition runs one pass per network and batch size and one of each call, so all meet the same
    moments of the machine; calls come back as their medians, segments as key -> condition -> ms."""
    path = tmp_path / "tiny_resnet.yaml"
    path.write_text(TINY)
    segs = latency.segments(archgen.profile(str(path)))
    net = latency.segmented(latency.CalibrationJob(str(path), "eager", "float32", False, [1, 2], segs), "cpu")
    order, real = [], net.pass_times
    net.pass_times = lambda batch, cpu_time: order.append(("net", batch)) or real(batch, cpu_time)
    ms = iter([9.0, 1.0, 2.0, 3.0] * 2)
    best, whole = latency.time_interleaved([net], warmup=1, reps=3, rounds=2,
                                           calls={"whole": lambda: order.append(("whole",)) or next(ms)})
    assert len(order) == 2 * 4 * 3
    for rep in range(0, len(order), 3):
        assert sorted(order[rep:rep + 3]) == [("net", 1), ("net", 2), ("whole",)]
    assert whole == {"whole": 2.0}  # the warm-up's 9.0 left out, the median of 1, 2, 3
    assert set(best) == {s.key for s in segs}
    assert all(set(t) == {condition("eager", "float32", False, b) for b in (1, 2)} for t in best.values())
