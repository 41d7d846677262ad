"""What a benchmark run measured, where, and with what: rows plus the environment, as JSON and CSV.

Files are written atomically (archgen.render.write_atomic), so a crashed or interrupted run never
leaves half a results file.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import io
import json
import os
import platform
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from archgen.render import write_atomic


@dataclass
class Measurement:
    """One (spec, backend, batch size): latency in ms over `reps` repetitions after warm-up."""

    spec: str
    backend: str
    batch: int
    image_size: int
    dtype: str
    channels_last: bool
    cuda_graphs: bool
    macs_per_image: int
    status: str = "ok"  # "ok", "oom", or "error: ..."
    median_ms: Optional[float] = None
    p10_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    images_per_s: Optional[float] = None
    peak_memory_mb: Optional[float] = None
    #: torch.compile's first call at this shape (the compile wait), for the compile backend.
    compile_s: Optional[float] = None
    #: Wall time of the first call, for every backend (fused: Triton's JIT compiles here).
    first_call_s: Optional[float] = None
    reps: int = 0
    timer: str = ""
    #: Where and with what the row was measured, so that a row of a sweep over many machines stands alone.
    node: str = ""
    device_name: str = ""
    torch_version: str = ""
    triton_version: Optional[str] = None
    cuda_version: Optional[str] = None
    archgen_revision: str = ""
    finished_at: str = ""
    #: Which run of its job made the row: above 1 when the worker of an earlier attempt died mid-job.
    attempt: int = 1
    times_ms: list[float] = field(default_factory=list)

    def speedup_over(self, eager: Optional["Measurement"]) -> Optional[float]:
        if eager is None or eager.median_ms is None or self.median_ms is None:
            return None
        return eager.median_ms / self.median_ms


CSV_FIELDS = [f.name for f in dataclasses.fields(Measurement) if f.name != "times_ms"]


def _run(cmd: list[str], cwd: Optional[str] = None) -> Optional[str]:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def git_revision() -> Optional[str]:
    """archgen's commit, with '-dirty' when its tracked files have changes; None outside a checkout."""
    here = str(Path(__file__).resolve().parent)
    rev = _run(["git", "rev-parse", "HEAD"], cwd=here)
    if rev is None:
        return None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here)
    return rev + ("-dirty" if dirty else "")


def _driver_version() -> Optional[str]:
    try:
        import pynvml  # type: ignore

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    except Exception:
        pass
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.splitlines()[0].strip() if out else None


def _cpuinfo(field: str) -> Optional[str]:
    """The value of /proc/cpuinfo's first `field` line (None where there is no such file or line)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(field)), None)


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


#: x86-64 vector extensions as /proc/cpuinfo names them, widest first.
_VECTOR_FLAGS = ("avx512f", "avx2", "avx", "sse4_2")


@functools.lru_cache(maxsize=None)
def cpu_vector() -> str:
    """The CPU's widest vector extension ('avx512f', 'avx2', ...; where /proc/cpuinfo has no flags, the
    machine's architecture). It decides which kernels the CPU libraries pick (ONNX Runtime's NCHWc block,
    oneDNN's ISA), and the CPU's name does not tell it: two 2-core "AMD EPYC" VMs this project ran on differed
    in it (AVX-512, AVX2)."""
    flags = set((_cpuinfo("flags") or "").split())
    return next((f for f in _VECTOR_FLAGS if f in flags), platform.machine().lower())


@functools.lru_cache(maxsize=None)
def _provenance(device: str) -> tuple[tuple[str, Any], ...]:
    env = environment(device)
    return (("node", socket.gethostname()), ("device_name", env["device"]), ("torch_version", env["torch"]),
            ("triton_version", env["triton"]), ("cuda_version", env["cuda"]),
            ("archgen_revision", env["git_revision"] or env["archgen"]))


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def stamp(row: Measurement, device: str) -> Measurement:
    """Fill in the row's node, device, versions and the time it finished (UTC), from the process that timed it."""
    for name, value in _provenance(device):
        setattr(row, name, value)
    row.finished_at = utc_now()
    return row


def environment(device: str) -> dict[str, Any]:
    """Device name, driver, torch / triton / CUDA / cuDNN versions, archgen's revision and the date (UTC)."""
    import torch

    import archgen

    try:
        import triton

        triton_version: Optional[str] = triton.__version__
    except Exception:
        triton_version = None
    env: dict[str, Any] = {
        "device_type": device,
        "device": cpu_name() if device == "cpu" else torch.cuda.get_device_name(),
        "driver": _driver_version() if device == "cuda" else None,
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_vector": cpu_vector(),
        "cpu_threads": torch.get_num_threads(),
        "archgen": archgen.__version__,
        "git_revision": git_revision(),
        "date": utc_now(),
        "triton_interpret": os.environ.get("TRITON_INTERPRET", "0"),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        env["sm_count"] = props.multi_processor_count
    return env


def to_json(rows: list[Measurement], env: dict[str, Any], config: dict[str, Any]) -> str:
    payload = {"environment": env, "config": config, "results": [dataclasses.asdict(r) for r in rows]}
    return json.dumps(payload, indent=2, default=str) + "\n"


def to_csv(rows: list[Measurement], env: dict[str, Any]) -> str:
    """One line per measurement; the environment repeated on each line so every line stands alone."""
    env_fields = ["device", "driver", "torch", "triton", "cuda", "git_revision", "date"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS + env_fields)
    for r in rows:
        d = dataclasses.asdict(r)
        w.writerow([("" if d[k] is None else d[k]) for k in CSV_FIELDS] + [env.get(k) or "" for k in env_fields])
    return out.getvalue()


def write_results(path: str | Path, rows: list[Measurement], env: dict[str, Any], config: dict[str, Any]
                  ) -> list[Path]:
    """FILE.json (and FILE.csv beside it) or FILE.csv alone, each written atomically; the paths written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ValueError(f"results file '{path}' must end in .json or .csv")
    written = []
    if suffix == ".json":
        write_atomic(str(path), to_json(rows, env, config))
        written.append(path)
        path = path.with_suffix(".csv")
    write_atomic(str(path), to_csv(rows, env))
    written.append(path)
    return written


def read_results(path: str | Path) -> tuple[list[Measurement], dict[str, Any], dict[str, Any]]:
    """The rows, environment and config of a JSON results file; ValueError when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
        rows = [Measurement(**r) for r in data["results"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"'{path}' is not a JSON results file written by archgen bench ({type(e).__name__}: {e})")
    return rows, data["environment"], data.get("config", {})
