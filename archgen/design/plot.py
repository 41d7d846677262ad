"""Empirical distribution functions of complexity (Radosavovic et al. 2020, Figs. 3-5 plot EDFs of error;
here of params, MACs and activations): the fraction of a sample at or below each value. Needs the
plot extra (matplotlib)."""

from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import TYPE_CHECKING

from archgen.errors import UserError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOTTED = ("params", "macs", "acts")


def require_matplotlib() -> None:
    """Refuse, before any work, a plot without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot draws with matplotlib, which is not installed; install the plot extra "
                        "(pip install 'archgen[plot]') or leave out --plot") from None


def edf_figure(values: dict[str, array], title: str) -> Figure:
    """One panel per figure, each an EDF on a log axis labelled at 1, 2 and 5 times the powers of ten in
    compact units (matplotlib's own labels every minor tick of an axis spanning under a decade, and they
    print over each other)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from archgen.plots import DPI, log_ticks

    fig = Figure(figsize=(4 * len(PLOTTED), 3.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PLOTTED))
    for ax, name in zip(axes, PLOTTED):
        xs = sorted(values[name])
        n = len(xs)
        ax.step(xs, [(i + 1) / n for i in range(n)], where="post")
        ax.set_xscale("log")
        lo, hi = (xs[0] / 1.05, xs[-1] * 1.05) if xs[0] < xs[-1] else (xs[0] / 2, xs[0] * 2)
        ax.set_xlim(lo, hi)
        log_ticks(ax.xaxis, lo, hi)
        ax.set_xlabel(name)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("cumulative prob.")
    fig.suptitle(f"{title} (n = {len(values[PLOTTED[0]]):,})")
    return fig


def edf_plot(values: dict[str, array], path: Path, title: str) -> None:
    """The EDFs written whole to `path` (its suffix picks the format: .png, .pdf, .svg)."""
    import io

    from archgen.plots import DPI
    from archgen.render import write_atomic

    buffer = io.BytesIO()
    edf_figure(values, title).savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=DPI)
    write_atomic(os.fspath(path), buffer.getvalue())
