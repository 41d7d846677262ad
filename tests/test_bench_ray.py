"""`archgen bench --ray`: a sweep on a local Ray (2 CPUs, started once for this module) gives the rows of a
serial run, loses no row when a worker is killed mid-job, and completes an interrupted run under --resume
without repeating a finished job. Small CIFAR specs, few repetitions; no assertion is made on any timing."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

import archgen  # noqa: E402
from archgen.bench import ray_sweep  # noqa: E402
from archgen.bench.results import read_results  # noqa: E402
from archgen.bench.runner import BenchConfig, row_key  # noqa: E402
from archgen.bench.job_grid import FAILED, ResultsStream, done_keys, grid, run_serial  # noqa: E402
from archgen.cli.bench import bench_command  # noqa: E402
from archgen.errors import UserError  # noqa: E402



def entry(name: str) -> tuple[str, str, int, int]:
    prof = archgen.profile(name, input_size=32)
    return (name, name, prof.input_size, prof.macs)


SPECS = [entry("resnet20_cifar"), entry("plain20_cifar")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def config(reps: int = 1) -> BenchConfig:
    return BenchConfig(specs=[], device="cpu", backends=["eager", "fused"], warmup=0, reps=reps, image_size=32)


def collect(cfg, jobs, **kwargs) -> dict:
    """Each finished job's rows by job key, failing the test if a job is reported twice."""
    got: dict = {}

    def on_job(job, rows):
        assert job.key not in got, f"{job.describe()} reported twice"
        got[job.key] = rows

    ray_sweep.run(cfg, jobs, on_job, **kwargs)
    return got


def cells(rows) -> set:
    return {(row_key(r), r.backend, r.status) for r in rows}


def test_the_sweeps_rows_are_a_serial_runs_jobs(local_ray):
    cfg = config()
    jobs = grid(SPECS, [1], ["float32"], [False, True])
    on_ray = collect(cfg, jobs)
    serial: list = []
    run_serial(cfg, jobs, lambda job, rows: serial.extend(rows))
    assert set(on_ray) == {job.key for job in jobs}
    assert cells(r for rows in on_ray.values() for r in rows) == cells(serial)
    for rows in on_ray.values():
        assert [r.backend for r in rows] == ["eager", "fused"]
        for r in rows:
            assert r.status == "ok" and r.attempt == 1 and r.node and r.device_name and r.torch_version
            assert r.finished_at and r.archgen_revision


