"""Time specs x backends x batch sizes in one process, so that ratios between backends are fair.

Backends: `eager` (the model as built), `fused` (archgen.kernels.fuse, BNs folded into the convs),
`compile` (torch.compile, default mode; its first call at each shape is reported as compile_s),
`onnxruntime` and `openvino` (the model exported by `archgen export --to onnx`, run by ONNX Runtime or by
OpenVINO on the CPU: what CPU deployments use, so the peers to beat there; float32 only, the onnx and
openvino extras). The runtimes get the torch backends' thread count, so that the ratios stay fair.
An out-of-memory batch size is recorded with status "oom" and the run goes on.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Optional, TypeVar

from archgen.bench.results import Measurement, stamp

BACKENDS = ("eager", "fused", "compile", "onnxruntime", "openvino")
#: What a bench times unless told: the runtimes are asked for by name (each needs its extra).
DEFAULT_BACKENDS = ("eager", "fused", "compile")
#: The runtime backends' modules and the extras that install them.
RUNTIMES = {"onnxruntime": ("onnxruntime", "onnx", "ONNX Runtime"), "openvino": ("openvino", "openvino", "OpenVINO")}
#: What a user comparing backbones would pick (those not bundled are skipped with a note).
DEFAULT_SPECS = ("resnet50", "resnext50_32x4d", "wide_resnet50_2", "densenet121")
DTYPES = ("float32", "float16", "bfloat16")
T = TypeVar("T")


@dataclass
class BenchConfig:
    specs: list[str]
    device: str = "cuda"  # "cuda" or "cpu"
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64, 256])
    dtype: str = "float32"
    channels_last: bool = False
    backends: list[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS))
    cuda_graphs: bool = False
    warmup: int = 10
    reps: int = 50
    image_size: Optional[int] = None  # None: each spec's own input size
    cudnn_benchmark: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def _is_oom(e: BaseException) -> bool:
    import torch

    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def make_backend(name: str, model, device: str, *, in_chans: int = 3, input_size: int = 224):
    """The callable model for a backend; models share weights with `model` where they can."""
    import torch

    if name == "onnxruntime":
        return onnxruntime_session(model, device, in_chans, input_size)
    if name == "openvino":
        return openvino_model(model, device, in_chans, input_size)
    if name == "eager":
        return model
    if name == "fused":
        from archgen.kernels.fuse import fuse

        return fuse(model, fold_bn=True)
    if name == "compile":
        return torch.compile(model, dynamic=False)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")


def missing_runtime(backend: str) -> Optional[str]:
    """Why a runtime backend cannot run here (its module is not installed, and which extra installs it), or
    None; found without importing the runtime."""
    import importlib.util

    if backend not in RUNTIMES:
        return None
    module, extra, title = RUNTIMES[backend]
    if importlib.util.find_spec(module) is not None:
        return None
    return (f"the {backend} backend needs {title}, which is not installed; install it with "
            f"pip install 'archgen[{extra}]' (or pip install {module}), or leave {backend} out of --backends")


def _exported(model, backend: str, in_chans: int, input_size: int, load: Callable[[str], T]) -> T:
    """The model exported to ONNX (dynamic batch) as `archgen export` writes it, in float32, to a temporary
    file that `load` reads once."""
    import os
    import tempfile

    import torch

    from archgen.export import export_model

    if next(model.parameters()).dtype != torch.float32:
        raise RuntimeError(f"the {backend} backend times float32 models only")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        export_model(model, path, "onnx", in_chans=in_chans, input_size=input_size)
        return load(path)


def onnxruntime_options(device: str) -> tuple[Any, list[str]]:
    """The session options and providers every ONNX Runtime session of archgen's gets (a network's, a kernel
    unit's): the torch backends' thread count, so that the ratios between backends stay fair."""
    import onnxruntime as ort
    import torch

    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():
        raise RuntimeError(f"this ONNX Runtime has no {providers[0]}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return options, providers


def openvino_config(device: str) -> dict[str, Any]:
    """The configuration every OpenVINO compiled model of archgen's gets: the torch backends' threads, f32
    precision (see openvino_model) and the latency hint."""
    import torch

    if device != "cpu":
        raise RuntimeError("the openvino backend runs on the CPU (OpenVINO has no CUDA device); time it with --cpu")
    return {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY"}


def onnxruntime_session(model, device: str, in_chans: int, input_size: int) -> Callable:
    """The model exported to ONNX and loaded in an ONNX Runtime session, as a callable on torch tensors."""
    return runtime_loader(model, "onnxruntime", device, in_chans, input_size)()


def openvino_model(model, device: str, in_chans: int, input_size: int) -> Callable:
    """The model exported to ONNX and compiled by OpenVINO for the CPU, as a callable on torch tensors.

    Precision is pinned to f32: on CPUs with bfloat16 units OpenVINO's default is to compute in bfloat16,
    which would time another model than the other backends' and miss eager's logits."""
    return runtime_loader(model, "openvino", device, in_chans, input_size)()


def runtime_loader(model, backend: str, device: str, in_chans: int, input_size: int) -> Callable[[], Callable]:
    """The model exported to ONNX once; each call of the result loads it anew (an ONNX Runtime session, an
    OpenVINO compiled model), as a callable on torch tensors. Networks timed in turn each load theirs when
    their turn comes: a runtime's thread pool, idle, still spins for a while, and slows the next network's
    calls (2-3x for a 5 ms network, measured)."""
    import importlib

    try:
        runtime = importlib.import_module(RUNTIMES[backend][0])
    except ImportError:
        raise RuntimeError(missing_runtime(backend)) from None
    if backend == "openvino":
        config = openvino_config(device)
        data = _exported(model, backend, in_chans, input_size, _read)

        def compiled() -> Callable:
            core = runtime.Core()
            request = core.compile_model(core.read_model(data), "CPU", config).create_infer_request()
            return lambda x: request.infer({0: x.detach().cpu().contiguous().numpy()})[0]

        return compiled
    options, providers = onnxruntime_options(device)
    data = _exported(model, backend, in_chans, input_size, _read)

    def session() -> Callable:
        s = runtime.InferenceSession(data, options, providers=providers)
        (input_name,) = [i.name for i in s.get_inputs()]
        return lambda x: s.run(None, {input_name: x.detach().cpu().contiguous().numpy()})[0]

    return session


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def measure(cfg: BenchConfig, spec: str, backend: str, model, batch: int, size: int, macs: int) -> Measurement:
    """One (spec, backend, batch) row; never raises for OOM or a failing backend."""
    import torch

    from archgen.bench.timing import time_cpu, time_cuda, time_cuda_graph

    row = Measurement(spec=spec, backend=backend, batch=batch, image_size=size, dtype=cfg.dtype,
                      channels_last=cfg.channels_last, cuda_graphs=cfg.cuda_graphs and cfg.device == "cuda",
                      macs_per_image=macs)
    dtype = getattr(torch, cfg.dtype)
    cuda = cfg.device == "cuda"
    try:
        x = torch.randn(batch, 3, size, size, device=cfg.device, dtype=dtype)
        if cfg.channels_last:
            x = x.to(memory_format=torch.channels_last)
        if cuda:
            _free("cuda")
            torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize()
            row.first_call_s = time.perf_counter() - t0
            if backend == "compile":
                row.compile_s = row.first_call_s
            fn = lambda: model(x)  # noqa: E731
            if cuda and cfg.cuda_graphs:
                timing = time_cuda_graph(fn, cfg.warmup, cfg.reps)
            elif cuda:
                timing = time_cuda(fn, cfg.warmup, cfg.reps)
            else:
                timing = time_cpu(fn, cfg.warmup, cfg.reps)
        row.times_ms = [round(t, 5) for t in timing.times_ms]
        row.timer, row.reps = timing.method, len(timing.times_ms)
        row.median_ms, row.p10_ms, row.p90_ms = timing.median, timing.p10, timing.p90
        row.images_per_s = batch / (timing.median / 1e3) if timing.median > 0 else None
        if cuda:
            row.peak_memory_mb = torch.cuda.max_memory_allocated() / 2**20
    except Exception as e:  # one failing cell must not end the run
        row.status = "oom" if _is_oom(e) else f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    finally:
        x = None
        _free(cfg.device)
    return row


@dataclass(frozen=True)
class Job:
    """One cell of a sweep's grid: a spec at one batch size, dtype and memory layout, timed on every
    backend of the sweep in one process, so that the ratios between backends stay fair."""

    spec: str  # as given: a bundled name or a YAML path
    name: str  # the spec's own name, as its rows carry it
    batch: int
    dtype: str
    channels_last: bool
    image_size: int
    macs: int  # per image, for the rows of a job that fails before anything is timed

    @property
    def key(self) -> tuple:
        return (self.name, self.batch, self.dtype, self.channels_last, self.image_size)

    def describe(self) -> str:
        return (f"{self.name} batch {self.batch} {self.dtype} {'channels_last' if self.channels_last else 'nchw'}"
                f" {self.image_size}px")


def row_key(row: Measurement) -> tuple:
    """The Job.key a row belongs to."""
    return (row.spec, row.batch, row.dtype, row.channels_last, row.image_size)


def _prepare(cfg: BenchConfig, ref: str):
    """The spec's profile, the model in the config's dtype and layout, and each backend (or its error)."""
    import torch

    import archgen

    spec = archgen.load_spec(ref)
    prof = archgen.profile(spec, cfg.image_size) if cfg.image_size else archgen.profile(spec)
    model = archgen.build(spec, device=cfg.device).eval().to(getattr(torch, cfg.dtype))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    backends = {}
    for name in cfg.backends:
        try:
            backends[name] = make_backend(name, model, cfg.device, in_chans=spec.doc.input.channels,
                                          input_size=prof.input_size)
        except Exception as e:
            backends[name] = e
    return spec, prof, backends


def _time_batch(cfg: BenchConfig, spec, prof, backends: dict, batch: int,
                on_step: Optional[Callable[[str], None]], on_done: Optional[Callable[[Measurement], None]]
                ) -> list[Measurement]:
    rows = []
    for name in cfg.backends:
        b = backends[name]
        if on_step:  # torch.compile's first call compiles for a minute or more: say so
            compiling = name == "compile" and not isinstance(b, Exception)
            on_step(f"compiling {spec.name} with torch.compile (batch {batch}), then timing" if compiling
                    else f"{spec.name} {name} batch {batch}")
        if isinstance(b, Exception):
            row = Measurement(spec.name, name, batch, prof.input_size, cfg.dtype, cfg.channels_last,
                              cfg.cuda_graphs, prof.macs, status=f"error: {type(b).__name__}: {b}")
        else:
            row = measure(cfg, spec.name, name, b, batch, prof.input_size, prof.macs)
        stamp(row, cfg.device)
        rows.append(row)
        if on_done:
            on_done(row)
    return rows


def run(cfg: BenchConfig, on_step: Optional[Callable[[str], None]] = None,
        on_done: Optional[Callable[[Measurement], None]] = None,
        on_job: Optional[Callable[[list[Measurement]], None]] = None) -> list[Measurement]:
    """Every row of the run, in (spec, batch, backend) order. on_step(description) precedes each cell,
    on_done(row) follows it, on_job(rows) follows the last backend of each (spec, batch)."""
    import torch

    if cfg.device == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    rows: list[Measurement] = []
    for ref in cfg.specs:
        spec, prof, backends = _prepare(cfg, ref)
        for batch in cfg.batch_sizes:
            job_rows = _time_batch(cfg, spec, prof, backends, batch, on_step, on_done)
            rows.extend(job_rows)
            if on_job:
                on_job(job_rows)
        del backends
        _free(cfg.device)
    return rows


def run_job(cfg: BenchConfig, job: Job) -> list[Measurement]:
    """One job's rows, one per backend, with the job's dtype and layout in place of the config's."""
    job_cfg = replace(cfg, specs=[job.spec], batch_sizes=[job.batch], dtype=job.dtype,
                      channels_last=job.channels_last)
    return run(job_cfg)
