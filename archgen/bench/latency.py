"""Latency tables: each distinct block configuration timed once on a device, and networks' latency
predicted from them with no model built.

A network is cut into segments: its stem, each block (`layerI.J`) and its head. A segment's
configuration is what determines its cost and nothing else: its input shape and its layers' ops, output
shapes, params and MACs, as `archgen.profile` counts them (names left out, so that the same block in two
specs, or twice in one, is one configuration). Calibrating times every configuration once per condition
(backend, dtype, layout, batch size), however many specs hold it, inside whole forward passes of a spec
that holds it; predicting sums the segments' times.

This reads only `archgen.profile`'s layer list and the stable module names (`stem`, `layerI[J]`, `head`),
so it does not depend on how blocks are written.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from archgen.bench.timing import segment_times, timer_name
from archgen.errors import UserError

FORMAT = "archgen-latency-table/1"
#: Backends a table can hold: a sum of blocks models eager and fused; torch.compile fuses across blocks.
BACKENDS = ("eager", "fused")


#: Rounds of timed passes per batch size; a segment keeps its lowest round median.
ROUNDS = 3
#: Networks built at once and timed interleaved by a local calibration (more would hold more weights).
INTERLEAVED = 8


class LatencyTableError(UserError):
    """A table that cannot answer: unreadable, or lacking a configuration or condition a prediction needs
    (then `lacking` says which, without the advice on calibrating it, for callers that advise otherwise)."""

    def __init__(self, message: str, lacking: Optional[str] = None) -> None:
        super().__init__(message)
        self.lacking = lacking


class LatencyTableWarning(UserWarning):
    """A table made on another device or with other versions than the ones at hand."""


@dataclass(frozen=True)
class Segment:
    """A stem, block or head of one network: its name there, its stage, input shape and configuration key."""

    name: str
    stage: str
    input: tuple[int, int, int]
    layers: tuple[tuple[str, tuple[int, ...], int, int], ...]

    @property
    def kind(self) -> str:
        return self.stage if self.stage in ("stem", "head") else "block"

    @property
    def key(self) -> str:
        text = json.dumps([self.kind, self.input, self.layers], separators=(",", ":"))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        c, h, w = self.input
        oc, oh, ow = self.layers[-1][1]
        return (f"{self.name} ({self.kind}, {c}x{h}x{w} -> {oc}x{oh}x{ow}, {len(self.layers)} layers, "
                f"{sum(layer[3] for layer in self.layers):,} MACs)")


def segments(profile: Any, channels: int = 3) -> list[Segment]:
    """The stem, blocks and head of a profiled network, in order, each with its input shape."""
    groups: dict[str, list] = {}
    for layer in profile.layers:
        parts = layer.name.split(".")
        groups.setdefault(".".join(parts[:2]) if parts[0].startswith("layer") else parts[0], []).append(layer)
    shape = (channels, profile.input_size, profile.input_size)
    out = []
    for name, layers in groups.items():
        out.append(Segment(name, name.split(".")[0], shape,
                           tuple((x.op, tuple(x.out), x.params, x.macs) for x in layers)))
        shape = tuple(layers[-1].out)
    return out


def condition(backend: str, dtype: str, channels_last: bool, batch: int) -> str:
    """The key of one measuring condition in a table, such as 'fused/float32/nchw/b8'."""
    return f"{backend}/{dtype}/{'channels_last' if channels_last else 'nchw'}/b{batch}"


def module_of(model: Any, segment: Segment) -> Any:
    """The module of a built (or fused) network that computes the segment."""
    if segment.kind != "block":
        return getattr(model, segment.name)
    stage, index = segment.name.split(".")
    return getattr(model, stage)[int(index)]


@dataclass
class CalibrationJob:
    """The segments of one spec to time on one backend, dtype and layout, at each batch size."""

    #: A spec name or path, or a plain spec mapping (a design space's sampled candidate).
    spec: str | dict
    backend: str
    dtype: str
    channels_last: bool
    batch_sizes: list[int]
    segments: list[Segment]
    image_size: Optional[int] = None


@dataclass
class SegmentedNetwork:
    """A job's network built on its device, cut into its segments' modules, with one input per batch size:
    ready to be timed pass after pass, interleaved with other networks' passes (time_interleaved)."""

    job: CalibrationJob
    device: str
    every: list[Segment]
    modules: list
    inputs: dict[int, Any]

    def pass_times(self, batch: int, cpu_time: bool) -> list[float]:
        """Ms of each segment in one forward pass at this batch size."""
        return segment_times(self.modules, self.inputs[batch], self.device, cpu_time)[0]


