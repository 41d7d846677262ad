"""One `archgen bench` run as a library call: the request checked, its specs counted, the device chosen
(here or on Ray), a resumed file's finished jobs skipped, the job grid run with every finished job streamed
to the results file, and the notes its table carries.

`open_session` does everything that can refuse the request before a model is built, so that a mistake
costs nothing; `BenchSession.run` then times the jobs. The CLI parses options into a `BenchRequest`,
renders progress and the table, and holds no decisions of its own. Torch is imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from archgen.bench.device import Placement, place
from archgen.bench.job_grid import FAILED, OnJob, ResultsStream, done_keys, grid, run_serial
from archgen.bench.results import Measurement, environment, read_results
from archgen.bench.runner import DEFAULT_BACKENDS, DEFAULT_SPECS, BenchConfig, Job, missing_runtime
from archgen.errors import UserError

#: Memory layouts by their option names: channels_last or not.
LAYOUTS = {"nchw": False, "channels_last": True}


@dataclass
class BenchRequest:
    """What `archgen bench` was asked. None leaves a figure to the device: batch sizes 1,8,64,256, 10 warm-up
    calls and 100 timed on a GPU; 1,8, 2 and 10 on a CPU (fewer, since a CPU call takes far longer)."""

    specs: list[str] = field(default_factory=list)  # empty: DEFAULT_SPECS that this version bundles
    gpu: Optional[bool] = None  # True: insist on a GPU; False: the CPU; None: the GPU when there is one
    batch_sizes: Optional[list[int]] = None
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    layouts: list[bool] = field(default_factory=lambda: [False])  # channels_last or not, each swept
    backends: list[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS))
    cuda_graphs: bool = False
    output: Optional[Path] = None
    resume: Optional[Path] = None
    ray: bool = False
    ray_address: Optional[str] = None  # implies ray
    cpus_per_job: int = 1
    warmup: Optional[int] = None
    reps: Optional[int] = None
    image_size: Optional[int] = None

    @property
    def use_ray(self) -> bool:
        return self.ray or self.ray_address is not None

    def config(self, specs: list[str], on_gpu: bool) -> BenchConfig:
        """The run's configuration on the device chosen, its defaults filled (the first dtype and layout
        stand for the grid's; each job carries its own)."""
        return BenchConfig(specs=specs, device="cuda" if on_gpu else "cpu",
                           batch_sizes=self.batch_sizes or ([1, 8, 64, 256] if on_gpu else [1, 8]),
                           dtype=self.dtypes[0], channels_last=self.layouts[0], backends=self.backends,
                           cuda_graphs=self.cuda_graphs and on_gpu,
                           warmup=(10 if on_gpu else 2) if self.warmup is None else self.warmup,
                           reps=(100 if on_gpu else 10) if self.reps is None else self.reps,
                           image_size=self.image_size)

    def check(self) -> None:
        """Refuse figures, file names and runtimes that cannot work (UserError), before anything is counted or
        built."""
        if (self.warmup is not None and self.warmup < 0) or (self.reps is not None and self.reps < 1):
            raise UserError(f"--warmup must be 0 or more and --reps 1 or more (got {self.warmup} and {self.reps}).")
        if self.image_size is not None and self.image_size < 1:
            raise UserError(f"--image-size must be a positive number of pixels (got {self.image_size}).")
        if self.cpus_per_job < 1:
            raise UserError(f"--cpus-per-job must be 1 or more (got {self.cpus_per_job}).")
        if self.output is not None and self.output.suffix.lower() not in (".json", ".csv"):
            raise UserError(f"--output '{self.output}' must end in .json or .csv.")
        if self.resume is not None and self.resume.suffix.lower() != ".json":
            raise UserError(f"--resume '{self.resume}' must be a results file ending in .json (the CSV beside it "
                            "lacks the run's configuration).")
        for backend in self.backends:
            missing = missing_runtime(backend)
            if missing:
                raise UserError(f"{missing}.")


