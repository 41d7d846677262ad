"""Figures of the zoo from the analytic counts (nothing is built): params against MACs for many
specs, and per-stage params, MACs and activations for a few. Written as PNG or SVG by the output's
suffix, whole or not at all. matplotlib (the `plot` extra) is imported only here, when asked for."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

from archgen.errors import UserError
from archgen.grammar.loader import SpecLike, bundled_names, load_spec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

#: Output formats by suffix.
FORMATS = {".png": "png", ".svg": "svg"}
#: Resolution every figure is drawn and saved at (labels are placed in its pixels).
DPI = 150
#: The zoo's marker diameter and label size, in points.
ZOO_MARKER = 5.3
ZOO_FONT = 6.5
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


def compact(value: float, _position: object = None) -> str:
    """A tick label people read at a glance: 2e9 -> '2G', 1.5e7 -> '15M' (a matplotlib tick formatter)."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_ticks(axis, lo: float, hi: float) -> None:
    """Label a log axis at 1, 2 and 5 times the powers of ten in [lo, hi] (every integer multiple when that
    gives fewer than two), in compact units; minor ticks unlabelled. matplotlib's default labels every
    minor tick of an axis spanning under a decade, and they print over each other."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks: list[float] = []
    for subs in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in subs if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 2:
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(compact))
    axis.set_minor_formatter(NullFormatter())


#: Distances (points) from its point at which a label is tried, nearest first; beyond LEADER_FROM a leader
#: line joins them.
LABEL_RADII = (2, 6, 11, 18, 26, 36, 48, 62, 78, 96, 118, 144, 175)
#: Directions tried at each distance, in degrees (right of the point first, then above, below, left).
LABEL_ANGLES = (0, 15, -15, 30, -30, 45, -45, 60, -60, 75, -75, 90, -90, 105, -105, 120, -120, 135, -135, 150, -150,
                165, -165, 180)
#: Beyond this distance (points) a label gets a leader line to its point.
LEADER_FROM = 12
#: Clear space (points) kept between a label and other labels, points and lines.
LABEL_GAP = 1.5
#: Most an inset may magnify the crowded region, and the largest share of the axes it may take.
INSET_ZOOM = 3.0
INSET_SHARE = 0.5
#: How far (decades) the enlarged region reaches beyond the labels that found no room.
INSET_MARGIN = 0.2


class Placed(NamedTuple):
    """A label's place: its text and point (data), its box and leader end (display; no leader when None)."""

    text: str
    x: float
    y: float
    box: Bbox
    leader: tuple[float, float] | None


def find_places(ax: Axes, labels: list[tuple[str, float, float]], markers: list[tuple[float, float]],
                avoid: list[Bbox] = (), lines: list[tuple] = ()) -> tuple[list[Placed], list[int]]:
    """A place for each (text, x, y) of `ax` whose box overlaps no other label, no marker (`markers`: every
    point drawn, in data), nothing in `avoid` (display boxes: the legend, an inset) and no line in `lines`,
    inside the axes: the nearest free one among LABEL_RADII x LABEL_ANGLES, with a leader line, crossing
    no point, label or leader, when it had to move away. Crowded points choose first. Returns the places and
    the indices of the labels that found none. The figure's layout must be final (drawn once, layout engine
    off): places are measured in its pixels."""
    import math

    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72  # pixels per point
    frame = ax.get_window_extent(renderer).padded(-2 * px)
    r, gap, reach = ZOO_MARKER / 2 * px, LABEL_GAP * px, (ZOO_MARKER / 2 + LEADER_FROM) * px
    dots = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in ax.transData.transform(markers)]
    at = ax.transData.transform([(x, y) for _, x, y in labels])
    boxes: list[Bbox] = list(avoid)
    leaders = list(lines)
    sizes = []
    for text, _, _ in labels:
        probe = ax.text(0, 0, text, fontsize=ZOO_FONT)
        sizes.append(probe.get_window_extent(renderer).size)
        probe.remove()
    crowd = [sum(math.dist(p, q) < 40 * px for q in at) for p in at]
    placed, missing = [], []
    for i in sorted(range(len(labels)), key=lambda i: (-crowd[i], at[i][0])):
        point, (w, h) = tuple(at[i]), sizes[i]
        # its own cluster's markers lie where its leader starts
        crossable = [d for d in dots if math.dist(point, (d.x0 + r, d.y0 + r)) > 3 * r]
        for box in _places(point, w, h, r, px):
            padded = box.padded(gap)
            if not _inside(box, frame) or any(padded.overlaps(b) for b in boxes + dots) or \
                    any(_crosses(a, b, padded) for a, b in leaders):
                continue
            end = _nearest(box, point)
            far = math.dist(point, end) > reach
            if far and (any(_crosses(point, end, b) for b in boxes + crossable) or
                        any(_intersect(point, end, a, b) for a, b in leaders)):
                continue
            boxes.append(box)
            if far:
                leaders.append((point, end))
            placed.append(Placed(labels[i][0], labels[i][1], labels[i][2], box, end if far else None))
            break
        else:
            missing.append(i)
    return placed, missing