def segmented(job: CalibrationJob, device: str, cpu_time: bool = False) -> SegmentedNetwork:
    """The job's network, checked to compute its output when its stem, blocks and head run in order."""
    import torch

    import archgen
    from archgen.bench.runner import make_backend

    dtype = getattr(torch, job.dtype)
    spec = archgen.load_spec(job.spec)
    every = segments(archgen.profile(spec, job.image_size), spec.doc.input.channels)
    model = archgen.build(spec, device=device).eval().to(dtype)
    if job.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = make_backend(job.backend, model, device)
    modules = [module_of(model, seg) for seg in every]
    inputs = {}
    with torch.inference_mode():
        for batch in job.batch_sizes:
            x = torch.randn(batch, *every[0].input, device=device, dtype=dtype)
            if job.channels_last:
                x = x.to(memory_format=torch.channels_last)
            _, y = segment_times(modules, x, device, cpu_time)
            if not torch.allclose(y.float(), model(x).float(), rtol=1e-3, atol=1e-3):
                raise RuntimeError(f"{spec.name}: stem, blocks and head run in order do not give the network's "
                                   "output; its forward does more than chain them, so its blocks cannot be timed")
            inputs[batch] = x
    return SegmentedNetwork(job, device, every, modules, inputs)


def time_segments(job: CalibrationJob, device: str, warmup: int, reps: int, cpu_time: bool = False,
                  rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    """Milliseconds of each of the job's segments (key -> condition -> ms), timed by time_interleaved: what
    one Ray task runs for one job."""
    return time_interleaved([segmented(job, device, cpu_time)], warmup, reps, cpu_time, rounds)[0]


def time_interleaved(nets: list[SegmentedNetwork], warmup: int, reps: int, cpu_time: bool = False,
                     rounds: int = ROUNDS, calls: Optional[dict[Any, Callable[[], float]]] = None, seed: int = 0
                     ) -> tuple[dict[str, dict[str, float]], dict[Any, float]]:
    """Each network's segments timed where they run: inside whole forward passes of their network, so that a
    block meets the caches a real pass leaves it (a block timed alone, its weights hot, runs about a tenth
    faster on a 2-core CPU). Returns key -> condition -> ms, and the median ms of each of `calls` (whole
    networks the latency benchmark measures against the prediction: each returns the ms of one call).

    Interleaved: every repetition runs one pass of each network at each batch size and one of each call, in
    an order shuffled anew, so that all of them meet the same moments of the machine (a shared VM's speed
    drifts by up to 1.5x within seconds, and configurations timed one network after another would carry
    it into each other's figures). Over `rounds` rounds of `reps` repetitions a segment keeps its lowest
    median: a round that a busy spell slowed throughout is outvoted, not averaged in. With cpu_time (CPU
    only; the caller sets one torch thread) the clock is the process's CPU time, which leaves out the time
    a shared machine gives other processes."""
    import random
    import statistics

    import torch

    calls = calls or {}
    work: list[tuple[int, Any]] = ([(i, batch) for i, net in enumerate(nets) for batch in net.job.batch_sizes]
                                   + [(-1, key) for key in calls])
    rng = random.Random(seed)
    best: dict[str, dict[str, float]] = {}
    whole: dict[Any, float] = {}
    with torch.inference_mode():
        for _ in range(rounds):
            passes: dict[tuple[int, Any], list] = {}
            for rep in range(warmup + reps):
                rng.shuffle(work)
                for i, what in work:
                    timed = nets[i].pass_times(what, cpu_time) if i >= 0 else calls[what]()
                    if rep >= warmup:
                        passes.setdefault((i, what), []).append(timed)
            for (i, what), timed in passes.items():
                if i >= 0:
                    keep_medians(best, nets[i].job, nets[i].every, what, timed)
                else:
                    whole[what] = min(whole.get(what, float("inf")), statistics.median(timed))
    return best, whole


def keep_medians(best: dict[str, dict[str, float]], job: CalibrationJob, every: list[Segment], batch: int,
                 passes: list[list[float]]) -> None:
    """Each wanted segment's median over these passes into `best` (key -> condition -> ms), where it is lower
    than the one kept."""
    import statistics

    wanted = {seg.key for seg in job.segments}
    cond = condition(job.backend, job.dtype, job.channels_last, batch)
    for i, seg in enumerate(every):
        if seg.key in wanted:
            median = statistics.median(times[i] for times in passes)
            kept = best.setdefault(seg.key, {})
            kept[cond] = min(kept.get(cond, median), median)


def plan_calibration(specs: Iterable[str], backends: list[str], dtypes: list[str], layouts: list[bool],
                     batch_sizes: list[int], image_size: Optional[int] = None
                     ) -> tuple[list[CalibrationJob], dict[str, dict[str, Any]]]:
    """The jobs that time each distinct configuration once, and the table's entries to fill: key -> record."""
    import archgen

    entries: dict[str, dict[str, Any]] = {}
    per_spec: dict[int, list[Segment]] = {}  # by position: a sampled candidate is a mapping, unhashable
    refs = list(specs)
    for i, ref in enumerate(refs):
        spec = archgen.load_spec(ref)
        prof = archgen.profile(spec, image_size)
        for seg in segments(prof, spec.doc.input.channels):
            if seg.key not in entries:
                entries[seg.key] = {"kind": seg.kind, "input": list(seg.input),
                                    "layers": [[op, list(out), params, macs] for op, out, params, macs in seg.layers],
                                    "example": f"{spec.name} {seg.name}", "ms": {}}
                per_spec.setdefault(i, []).append(seg)
    jobs = [CalibrationJob(refs[i], backend, dtype, channels_last, list(batch_sizes), segs, image_size)
            for i, segs in per_spec.items() for backend in backends for dtype in dtypes for channels_last in layouts]
    return jobs, entries


def calibrate(specs: list[str], device: str, backends: list[str], dtypes: list[str], layouts: list[bool],
              batch_sizes: list[int], warmup: int, reps: int, image_size: Optional[int] = None,
              run_jobs: Optional[Callable[[list[CalibrationJob]], Iterable[tuple[CalibrationJob, dict]]]] = None,
              on_job: Optional[Callable[[CalibrationJob], None]] = None, cpu_time: bool = False,
              rounds: int = ROUNDS) -> dict[str, Any]:
    """A latency table for the specs' configurations on `device`. `run_jobs` times the jobs elsewhere (Ray),
    yielding (job, its times) as each finishes; by default they run here, INTERLEAVED networks at a time timed
    by time_interleaved (with cpu_time, by CPU time)."""
    jobs, entries = plan_calibration(specs, backends, dtypes, layouts, batch_sizes, image_size)

    def here(js: list[CalibrationJob]) -> Iterable[tuple[CalibrationJob, dict]]:
        for start in range(0, len(js), INTERLEAVED):
            group = js[start:start + INTERLEAVED]
            measured, _ = time_interleaved([segmented(job, device, cpu_time) for job in group], warmup, reps,
                                           cpu_time, rounds)
            for job in group:
                yield job, {seg.key: measured[seg.key] for seg in job.segments if seg.key in measured}

    for job, measured in (run_jobs or here)(jobs):
        for key, times in measured.items():
            entries[key]["ms"].update(times)
        if on_job:
            on_job(job)
    return latency_table(entries, specs, device, backends, dtypes, layouts, batch_sizes, image_size,
                         {"warmup": warmup, "reps": reps, "rounds": rounds}, cpu_time)


def spec_name(ref: str | dict) -> str:
    """How a table and progress lines name a spec: its reference, or a mapping's name."""
    return ref if isinstance(ref, str) else str(ref.get("name"))


def latency_table(entries: dict[str, dict[str, Any]], specs: list[str | dict], device: str, backends: list[str],
                  dtypes: list[str], layouts: list[bool], batch_sizes: list[int], image_size: Optional[int],
                  method: dict[str, Any], cpu_time: bool) -> dict[str, Any]:
    """The table of filled entries (plan_calibration's, their `ms` timed), recording this device and versions
    and how it was timed (`method`: warmup, reps, rounds or another scheme)."""
    from archgen.bench.results import environment

    return {"format": FORMAT, "environment": environment(device),
            "config": {"specs": [spec_name(s) for s in specs], "backends": backends, "dtypes": dtypes,
                       "layouts": ["channels_last" if c else "nchw" for c in layouts], "batch_sizes": batch_sizes,
                       "image_size": image_size, **method,
                       "timer": timer_name(device, cpu_time)},
            "blocks": entries}


def write_table(path: str | Path, table: dict[str, Any]) -> None:
    """The table as JSON, written whole (a temporary file, then a rename), so that a reader never meets half."""
    from archgen.render import write_atomic

    write_atomic(str(path), json.dumps(table, indent=1) + "\n")


def read_table(path: str | Path) -> dict[str, Any]:
    try:
        table = json.loads(Path(path).read_text())
    except OSError as e:
        raise LatencyTableError(f"cannot read the latency table '{path}': {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LatencyTableError(f"'{path}' is not a latency table (not JSON: {e})") from None
    if not isinstance(table, dict) or table.get("format") != FORMAT:
        raise LatencyTableError(f"'{path}' is not a latency table written by archgen calibrate "
                                f"(its format is not {FORMAT}).")
    return table


@dataclass
class Prediction:
    """Predicted latency in ms: per segment, per stage and in total, under one condition of one table."""

    spec: str
    condition: str
    device: str
    segments: list[tuple[str, float]] = field(default_factory=list)

    @property
    def stages(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, ms in self.segments:
            out[name.split(".")[0]] = out.get(name.split(".")[0], 0.0) + ms
        return out

    @property
    def total_ms(self) -> float:
        return sum(ms for _, ms in self.segments)


def _this_device(device_type: str) -> str:
    """This machine's device of the kind a table was made on (its CPU where a GPU table finds no GPU)."""
    from archgen.bench.results import cpu_name

    if device_type == "cuda":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    return cpu_name()


def _mismatches(env: dict[str, Any], check_machine: bool) -> list[str]:
    """How the table's device and versions differ from this machine's and this archgen's."""
    from importlib import metadata

    import archgen
    from archgen.bench.results import git_revision

    found = []
    if check_machine:
        here = _this_device(env.get("device_type", "cpu"))
        if env.get("device") != here:
            found.append(f"it was measured on {env.get('device')}, not on this machine's {here}: the predictions "
                         f"are for {env.get('device')}")
        torch_here = metadata.version("torch")
        if env.get("torch") != torch_here:
            found.append(f"it was measured with torch {env.get('torch')}, this is torch {torch_here}")
    made_by, revision = env.get("git_revision") or env.get("archgen"), git_revision() or archgen.__version__
    if made_by != revision:
        found.append(f"it was made by archgen {made_by}, this is archgen {revision}: recalibrate if blocks changed")
    return found


class Predictor:
    """Latency predictions under one condition of one table, for any number of networks: the table's device,
    versions and dtype are checked (and warned about, LatencyTableWarning) once, not per network, so that a
    search can predict each of its candidates."""

    def __init__(self, table: dict[str, Any], batch: int = 1, dtype: str = "float32", channels_last: bool = False,
                 backend: str = "eager", input_size: Optional[int] = None, check_machine: bool = True,
                 table_name: str = "the table") -> None:
        env = table.get("environment", {})
        mismatches = _mismatches(env, check_machine)
        held = table.get("config", {}).get("dtypes") or []
        if held and dtype not in held:
            mismatches.append(f"it holds {', '.join(held)} timings, not {dtype}: predicting from {held[0]}")
            dtype = held[0]
        for mismatch in mismatches:
            warnings.warn(f"latency table {table_name}: {mismatch}", LatencyTableWarning, stacklevel=3)
        self.blocks: dict[str, Any] = table.get("blocks", {})
        self.device = str(env.get("device"))
        self.condition = condition(backend, dtype, channels_last, batch)
        self.table_name, self.input_size = table_name, input_size
        self.how = ["--backends", backend, "--dtype", dtype, "--batch-sizes", str(batch),
                    *(["--channels-last"] if channels_last else [])]

    def __call__(self, spec: Any) -> Prediction:
        """The spec's latency summed from the table's segment times (`spec`: anything archgen.profile takes, or
        a Profile); LatencyTableError names the first segment or condition the table lacks and how to
        calibrate it. No model is built."""
        import archgen

        from archgen.grammar.loader import Spec

        if hasattr(spec, "layers"):  # a Profile: its network's input channels are not in it; ResNets take RGB
            prof, channels = spec, 3
        else:
            loaded = spec if isinstance(spec, Spec) else archgen.load_spec(spec)
            prof, channels = archgen.profile(loaded, self.input_size), loaded.doc.input.channels
        how = " ".join(["calibrate it with: archgen calibrate", prof.name, *self.how,
                        *(["--image-size", str(prof.input_size)] if self.input_size else []),
                        "-o TABLE.json (naming every spec the table should cover)"])
        out = Prediction(prof.name, self.condition, self.device)
        for seg in segments(prof, channels):
            entry = self.blocks.get(seg.key)
            if entry is None:
                lacking = f"{self.table_name} lacks the configuration of {prof.name}'s {seg.describe()}"
                raise LatencyTableError(f"{lacking}; {how}.", lacking)
            ms = entry["ms"].get(self.condition)
            if ms is None:
                held = ", ".join(sorted(entry["ms"])) or "none"
                lacking = (f"{self.table_name} has {prof.name}'s {seg.name} but not under {self.condition} (it "
                           f"holds: {held})")
                raise LatencyTableError(f"{lacking}; {how}.", lacking)
            out.segments.append((seg.name, ms))
        return out


def predict(spec: Any, table: dict[str, Any], batch: int = 1, dtype: str = "float32", channels_last: bool = False,
            backend: str = "eager", input_size: Optional[int] = None, check_machine: bool = True,
            table_name: str = "the table") -> Prediction:
    """The spec's latency summed from the table's segment times; no model is built (see Predictor).

    Warns (LatencyTableWarning) when the table comes from another archgen, or (with check_machine) another
    device or torch than this machine's, or holds another dtype (whose timings it then uses); raises
    LatencyTableError naming the first segment or condition the table lacks and how to calibrate it."""
    return Predictor(table, batch, dtype, channels_last, backend, input_size, check_machine, table_name)(spec)
