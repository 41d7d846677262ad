"""`archgen calibrate`, and the latency table `archgen profile --latency` prints. Torch is imported only inside
the command, so that importing this module (at every CLI start) costs nothing."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Optional

import typer

from archgen.cli.bench import parse_batch_sizes, parse_dtypes, parse_layouts
from archgen.cli.common import check_output_path, fail, friendly
from archgen.render import Table

#: What calibrate times when no spec is named: the CIFAR ResNets' and a plain net's configurations.
DEFAULT_SPECS = ("resnet20_cifar", "plain20_cifar")


def _ray_jobs(device: str, warmup: int, reps: int, cpu_time: bool, rounds: int):
    """Time calibration jobs as Ray tasks (one GPU each on GPUs), yielding each job's times as it finishes."""
    import ray

    from archgen.bench.latency import time_segments

    task = ray.remote(time_segments).options(num_gpus=1 if device == "cuda" else 0, num_cpus=1, max_retries=2)

    def run(jobs) -> Iterable[tuple]:
        pending = {task.remote(job, device, warmup, reps, cpu_time, rounds): job for job in jobs}
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(ready), ray.get(ready)

    return run


@friendly
def calibrate_command(
    specs: list[str] = typer.Argument(None, help="Specs whose block configurations to time (default: "
                                      "resnet20_cifar, plain20_cifar); each configuration is timed once."),
    output: Path = typer.Option(..., "--output", "-o", help="The latency table to write (JSON, atomically)."),
    gpu: Optional[bool] = typer.Option(None, "--gpu/--cpu", help="Insist on the CUDA GPU, or time the CPU. "
                                       "Default: the GPU when there is one, else the CPU."),
    batch_sizes: str = typer.Option("1,8", "--batch-sizes", help="Comma-separated batch sizes."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16, comma-separated."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Time in channels_last."),
    layouts: Optional[str] = typer.Option(None, "--layouts", help="Comma-separated: nchw, channels_last."),
    backends: str = typer.Option("eager,fused", "--backends", help="Comma-separated subset of eager, fused."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed calls of each block first."),
    reps: int = typer.Option(20, "--reps", help="Timed passes of each network per round, the networks' passes "
                             "interleaved (the table keeps the lowest round's median)."),
    rounds: int = typer.Option(3, "--rounds", help="Rounds of --reps timed calls per batch size; the lowest "
                               "median outvotes a round a busy moment slowed."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input side (default: each spec's)."),
    cpu_time: bool = typer.Option(False, "--cpu-time", help="On the CPU, time by this process's CPU time with "
                                  "one torch thread: a shared machine's other load is left out."),
    space: Optional[str] = typer.Option(None, "--space", help="Also time the configurations of --n candidates "
                                        "sampled from this design space (under its counted constraints), for "
                                        "archgen search SPACE --latency TABLE.json."),
    n: int = typer.Option(20, "--n", min=1, help="Candidates to sample from --space."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the --space sample."),
    ray: bool = typer.Option(False, "--ray", help="Time the specs as Ray tasks (pip install 'archgen\\[ray]')."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="The Ray cluster to join; implies --ray."),
) -> None:
    """Time each distinct block configuration of the specs, plus stems and heads, into a latency table.

    `archgen profile SPEC --latency TABLE.json` then predicts the spec's latency per stage with no model built.
    """
    from archgen.bench.latency import BACKENDS, calibrate, spec_name

    dtypes = parse_dtypes(dtype)
    layout_list = parse_layouts(layouts) if layouts else [channels_last]
    sizes = parse_batch_sizes(batch_sizes)
    chosen = list(dict.fromkeys(b.strip() for b in backends.split(",") if b.strip()))
    if not chosen or any(b not in BACKENDS for b in chosen):
        fail(f"--backends takes a comma-separated list of {', '.join(BACKENDS)} (got '{backends}'); a table of "
             "blocks models these, not torch.compile, which fuses across blocks.")
    if warmup < 0 or reps < 1 or rounds < 1:
        fail(f"--warmup must be 0 or more, and --reps and --rounds 1 or more (got {warmup}, {reps} and {rounds}).")
    if output.suffix.lower() != ".json":
        fail(f"--output '{output}' must end in .json.")
    check_output_path(output)
    names: list = list(specs) if specs else [] if space else list(DEFAULT_SPECS)
    if space is not None:
        names += sampled(space, n, seed)
    import archgen

    for name in names:
        archgen.profile(name, input_size=image_size)  # a SpecError (exit 2) before anything is timed

    import torch

    from archgen.cli.bench import choose_device

    run_jobs, started = None, False
    if ray or ray_address is not None:
        from archgen.bench import ray_sweep

        try:
            where, started = ray_sweep.connect(ray_address)
        except ray_sweep.RayUnavailable as e:
            fail(str(e))
        device = choose_device(gpu, ray_sweep.cluster_gpus() >= 1, f"--gpu asks for GPUs, but {where}.", [])
        run_jobs = _ray_jobs(device, warmup, reps, cpu_time, rounds)
    else:
        device = choose_device(gpu, torch.cuda.is_available(), "--gpu asks for a CUDA GPU, but torch sees none "
                                "here; calibrate this CPU with --cpu.", [])
    if cpu_time and device == "cuda":
        fail("--cpu-time times the CPU; leave it out on the GPU (CUDA events time the device itself).")
    if cpu_time:
        torch.set_num_threads(1)
    from archgen.render import write_atomic

    done = [0]

    def progress(job) -> None:
        done[0] += 1
        typer.echo(f"[{done[0]}] {spec_name(job.spec)} {job.backend} {job.dtype} "
                   f"{'channels_last' if job.channels_last else 'nchw'}: {len(job.segments)} configurations", err=True)

    try:
        table = calibrate(names, device, chosen, dtypes, layout_list, sizes, warmup, reps, image_size,
                          run_jobs=run_jobs, on_job=progress, cpu_time=cpu_time, rounds=rounds)
    finally:
        if started:
            import ray as ray_module

            ray_module.shutdown()
    import json

    write_atomic(str(output), json.dumps(table, indent=1) + "\n")
    typer.echo(f"wrote {output}: {len(table['blocks'])} configurations from {len(names)} spec(s) on "
               f"{table['environment']['device']}", err=True)


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


@contextlib.contextmanager
def latency_warnings() -> Iterator[None]:
    """A latency table's mismatches with this machine (LatencyTableWarning), said on stderr as `warning: ...`
    once the block is done (`profile --latency`, `search --latency`)."""
    from archgen.bench.latency import LatencyTableWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatencyTableWarning)
        yield
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)


def latency_table(spec, input_size: Optional[int], table_path: Path, batch: int, dtype: str) -> Table:
    """Predicted latency per stage and in total, one column per backend and layout the table holds at this
    batch size and dtype (for `archgen profile --latency`). The table's mismatches with this machine go to
    stderr as warnings; a configuration or condition it lacks exits 2, saying how to calibrate it."""
    from archgen.bench.latency import LatencyTableError, predict, read_table

    with latency_warnings():
        try:
            table = read_table(table_path)
            config = table.get("config", {})
            variants = [(b, layout == "channels_last") for b in config.get("backends", ["eager"])
                        for layout in config.get("layouts", ["nchw"])]
            predictions = [predict(spec, table, batch, dtype, channels_last, backend, input_size,
                                   check_machine=i == 0, table_name=str(table_path))
                           for i, (backend, channels_last) in enumerate(variants)]
        except LatencyTableError as e:
            fail(str(e))
    first = predictions[0]
    t = Table(title=f"predicted latency of {first.spec} on {first.device}, batch {batch}, {dtype} (ms)",
              columns=["stage", *(f"{b}{', channels_last' if cl else ''}" for b, cl in variants)])
    t.key = "latency"  # its name for `--table latency` and its CSV file
    for stage in first.stages:
        t.add(stage, *(round(p.stages[stage], 4) for p in predictions))
    t.add("total", *(round(p.total_ms, 4) for p in predictions), rule=True)
    t.notes = [f"sums of each stem, block and head as archgen calibrate timed them ({table_path}); no model "
               "was built"]
    return t