def spec_entries(refs: list[str], image_size: Optional[int]) -> list[tuple[str, str, int, int]]:
    """(ref, name, image size, MACs per image) per spec: each is loaded and counted, so that a bad spec or an
    image too small is refused (SpecError) before anything is built."""
    import archgen

    entries = []
    for ref in refs:
        prof = archgen.profile(ref, input_size=image_size)
        entries.append((ref, archgen.load_spec(ref).name, prof.input_size, prof.macs))
    return entries


def default_specs(notes: list[str]) -> list[str]:
    """DEFAULT_SPECS that this version bundles; those it lacks are named in a note."""
    from archgen.grammar.loader import bundled_names

    bundled = set(bundled_names())
    names = [s for s in DEFAULT_SPECS if s in bundled]
    missing = [s for s in DEFAULT_SPECS if s not in bundled]
    if missing:
        notes.append(f"default specs not bundled in this version, skipped: {', '.join(missing)}")
    if not names:
        raise UserError("none of the default specs is bundled; name the specs to time.")
    return names


def device_notes(request: BenchRequest, on_gpu: bool) -> list[str]:
    """What a reader must know about the device's effect on the backends asked for."""
    notes = []
    if request.cuda_graphs and not on_gpu:
        notes.append("--cuda-graphs applies to the GPU only; ignored on the CPU")
    if "fused" in request.backends and not on_gpu:
        import torch

        from archgen.kernels.bn_act import uses_triton

        notes.append("fused on the CPU runs the Triton kernels in the interpreter (TRITON_INTERPRET=1): a "
                     "correctness check, not a speed" if uses_triton(torch.empty(0)) else
                     "fused on the CPU runs archgen's PyTorch fallback for the kernels, not Triton")
    if request.use_ray and not on_gpu:
        notes.append(f"on Ray, CPU jobs run side by side with {request.cpus_per_job} core(s) and torch thread(s) "
                     "each: compare the backends within a job, not these latencies with a serial run's")
    return notes


@dataclass
class BenchSession:
    """A bench run ready to time: its configuration, the jobs left to run and the results stream (already
    written once, so that even an early Ctrl-C leaves a valid file). Close it (or use it as a context
    manager) to shut down a Ray it started."""

    request: BenchRequest
    placement: Placement
    cfg: BenchConfig
    env: dict[str, Any]
    jobs: list[Job]
    todo: list[Job]
    stream: ResultsStream
    notes: list[str]
    finished: int = 0

    def __enter__(self) -> "BenchSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.placement.close()

    def run(self, on_job: Optional[OnJob] = None, on_step: Optional[Callable[[str], None]] = None,
            on_retry: Optional[Callable[[Job, int, int], None]] = None) -> list[Measurement]:
        """Time the jobs left, here or on Ray, each finished job's rows added to the results file before
        on_job(job, rows) sees them; every row of the run (resumed ones too) in grid order."""

        def finished(job: Job, rows: list[Measurement]) -> None:
            self.stream.add(rows)
            self.finished += 1
            if on_job:
                on_job(job, rows)

        if self.placement.ray is not None:
            from archgen.bench import ray_sweep

            ray_sweep.run(self.cfg, self.todo, finished, cpus_per_job=self.request.cpus_per_job, on_retry=on_retry)
        else:
            run_serial(self.cfg, self.todo, finished, on_step=on_step)
        return self.stream.ordered()

    def summary_notes(self, rows: list[Measurement]) -> list[str]:
        """The session's notes, then what its rows show: out-of-memory cells, jobs that failed for good, and
        how and with what everything was timed."""
        notes = list(self.notes)
        oom = [r for r in rows if r.status == "oom"]
        if oom:
            notes.append(f"out of memory: {', '.join(f'{r.spec} {r.backend} batch {r.batch}' for r in oom)}")
        failed = [r for r in rows if r.status.startswith(FAILED)]
        if failed:
            notes.append(f"{len({(r.spec, r.batch, r.dtype, r.channels_last) for r in failed})} job(s) failed for "
                         "good (see status); --resume runs them again")
        timer = next((r.timer for r in rows if r.timer), "")
        env = self.env
        notes.append(f"{self.cfg.reps} timed calls after {self.cfg.warmup} warm-up; {timer}; "
                     f"torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}, driver {env['driver']}; "
                     f"archgen {env['git_revision']}; {env['date']}")
        return notes

    def interrupted(self) -> str:
        """What an interrupted run left (a resumed file: the jobs it held too), and how to finish it."""
        output = self.stream.path  # --output, or the file --resume completes
        resumable = output is not None and output.suffix.lower() == ".json"
        held = len(self.jobs) - len(self.todo) + self.finished
        saved = (f"{output} holds {held} of the {len(self.jobs)} jobs" if output else
                 "nothing was saved (give --output)") + (
            f"; run the same command with --resume {output} to complete it" if resumable else
            "; --resume needs a FILE.json --output" if output else "")
        return f"interrupted after {self.finished} of {len(self.todo)} jobs: {saved}."


