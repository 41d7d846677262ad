"""`archgen bench`'s job grid (spec x batch size x dtype x layout), which of its jobs a results file already
holds, and a results file rewritten whole after every finished job.

The same grid runs in this process (`run_serial`) or on Ray (archgen.bench.ray_sweep); both hand each
finished job's rows to one callback, so that streaming, resuming and progress do not depend on where the
jobs ran. Each rewrite is atomic (a temporary file, then a rename): a reader, or a run stopped by Ctrl-C,
only ever sees whole files holding whole jobs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from archgen.bench.results import Measurement, utc_now, write_results
from archgen.bench.runner import BenchConfig, Job, row_key, run

#: Status prefix of a job that failed for good: its worker died on every attempt, or it raised before any
#: backend was timed. Unlike a backend's "error: ..." or "oom", such a job runs again under --resume.
FAILED = "failed"

OnJob = Callable[[Job, list[Measurement]], None]


def grid(specs: Iterable[tuple[str, str, int, int]], batch_sizes: list[int], dtypes: list[str],
         layouts: list[bool]) -> list[Job]:
    """Every job, spec by spec, then dtype, layout and batch size; specs as (ref, name, image size, MACs)."""
    return [Job(ref, name, batch, dtype, channels_last, size, macs)
            for ref, name, size, macs in specs for dtype in dtypes for channels_last in layouts
            for batch in batch_sizes]


def done_keys(rows: Iterable[Measurement], backends: list[str]) -> set[tuple]:
    """The job keys whose rows cover every backend with a result (not a job that failed for good)."""
    seen: dict[tuple, set[str]] = {}
    for r in rows:
        if not r.status.startswith(FAILED):
            seen.setdefault(row_key(r), set()).add(r.backend)
    return {key for key, names in seen.items() if names >= set(backends)}


def failed_rows(cfg: BenchConfig, job: Job, error: str, attempt: int) -> list[Measurement]:
    """One row per backend saying why the job failed for good (no node or device: none finished it)."""
    return [Measurement(job.name, backend, job.batch, job.image_size, job.dtype, job.channels_last,
                        cfg.cuda_graphs, job.macs, status=f"{FAILED}: {error}", attempt=attempt,
                        finished_at=utc_now())
            for backend in cfg.backends]


class ResultsStream:
    """The rows so far, rewritten to `path` (when given) after every job, in grid order.

    Rows kept from a resumed file come first when their job is not in this grid; rows of a job that runs
    again replace the old ones."""

    def __init__(self, path: Optional[Path], env: dict[str, Any], config: dict[str, Any], jobs: list[Job],
                 kept: Iterable[Measurement] = ()) -> None:
        self.path, self.env, self.config = path, env, config
        self._order = {job.key: i for i, job in enumerate(jobs)}
        self.rows: list[Measurement] = list(kept)

    def add(self, rows: list[Measurement]) -> None:
        keys = {row_key(r) for r in rows}
        self.rows = [r for r in self.rows if row_key(r) not in keys] + rows
        self.write()

    def ordered(self) -> list[Measurement]:
        return sorted(self.rows, key=lambda r: self._order.get(row_key(r), -1))

    def write(self) -> list[Path]:
        return write_results(self.path, self.ordered(), self.env, self.config) if self.path else []


class _CallerError(Exception):
    """Carries an exception raised by on_job through the runner, so that it is not taken for the job's."""


def run_serial(cfg: BenchConfig, jobs: list[Job], on_job: OnJob,
               on_step: Optional[Callable[[str], None]] = None,
               on_done: Optional[Callable[[Measurement], None]] = None) -> None:
    """The jobs in this process, one model per (spec, dtype, layout) as `archgen bench` has always run."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.spec, job.dtype, job.channels_last), []).append(job)
    for (ref, dtype, channels_last), group in groups.items():
        by_batch = {job.batch: job for job in group}
        left = list(group)

        def finished(rows: list[Measurement]) -> None:
            job = by_batch[rows[0].batch]
            left.remove(job)
            try:
                on_job(job, rows)
            except Exception as e:  # the caller's own failure (its results file, say): not the job's
                raise _CallerError() from e

        group_cfg = replace(cfg, specs=[ref], batch_sizes=[job.batch for job in group], dtype=dtype,
                            channels_last=channels_last)
        try:
            run(group_cfg, on_step=on_step, on_done=on_done, on_job=finished)
        except _CallerError as e:
            raise e.__cause__ from None
        except Exception as e:  # building the model failed: every job of the group fails, the sweep goes on
            for job in left:
                on_job(job, failed_rows(cfg, job, f"{type(e).__name__}: {e}", 1))
