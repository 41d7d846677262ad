"""One `archgen calibrate` run as a library call: the request checked, its specs (and a design space's sample)
counted, the device chosen (here or on Ray), and each distinct block configuration timed once into a latency
table (archgen.bench.latency). The CLI parses options into a `CalibrationRequest` and writes the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from archgen.bench.device import place
from archgen.bench.latency import BACKENDS, ROUNDS, CalibrationJob, calibrate
from archgen.errors import UserError

#: What calibrate times when no spec is named: the CIFAR ResNets' and a plain net's configurations.
DEFAULT_SPECS = ("resnet20_cifar", "plain20_cifar")


@dataclass
class CalibrationRequest:
    """What `archgen calibrate` was asked: the specs and conditions to time, how, and where."""

    output: Path
    specs: list[str] = field(default_factory=list)  # empty: DEFAULT_SPECS, unless a space is sampled
    gpu: Optional[bool] = None  # True: insist on a GPU; False: the CPU; None: the GPU when there is one
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    layouts: list[bool] = field(default_factory=lambda: [False])  # channels_last or not, each timed
    backends: list[str] = field(default_factory=lambda: list(BACKENDS))
    warmup: int = 3
    reps: int = 20
    rounds: int = ROUNDS
    image_size: Optional[int] = None
    cpu_time: bool = False  # on the CPU, the process's CPU time with one torch thread
    space: Optional[str] = None  # also time a sample of this design space's candidates
    n: int = 20
    seed: int = 0
    ray: bool = False
    ray_address: Optional[str] = None  # implies ray

    def check(self) -> None:
        """Refuse what cannot work (UserError), before anything is counted or built."""
        if not self.backends or any(b not in BACKENDS for b in self.backends):
            raise UserError(f"--backends takes a comma-separated list of {', '.join(BACKENDS)} (got "
                            f"'{','.join(self.backends)}'); a table of blocks models these, not torch.compile, "
                            "which fuses across blocks.")
        if self.warmup < 0 or self.reps < 1 or self.rounds < 1:
            raise UserError(f"--warmup must be 0 or more, and --reps and --rounds 1 or more (got {self.warmup}, "
                            f"{self.reps} and {self.rounds}).")
        if self.output.suffix.lower() != ".json":
            raise UserError(f"--output '{self.output}' must end in .json.")

    def names(self) -> list[str | dict]:
        """The specs to time: those named (or the defaults), then the space's sample as spec mappings."""
        names: list[str | dict] = list(self.specs) if self.specs else [] if self.space else list(DEFAULT_SPECS)
        if self.space is not None:
            names += sampled(self.space, self.n, self.seed)
        return names


def sampled(space: str, n: int, seed: int) -> list[dict]:
    """N candidates of the space that meet its counted constraints (as archgen sample draws them), as plain
    spec mappings: the configurations a search of the space will meet most."""
    from archgen.design.evaluate import Evaluator, Rejections
    from archgen.design.figures import PREDICTED
    from archgen.design.sample import sample
    from archgen.design.space import load_space

    loaded = load_space(space)
    counted = [c for c in loaded.constraints if not c.figures & PREDICTED]
    verdicts = sample(loaded, n, seed, Evaluator(loaded, counted), Rejections())
    return [loaded.written(v.values, f"{loaded.name}_{k}", f"sampled from {loaded.name} (seed {seed}) by archgen "
                                                           f"calibrate: {loaded.describe(v.values)}")
            for k, v in enumerate(verdicts)]


def ray_jobs(device: str, warmup: int, reps: int, cpu_time: bool, rounds: int
             ) -> Callable[[list[CalibrationJob]], Iterable[tuple[CalibrationJob, dict]]]:
    """Time calibration jobs as Ray tasks (one GPU each on GPUs), yielding each job's times as it finishes."""
    import ray

    from archgen.bench.latency import time_segments

    task = ray.remote(time_segments).options(num_gpus=1 if device == "cuda" else 0, num_cpus=1, max_retries=2)

    def run(jobs: list[CalibrationJob]) -> Iterable[tuple[CalibrationJob, dict]]:
        pending = {task.remote(job, device, warmup, reps, cpu_time, rounds): job for job in jobs}
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(ready), ray.get(ready)

    return run


def run_calibration(request: CalibrationRequest, say: Callable[[str], None] = lambda line: None,
                    on_job: Optional[Callable[[CalibrationJob], None]] = None) -> dict[str, Any]:
    """The latency table of the request's specs; `say` hears the device chosen when it was not asked for,
    on_job(job) follows each finished job."""
    import archgen

    request.check()
    names = request.names()
    for name in names:
        archgen.profile(name, input_size=request.image_size)  # a SpecError before anything is timed
    placement = place(request.gpu, request.ray or request.ray_address is not None, request.ray_address)
    try:
        if placement.note:
            say(placement.note)
        if request.cpu_time and placement.on_gpu:
            raise UserError("--cpu-time times the CPU; leave it out on the GPU (CUDA events time the device "
                            "itself).")
        if request.cpu_time:
            import torch

            torch.set_num_threads(1)
        run_jobs = None if placement.ray is None else ray_jobs(placement.device, request.warmup, request.reps,
                                                               request.cpu_time, request.rounds)
        return calibrate(names, placement.device, request.backends, request.dtypes, request.layouts,
                         request.batch_sizes, request.warmup, request.reps, request.image_size, run_jobs=run_jobs,
                         on_job=on_job, cpu_time=request.cpu_time, rounds=request.rounds)
    finally:
        placement.close()
