"""What `archgen profile --latency` and `archgen search --latency/--verify` print from a latency model
(archgen.bench.latency_model), and how they load one. Nothing here imports torch."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

from archgen.render import Table

if TYPE_CHECKING:
    from archgen.bench.latency_model import LatencyModel
    from archgen.design.verify import Verification


@contextlib.contextmanager
def latency_warnings() -> Iterator[None]:
    """A model's mismatches with this machine (LatencyModelWarning), said on stderr as `warning: ...` once
    the block is done."""
    from archgen.bench.latency_model import LatencyModelWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatencyModelWarning)
        yield
    for w in caught:
        if issubclass(w.category, LatencyModelWarning):
            typer.echo(f"warning: {w.message}", err=True)


def load(path: Path) -> "LatencyModel":
    """The model in `path`, its mismatches with this machine said on stderr; a file that is not a usable model
    is a LatencyModelError (exit 2, one paragraph)."""
    from archgen.bench.latency_model import load_model

    with latency_warnings():
        return load_model(path)


def latency_table(spec: object, input_size: Optional[int], path: Path, batch: int) -> Table:
    """Predicted latency per stage and in total (for `archgen profile --latency`); in JSON, the total is
    `predicted_ms`."""
    model = load(path)
    p = model.predict(spec, batch, input_size)
    name = getattr(spec, "name", str(spec))
    t = Table(title=f"predicted latency of {name}, batch {batch}: {model.describe}",
              columns=["stage", "ms", "share"], key="latency")
    for stage, ms in p.per_stage.items():
        t.add(stage, round(ms, 4), f"{ms / p.total_ms:.1%}" if p.total_ms else "")
    t.add("total", round(p.total_ms, 4), "100.0%", rule=True)
    t.notes = [f"{p.units} kernel units, {p.extrapolated} outside the calibrated ranges (extrapolated)",
               f"predicted by the latency model {path}; no model was built"]
    t.data = {"name": name, "model": str(path), "backend": model.backend, "dtype": model.dtype,
              "layout": model.layout, "device": model.doc["device"], "batch": batch, "predicted_ms": p.total_ms,
              "stages": p.per_stage, "units": p.units, "extrapolated": p.extrapolated}
    return t


def extrapolated_note(tally: object) -> list[str]:
    """How many predicted candidates had kernels outside the calibrated ranges (a search's note)."""
    predicted, extrapolated = getattr(tally, "predicted", 0), getattr(tally, "extrapolated", 0)
    if not predicted:
        return []
    return [f"latency predicted for {predicted:,} candidates, {extrapolated:,} with kernels outside the "
            "calibrated ranges (extrapolated)"]


def verify_table(v: "Verification") -> Table:
    """Measured against predicted latency for the front's members and the other candidates checked."""
    t = Table(title=f"{v.space}: predicted latency checked on {v.where}",
              columns=["name", "front", "predicted ms", "measured ms", "error", "dominated"], key="verify")
    for c in v.checked:
        dominated = "" if c.dominated is None else "yes" if c.dominated else "no"
        t.add(c.name, "yes" if c.on_front else "no", round(c.predicted_ms, 4), round(c.measured_ms, 4),
              f"{c.error:+.1%}", dominated)
    t.notes = [v.summary()]
    t.data = {"space": v.space, "where": v.where, "dominated": v.dominated, "front": v.front_size,
              "scale": v.scale, "kendall_tau": v.tau, "checked": [c._asdict() for c in v.checked]}
    return t
