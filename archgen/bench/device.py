"""Where `archgen bench` and `archgen calibrate` time: this machine's GPU or CPU, or a Ray cluster's.

One rule for both commands: --gpu insists on a GPU (an error where there is none), --cpu asks for the
CPU, and neither takes the GPU when there is one, saying which it took, since a CPU figure read as a GPU
one (or the reverse) is off by orders of magnitude. Torch and Ray are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from archgen.errors import UserError


@dataclass
class Placement:
    """The device type the jobs run on, the note saying why when it was not asked for, and the Ray cluster
    they run on (None: this process), which `close` leaves as found."""

    device: str  # "cuda" or "cpu"
    note: Optional[str] = None
    ray: Optional[str] = None  # a line saying which cluster, how big
    started_ray: bool = False

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"

    def close(self) -> None:
        """Shut down a Ray this placement started; a Ray the process had already joined stays up."""
        if self.started_ray:
            import ray

            ray.shutdown()
            self.started_ray = False


def choose_device(gpu: Optional[bool], cuda_available: bool, missing: str) -> tuple[str, Optional[str]]:
    """The device type, and a note when neither --gpu nor --cpu chose it; UserError(missing) when --gpu
    insists and there is no GPU."""
    if gpu and not cuda_available:
        raise UserError(missing)
    if gpu is None:
        return ("cuda", "timing on the GPU (found one)") if cuda_available else \
            ("cpu", "timing on the CPU: no CUDA GPU found (give --gpu to insist on one)")
    return ("cuda" if gpu else "cpu"), None


def require_device(device: str, remedy: str) -> None:
    """UserError, ending in `remedy`, where `device` is 'cuda' and torch sees no CUDA GPU here (what a model
    calibrated on a GPU meets on a laptop)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"this asks for the CUDA GPU, but torch {torch.__version__} sees none here; {remedy}")


def place(gpu: Optional[bool], use_ray: bool = False, ray_address: Optional[str] = None) -> Placement:
    """The device of this machine, or (use_ray) of the Ray cluster at `ray_address` (joined, or a local Ray
    started; RayUnavailable when it cannot be)."""
    if not use_ray:
        import torch

        device, note = choose_device(gpu, torch.cuda.is_available(),
                                     "--gpu asks for a CUDA GPU, but torch sees none here "
                                     f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}). Run on "
                                     "a machine with an NVIDIA GPU and a CUDA build of torch, or time on this CPU "
                                     "with --cpu.")
        return Placement(device, note)
    from archgen.bench import ray_sweep

    where, started = ray_sweep.connect(ray_address)
    placement = Placement("cpu", None, where, started)
    try:
        placement.device, placement.note = choose_device(gpu, ray_sweep.cluster_gpus() >= 1,
                                                         f"--gpu asks for GPUs, but {where}.")
    except UserError:
        placement.close()
        raise
    return placement
