"""Every figure archgen draws is legible at the size it is written: no text prints over other text, and the
zoo's labels stay inside their axes, clear of the points, each of its specs named once."""

from __future__ import annotations

import itertools
from array import array

import pytest

pytest.importorskip("matplotlib")

from archgen.design.plot import edf_figure  # noqa: E402
from archgen.plots import _clusters, compact, stages_figure, zoo_figure  # noqa: E402


def all_axes(fig) -> list:
    """The figure's axes and their insets (which matplotlib keeps as children of their axes)."""
    return [a for ax in fig.axes for a in (ax, *ax.child_axes)]


def texts(fig) -> list:
    """Every text of the figure as drawn: titles, axis labels, legends, labels, and the tick labels of the
    ticks in view (matplotlib keeps labels for ticks outside the view, visible but never drawn)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    tick_labels, in_view = set(), []
    for ax in all_axes(fig):
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):
                    tick_labels.add(id(label))
                    if label.get_visible() and label.get_text().strip() and lo <= tick.get_loc() <= hi:
                        in_view.append(label)
    others = {id(t): t for t in fig.findobj(Text) if id(t) not in tick_labels and t.get_visible()
              and t.get_text().strip()}
    return [*others.values(), *in_view]


def text_box(text, renderer):
    """The box of a text's letters: an annotation's own extent also spans its leader line's bounding box, which a
    diagonal leader makes far larger than the line (the leaders are checked apart, as segments)."""
    from matplotlib.text import Text

    return Text.get_window_extent(text, renderer)


def overlapping(fig) -> list[tuple[str, str]]:
    drawn = texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), text_box(t, renderer)) for t in drawn]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


@pytest.fixture(scope="module")
def zoo():
    """The zoo figure drawn once, as saving it draws it: an annotation's text is placed at draw time, so a
    test that measured an undrawn figure (one run alone) would read labels where they are not printed."""
    fig = zoo_figure()
    fig.canvas.draw()
    return fig


def test_no_text_of_the_zoo_prints_over_another(zoo):
    assert overlapping(zoo) == []


def test_every_spec_of_the_zoo_is_named_once(zoo):
    from archgen.complexity import profile
    from archgen.grammar.loader import bundled_names, load_spec

    labels = [t.get_text() for ax in all_axes(zoo) for t in ax.texts]
    profiles = [profile(load_spec(name)) for name in bundled_names()]
    clusters = _clusters([(p.name, p.macs, p.params) for p in profiles])
    assert len(labels) == len(set(labels)) == len(clusters)
    named = {part.split(" (+")[0] for label in labels for part in label.split(", ")}
    assert named == {names[0] for names, _, _ in clusters} | {n for names, _, _ in clusters if len(names) == 2
                                                              for n in names}


def test_the_zoo_labels_stay_in_their_axes_and_off_the_points(zoo):
    renderer = zoo.canvas.get_renderer()
    for ax in all_axes(zoo):
        frame = ax.get_window_extent(renderer)
        dots = ax.transData.transform([offset for coll in ax.collections for offset in coll.get_offsets()])
        for label in ax.texts:
            box = text_box(label, renderer)
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, \
                label.get_text()
            assert not any(box.contains(x, y) for x, y in dots), label.get_text()


def test_no_leader_line_crosses_another_label(zoo):
    """A label moved away from its point is joined to it by a leader line, which passes by every other label."""
    from archgen.plots import _crosses, _nearest

    renderer = zoo.canvas.get_renderer()
    leaders = 0
    for ax in all_axes(zoo):
        boxes = {id(t): text_box(t, renderer) for t in ax.texts}
        for label in ax.texts:
            if getattr(label, "arrow_patch", None) is None:
                continue
            point = tuple(ax.transData.transform(label.xy))
            end = _nearest(boxes[id(label)], point)
            leaders += 1
            crossed = [t.get_text() for t in ax.texts if t is not label and _crosses(point, end, boxes[id(t)])]
            assert crossed == [], label.get_text()
    assert leaders > 0  # the zoo is crowded enough to need some


def test_the_crowded_region_is_enlarged(zoo):
    """ResNet-50 and its variants sit among 30 specs between 2G and 10G MACs: they are named in an inset."""
    (main, inset) = all_axes(zoo)
    assert any(t.get_text().startswith("resnet50 (+7 alike)") for t in inset.texts)
    assert not any(t.get_text().startswith("resnet50 (") for t in main.texts)


def test_edf_ticks_do_not_print_over_each_other():
    """A sample spanning under a decade, where matplotlib's own log axis labelled every minor tick."""
    values = {"params": array("d", [1.7e6, 3e6, 9e6, 2.6e7]), "macs": array("d", [3.1e8, 8e8, 2e9, 4.05e9]),
              "acts": array("d", [3.2e6, 5e6, 1.4e7])}
    fig = edf_figure(values, "resnet_budget")
    assert overlapping(fig) == []
    for ax in fig.axes:
        shown = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
        assert len(shown) >= 2
    assert [t.get_text() for t in fig.axes[1].xaxis.get_ticklabels()] == ["500M", "1G", "2G"]


def test_stage_bars_keep_the_legend_off_the_bars():
    fig = stages_figure(["resnet50", "resnext50_32x4d", "densenet121", "vgg16"])
    assert overlapping(fig) == []
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert not any(legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[-1].xaxis.get_ticklabels()] == \
        ["stem", "layer1", "layer2", "layer3", "layer4", "layer5", "head"]


@pytest.mark.parametrize("with_agreement", [False, True])
def test_the_lesion_curves_print_no_text_over_another(with_agreement):
    """README's sweep (ResNet-110 against Plain-56, 10 blocks, the spreads it printed), with and without the
    top-1 agreement panel."""
    from archgen.ensemble.lesion_sweep import Sweep, SweepPoint, sweep_figure

    def sweep(name, candidates, changes):
        return Sweep(name, candidates, [SweepPoint(k, 10, m, sd, 1 - m / 2 if with_agreement else None)
                                        for k, (m, sd) in enumerate(changes)])

    resnet = sweep("resnet110_cifar", 52, [(0, 0), (0.07, 0.04), (0.12, 0.03), (0.18, 0.07), (0.18, 0.03),
                                           (0.21, 0.05), (0.3, 0.04), (0.28, 0.06), (0.33, 0.05), (0.32, 0.05),
                                           (0.35, 0.06)])
    plain = sweep("plain56_cifar", 25, [(0, 0), (0.32, 0.09), (0.42, 0.18), (0.5, 0.41), (0.56, 0.4), (0.51, 0.23),
                                        (0.7, 0.86), (0.37, 0.15), (0.46, 0.31), (0.52, 0.28), (0.32, 0.05)])
    assert overlapping(sweep_figure([resnet, plain], with_agreement)) == []


@pytest.mark.parametrize("value,shown", [(2e9, "2G"), (1.5e7, "15M"), (500, "500"), (2e5, "200K"), (1e12, "1T")])
def test_ticks_read_in_compact_units(value, shown):
    assert compact(value) == shown
