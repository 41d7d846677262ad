"""`archgen calibrate`, which parses its options into a CalibrationRequest for archgen.bench.calibration and
renders the latency model it fits (its cross-validated error per kernel kind, and how whole passes compare
with the sum of their isolated kernels). Nothing here imports torch, so that importing this module (at every
CLI start) costs nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from archgen.bench.calibration import DEFAULT_MINUTES, MIN_NETWORKS, NETWORKS_PER_BATCH
from archgen.cli.bench import parse_batch_sizes
from archgen.cli.common import FORMAT_OPTION, Fmt, check_output_path, emit_tables, fail, friendly
from archgen.render import Number, Table, quantity

if TYPE_CHECKING:
    from archgen.bench.calibration import Progress

#: The keys of calibration_tables' tables, in order.
TABLE_KEYS = ("kinds", "networks")


@friendly
def calibrate_command(
    output: Path = typer.Option(..., "--output", "-o", help="The latency model to write: DEVICE.json (data, "
                                "never code; written whole)."),
    backend: str = typer.Option(..., "--backend", help="eager, fused, onnxruntime or openvino. Not compile: "
                                "torch.compile's kernels are Inductor's to choose per graph, fused across what "
                                "the others run apart, so no kernel rule exists to predict it from."),
    space: list[str] = typer.Option(None, "--space", help="A design space whose candidates to cover (repeat "
                                    "it; default: every bundled space). The zoo is always covered."),
    minutes: float = typer.Option(DEFAULT_MINUTES, "--minutes", help="The whole run's time, fitting included: "
                                  "more minutes time more kernel configurations."),
    batch_sizes: str = typer.Option("1,8", "--batch-sizes", help="Comma-separated batch sizes to model."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16 (the runtimes: "
                              "float32)."),
    layout: str = typer.Option("nchw", "--layout", help="nchw or nhwc (channels_last; the runtimes: nchw)."),
    device: str = typer.Option("cpu", "--device", help="cpu, or cuda for eager and fused (and ONNX Runtime's "
                               "CUDA provider)."),
    networks: int = typer.Option(NETWORKS_PER_BATCH, "--networks", help="Whole networks drawn from the spaces "
                                 "and timed at each batch size, to scale the sum of a network's kernels to its "
                                 "pass (4 or more: one scale per batch size)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the spaces' draws and of the perturbations."),
    max_configurations: Optional[int] = typer.Option(None, "--max-configurations", help="Stop timing kernels "
                                                     "after this many, even with time left."),
    ray: bool = typer.Option(False, "--ray", help="Spread the timing over a Ray cluster's nodes, one chunk per "
                             "node at a time (pip install 'archgen\\[ray]')."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="The Ray cluster to join; implies "
                                              "--ray."),
    fmt: Fmt = FORMAT_OPTION,
    only: Optional[str] = typer.Option(None, "--table", metavar="KEY", help="Only the table of this key: "
                                       f"{' or '.join(TABLE_KEYS)} (CSV holds one table)."),
) -> None:
    """Fit a latency model of this device and backend from timed kernels and a few whole networks.

    Sampled kernel configurations and the networks are timed within --minutes, then one regressor is fitted
    per kernel kind.

    The configurations come from every bundled spec and from candidates of the design spaces (at each batch
    size), with perturbed copies, then, round by round, from around those the model predicts worst. `archgen
    profile SPEC --latency DEVICE.json` and `archgen search SPACE --latency DEVICE.json` then predict any
    network from its kernels, with no model built.
    """
    from archgen.bench.calibration import CalibrationRequest, run_calibration
    from archgen.bench.latency_model import write_model

    request = CalibrationRequest(backend, output, spaces=list(space or []), minutes=minutes,
                                 batch_sizes=parse_batch_sizes(batch_sizes), dtype=dtype, layout=layout,
                                 device=device, ray=ray, ray_address=ray_address, seed=seed,
                                 max_configurations=max_configurations, networks=networks)
    request.check()
    check_output_path(output)
    check_table(fmt, only)
    with CalibrationProgress(request.minutes * 60) as progress:
        doc = run_calibration(request, progress.update, say=lambda line: typer.echo(line, err=True))
    write_model(output, doc)
    emit_tables(calibration_tables(doc), fmt, None, only)
    timings = doc["meta"]["timings"]
    typer.echo(f"wrote {output}: {quantity(timings['configurations'], 'kernel configuration')} and "
               f"{quantity(timings['networks'], 'network')} timed in {timings['total_s'] / 60:.1f} minutes", err=True)


def check_table(fmt: Fmt, only: Optional[str]) -> None:
    """Refuse now, not after the minutes of timing, a table calibrate cannot print: CSV holds one of its two
    tables, and -o is the model, not a table."""
    if only is not None and only not in TABLE_KEYS:
        fail(f"no table '{only}' here; archgen calibrate makes {', '.join(TABLE_KEYS)}")
    if fmt is Fmt.csv and only is None:
        fail(f"archgen calibrate makes {len(TABLE_KEYS)} tables ({', '.join(TABLE_KEYS)}) and CSV holds one: pick "
             f"one with --table KEY (e.g. --table {TABLE_KEYS[0]})")


class CalibrationProgress:
    """Progress on stderr: a rich bar of the time spent against --minutes on a terminal, else a line when a
    phase starts and every 500 configurations (a log, a CI job)."""

    def __init__(self, budget_s: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=sys.stderr)
        self.lines, self.last = not console.is_terminal, ("", 0)
        self.bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                            TimeElapsedColumn(), console=console, transient=True, disable=self.lines)
        self.task = self.bar.add_task("archgen calibrate", total=budget_s)

    def __enter__(self) -> "CalibrationProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, p: "Progress") -> None:
        line = f"{p.phase}: {quantity(p.done, 'network' if p.phase == 'networks' else 'configuration')}" + (
            f" ({p.note})" if p.note else "")
        self.bar.update(self.task, completed=min(p.elapsed_s, p.budget_s), description=line)
        phase, shown = self.last
        if self.lines and (p.phase != phase or p.done - shown >= 500 or p.phase == "networks"):
            typer.echo(f"[{p.elapsed_s:.0f}s of {p.budget_s:.0f}s] {line}", err=True)
            self.last = (p.phase, p.done)


def calibration_tables(doc: dict) -> list[Table]:
    """The model's cross-validated error per kernel kind, and whole passes against their isolated kernels."""
    kinds = doc["kinds"]
    t = Table(title=f"latency model of {doc['backend']} on {doc['device'].get('name')}: cross-validated error "
                    "per kernel kind", columns=["kind", "configurations", "within 10%", "median error", "model"])
    t.key = TABLE_KEYS[0]
    for kind, entry in sorted(kinds.items(), key=lambda kv: -kv[1]["samples"]):
        cv = entry["cross_validated"]
        t.add(kind, entry["samples"], _share(cv["within_10"]), _share(cv["median_abs"]),
              "trees" if entry.get("trees") else "baseline")
    n = sum(e["samples"] for e in kinds.values())
    t.add("all", n, _share(sum(e["samples"] * e["cross_validated"]["within_10"] for e in kinds.values()) / n),
          None, None, rule=True)
    t.notes = ["out-of-fold error of each configuration (5 folds per kind, leave-one-out for a kind of fewer "
               "configurations), predicted against measured; "
               "'baseline': too few configurations for trees, ms = a x MACs + b x bytes + c alone"]
    net = doc["network"]
    w = Table(title="whole passes against the sum of their isolated kernels", columns=["batch", "pass / kernels"])
    w.key = TABLE_KEYS[1]
    for batch, ratio in sorted(net.get("pass_over_kernels", {}).items(), key=lambda kv: int(kv[0])):
        w.add(int(batch), Number(ratio, f"{ratio:.2f}x"))
    fit, timings = net.get("fit"), doc["meta"]["timings"]
    how = "per batch size" if net["by"] == "batch" else "pooled"
    # a left-one-out score of one or two networks says nothing (with one, each batch size is left out alone)
    scored = fit and timings["networks"] >= MIN_NETWORKS
    w.notes = [f"{quantity(timings['networks'], 'network')} drawn from the spaces, timed whole and interleaved at "
               f"each batch size; the model scales its kernel sums to whole passes ({how})"
               + (f", within 10% for {fit['within_10']:.0%} of them left-one-out" if scored else ""),
               f"{timings['configurations']:,} configurations timed in {timings['kernel_s']:.0f} s "
               f"({timings['per_minute']:,.0f} a minute)"
               + (f"; {timings['failed']} the runtime refused" if timings["failed"] else "")]
    return [t, w]


def _share(x: float) -> Number:
    return Number(x, f"{x:.0%}")
