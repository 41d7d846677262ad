"""Empirical distribution functions of complexity (Radosavovic et al. 2020, Figs. 3-5 plot EDFs of error;
here of params, MACs and activations): the fraction of a sample at or below each value. Needs the
plot extra (matplotlib)."""

from __future__ import annotations

import os
from array import array
from pathlib import Path

from archgen.errors import UserError

PLOTTED = ("params", "macs", "acts")


def require_matplotlib() -> None:
    """Refuse, before any work, a plot without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot draws with matplotlib, which is not installed; install the plot extra "
                        "(pip install 'archgen[plot]') or leave out --plot") from None


def edf_plot(values: dict[str, array], path: Path, title: str) -> None:
    """One panel per figure, each an EDF on a log axis, written whole to `path` (its suffix picks the
    format: .png, .pdf, .svg)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2), constrained_layout=True)
    for ax, name in zip(axes, PLOTTED):
        xs = sorted(values[name])
        n = len(xs)
        ax.step(xs, [(i + 1) / n for i in range(n)], where="post")
        ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("cumulative prob.")
    fig.suptitle(f"{title} (n = {len(values[PLOTTED[0]]):,})")
    tmp = path.with_name(f".archgen-{os.getpid()}-{path.name}")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
