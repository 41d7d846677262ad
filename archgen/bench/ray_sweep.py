"""A sweep's jobs as Ray tasks: one GPU per job on GPUs (`num_gpus=1`), CPU workers for CPU benchmarks.

Each task times every backend of its job in one process on one device, so that ratios stay fair. A task
whose worker dies mid-job (killed, out of memory, its node lost) runs again, at most `max_attempts` times
in all, and its rows record the attempt that made them; a job that fails for good becomes rows holding
its error, and the sweep goes on. On Ctrl-C the tasks still running are cancelled and the interrupt goes
on to the caller, whose results file already holds every finished job.

Ray is optional (`pip install 'archgen[ray]'`); it is imported only here, inside the functions.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any, Callable, Optional

from archgen.bench.results import Measurement
from archgen.bench.runner import BenchConfig, Job, run_job
from archgen.bench.job_grid import OnJob, failed_rows
from archgen.errors import UserError

#: Seconds to wait for a cluster's address to answer before saying it does not.
CONNECT_TIMEOUT_S = 5.0
#: Seconds (one try a second) that Ray keeps trying an address that answers but not as a Ray cluster.
JOIN_RETRIES = 5
ADDRESS_HINT = ("Check the address that `ray start --head` printed on the head node (host:6379, or "
                "ray://host:10001 for Ray Client), or give --ray without --ray-address to start a local Ray "
                "on this machine.")
#: Runs of a job in all when its worker keeps dying.
MAX_ATTEMPTS = 3


class RayUnavailable(UserError):
    """Ray is not installed, or the cluster at the given address does not answer."""


def _host_port(address: str) -> Optional[tuple[str, int]]:
    """('host', port) of 'host:port' or 'ray://host:port'; None for 'auto' and other forms Ray resolves."""
    bare = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str, timeout_s: float) -> None:
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as e:
        reason = f"no answer within {timeout_s:g} s" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise RayUnavailable(f"the Ray cluster at '{address}' does not answer ({reason.lower()}). {ADDRESS_HINT}"
                             ) from None


def connect(address: Optional[str], num_cpus: Optional[int] = None) -> tuple[str, bool]:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local Ray, or keep the Ray this process has
    already joined (a notebook's, a test's). A line saying where and how big, and whether we started it (the
    caller then shuts it down)."""
    # Ray retries a cluster that answers TCP but not as Ray once a second, 20 times by default: say so sooner.
    os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", str(JOIN_RETRIES))
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray, which is not installed; install it with "
                             "pip install 'archgen[ray]' (or pip install 'ray[default]'), or leave out --ray.")
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own variable, as ray.init reads it
    if address is not None:
        _check_reachable(address, CONNECT_TIMEOUT_S)
    started = not ray.is_initialized()
    if started:
        try:
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RayUnavailable(f"could not join the Ray cluster at '{address or 'local'}': "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. {ADDRESS_HINT}"
                                 ) from None
    res = ray.cluster_resources()
    where = ("the Ray this process had joined" if not started else "a local Ray" if address is None
             else f"the Ray cluster at {address}")
    return f"{where}: {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs", started


def cluster_gpus() -> float:
    import ray

    return ray.cluster_resources().get("GPU", 0.0)


def bench_job(cfg: BenchConfig, job: Job, cpus: int) -> list[dict[str, Any]]:
    """The body of one Ray task: the job's rows as dicts, timed in this worker process."""
    import torch

    if cfg.device == "cpu":
        torch.set_num_threads(cpus)
    return [dataclasses.asdict(r) for r in run_job(cfg, job)]


def _cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1][:200] if text else ''}"


def run(cfg: BenchConfig, jobs: list[Job], on_job: OnJob, cpus_per_job: int = 1,
        max_attempts: int = MAX_ATTEMPTS, on_retry: Optional[Callable[[Job, int, int], None]] = None) -> None:
    """Every job as a Ray task on the connected cluster; on_job(job, rows) as each one finishes, and
    on_retry(job, attempt, max_attempts) each time a job is sent again after its worker died."""
    import ray
    from ray import exceptions as rx

    worker_died = tuple(getattr(rx, n) for n in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                                                 "ObjectLostError", "LocalRayletDiedError") if hasattr(rx, n))
    on_gpu = cfg.device == "cuda"
    task = ray.remote(bench_job).options(num_gpus=1 if on_gpu else 0, num_cpus=1 if on_gpu else cpus_per_job,
                                         max_retries=0)
    pending: dict[Any, tuple[Job, int]] = {}

    def submit(job: Job, attempt: int) -> None:
        pending[task.remote(cfg, job, cpus_per_job)] = (job, attempt)

    for job in jobs:
        submit(job, 1)
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            job, attempt = pending.pop(ref)
            try:
                rows = [Measurement(**d) for d in ray.get(ref)]
            except worker_died as e:
                if attempt < max_attempts:
                    submit(job, attempt + 1)
                    if on_retry:
                        on_retry(job, attempt + 1, max_attempts)
                    continue
                rows = failed_rows(cfg, job, f"its worker died on all {attempt} attempts ({_cause(e)})", attempt)
            except rx.RayError as e:
                rows = failed_rows(cfg, job, _cause(e), attempt)
            for r in rows:
                r.attempt = attempt
            on_job(job, rows)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