def _our_busy_workers() -> list[int]:
    """Ray workers started by this test process that are running a bench job now (their title says so)."""
    mine = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            ancestor = int(pid)
            while ancestor > 1 and ancestor != os.getpid():
                ancestor = int(Path(f"/proc/{ancestor}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if title.startswith(b"ray::bench_job") and ancestor == os.getpid():
            mine.append(int(pid))
    return mine


def test_a_worker_killed_mid_job_loses_no_row(local_ray):
    cfg = config(reps=40)
    jobs = grid(SPECS[:1], [4, 8], ["float32"], [False, True])
    killed: list[int] = []

    def kill_one_busy_worker():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            busy = _our_busy_workers()
            if busy:
                os.kill(busy[0], 9)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker)
    killer.start()
    retries: list = []
    got = collect(cfg, jobs, on_retry=lambda job, attempt, attempts: retries.append((attempt, attempts)))
    killer.join()
    assert killed, "no busy worker was found to kill"
    assert set(got) == {job.key for job in jobs}
    rows = [r for rs in got.values() for r in rs]
    assert all(r.status == "ok" for r in rows)
    assert max(r.attempt for r in rows) == 2  # the killed job ran again, and says so
    assert retries == [(2, ray_sweep.MAX_ATTEMPTS)]


def test_a_job_that_fails_for_good_is_a_row_with_its_error(local_ray, tmp_path):
    cfg = config()
    missing = str(tmp_path / "gone.yaml")
    jobs = grid([(missing, "gone", 32, 0)] + SPECS[:1], [1], ["float32"], [False])
    got = collect(cfg, jobs)
    gone = got[jobs[0].key]
    assert [r.backend for r in gone] == ["eager", "fused"]
    assert all(r.status.startswith(FAILED) and "gone.yaml" in r.status for r in gone)
    assert all(r.status == "ok" for r in got[jobs[1].key])


def test_resume_after_an_interrupted_sweep_completes_it_without_repeating_a_job(local_ray, tmp_path):
    cfg = config()
    jobs = grid(SPECS, [1, 2], ["float32"], [False])
    path = tmp_path / "sweep.json"
    stream = ResultsStream(path, {"device_type": "cpu"}, cfg.as_dict(), jobs)

    def stop_after_two(job, rows):
        stream.add(rows)
        if len(stream.rows) == 2 * len(cfg.backends):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ray_sweep.run(cfg, jobs, stop_after_two)
    kept, env, _ = read_results(path)  # a whole, valid file
    first = done_keys(kept, cfg.backends)
    assert len(first) == 2 and len(kept) == 4

    todo = [job for job in jobs if job.key not in first]
    resumed = ResultsStream(path, env, cfg.as_dict(), jobs, kept)
    ran = collect(cfg, todo)
    for job in todo:
        resumed.add(ran[job.key])
    assert set(ran).isdisjoint(first)
    final, _, _ = read_results(path)
    assert sorted((row_key(r), r.backend) for r in final) == sorted(
        (job.key, b) for job in jobs for b in cfg.backends)


def test_the_command_streams_rows_with_their_node_and_a_line_per_job(local_ray, tmp_path):
    app = typer.Typer()
    app.command("bench")(bench_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "ray.json"
    r = CliRunner().invoke(app, ["bench", "resnet20_cifar", "--ray", "--cpu", "--batch-sizes", "1,2",
                                 "--backends", "eager", "--warmup", "0", "--reps", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "[1/2] resnet20_cifar batch" in r.stderr and "[2/2] resnet20_cifar batch" in r.stderr
    data = json.loads(out.read_text())
    assert data["environment"]["ray"].startswith("the Ray this process had joined")
    assert [(x["batch"], x["status"]) for x in data["results"]] == [(1, "ok"), (2, "ok")]
    assert all(x["node"] and x["device_name"] for x in data["results"])
    assert ray.is_initialized()  # the command leaves a Ray it did not start running


def test_a_ray_address_that_does_not_answer_exits_2():
    app = typer.Typer()
    app.command("bench")(bench_command)
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["bench", "resnet20_cifar", "--ray-address", "127.0.0.1:1", "--cpu"])
    assert r.exit_code == 2, r.output
    assert "does not answer" in r.stderr and "127.0.0.1:1" in r.stderr and "Traceback" not in r.output


def test_calibrate_on_ray_times_the_configurations_as_tasks_on_the_clusters_node(local_ray, tmp_path):
    """Chunks of kernel configurations and the correction's networks run as Ray tasks, one node's at a time
    (the local Ray: one node of 2 CPUs); the model records the cluster, and the Ray it joined stays up."""
    from archgen.bench.calibration import CalibrationRequest, run_calibration
    from test_calibration import TINY_SPACE

    space = tmp_path / "tiny_space.yaml"
    space.write_text(TINY_SPACE)
    said: list[str] = []
    phases: list[str] = []
    doc = run_calibration(CalibrationRequest("eager", tmp_path / "m.json", spaces=[str(space)],
                                             batch_sizes=[1], max_configurations=20, networks=1, minutes=3,
                                             ray=True),
                          progress=lambda p: phases.append(p.phase), say=said.append)
    timings = doc["meta"]["timings"]
    assert timings["configurations"] == 20 and timings["networks"] == 1
    assert timings["ray"].startswith("the Ray this process had joined") and said == [f"archgen calibrate on "
                                                                                      f"{timings['ray']}"]
    assert phases[0] == "networks" and phases[-1] == "fitting" and phases.count("kernels") == 2  # chunks of 16
    assert ray.is_initialized()


def test_calibration_times_chunks_on_ray_pinned_to_the_nodes_that_have_cpus(local_ray):
    """archgen calibrate --ray: each chunk is a task pinned to a node with CPUs, run with all of them (one at a
    time per node); the machine the model records is the node's. The times are real kernel times (positive and
    finite), in the chunk's order; no assertion on their size."""
    from archgen.bench.calibration import _ray_timer
    from archgen.bench.kernel_units import kernel_units

    timer = _ray_timer("eager", "cpu")
    assert [cpus for _, cpus in timer.nodes] == [2]
    units = list(dict.fromkeys(u._replace(names=()) for u in kernel_units("resnet20_cifar", "eager", 1)))[:6]
    done = list(timer.chunks([units[:3], units[3:]], more=lambda: True))
    assert sorted(len(chunk) for chunk, _ in done) == [3, 3]
    assert {u for chunk, _ in done for u in chunk} == set(units)
    assert all(len(times) == len(chunk) and all(0 < t < float("inf") for t in times) for chunk, times in done)
    assert timer.machine()["device"] == "cpu"


def test_unlike_nodes_says_each_difference_from_the_first_node():
    from archgen.bench.calibration import unlike_nodes

    node = {"device": "cpu", "name": "AMD EPYC", "cores": 2, "threads": 2, "torch": "2.13.0", "archgen": "0.1"}
    assert unlike_nodes([node, dict(node)]) == []
    assert unlike_nodes([node, dict(node), {**node, "cores": 8, "name": "Xeon"}]) == [
        "name Xeon on node 3, AMD EPYC on node 1", "cores 8 on node 3, 2 on node 1"]


def test_calibrate_refuses_a_cluster_of_unlike_nodes_before_timing(local_ray, monkeypatch):
    """A model describes one kind of machine: kernels timed on unlike nodes would fit none of them, so the
    cluster is refused before anything is timed (the local Ray has one node; a second, unlike one is feigned)."""
    from archgen.bench import calibration

    def machines(self):
        return [{"device": "cpu", "name": "AMD EPYC", "cores": 2}, {"device": "cpu", "name": "Xeon", "cores": 64}]

    monkeypatch.setattr(calibration._Timer, "machines", machines)
    with pytest.raises(UserError, match=r"not one kind of machine \(name Xeon on node 2, AMD EPYC on node 1; "
                                        r"cores 64 on node 2, 2 on node 1\)"):
        calibration._ray_timer("eager", "cpu")
