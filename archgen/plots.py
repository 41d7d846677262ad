"""Figures of the zoo from the analytic counts (nothing is built): params against MACs for many
specs, and per-stage params, MACs and activations for a few. Written as PNG or SVG by the output's
suffix, whole or not at all. matplotlib (the `plot` extra) is imported only here, when asked for."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from archgen.errors import UserError
from archgen.grammar.loader import SpecLike, bundled_names, load_spec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Output formats by suffix.
FORMATS = {".png": "png", ".svg": "svg"}
#: What the per-stage bars show: (Profile/StageProfile attribute, axis label).
STAGE_FIGURES = (("params", "parameters"), ("macs", "MACs (multiply-adds)"), ("acts", "activations"))


def figure_format(path: str | os.PathLike) -> str:
    """'png' or 'svg' from the file name; UserError otherwise (checked before any work)."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"cannot tell the image format of '{path}': name it *.png or *.svg")
    return fmt


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("plots need matplotlib, which is not installed: pip install 'archgen[plot]'") from None


def _family(spec) -> str:
    return spec.doc.block.type or "basic"


def _clusters(points: list[tuple[str, int, int]], tolerance: float = 0.025) -> list[tuple[list[str], int, int]]:
    """Points within `tolerance` decades of each other on both axes share one label (resnet50 and its
    B/C/D variants would otherwise print on top of each other)."""
    import math

    clusters: list[tuple[list[str], int, int]] = []
    for name, macs, params in sorted(points, key=lambda p: (len(p[0]), p[0])):
        for names, x, y in clusters:
            if abs(math.log10(macs / x)) < tolerance and abs(math.log10(params / y)) < tolerance:
                names.append(name)
                break
        else:
            clusters.append(([name], macs, params))
    return clusters


def zoo_figure(specs: Sequence[SpecLike] | None = None, input_size: int | None = None) -> Figure:
    """Params against MACs, log axes, one labelled point per spec, coloured by block family
    (every bundled spec when `specs` is None)."""
    _matplotlib()
    from matplotlib.figure import Figure

    from archgen.complexity import profile

    loaded = [load_spec(s) for s in (bundled_names() if specs is None else specs)]
    if not loaded:
        raise UserError("no specs to plot")
    families = sorted({_family(s) for s in loaded})
    colours = {f: f"C{i % 10}" for i, f in enumerate(families)}
    fig = Figure(figsize=(14, 9), layout="constrained")
    ax = fig.add_subplot()
    points = []
    for spec in loaded:
        p = profile(spec, input_size)
        ax.scatter(p.macs, p.params, color=colours[_family(spec)], s=28, zorder=3)
        points.append((p.name, p.macs, p.params))
    # Labels alternate above and below their points, so neighbours in a crowded band overlap less.
    for i, (names, macs, params) in enumerate(sorted(_clusters(points), key=lambda c: c[1])):
        label = ", ".join(names) if len(names) <= 2 else f"{names[0]} (+{len(names) - 1} alike)"
        ax.annotate(label, (macs, params), fontsize=6, xytext=(4, 3 if i % 2 else -8), textcoords="offset points")
    for family in families:
        ax.scatter([], [], color=colours[family], label=family)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs (multiply-adds) per image" + (f" at {input_size}px" if input_size else
                                                       ", at each spec's input size"))
    ax.set_ylabel("parameters")
    ax.set_title("archgen zoo: parameters against MACs (analytic counts)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="block", fontsize=8)
    return fig


def stages_figure(specs: Sequence[SpecLike], input_size: int | None = None) -> Figure:
    """Per-stage bars (stem, stages, head) of params, MACs and activations, one bar colour per spec."""
    _matplotlib()
    from matplotlib.figure import Figure

    from archgen.complexity import profile

    if not specs:
        raise UserError("name at least one spec for the per-stage bars")
    profiles = [profile(load_spec(s), input_size) for s in specs]
    stage_names = list(dict.fromkeys(st.name for p in profiles for st in p.stages))
    fig = Figure(figsize=(max(7, 1.1 * len(stage_names) * len(profiles) ** 0.5 + 3), 9), layout="constrained")
    axes = fig.subplots(len(STAGE_FIGURES), 1, sharex=True)
    width = 0.8 / len(profiles)
    for ax, (attr, label) in zip(axes, STAGE_FIGURES):
        for k, p in enumerate(profiles):
            values = {st.name: getattr(st, attr) for st in p.stages}
            xs = [i + (k - (len(profiles) - 1) / 2) * width for i, name in enumerate(stage_names) if name in values]
            ax.bar(xs, [values[n] for n in stage_names if n in values], width, label=f"{p.name} ({p.input_size}px)",
                   color=f"C{k % 10}")
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[-1].set_xticks(range(len(stage_names)), stage_names)
    axes[0].set_title("per stage: " + ", ".join(label for _, label in STAGE_FIGURES))
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Render to memory in the format the suffix names, then write the file whole (temp file + rename)."""
    from archgen.render import write_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format=figure_format(path), dpi=150)
    write_atomic(os.fspath(path), buffer.getvalue())
