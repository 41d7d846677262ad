"""`archgen calibrate`, which parses its options into a CalibrationRequest for archgen.bench.calibration
and writes the table it returns, and the latency table `archgen profile --latency` prints. Nothing here
imports torch, so that importing this module (at every CLI start) costs nothing."""

from __future__ import annotations

import contextlib
import itertools
import warnings
from pathlib import Path
from typing import Iterator, Optional

import typer

from archgen.cli.bench import parse_batch_sizes, parse_dtypes, parse_layouts
from archgen.cli.common import check_output_path, fail, friendly
from archgen.render import Table


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
    from archgen.bench.calibration import CalibrationRequest, run_calibration
    from archgen.bench.latency import spec_name, write_table

    request = CalibrationRequest(output=output, specs=list(specs or []), gpu=gpu,
                                 batch_sizes=parse_batch_sizes(batch_sizes), dtypes=parse_dtypes(dtype),
                                 layouts=parse_layouts(layouts) if layouts else [channels_last],
                                 backends=list(dict.fromkeys(b.strip() for b in backends.split(",") if b.strip())),
                                 warmup=warmup, reps=reps, rounds=rounds, image_size=image_size, cpu_time=cpu_time,
                                 space=space, n=n, seed=seed, ray=ray, ray_address=ray_address)
    check_output_path(output)
    done = itertools.count(1)
    table = run_calibration(request, say=lambda line: typer.echo(line, err=True), on_job=lambda job: typer.echo(
        f"[{next(done)}] {spec_name(job.spec)} {job.backend} {job.dtype} "
        f"{'channels_last' if job.channels_last else 'nchw'}: {len(job.segments)} configurations", err=True))
    write_table(output, table)
    typer.echo(f"wrote {output}: {len(table['blocks'])} configurations from {len(table['config']['specs'])} "
               f"spec(s) on {table['environment']['device']}", err=True)


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
