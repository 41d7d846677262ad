"""What `archgen profile --latency` and `archgen search --latency/--verify` print from a latency model
(archgen.bench.latency_model), and how they load one. Nothing here imports torch."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

from archgen.render import Number, Table, one_format, share

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
    # One number of decimals for the column; csv and json carry the exact ms and the share as a fraction.
    *times, total = one_format([*p.per_stage.values(), p.total_ms])
    for stage, ms in zip(p.per_stage, times):
        t.add(stage, ms, share(ms.value, p.total_ms) if p.total_ms else "")
    t.add("total", total, Number(1.0, "100.0%"), rule=True)
    t.notes = [f"{p.units} kernel units, {p.extrapolated} outside the calibrated ranges (extrapolated)",
               f"predicted by the latency model {path}; no model was built",
               "ms: a pass's lower quartile over interleaved calls, as calibrate and search --verify time "
               "networks (archgen bench prints the median)"]
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
    """Measured against predicted latency for the front's members and the other candidates checked, each with
    its axis values (an other candidate is on no other table, and its name alone does not say which it is)."""
    t = Table(title=f"{v.space}: predicted latency checked on {v.where}",
              columns=["name", "front", "predicted ms", "measured ms", "error", "candidate"], key="verify")
    # the ms of both columns at one number of decimals to people, exact to programs
    both = one_format([ms for c in v.checked for ms in (c.predicted_ms, c.measured_ms)])
    for c, predicted, measured in zip(v.checked, both[::2], both[1::2]):
        # whether it is on the predicted front and, for a member, whether it stays there once measured: one
        # column, so that the table fits 80 columns (JSON keeps on_front and dominated apart)
        front = "no" if not c.on_front else "yes" if c.dominated is None else \
            "dominated" if c.dominated else "kept"
        t.add(c.name, front, predicted, measured, Number(c.error, f"{c.error:+.1%}"),
              ", ".join(f"{label}={value}" for label, value in c.values.items()))
    t.notes = [v.summary()]
    t.data = {"space": v.space, "where": v.where, "dominated": v.dominated, "front": v.front_size,
              "asked": v.asked, "scale": v.scale, "kendall_tau": v.tau,
              "checked": [c._asdict() for c in v.checked]}
    return t