def draw_labels(ax: Axes, placed: list[Placed]) -> None:
    px = ax.figure.dpi / 72
    for label in placed:
        cx, cy = ax.transData.transform((label.x, label.y))
        box, end = label.box, label.leader
        leader = None if end is None else dict(
            arrowstyle="-", lw=0.5, color="0.55", shrinkA=0, shrinkB=ZOO_MARKER / 2,
            relpos=((end[0] - box.x0) / box.width, (end[1] - box.y0) / box.height))  # from the label's near edge
        ax.annotate(label.text, (label.x, label.y), xytext=((box.x0 - cx) / px, (box.y0 - cy) / px),
                    textcoords="offset points", ha="left", va="bottom", fontsize=ZOO_FONT, arrowprops=leader)


def _places(centre: tuple[float, float], w: float, h: float, r: float, px: float) -> Iterator[Bbox]:
    """Boxes of a w x h label around a point of radius r, nearest first: at each distance and direction, the
    box's side facing the point at that distance (a label right of its point starts there)."""
    import math

    from matplotlib.transforms import Bbox

    for radius in LABEL_RADII:
        for angle in LABEL_ANGLES:
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            x0 = centre[0] + (r + radius * px) * c - w * (1 - c) / 2
            y0 = centre[1] + (r + radius * px) * s - h * (1 - s) / 2
            yield Bbox.from_extents(x0, y0, x0 + w, y0 + h)


def _inside(box: Bbox, frame: Bbox) -> bool:
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def _nearest(box: Bbox, point: tuple[float, float]) -> tuple[float, float]:
    """The point of `box` nearest `point` (where a leader line meets its label)."""
    return min(max(point[0], box.x0), box.x1), min(max(point[1], box.y0), box.y1)


def _crosses(a: tuple[float, float], b: tuple[float, float], box: Bbox) -> bool:
    """Whether the segment a-b passes through `box` (Liang-Barsky: the parameter ranges where the segment
    lies within each slab of the box, intersected)."""
    lo, hi = 0.0, 1.0
    for start, delta, low, high in ((a[0], b[0] - a[0], box.x0, box.x1), (a[1], b[1] - a[1], box.y0, box.y1)):
        if delta == 0:
            if not low < start < high:
                return False
            continue
        t0, t1 = sorted(((low - start) / delta, (high - start) / delta))
        lo, hi = max(lo, t0), min(hi, t1)
    return lo < hi


