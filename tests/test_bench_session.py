"""`archgen bench`'s orchestration, called as the library it is (no CLI): the
request refused before anything is built, the device chosen by one rule, figures defaulted by the device,
a resumed file's finished jobs skipped, a device mismatch refused, and the notes a run's table carries.
No assertion is made on any timing."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from archgen.bench.device import choose_device
from archgen.bench.session import BenchRequest, default_specs, open_session
from archgen.errors import UserError
from conftest import tiny_resnet

TINY = tiny_resnet("tiny_resnet18", "ResNet-18's layout at a tenth of the width, for a fast session test")


@pytest.fixture
def tiny(tmp_path) -> str:
    path = tmp_path / "tiny_resnet18.yaml"
    path.write_text(TINY)
    return str(path)


def quick(tiny: str, **kwargs) -> BenchRequest:
    """A CPU request timing the tiny spec once per cell on eager."""
    return BenchRequest(**{"specs": [tiny], "gpu": False, "batch_sizes": [1, 2], "backends": ["eager"],
                           "warmup": 0, "reps": 1, **kwargs})


@pytest.mark.parametrize("fields, words", [
    ({"reps": 0}, "--reps 1 or more"),
    ({"warmup": -1}, "--warmup must be 0 or more"),
    ({"image_size": 0}, "--image-size must be a positive number"),
    ({"cpus_per_job": 0}, "--cpus-per-job must be 1 or more"),
    ({"output": Path("out.txt")}, "must end in .json or .csv"),
    ({"resume": Path("old.csv")}, "must be a results file ending in .json"),
])
def test_a_request_that_cannot_work_is_refused_before_anything_is_counted(fields, words):
    with pytest.raises(UserError, match=re.escape(words)):
        open_session(BenchRequest(specs=["no_such_spec_anywhere"], **fields))


@pytest.mark.parametrize("backend, extra", [("openvino", "openvino"), ("onnxruntime", "onnx")])
def test_a_runtime_that_is_not_installed_is_refused_naming_its_extra(monkeypatch, backend, extra):
    monkeypatch.setitem(sys.modules, backend, None)
    with pytest.raises(UserError) as refused:
        BenchRequest(backends=["eager", backend]).check()
    assert f"pip install 'archgen[{extra}]'" in str(refused.value) and "\n" not in str(refused.value)


def test_the_device_rule_insists_asks_or_takes_the_gpu_when_there_is_one():
    assert choose_device(None, True, "none") == ("cuda", "timing on the GPU (found one)")
    assert choose_device(None, False, "none") == (
        "cpu", "timing on the CPU: no CUDA GPU found (give --gpu to insist on one)")
    assert choose_device(False, True, "none") == ("cpu", None)
    assert choose_device(True, True, "none") == ("cuda", None)
    with pytest.raises(UserError, match="no GPU here"):
        choose_device(True, False, "no GPU here")


def test_on_ray_the_clusters_gpus_decide_and_a_refusal_shuts_down_the_ray_it_started(monkeypatch):
    from archgen.bench import device, ray_sweep

    where = "a local Ray: 1 node(s), 2 CPUs, 0 GPUs"
    monkeypatch.setattr(ray_sweep, "connect", lambda address: (where, True))
    monkeypatch.setattr(ray_sweep, "cluster_gpus", lambda: 0.0)
    closed: list[str] = []
    monkeypatch.setattr(device.Placement, "close", lambda self: closed.append(self.ray))
    with pytest.raises(UserError, match=re.escape(f"--gpu asks for GPUs, but {where}.")):
        device.place(True, use_ray=True)
    assert closed == [where]
    placement = device.place(None, use_ray=True)
    assert (placement.device, placement.ray, placement.started_ray) == ("cpu", where, True)
    assert placement.note == "timing on the CPU: no CUDA GPU found (give --gpu to insist on one)"


def test_a_cpu_session_takes_the_cpus_defaults_and_says_what_fused_runs(tiny):
    with open_session(BenchRequest(specs=[tiny], gpu=False, backends=["eager", "fused"])) as session:
        assert (session.cfg.device, session.cfg.batch_sizes, session.cfg.warmup, session.cfg.reps) == \
            ("cpu", [1, 8], 2, 10)
        assert [job.describe() for job in session.todo] == ["tiny_resnet18 batch 1 float32 nchw 32px",
                                                            "tiny_resnet18 batch 8 float32 nchw 32px"]
        assert any(note.startswith("fused on the CPU runs") for note in session.notes)


def test_the_grid_is_spec_dtype_layout_then_batch(tiny):
    request = quick(tiny, batch_sizes=[1], dtypes=["float32", "bfloat16"], layouts=[False, True])
    with open_session(request) as session:
        assert [(j.dtype, j.channels_last) for j in session.todo] == [
            ("float32", False), ("float32", True), ("bfloat16", False), ("bfloat16", True)]
        assert session.stream.config["layouts"] == ["nchw", "channels_last"]


def test_defaults_skip_specs_this_version_does_not_bundle(monkeypatch):
    monkeypatch.setattr("archgen.grammar.loader.bundled_names", lambda: ["resnet50", "densenet121"])
    notes: list[str] = []
    assert default_specs(notes) == ["resnet50", "densenet121"]
    assert notes == ["default specs not bundled in this version, skipped: resnext50_32x4d, wide_resnet50_2"]
    monkeypatch.setattr("archgen.grammar.loader.bundled_names", lambda: [])
    with pytest.raises(UserError, match="name the specs to time"):
        default_specs([])


def test_a_run_streams_each_job_and_resume_runs_only_the_rest(tiny, tmp_path):
    out = tmp_path / "run.json"
    seen: list[tuple[int, str]] = []
    with open_session(quick(tiny, batch_sizes=[1], output=out)) as session:
        assert json.loads(out.read_text())["results"] == []  # a valid file before the first job
        rows = session.run(on_job=lambda job, rows: seen.append((job.batch, rows[0].status)))
    assert seen == [(1, "ok")] and session.finished == 1
    assert [(r.batch, r.backend, r.status) for r in rows] == [(1, "eager", "ok")]
    notes = session.summary_notes(rows)
    assert notes[-1].startswith("1 timed calls after 0 warm-up; cpu-perf-counter; torch ")

    said: list[str] = []
    with open_session(quick(tiny, resume=out), say=said.append) as resumed:
        assert [job.batch for job in resumed.todo] == [2]
        assert said == [f"resuming {out}: 1 of 2 jobs done, 1 to run"]
        resumed.run()
    assert [x["batch"] for x in json.loads(out.read_text())["results"]] == [1, 2]
    assert resumed.interrupted() == (f"interrupted after 1 of 1 jobs: {out} holds 2 of the 2 jobs; run the same "
                                     f"command with --resume {out} to complete it.")


def test_resuming_a_sweep_of_another_device_is_refused(tiny, tmp_path):
    out = tmp_path / "gpu_run.json"
    out.write_text(json.dumps({"environment": {"device_type": "cuda"}, "config": {}, "results": []}))
    with pytest.raises(UserError, match="holds a sweep on cuda, but this run times cpu"):
        open_session(quick(tiny, resume=out))


def test_an_interrupted_run_without_an_output_says_nothing_was_saved(tiny):
    with open_session(quick(tiny)) as session:
        assert session.interrupted() == "interrupted after 0 of 2 jobs: nothing was saved (give --output)."
