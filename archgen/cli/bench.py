"""`archgen bench`: the Typer command. Torch is imported inside `bench_command` only, so that importing
this module (at every CLI start) costs nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from archgen.cli.common import FORMAT_OPTION, Fmt, check_output_path, fail, friendly
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


LAYOUTS = {"nchw": False, "channels_last": True}


def parse_layouts(text: str) -> list[bool]:
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


def _spec_entries(names: list[str], image_size: Optional[int]) -> list[tuple[str, str, int, int]]:
    """(ref, name, image size, MACs per image) per spec: each is loaded and counted, so a bad spec or an image
    too small is refused before anything is built."""
    import archgen
    from archgen.errors import SpecError

    entries = []
    for ref in names:
        try:
            prof = archgen.profile(ref, input_size=image_size)
        except SpecError as e:
            fail(str(e))
        entries.append((ref, archgen.load_spec(ref).name, prof.input_size, prof.macs))
    return entries


def choose_device(gpu: Optional[bool], cuda_available: bool, where: str, notes: list[str]) -> str:
    """--gpu insists on a GPU, --cpu asks for the CPU; neither: the GPU when there is one, said either way."""
    if gpu and not cuda_available:
        fail(where)
    if gpu is None:
        device = "cuda" if cuda_available else "cpu"
        notes.append("timing on the GPU (found one)" if cuda_available
                     else "timing on the CPU: no CUDA GPU found (give --gpu to insist on one)")
        typer.echo(notes[-1], err=True)
        return device
    return "cuda" if gpu else "cpu"


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
                                 "extra; float32)."),
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

    Backends run in one process, so that ratios are fair: eager PyTorch, archgen's fused Triton kernels (BNs folded) and torch.compile (its compile time reported apart). With --ray the jobs (spec x batch size x dtype x layout) run as Ray tasks, one GPU each.
    """
    # Input checks first, before torch is imported or anything is built.
    from archgen.bench.runner import DEFAULT_SPECS, BenchConfig

    dtypes = parse_dtypes(dtype)
    layout_list = parse_layouts(layouts) if layouts else [channels_last]
    chosen_backends = parse_backends(backends)
    sizes = parse_batch_sizes(batch_sizes) if batch_sizes else None
    if (warmup is not None and warmup < 0) or (reps is not None and reps < 1):
        fail(f"--warmup must be 0 or more and --reps 1 or more (got {warmup} and {reps}).")
    if image_size is not None and image_size < 1:
        fail(f"--image-size must be a positive number of pixels (got {image_size}).")
    if cpus_per_job < 1:
        fail(f"--cpus-per-job must be 1 or more (got {cpus_per_job}).")
    if output is not None and output.suffix.lower() not in (".json", ".csv"):
        fail(f"--output '{output}' must end in .json or .csv.")
    if resume is not None and resume.suffix.lower() != ".json":
        fail(f"--resume '{resume}' must be a results file ending in .json (the CSV beside it lacks the run's "
             "configuration).")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            fail("--plot needs matplotlib, which is not installed; install it with "
                 "pip install 'archgen[plot]' (or pip install matplotlib), or leave out --plot.")
    for target in (output, plot):
        check_output_path(target)
    kept = []
    if resume is not None:
        from archgen.bench.results import read_results

        if not resume.is_file():
            fail(f"--resume '{resume}': no such file; give the results file of the run to complete.")
        try:
            kept, resumed_env, _ = read_results(resume)
        except ValueError as e:
            fail(f"--resume {e}.")
        output = output or resume

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
    entries = _spec_entries(names, image_size)

    import torch

    use_ray = ray or ray_address is not None
    if use_ray:
        from archgen.bench import ray_sweep

        try:
            where, started_ray = ray_sweep.connect(ray_address)
        except ray_sweep.RayUnavailable as e:
            fail(str(e))
        typer.echo(f"archgen bench on {where}", err=True)
        device = choose_device(gpu, ray_sweep.cluster_gpus() >= 1, f"--gpu asks for GPUs, but {where}.", notes)
    else:
        device = choose_device(gpu, torch.cuda.is_available(),
                                "--gpu asks for a CUDA GPU, but torch sees none here "
                                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}). Run on a "
                                "machine with an NVIDIA GPU and a CUDA build of torch, or time on this CPU with "
                                "--cpu.", notes)
    on_gpu = device == "cuda"
    if resume is not None and resumed_env.get("device_type") not in (None, device):
        fail(f"--resume '{resume}' holds a sweep on {resumed_env.get('device_type')}, but this run times "
             f"{device}; resume it on the same kind of device, or write this run to another --output.")
    sizes = sizes or ([1, 8, 64, 256] if on_gpu else [1, 8])
    warmup = (10 if on_gpu else 2) if warmup is None else warmup
    reps = (100 if on_gpu else 10) if reps is None else reps
    if cuda_graphs and not on_gpu:
        notes.append("--cuda-graphs applies to the GPU only; ignored on the CPU")
    if "fused" in chosen_backends and not on_gpu:
        from archgen.kernels.bn_act import uses_triton

        if uses_triton(torch.empty(0)):
            notes.append("fused on the CPU runs the Triton kernels in the interpreter (TRITON_INTERPRET=1): "
                         "a correctness check, not a speed")
        else:
            notes.append("fused on the CPU runs archgen's PyTorch fallback for the kernels, not Triton")

    from archgen.bench.results import environment
    from archgen.bench.sweep import FAILED, ResultsStream, done_keys, grid, run_serial

    cfg = BenchConfig(specs=names, device=device, batch_sizes=sizes, dtype=dtypes[0],
                      channels_last=layout_list[0], backends=chosen_backends, cuda_graphs=cuda_graphs and on_gpu,
                      warmup=warmup, reps=reps, image_size=image_size)
    config = {**cfg.as_dict(), "dtypes": dtypes,
              "layouts": [name for name, flag in LAYOUTS.items() if flag in layout_list]}
    if use_ray:
        env = {**environment("cpu"), "device_type": device, "device": f"{device} workers of {where}",
               "driver": None, "ray": where}
        config.update(ray_address=ray_address, cpus_per_job=cpus_per_job)
        if not on_gpu:
            notes.append(f"on Ray, CPU jobs run side by side with {cpus_per_job} core(s) and torch thread(s) "
                         "each: compare the backends within a job, not these latencies with a serial run's")
    else:
        env = environment(device)
    jobs = grid(entries, sizes, dtypes, layout_list)
    done = done_keys(kept, chosen_backends)
    todo = [job for job in jobs if job.key not in done]
    if resume is not None:
        typer.echo(f"resuming {resume}: {len(jobs) - len(todo)} of {len(jobs)} jobs done, {len(todo)} to run",
                   err=True)
    stream = ResultsStream(output, env, config, jobs, kept)
    stream.write()  # a valid file from the start, so that even an early Ctrl-C leaves one

    try:
        with JobProgress(len(todo), nodes=use_ray) as progress:
            def finished(job, rows) -> None:
                stream.add(rows)
                progress.job_done(job, rows)

            if use_ray:
                ray_sweep.run(cfg, todo, finished, cpus_per_job=cpus_per_job, on_retry=progress.retry)
            else:
                run_serial(cfg, todo, finished, on_step=progress.step)
    except KeyboardInterrupt:
        resumable = output is not None and output.suffix.lower() == ".json"
        saved = (f"{output} holds the {progress.finished} finished job(s)" if output else
                 "nothing was saved (give --output)") + (
            f"; run the same command with --resume {output} to complete it" if resumable else
            "; --resume needs a FILE.json --output" if output else "")
        typer.echo(f"interrupted after {progress.finished} of {len(todo)} jobs: {saved}.", err=True)
        raise typer.Exit(130)
    finally:
        if use_ray and started_ray:
            import ray as ray_module

            ray_module.shutdown()

    rows = stream.ordered()
    oom = [r for r in rows if r.status == "oom"]
    if oom:
        notes.append(f"out of memory: {', '.join(f'{r.spec} {r.backend} batch {r.batch}' for r in oom)}")
    failed = [r for r in rows if r.status.startswith(FAILED)]
    if failed:
        notes.append(f"{len({(r.spec, r.batch, r.dtype, r.channels_last) for r in failed})} job(s) failed for "
                     "good (see status); --resume runs them again")
    timer = next((r.timer for r in rows if r.timer), "")
    notes.append(f"{reps} timed calls after {warmup} warm-up; {timer}; "
                 f"torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}, driver {env['driver']}; "
                 f"archgen {env['git_revision']}; {env['date']}")
    table = results_table(rows, env, notes)
    if fmt is Fmt.json:
        from archgen.bench.results import to_json

        typer.echo(to_json(rows, env, config), nl=False)
    else:
        typer.echo(render(table, fmt.value), nl=False)
    if output is not None:
        for path in stream.write():
            typer.echo(f"wrote {path}", err=True)
    if plot is not None:
        plot_results(rows, str(plot), env)
        typer.echo(f"wrote {plot}", err=True)
