"""`archgen bench`: bad input exits 2 with one clear paragraph; --cpu times a tiny run end to end and writes
JSON and CSV with the environment. No assertion is made on any timing."""

from __future__ import annotations

import csv
import os
import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from archgen.cli.bench import bench_command
from archgen.bench.timing import percentile
from conftest import tiny_resnet

TINY = tiny_resnet("tiny_resnet18", "ResNet-18's layout at a tenth of the width, for a fast benchmark test")


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("bench")(bench_command)
    app.command("noop")(lambda: None)  # two commands, so that `bench` is a subcommand as in archgen's CLI
    return app


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny_resnet18.yaml"
    path.write_text(TINY)
    return str(path)


def invoke(app, *args):
    return CliRunner().invoke(app, ["bench", *args])


def _no_cuda():
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(not _no_cuda(), reason="this machine has a GPU")
def test_gpu_without_cuda_exits_2_and_says_what_to_do(app, tiny):
    r = invoke(app, tiny, "--gpu")
    assert r.exit_code == 2
    assert "CUDA GPU" in r.stderr and "--cpu" in r.stderr


@pytest.mark.parametrize("args, words", [
    (["--batch-sizes", "1,x"], "'x' is not one"),
    (["--batch-sizes", "0"], "positive integers"),
    (["--backends", "eager,tensorrt"], "unknown backend 'tensorrt'"),
    (["--dtype", "float8"], "unknown --dtype 'float8'"),
    (["--format", "yaml"], "'yaml' is not one of"),
    (["--output", "results.txt"], "must end in .json or .csv"),
    (["--reps", "0"], "--reps 1 or more"),
])
def test_bad_input_exits_2_with_a_message(app, tiny, args, words):
    r = invoke(app, tiny, "--cpu", *args)
    assert r.exit_code == 2, r.output
    assert words in r.stderr
    assert "Traceback" not in r.output


def test_unknown_spec_exits_2(app):
    r = invoke(app, "resnet_nonexistent", "--cpu")
    assert r.exit_code == 2
    assert "resnet_nonexistent" in r.stderr


def test_plot_without_matplotlib_exits_2(app, tiny, tmp_path):
    try:
        import matplotlib  # noqa: F401
        pytest.skip("matplotlib is installed")
    except ImportError:
        pass
    r = invoke(app, tiny, "--cpu", "--plot", str(tmp_path / "p.png"))
    assert r.exit_code == 2 and "matplotlib" in r.stderr and "archgen[plot]" in r.stderr


def test_a_tiny_cpu_run_writes_json_and_csv(app, tiny, tmp_path):
    out = tmp_path / "results.json"
    r = invoke(app, tiny, "--cpu", "--batch-sizes", "1,2", "--backends", "eager,fused", "--warmup", "0",
               "--reps", "1", "--output", str(out), "--format", "markdown")
    assert r.exit_code == 0, r.output
    assert "| tiny_resnet18 | 1 | eager |" in r.stdout and "| tiny_resnet18 | 2 | fused |" in r.stdout
    assert "1.00x" in r.stdout  # eager's ratio to itself
    data = json.loads(out.read_text())
    env = data["environment"]
    for key in ("device", "driver", "torch", "triton", "cuda", "git_revision", "date"):
        assert key in env
    assert env["device_type"] == "cpu"
    results = data["results"]
    assert [(x["backend"], x["batch"]) for x in results] == [("eager", 1), ("fused", 1), ("eager", 2), ("fused", 2)]
    for x in results:
        assert x["status"] == "ok" and x["reps"] == 1 and len(x["times_ms"]) == 1
        assert x["median_ms"] > 0 and x["images_per_s"] > 0 and x["macs_per_image"] > 0
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == 4 and rows[0]["spec"] == "tiny_resnet18" and rows[0]["device"] == env["device"]


