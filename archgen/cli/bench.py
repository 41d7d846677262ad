"""`archgen bench`: the Typer command. Torch is imported inside `bench_command` only, so that importing
this module (at every CLI start) costs nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from archgen.cli.common import FORMAT_OPTION, Fmt, check_output_path, fail
from archgen.render import Table, render


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


def _fmt(v: Optional[float], digits: int = 3) -> Optional[str]:
    return None if v is None else f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def results_table(rows, env: dict, notes: list[str]) -> Table:
    eager = {(r.spec, r.batch): r for r in rows if r.backend == "eager" and r.status == "ok"}
    t = Table(title=f"archgen bench on {env.get('device')} ({rows[0].dtype if rows else ''}"
                    f"{', channels_last' if rows and rows[0].channels_last else ''}"
                    f"{', CUDA graphs' if rows and rows[0].cuda_graphs else ''})",
              columns=["spec", "batch", "backend", "median ms", "p10 ms", "p90 ms", "images/s", "x eager",
                       "peak MB", "compile s", "status"])
    last = None
    for r in rows:
        ratio = r.speedup_over(eager.get((r.spec, r.batch)))
        t.add(r.spec, r.batch, r.backend, _fmt(r.median_ms, 4), _fmt(r.p10_ms, 4), _fmt(r.p90_ms, 4),
              _fmt(r.images_per_s, 4), None if ratio is None else f"{ratio:.2f}x",
              None if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
              None if r.compile_s is None else f"{r.compile_s:.1f}", r.status,
              rule=last is not None and last != (r.spec, r.batch))
        last = (r.spec, r.batch)
    t.notes = notes
    return t


def plot_results(rows, path: str, env: dict) -> None:
    """Latency against MACs per image, one line per backend, one panel per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r.batch for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        for backend in dict.fromkeys(r.backend for r in rows):
            pts = sorted((r.macs_per_image / 1e9, r.median_ms, r.spec) for r in rows
                         if r.batch == batch and r.backend == backend and r.median_ms is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=backend)
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


