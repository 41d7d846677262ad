"""`archgen bench`: the Typer command, which parses its options into a BenchRequest, hands it to
archgen.bench.session and renders the progress and results. Nothing here imports torch, so that importing
this module (at every CLI start) costs nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from archgen.cli.common import FORMAT_OPTION, Fmt, check_output_path, fail, friendly
from archgen.render import Table, render

if TYPE_CHECKING:
    from archgen.bench.results import Measurement
    from archgen.bench.session import BenchSession


def parse_batch_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            n = int(part)
        except ValueError:
            n = 0
        if n < 1:
            fail(f"--batch-sizes takes positive integers separated by commas, like 1,8,64,256; "
                 f"'{part}' is not one.")
        sizes.append(n)
    if not sizes:
        fail("--batch-sizes is empty; give positive integers separated by commas, like 1,8,64,256.")
    return list(dict.fromkeys(sizes))


def parse_backends(text: str) -> list[str]:
    from archgen.bench.runner import BACKENDS

    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown or not names:
        fail(f"unknown backend {', '.join(repr(u) for u in unknown) or '(none given)'}; --backends takes a "
             f"comma-separated list of {', '.join(BACKENDS)}.")
    return list(dict.fromkeys(names))


def _variant(r) -> str:
    return f"{r.dtype}{', channels_last' if r.channels_last else ''}"


#: Why `peak MB` is empty on the CPU, said under the table instead of leaving the reader to guess.
CPU_PEAK_NOTE = ("peak MB: n/a on the CPU; the figure is torch's CUDA allocator's own peak "
                 "(max_memory_allocated), and the CPU allocator keeps no such count (the process's resident "
                 "set would also hold torch itself and every earlier job)")


def results_table(rows, env: dict, notes: list[str]) -> Table:
    """The rows at one number format per column (latencies to three significant digits of the fastest);
    at 80 columns the spread (p10, p90), compile time, throughput and peak memory give way first."""
    from archgen.bench.runner import row_key
    from archgen.render import Number, one_format

    eager = {row_key(r): r for r in rows if r.backend == "eager" and r.status == "ok"}
    variants = list(dict.fromkeys(_variant(r) for r in rows))
    several = len(variants) > 1
    on_cpu = env.get("device_type") == "cpu"
    t = Table(title=f"archgen bench on {env.get('device')} ({'; '.join(variants)}"
                    f"{', CUDA graphs' if rows and rows[0].cuda_graphs else ''})",
              columns=["spec", *(["dtype, layout"] if several else []), "batch", "backend", "median ms", "p10 ms",
                       "p90 ms", "images/s", "x eager", "peak MB", "compile s", "status"],
              droppable=("p10 ms", "p90 ms", "compile s", "images/s", "peak MB"))
    n = len(rows)
    latencies = one_format([r.median_ms for r in rows] + [r.p10_ms for r in rows] + [r.p90_ms for r in rows])
    throughput = one_format([r.images_per_s for r in rows])
    last = None
    for i, r in enumerate(rows):
        ratio = r.speedup_over(eager.get(row_key(r)))
        status = r.status if r.attempt == 1 else f"{r.status} (attempt {r.attempt})"
        peak = ("n/a" if on_cpu and r.status == "ok" else None) if r.peak_memory_mb is None else \
            Number(r.peak_memory_mb, f"{r.peak_memory_mb:.0f}")
        t.add(r.spec, *([_variant(r)] if several else []), r.batch, r.backend, latencies[i], latencies[n + i],
              latencies[2 * n + i], throughput[i], None if ratio is None else Number(ratio, f"{ratio:.2f}x"),
              peak, None if r.compile_s is None else Number(r.compile_s, f"{r.compile_s:.1f}"), status,
              rule=last is not None and last != row_key(r))
        last = row_key(r)
    t.notes = notes + ([CPU_PEAK_NOTE] if on_cpu and any(r.status == "ok" for r in rows) else [])
    return t


def plot_results(rows, path: str, env: dict) -> None:
    """Latency against MACs per image, one line per backend, one panel per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r.batch for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        several = len({_variant(r) for r in rows}) > 1
        for backend, variant in dict.fromkeys((r.backend, _variant(r)) for r in rows):
            pts = sorted((r.macs_per_image / 1e9, r.median_ms, r.spec) for r in rows if r.batch == batch and
                         r.backend == backend and _variant(r) == variant and r.median_ms is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        label=f"{backend} ({variant})" if several else backend)
                for gmacs, ms, spec in pts:
                    ax.annotate(spec, (gmacs, ms), fontsize=6, alpha=0.6)
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("GMACs per image")
        ax.set_ylabel("median latency (ms)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{env.get('device')}, torch {env.get('torch')}", fontsize=9)
    fig.tight_layout()
    import io

    from archgen.render import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def parse_dtypes(text: str) -> list[str]:
    from archgen.bench.runner import DTYPES

    names = list(dict.fromkeys(d.strip() for d in text.split(",") if d.strip()))
    unknown = [d for d in names if d not in DTYPES]
    if unknown or not names:
        fail(f"unknown --dtype '{','.join(unknown)}'; choose one or more (comma-separated) of {', '.join(DTYPES)}.")
    return names