def _intersect(p1: tuple[float, float], p2: tuple[float, float], q1: tuple[float, float],
               q2: tuple[float, float]) -> bool:
    """Whether segments p1-p2 and q1-q2 cross (touching at an end does not count)."""
    def side(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    return side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0


def _scatter(ax: Axes, points: list[tuple[str, int, int, str]], lo: tuple[float, float],
             hi: tuple[float, float]) -> None:
    """The points (name, macs, params, colour) on log axes spanning lo to hi, ticked in compact units."""
    for _, macs, params, colour in points:
        ax.scatter(macs, params, color=colour, s=ZOO_MARKER ** 2, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    log_ticks(ax.xaxis, lo[0], hi[0])
    log_ticks(ax.yaxis, lo[1], hi[1])
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def _inset(ax: Axes, region: tuple[tuple[float, float], tuple[float, float]], markers: list[tuple[float, float]],
           avoid: list[Bbox]) -> Axes | None:
    """An inset enlarging `region` ((x0, y0), (x1, y1) in data) as much as it can (up to INSET_ZOOM, at most
    INSET_SHARE of the axes) in a corner of `ax` that covers no marker and nothing in `avoid`; None when
    no corner is free even at 1.5x."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    (x0, y0), (x1, y1) = ax.transData.transform(region)
    most = min(INSET_ZOOM, INSET_SHARE * frame.width / (x1 - x0), INSET_SHARE * frame.height / (y1 - y0))
    dots = ax.transData.transform(markers)
    for zoom in (most, most * 0.85, most * 0.7, most * 0.6, 1.5):
        w, h = zoom * (x1 - x0) / frame.width, zoom * (y1 - y0) / frame.height  # axes fractions
        for fx, fy in ((0.99 - w, 0.04), (0.06, 0.99 - h), (0.99 - w, 0.99 - h), (0.06, 0.04)):
            # with room for the inset's tick labels below and left of it
            outer = Bbox.from_bounds(frame.x0 + (fx - 0.05) * frame.width, frame.y0 + (fy - 0.04) * frame.height,
                                     (w + 0.05) * frame.width, (h + 0.04) * frame.height)
            if 1.5 <= zoom <= most and fx >= 0.05 and fy >= 0.035 and \
                    not any(outer.contains(*d) for d in dots) and not any(outer.overlaps(b) for b in avoid):
                return ax.inset_axes((fx, fy, w, h))
    return None


def zoo_figure(specs: Sequence[SpecLike] | None = None, input_size: int | None = None) -> Figure:
    """Params against MACs, log axes, one point per spec coloured by block family (every bundled spec when
    `specs` is None), each labelled where its label overlaps nothing (specs that nearly coincide share one).
    Where labels cannot all find room, the crowded region is enlarged in an inset and labelled there; a label
    that finds room in neither is left out rather than printed over another."""
    import math

    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

    from archgen.complexity import profile

    loaded = [load_spec(s) for s in (bundled_names() if specs is None else specs)]
    if not loaded:
        raise UserError("no specs to plot")
    families = sorted({_family(s) for s in loaded})
    colours = {f: f"C{i % 10}" for i, f in enumerate(families)}
    fig = Figure(figsize=(14, 9), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure the labels with
    ax = fig.add_subplot()
    points = []
    for spec in loaded:
        p = profile(spec, input_size)
        points.append((p.name, p.macs, p.params, colours[_family(spec)]))
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    # room around the points for their labels, more to the right (labels start right of their points)
    _scatter(ax, points, (min(xs) / 1.6, min(ys) / 1.6), (max(xs) * 2.5, max(ys) * 1.6))
    for family in families:
        ax.scatter([], [], color=colours[family], label=family)
    ax.set_xlabel("MACs (multiply-adds) per image" + (f" at {input_size}px" if input_size else
                                                       ", at each spec's input size"))
    ax.set_ylabel("parameters")
    ax.set_title("archgen zoo: parameters against MACs (analytic counts)")
    legend = ax.legend(title="block", fontsize=8, loc="upper left")
    fig.draw_without_rendering()  # settle the layout, then freeze it: labels are placed in its pixels
    fig.set_layout_engine("none")
    labels = [(", ".join(names) if len(names) <= 2 else f"{names[0]} (+{len(names) - 1} alike)", x, y)
              for names, x, y in _clusters([p[:3] for p in points])]
    markers = [(p[1], p[2]) for p in points]
    avoid = [legend.get_window_extent()]
    placed, missing = find_places(ax, labels, markers, avoid)
    if missing:
        # enlarge the region of the labels that found no room, with its neighbours (INSET_MARGIN decades round)
        logs = [(math.log10(labels[i][1]), math.log10(labels[i][2])) for i in missing]
        lo = (10 ** (min(x for x, _ in logs) - INSET_MARGIN), 10 ** (min(y for _, y in logs) - INSET_MARGIN))
        hi = (10 ** (max(x for x, _ in logs) + INSET_MARGIN), 10 ** (max(y for _, y in logs) + INSET_MARGIN))
        inset = _inset(ax, (lo, hi), markers, avoid)
        if inset is not None:
            def within(x: float, y: float) -> bool:
                return lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]

            edge = 10 ** 0.03  # markers on the region's border are drawn whole
            _scatter(inset, [p for p in points if within(p[1], p[2])], (lo[0] / edge, lo[1] / edge),
                     (hi[0] * edge, hi[1] * edge))
            inset.tick_params(labelsize=7)
            indicator = ax.indicate_inset_zoom(inset, edgecolor="0.4")
            fig.draw_without_rendering()  # decides which connectors show
            # the connectors join a corner of the inset (coords1) to one of the region (coords2, data)
            lines = [(tuple(c.coords1.transform(c.xy1)), tuple(c.coords2.transform(c.xy2)))
                     for c in indicator.connectors if c.get_visible()]
            draw_labels(inset, find_places(inset, [lb for lb in labels if within(lb[1], lb[2])], markers)[0])
            placed, _ = find_places(ax, [lb for lb in labels if not within(lb[1], lb[2])], markers,
                                    avoid + [inset.get_tightbbox(fig.canvas.get_renderer())], lines)
    draw_labels(ax, placed)
    return fig


def stages_figure(specs: Sequence[SpecLike], input_size: int | None = None) -> Figure:
    """Per-stage bars (stem, stages, head) of params, MACs and activations, one bar colour per spec."""
    _matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from archgen.complexity import profile

    if not specs:
        raise UserError("name at least one spec for the per-stage bars")
    profiles = [profile(load_spec(s), input_size) for s in specs]
    # every network's stages run stem, layer1, ..., head: the deepest one's order places them all
    deepest = max(profiles, key=lambda p: len(p.stages))
    stage_names = list(dict.fromkeys(st.name for p in (deepest, *profiles) for st in p.stages))
    fig = Figure(figsize=(max(7, 1.1 * len(stage_names) * len(profiles) ** 0.5 + 3), 9), dpi=DPI,
                 layout="constrained")
    axes = fig.subplots(len(STAGE_FIGURES), 1, sharex=True)
    width = 0.8 / len(profiles)
    for ax, (attr, label) in zip(axes, STAGE_FIGURES):
        for k, p in enumerate(profiles):
            values = {st.name: getattr(st, attr) for st in p.stages}
            xs = [i + (k - (len(profiles) - 1) / 2) * width for i, name in enumerate(stage_names) if name in values]
            ax.bar(xs, [values[n] for n in stage_names if n in values], width, label=f"{p.name} ({p.input_size}px)",
                   color=f"C{k % 10}")
        ax.set_ylabel(label)
        ax.yaxis.set_major_formatter(FuncFormatter(compact))  # '15M', not '1.5' under a '1e7'
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(stage_names)), stage_names)
    fig.suptitle("per stage: " + ", ".join(label for _, label in STAGE_FIGURES))
    # below the panels, where no bar can run into it
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(profiles), 4),
               fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Render to memory in the format the suffix names, then write the file whole (temp file + rename)."""
    from archgen.render import write_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format=figure_format(path), dpi=DPI)
    write_atomic(os.fspath(path), buffer.getvalue())