def bench_command(
    specs: list[str] = typer.Argument(None, help="Bundled spec names or YAML paths. Default: resnet50, "
                                      "resnext50_32x4d, wide_resnet50_2, densenet121."),
    gpu: bool = typer.Option(True, "--gpu/--cpu", help="Time on the CUDA GPU (CUDA events) or on the CPU."),
    batch_sizes: str = typer.Option(None, "--batch-sizes", help="Comma-separated, e.g. 1,8,64,256 "
                                    "(default: 1,8,64,256 on the GPU, 1,8 on the CPU)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Model and input in channels_last."),
    backends: str = typer.Option("eager,fused,compile", "--backends",
                                 help="Comma-separated subset of eager, fused, compile."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs", help="Capture each call in a CUDA graph and "
                                     "time its replays."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results file: FILE.json (with FILE.csv "
                                          "beside it) or FILE.csv; written atomically."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw latency against MACs per backend to "
                                        "FILE.png (needs matplotlib: pip install 'archgen\\[plot]')."),
    fmt: Fmt = FORMAT_OPTION,
    warmup: int = typer.Option(None, "--warmup", help="Untimed calls first (default: 10 GPU, 2 CPU)."),
    reps: int = typer.Option(None, "--reps", help="Timed calls (default: 100 GPU, 10 CPU)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input side in pixels (default: "
                                             "each spec's own)."),
) -> None:
    """Latency (median, p10, p90), images/s and peak memory per spec, backend and batch size.

    Backends run in one process, so that ratios are fair: eager PyTorch, archgen's fused Triton kernels (BNs folded) and torch.compile (its compile time reported apart).
    """
    # Input checks first, before torch is imported or anything is built.
    from archgen.bench.runner import DEFAULT_SPECS, DTYPES, BenchConfig, run

    if dtype not in DTYPES:
        fail(f"unknown --dtype '{dtype}'; choose one of {', '.join(DTYPES)}.")
    chosen_backends = parse_backends(backends)
    sizes = parse_batch_sizes(batch_sizes or ("1,8,64,256" if gpu else "1,8"))
    warmup = (10 if gpu else 2) if warmup is None else warmup
    reps = (100 if gpu else 10) if reps is None else reps
    if warmup < 0 or reps < 1:
        fail(f"--warmup must be 0 or more and --reps 1 or more (got {warmup} and {reps}).")
    if image_size is not None and image_size < 1:
        fail(f"--image-size must be a positive number of pixels (got {image_size}).")
    if output is not None and output.suffix.lower() not in (".json", ".csv"):
        fail(f"--output '{output}' must end in .json or .csv.")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            fail("--plot needs matplotlib, which is not installed; install it with "
                 "pip install 'archgen[plot]' (or pip install matplotlib), or leave out --plot.")
    for target in (output, plot):
        check_output_path(target)

    import archgen
    from archgen.errors import SpecError

    notes: list[str] = []
    if specs:
        names = list(specs)
    else:
        from archgen.grammar.loader import bundled_names

        bundled = set(bundled_names())
        names = [s for s in DEFAULT_SPECS if s in bundled]
        missing = [s for s in DEFAULT_SPECS if s not in bundled]
        if missing:
            notes.append(f"default specs not bundled in this version, skipped: {', '.join(missing)}")
        if not names:
            fail("none of the default specs is bundled; name the specs to time.")
    for name in names:
        try:
            archgen.profile(name, input_size=image_size)  # the spec is valid and the image not too small
        except SpecError as e:
            fail(str(e))

    import torch

    device = "cuda" if gpu else "cpu"
    if gpu and not torch.cuda.is_available():
        fail("--gpu asks for a CUDA GPU, but torch sees none here "
             f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}). "
             "Run on a machine with an NVIDIA GPU and a CUDA build of torch, or time on this CPU with --cpu.")
    if cuda_graphs and not gpu:
        notes.append("--cuda-graphs applies to the GPU only; ignored with --cpu")
    if "fused" in chosen_backends and not gpu:
        from archgen.kernels.bn_act import uses_triton

        if uses_triton(torch.empty(0)):
            notes.append("fused on the CPU runs the Triton kernels in the interpreter (TRITON_INTERPRET=1): "
                         "a correctness check, not a speed")
        else:
            notes.append("fused on the CPU runs archgen's PyTorch fallback for the kernels, not Triton")

    from archgen.bench.results import environment, write_results

    cfg = BenchConfig(specs=names, device=device, batch_sizes=sizes, dtype=dtype, channels_last=channels_last,
                      backends=chosen_backends, cuda_graphs=cuda_graphs and gpu, warmup=warmup, reps=reps,
                      image_size=image_size)
    env = environment(device)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    total = len(names) * len(sizes) * len(chosen_backends)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("archgen bench", total=total)
        rows = run(cfg, on_step=lambda d: bar.update(task, description=d),
                   on_done=lambda r: bar.advance(task))

    oom = [r for r in rows if r.status == "oom"]
    if oom:
        notes.append(f"out of memory: {', '.join(f'{r.spec} {r.backend} batch {r.batch}' for r in oom)}")
    notes.append(f"{reps} timed calls after {warmup} warm-up; {rows[0].timer if rows else ''}; "
                 f"torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}, driver {env['driver']}; "
                 f"archgen {env['git_revision']}; {env['date']}")
    table = results_table(rows, env, notes)
    if fmt is Fmt.json:
        from archgen.bench.results import to_json

        typer.echo(to_json(rows, env, cfg.as_dict()), nl=False)
    else:
        typer.echo(render(table, fmt.value), nl=False)
    if output is not None:
        for path in write_results(output, rows, env, cfg.as_dict()):
            typer.echo(f"wrote {path}", err=True)
    if plot is not None:
        plot_results(rows, str(plot), env)
        typer.echo(f"wrote {plot}", err=True)