def parse_layouts(text: str) -> list[bool]:
    from archgen.bench.session import LAYOUTS

    names = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    unknown = [x for x in names if x not in LAYOUTS]
    if unknown or not names:
        fail(f"unknown layout '{','.join(unknown)}'; --layouts takes a comma-separated list of "
             f"{', '.join(LAYOUTS)}.")
    return [LAYOUTS[x] for x in names]


class JobProgress:
    """Progress on stderr: a rich bar on a terminal, else one line per finished job (a log, a CI job), and
    a line when torch.compile starts compiling, which can take a minute before the job moves."""

    def __init__(self, total: int, nodes: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.total, self.finished = total, 0
        self.nodes = nodes  # name the node that ran each job (a Ray cluster's), beside its device
        self.console = Console(file=sys.stderr)
        self.lines = not self.console.is_terminal
        self.bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True,
                            disable=self.lines)
        self.task = self.bar.add_task("archgen bench", total=total)

    def __enter__(self) -> "JobProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def step(self, description: str) -> None:
        self.bar.update(self.task, description=description)
        if self.lines and description.startswith("compiling"):
            typer.echo(f"{description}...", err=True)

    def job_done(self, job, rows) -> None:
        self.finished += 1
        self.bar.advance(self.task)
        if self.lines:
            times = ", ".join(f"{r.backend} {r.median_ms:.4g} ms" if r.median_ms is not None
                              else f"{r.backend} {r.status}" for r in rows)
            where = f" on {rows[0].device_name}" if rows and rows[0].device_name else ""
            if self.nodes and rows and rows[0].node:
                where += f" of {rows[0].node}"
            again = f", attempt {rows[0].attempt}" if rows and rows[0].attempt > 1 else ""
            typer.echo(f"[{self.finished}/{self.total}] {job.describe()}{where}{again}: {times}", err=True)

    def retry(self, job, attempt: int, attempts: int) -> None:
        message = f"a worker died during {job.describe()}; running the job again (attempt {attempt} of {attempts})"
        if self.lines:
            typer.echo(message, err=True)
        else:
            self.console.print(message)