def test_json_format_goes_to_stdout(app, tiny):
    r = invoke(app, tiny, "--cpu", "--batch-sizes", "1", "--backends", "eager", "--warmup", "0", "--reps", "1",
               "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["spec"] == "tiny_resnet18"


def test_an_out_of_memory_cell_is_recorded_and_the_run_goes_on(monkeypatch, tiny):
    import torch

    from archgen.bench import runner

    real = runner.measure

    def measure(cfg, spec, backend, model, batch, size, macs):
        if batch == 2:
            def oom(x):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
            return real(cfg, spec, backend, oom, batch, size, macs)
        return real(cfg, spec, backend, model, batch, size, macs)

    monkeypatch.setattr(runner, "measure", measure)
    cfg = runner.BenchConfig(specs=[tiny], device="cpu", batch_sizes=[2, 1], backends=["eager"], warmup=0, reps=1)
    rows = runner.run(cfg)
    assert [r.status for r in rows] == ["oom", "ok"]


def test_percentiles_interpolate_like_numpy():
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(xs, 50) == 3.0
    assert percentile(xs, 10) == pytest.approx(1.4)
    assert percentile(xs, 90) == pytest.approx(4.6)


@pytest.mark.parametrize("module", ["archgen.cli.bench", "archgen.cli.calibrate"])
def test_importing_the_command_does_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.gpu
@pytest.mark.skipif(_no_cuda(), reason="needs CUDA")
def test_a_tiny_gpu_run_with_cuda_graphs(app, tiny, tmp_path):
    out = tmp_path / "gpu.json"
    r = invoke(app, tiny, "--gpu", "--batch-sizes", "1,4", "--backends", "eager,fused", "--cuda-graphs",
               "--channels-last", "--dtype", "bfloat16", "--warmup", "1", "--reps", "3", "--output", str(out))
    assert r.exit_code == 0, r.output
    results = json.loads(out.read_text())["results"]
    assert all(x["status"] == "ok" and x["timer"] == "cuda-graph" and x["peak_memory_mb"] > 0 for x in results)


TINY_RUN = ["--batch-sizes", "1,2", "--backends", "eager", "--warmup", "0", "--reps", "1"]


@pytest.mark.skipif(not _no_cuda(), reason="this machine has a GPU")
def test_without_a_gpu_bench_times_the_cpu_and_says_so(app, tiny):
    r = invoke(app, tiny, *TINY_RUN, "--format", "json")
    assert r.exit_code == 0, r.output
    assert "timing on the CPU: no CUDA GPU found" in r.stderr
    assert json.loads(r.stdout)["environment"]["device_type"] == "cpu"


def test_progress_off_a_terminal_is_one_line_per_finished_job(app, tiny):
    r = invoke(app, tiny, "--cpu", *TINY_RUN)
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stderr.splitlines() if x.startswith("[")]
    assert len(lines) == 2
    assert lines[0].startswith("[1/2] tiny_resnet18 batch 1 float32 nchw 32px on ")
    assert lines[1].startswith("[2/2] tiny_resnet18 batch 2 float32 nchw 32px on ")
    assert all(": eager " in x and x.endswith(" ms") for x in lines)


def test_progress_on_a_terminal_is_a_bar_not_lines(monkeypatch):
    from archgen.cli.bench import JobProgress

    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not JobProgress(total=1).lines
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))
    assert JobProgress(total=1).lines


def test_a_dtype_and_layout_grid_times_each_combination(app, tiny):
    r = invoke(app, tiny, "--cpu", "--batch-sizes", "1", "--backends", "eager", "--warmup", "0", "--reps", "1",
               "--dtype", "float32,bfloat16", "--layouts", "nchw,channels_last", "--format", "json")
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert [(x["dtype"], x["channels_last"]) for x in results] == [
        ("float32", False), ("float32", True), ("bfloat16", False), ("bfloat16", True)]


def test_an_interrupted_run_leaves_a_valid_file_that_resume_completes(app, tiny, tmp_path, monkeypatch):
    from archgen.bench import runner

    real = runner.measure
    interrupt_at = [2]
    timed: list[int] = []

    def interrupted_at_batch_2(cfg, spec, backend, model, batch, size, macs):
        if batch in interrupt_at:
            interrupt_at.clear()  # one Ctrl-C only
            raise KeyboardInterrupt
        timed.append(batch)
        return real(cfg, spec, backend, model, batch, size, macs)

    monkeypatch.setattr(runner, "measure", interrupted_at_batch_2)
    out = tmp_path / "run.json"
    r = invoke(app, tiny, "--cpu", *TINY_RUN, "-o", str(out))
    assert r.exit_code == 130
    assert f"--resume {out}" in r.stderr
    assert [x["batch"] for x in json.loads(out.read_text())["results"]] == [1]

    timed.clear()
    r = invoke(app, tiny, "--cpu", *TINY_RUN, "--resume", str(out))
    assert r.exit_code == 0, r.output
    assert "1 of 2 jobs done, 1 to run" in r.stderr
    assert timed == [2]  # batch 1 was not timed again
    assert [x["batch"] for x in json.loads(out.read_text())["results"]] == [1, 2]