def open_session(request: BenchRequest, say: Callable[[str], None] = lambda line: None) -> BenchSession:
    """Check the request, count its specs, choose the device and resume what a results file holds; `say`
    hears each decision as it is made (the device, where Ray runs, how many jobs a resume skips)."""
    request.check()
    kept, resumed_env = resumed(request.resume)
    notes: list[str] = []
    names = list(request.specs) or default_specs(notes)
    entries = spec_entries(names, request.image_size)
    placement = place(request.gpu, request.use_ray, request.ray_address)
    try:
        if placement.ray:
            say(f"archgen bench on {placement.ray}")
        if placement.note:
            notes.append(placement.note)
            say(placement.note)
        if resumed_env.get("device_type") not in (None, placement.device):
            raise UserError(f"--resume '{request.resume}' holds a sweep on {resumed_env.get('device_type')}, but "
                            f"this run times {placement.device}; resume it on the same kind of device, or write "
                            "this run to another --output.")
        cfg = request.config(names, placement.on_gpu)
        env, config = recorded(request, cfg, placement)
        jobs = grid(entries, cfg.batch_sizes, request.dtypes, request.layouts)
        done = done_keys(kept, request.backends)
        todo = [job for job in jobs if job.key not in done]
        if request.resume is not None:
            say(f"resuming {request.resume}: {len(jobs) - len(todo)} of {len(jobs)} jobs done, {len(todo)} to run")
        stream = ResultsStream(request.output or request.resume, env, config, jobs, kept)
        stream.write()  # a valid file from the start, so that even an early Ctrl-C leaves one
        return BenchSession(request, placement, cfg, env, jobs, todo, stream,
                            notes + device_notes(request, placement.on_gpu))
    except BaseException:
        placement.close()
        raise


def resumed(path: Optional[Path]) -> tuple[list[Measurement], dict[str, Any]]:
    """The rows and environment of the results file a run resumes (none without one)."""
    if path is None:
        return [], {}
    if not path.is_file():
        raise UserError(f"--resume '{path}': no such file; give the results file of the run to complete.")
    try:
        kept, env, _ = read_results(path)
    except ValueError as e:
        raise UserError(f"--resume {e}.") from None
    return kept, env


def recorded(request: BenchRequest, cfg: BenchConfig, placement: Placement) -> tuple[dict[str, Any], dict[str, Any]]:
    """The environment and configuration a results file records: on Ray, the cluster stands for the device,
    since each row names the node and device that timed it."""
    config = {**cfg.as_dict(), "dtypes": request.dtypes,
              "layouts": [name for name, flag in LAYOUTS.items() if flag in request.layouts]}
    if placement.ray is None:
        return environment(cfg.device), config
    env = {**environment("cpu"), "device_type": cfg.device, "device": f"{cfg.device} workers of {placement.ray}",
           "driver": None, "ray": placement.ray}
    return env, {**config, "ray_address": request.ray_address, "cpus_per_job": request.cpus_per_job}