@friendly
def bench_command(
    specs: list[str] = typer.Argument(None, help="Bundled spec names or YAML paths. Default: resnet50, "
                                      "resnext50_32x4d, wide_resnet50_2, densenet121."),
    gpu: Optional[bool] = typer.Option(None, "--gpu/--cpu", help="Insist on the CUDA GPU (CUDA events), or time "
                                       "the CPU. Default: the GPU when there is one, else the CPU."),
    batch_sizes: str = typer.Option(None, "--batch-sizes", help="Comma-separated, e.g. 1,8,64,256 "
                                    "(default: 1,8,64,256 on the GPU, 1,8 on the CPU)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16; several, comma-separated, "
                              "sweep each."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Model and input in channels_last."),
    layouts: Optional[str] = typer.Option(None, "--layouts", help="Memory layouts to sweep, comma-separated: "
                                          "nchw, channels_last (default: nchw, or channels_last with "
                                          "--channels-last)."),
    backends: str = typer.Option("eager,fused,compile", "--backends",
                                 help="Comma-separated subset of eager, fused, compile, onnxruntime (the onnx "
                                 "extra) and openvino (the openvino extra); the last two float32."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs", help="Capture each call in a CUDA graph and "
                                     "time its replays."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results file: FILE.json (with FILE.csv "
                                          "beside it) or FILE.csv; rewritten atomically after every job."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="A results FILE.json of an earlier run: skip "
                                          "the jobs it holds and add the rest to it (or to --output)."),
    ray: bool = typer.Option(False, "--ray", help="Run the jobs as Ray tasks (pip install 'archgen\\[ray]'): on "
                             "the cluster of --ray-address or RAY_ADDRESS, else a local Ray on this machine."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="The Ray "
                                              "cluster to join (host:6379, ray://host:10001 or auto); implies "
                                              "--ray."),
    cpus_per_job: int = typer.Option(1, "--cpus-per-job", help="With --ray on CPUs: cores (and torch threads) "
                                     "each job holds."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw latency against MACs per backend to "
                                        "FILE.png (needs matplotlib: pip install 'archgen\\[plot]')."),
    fmt: Fmt = FORMAT_OPTION,
    warmup: int = typer.Option(None, "--warmup", help="Untimed calls first (default: 10 GPU, 2 CPU)."),
    reps: int = typer.Option(None, "--reps", help="Timed calls (default: 100 GPU, 10 CPU)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input side in pixels (default: "
                                             "each spec's own)."),
) -> None:
    """Time each spec per backend, batch size, dtype and layout: latency, images/s and peak memory.

    Backends run in one process, so that ratios are fair: eager PyTorch, archgen's fused Triton kernels (BNs folded), torch.compile (its compile time reported apart), and the ONNX Runtime and OpenVINO runtimes on the exported model. With --ray the jobs (spec x batch size x dtype x layout) run as Ray tasks, one GPU each.
    """
    from archgen.bench.session import BenchRequest, open_session

    request = BenchRequest(specs=list(specs or []), gpu=gpu, dtypes=parse_dtypes(dtype),
                           batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes else None,
                           layouts=parse_layouts(layouts) if layouts else [channels_last],
                           backends=parse_backends(backends), cuda_graphs=cuda_graphs, output=output, resume=resume,
                           ray=ray, ray_address=ray_address, cpus_per_job=cpus_per_job, warmup=warmup, reps=reps,
                           image_size=image_size)
    check_plot(plot)
    check_output_path(output)
    with open_session(request, say=lambda line: typer.echo(line, err=True)) as session:
        rows = run_with_progress(session)
    show_results(session, rows, fmt, plot)


def check_plot(plot: Optional[Path]) -> None:
    """Refuse --plot before any timing when matplotlib is missing or the file cannot be written."""
    if plot is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail("--plot needs matplotlib, which is not installed; install it with "
             "pip install 'archgen[plot]' (or pip install matplotlib), or leave out --plot.")
    check_output_path(plot)


def run_with_progress(session: BenchSession) -> list[Measurement]:
    """The session's jobs run under a progress bar (or lines); Ctrl-C says what was saved and exits 130."""
    try:
        with JobProgress(len(session.todo), nodes=session.placement.ray is not None) as progress:
            return session.run(on_job=progress.job_done, on_step=progress.step, on_retry=progress.retry)
    except KeyboardInterrupt:
        typer.echo(session.interrupted(), err=True)
        raise typer.Exit(130)


def show_results(session: BenchSession, rows: list[Measurement], fmt: Fmt, plot: Optional[Path]) -> None:
    """The table (or JSON) on stdout, then the files written named on stderr."""
    if fmt is Fmt.json:
        from archgen.bench.results import to_json

        typer.echo(to_json(rows, session.env, session.stream.config), nl=False)
    else:
        typer.echo(render(results_table(rows, session.env, session.summary_notes(rows)), fmt.value), nl=False)
    for path in session.stream.write():
        typer.echo(f"wrote {path}", err=True)
    if plot is not None:
        plot_results(rows, str(plot), session.env)
        typer.echo(f"wrote {plot}", err=True)