@pytest.mark.parametrize("content, words", [
    ("not json", "is not a JSON results file"),
    ('{"results": [{"nope": 1}]}', "is not a JSON results file"),
])
def test_resume_refuses_a_file_that_is_not_results(app, tiny, tmp_path, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = invoke(app, tiny, "--cpu", *TINY_RUN, "--resume", str(bad))
    assert r.exit_code == 2, r.output
    assert words in r.stderr and "Traceback" not in r.output


def test_ray_without_ray_installed_says_how_to_install(app, tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    r = invoke(app, tiny, "--cpu", "--ray", *TINY_RUN)
    assert r.exit_code == 2, r.output
    assert "pip install 'archgen[ray]'" in r.stderr


def test_a_spec_that_fails_to_build_is_rows_with_its_error_and_the_sweep_goes_on(monkeypatch, tiny):
    from archgen.bench import runner
    from archgen.bench.job_grid import FAILED, grid, run_serial

    real = runner._prepare

    def broken_first(cfg, ref):
        if ref == "broken":
            raise RuntimeError("no such kernel")
        return real(cfg, ref)

    monkeypatch.setattr(runner, "_prepare", broken_first)
    cfg = runner.BenchConfig(specs=[], device="cpu", backends=["eager"], warmup=0, reps=1)
    jobs = grid([("broken", "broken", 32, 0), (tiny, "tiny_resnet18", 32, 0)], [1, 2], ["float32"], [False])
    finished: list = []
    run_serial(cfg, jobs, lambda job, rows: finished.append((job.name, job.batch, rows[0].status)))
    assert finished == [("broken", 1, f"{FAILED}: RuntimeError: no such kernel"),
                        ("broken", 2, f"{FAILED}: RuntimeError: no such kernel"),
                        ("tiny_resnet18", 1, "ok"), ("tiny_resnet18", 2, "ok")]


def test_onnxruntime_is_a_backend_timed_beside_eager_and_computing_the_same_logits(tiny):
    """ONNX Runtime, the CPU deployments' runtime, timed in the same run as eager (issue 10)."""
    pytest.importorskip("onnxruntime")
    import torch

    import archgen
    from archgen.bench import runner

    cfg = runner.BenchConfig(specs=[tiny], device="cpu", batch_sizes=[2], backends=["eager", "onnxruntime"],
                             warmup=0, reps=2)
    rows = runner.run(cfg)
    assert [(r.backend, r.status) for r in rows] == [("eager", "ok"), ("onnxruntime", "ok")]
    model = archgen.build(tiny).eval()
    session = runner.make_backend("onnxruntime", model, "cpu", input_size=32)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(session(x)), model(x), rtol=1e-4, atol=1e-4)


def test_openvino_is_a_backend_computing_eagers_logits(tiny):
    """OpenVINO, Intel's CPU runtime, on the model exported as for ONNX Runtime (issue 19): its logits are
    eager's within 1e-4 at a batch size other than the traced one, and it is timed in the same run."""
    pytest.importorskip("openvino")
    import torch

    import archgen
    from archgen.bench import runner

    model = archgen.build(tiny).eval()
    compiled = runner.make_backend("openvino", model, "cpu", input_size=32)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    assert expected.abs().max() > 1e-2  # logits worth comparing, not all zero
    torch.testing.assert_close(torch.from_numpy(compiled(x)), expected, rtol=1e-4, atol=1e-4)
    cfg = runner.BenchConfig(specs=[tiny], device="cpu", batch_sizes=[2], backends=["eager", "openvino"],
                             warmup=0, reps=2)
    assert [(r.backend, r.status) for r in runner.run(cfg)] == [("eager", "ok"), ("openvino", "ok")]


def test_bench_times_openvino_on_a_tiny_spec(app, tiny):
    pytest.importorskip("openvino")
    r = invoke(app, tiny, "--cpu", "--backends", "eager,openvino", "--batch-sizes", "1", "--warmup", "0",
               "--reps", "1", "--format", "json")
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert [(x["backend"], x["status"], x["reps"]) for x in results] == [("eager", "ok", 1), ("openvino", "ok", 1)]
    assert results[1]["median_ms"] > 0


def test_openvino_not_installed_exits_2_naming_the_extra(app, tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    r = invoke(app, tiny, "--cpu", "--backends", "eager,openvino")
    assert r.exit_code == 2, r.output
    assert "pip install 'archgen[openvino]'" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_openvino_refuses_the_gpu_and_dtypes_other_than_float32(tiny):
    pytest.importorskip("openvino")
    import torch

    import archgen
    from archgen.bench import runner

    model = archgen.build(tiny).eval()
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        runner.make_backend("openvino", model, "cuda", input_size=32)
    with pytest.raises(RuntimeError, match="float32 models only"):
        runner.make_backend("openvino", model.to(torch.bfloat16), "cpu", input_size=32)
