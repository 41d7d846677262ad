"""Lesion sweeps as Veit et al. 2016 ran them (Sec. 4-5, Fig. 3-5): delete k blocks at random, many sets per k,
and see how far the output moves. A residual network is an ensemble of paths, so its output degrades smoothly
as blocks go; a single-path network (VGG, a plain net) has one path, which any deletion breaks.

Each point is the mean, over `sets` random sets of k deletable blocks (`archgen.ensemble.deletable_blocks`,
seeded), of the output's relative change ||f_k(x) - f(x)|| / ||f(x)|| on a batch, and, on images of the
user's own, the share of images whose top-1 class is the unlesioned network's. Blocks are
swapped out in place and put back, so a sweep copies no model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from archgen.ensemble import LesionError, deletable_blocks, deleted_block, replace_block

if TYPE_CHECKING:
    import torch
    import torch.nn as nn
    from matplotlib.figure import Figure

#: Image files an ImageFolder-style directory may hold (torchvision's IMG_EXTENSIONS less the rare ones).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: torchvision's ImageNet normalisation, which the bundled ImageNet specs' weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SweepPoint:
    """k blocks deleted: the output's relative change (mean and spread over the sets) and top-1 agreement."""

    deleted: int
    sets: int
    mean_change: float
    std_change: float
    agreement: Optional[float]  # None without images

    def to_dict(self) -> dict:
        return {"deleted": self.deleted, "sets": self.sets, "mean_relative_change": self.mean_change,
                "std_relative_change": self.std_change, "top1_agreement": self.agreement}


@dataclass(frozen=True)
class Sweep:
    name: str
    candidates: int  # deletable blocks
    points: list[SweepPoint]

    def to_dict(self) -> dict:
        return {"name": self.name, "deletable_blocks": self.candidates,
                "points": [p.to_dict() for p in self.points]}


def lesion_sweep(model: "nn.Module", name: str, x: "torch.Tensor", max_deleted: int, sets: int, seed: int,
                 input_size: int, agreement: bool = False) -> Sweep:
    """Delete 0, 1, ..., max_deleted blocks (at most all deletable ones), `sets` random sets per k (one for
    k = 0), drawn by `random.Random(seed)`; `x` is the batch the output is compared on, and with `agreement`
    (x holds real images) the top-1 agreement is measured too."""
    import torch

    candidates = deletable_blocks(model, input_size)
    if not candidates:
        raise LesionError(f"{name} has no block that can be deleted: every block has a non-identity shortcut or "
                          "changes its input's shape")
    rng = random.Random(seed)
    model.eval()
    with torch.no_grad():
        full = model(x)
        points = []
        for k in range(min(max_deleted, len(candidates)) + 1):
            changes, agreements = [], []
            for _ in range(sets if k else 1):
                cut = run_lesioned(model, rng.sample(candidates, k), x)
                changes.append((torch.linalg.vector_norm(cut - full) /
                                torch.linalg.vector_norm(full).clamp_min(1e-12)).item())
                agreements.append((cut.argmax(1) == full.argmax(1)).float().mean().item())
            points.append(SweepPoint(k, len(changes), _mean(changes), _std(changes),
                                     _mean(agreements) if agreement else None))
    return Sweep(name, len(candidates), points)


def run_lesioned(model: "nn.Module", names: list[str], x: "torch.Tensor") -> "torch.Tensor":
    """The model's output with `names` deleted; the blocks are put back afterwards, whatever happens."""
    removed = {name: replace_block(model, name, deleted_block(model.get_submodule(name))) for name in names}
    try:
        return model(x)
    finally:
        for name, block in removed.items():
            replace_block(model, name, block)


def calibrate_bn(model: "nn.Module", x: "torch.Tensor") -> None:
    """Set every BN's running statistics to those of `x`, so a freshly initialised network normalises as a
    trained one would (its initial statistics, mean 0 and variance 1, normalise nothing)."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: after one batch, exactly its statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def load_images(directory: str, size: int, channels: int) -> "torch.Tensor":
    """The images of an ImageFolder-style directory (DIR/<class>/<image>, or images directly in DIR), resized
    to size x size, scaled to [0, 1] and, for 3 channels, normalised with ImageNet's mean and std."""
    import torch

    files = image_files(directory)
    from PIL import Image, UnidentifiedImageError

    tensors = []
    for path in files:
        try:
            with Image.open(path) as image:
                pixels = image.convert("RGB" if channels == 3 else "L").resize((size, size), Image.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise LesionError(f"{path} is not an image PIL can read: {exc}") from None
        t = torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8).float() / 255
        tensors.append(t.reshape(size, size, -1).permute(2, 0, 1))
    batch = torch.stack(tensors)
    if channels == 3:
        batch = (batch - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    elif channels != 1:
        raise LesionError(f"the network reads {channels} channels; images give 1 (grey) or 3 (RGB)")
    return batch


def image_files(directory: str) -> list[Path]:
    """Image files under `directory` and its class folders, sorted; LesionError when there are none."""
    root = Path(directory)
    if not root.is_dir():
        raise LesionError(f"--data {directory}: no such directory (give a folder of class folders of images, as "
                          "torchvision's ImageFolder reads)")
    files = sorted(p for p in [*root.iterdir(), *(q for d in root.iterdir() if d.is_dir() for q in d.iterdir())]
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LesionError(f"--data {directory} holds no images ({', '.join(IMAGE_SUFFIXES)}), neither directly "
                          "nor in class folders (DIR/<class>/<image>)")
    return files


def sweep_figure(sweeps: list[Sweep], with_agreement: bool) -> "Figure":
    """Relative output change (and top-1 agreement) against blocks deleted, one line per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if with_agreement else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    for sweep in sweeps:
        ks = [p.deleted for p in sweep.points]
        axes[0][0].errorbar(ks, [p.mean_change for p in sweep.points], yerr=[p.std_change for p in sweep.points],
                            marker="o", ms=3, capsize=2, label=f"{sweep.name} ({sweep.candidates} deletable)")
        if with_agreement:
            axes[0][1].plot(ks, [p.agreement for p in sweep.points], marker="o", ms=3, label=sweep.name)
    axes[0][0].set(xlabel="blocks deleted at random", ylabel="relative change of the output",
                   title="Lesion sweep (Veit et al. 2016)")
    axes[0][0].legend(fontsize=8)
    if with_agreement:
        axes[0][1].set(xlabel="blocks deleted at random", ylabel="top-1 agreement with the whole network",
                       ylim=(0, 1.02))
    fig.tight_layout()
    return fig


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _std(values: list[float]) -> float:
    m = _mean(values)
    return (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5
