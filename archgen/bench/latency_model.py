"""A kernel-level latency model: per kernel kind, a regressor fitted on kernel configurations timed on one
device, backend, dtype and layout, which predicts any network from its kernel units (archgen.bench.kernel_units)
without building it, plus a network-level correction fitted on whole passes.

Per kind the model is a roofline-like baseline, ms = a x MACs + b x bytes + c (non-negative, fitted on relative
error), times a boosted tree ensemble's correction exp(f(features)) fitted on log(measured / baseline). The trees
learn what the baseline misses (a grouped conv's poor use of the vector units, small kernels' fixed costs); a
configuration beyond the calibrated ranges keeps the baseline's growth instead of plateauing at the largest one
seen, and is counted as extrapolated. A kind with few samples has the baseline alone, said in the file.

The fitted trees are stored in the JSON file as plain arrays and evaluated here with numpy, so loading a model
unpickles nothing and predicting needs neither torch nor the regression library (LightGBM), which only the
fitting (archgen.bench.latency_fit) imports. A file is checked on load: its format, every field and type, a
checksum over its content (a corrupt or edited file is a LatencyModelError), and the device and library
versions it was made with (LatencyModelWarning when they are not this machine's).

Prediction is memoised per kernel configuration and, for a spec, per stage, by the plain values that place the
stage (as archgen.design.fast_count counts it), so a design search pays a few dict lookups per stage of a
candidate it has seen the like of; the configurations a candidate brings new are predicted in one batch, every
kind's trees walked at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

from archgen.bench.kernel_units import (KernelUnit, Walk, check_condition, kernel_units, nchwc_block,
                                        placement_problem)
from archgen.bench.results import cpu_name, cpu_vector
from archgen.bench.unit_kinds import UNIT_KINDS
from archgen.errors import UserError
from archgen.layer_kinds.act import FUNCTIONS
from archgen.memo import Memo

#: /2: a kind's `patterns` and `mid` range (what it absorbs and applies, and an SE gate's width, count toward
#: extrapolation), and ONNX Runtime's blocked norms featured as the 1x1 depthwise convs they run as. /3: the
#: CPU's vector extension, and an ONNX Runtime model's NCHWc block (`device.nchwc_block`), which its kernel
#: units are grouped by (/2 took AVX-512's 16 on any CPU).
FORMAT = "archgen-latency-model/3"

#: What one unit is to a regressor. Trees are blind to monotone transforms, so no logs: the derived figures
#: (output size, MACs, bytes, arithmetic intensity) are what lets them generalise across channels and sizes.
#: `in_align` and `out_align`, the largest power of two (at most ALIGN) dividing a group's input and output
#: channels, say which vector path a kernel can take: ONNX Runtime runs a grouped conv in its NCHWc blocks
#: only for groups of whole blocks of 16, and the CPU libraries vectorise over channels in 8s and 16s. The
#: channel counts alone hide it from trees fitted on a few thousand samples: without them, RegNetX's 3x3
#: group convs of 16 and 32 channels a group were predicted 1.8-2.2x their isolated time on ONNX Runtime,
#: and those of 24 (not a whole block) 0.6x (2026-12-03).
FEATURES = ("batch", "c_in", "c_out", "k", "stride", "groups", "dilation", "h", "w", "mid", "h_out", "w_out",
            "c_in_per_group", "c_out_per_group", "macs", "in_bytes", "out_bytes", "weight_bytes", "bytes",
            "intensity", "norm", "act", "add", "gate", "act_kind", "in_align", "out_align")
#: The largest alignment the features tell apart (a 64-channel group aligns to every vector width).
ALIGN = 64
#: Features whose calibrated range decides whether a unit is extrapolated; so does a pattern (what the unit
#: absorbed, and its act) its kind was never calibrated with.
RANGED = ("batch", "c_in", "c_out", "k", "stride", "groups", "dilation", "h", "w", "mid", "macs", "bytes")
#: Where the ranged features, MACs and bytes sit in a row of features (what the baseline reads).
RANGED_AT = [FEATURES.index(name) for name in RANGED]
MACS_AT, BYTES_AT = FEATURES.index("macs"), FEATURES.index("bytes")
#: Act functions as a feature: 0 for none, then in name order.
ACT_CODES = {name: i + 1 for i, name in enumerate(sorted(FUNCTIONS))}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

#: The largest coefficient a model file may hold (a baseline's a, b, c; a correction's): a fitted one is far below
#: (ms per MAC or byte, a unit's ms, a scale near 1), and any value up to it keeps predictions finite.
MAX_COEFFICIENT = 1e6
#: The largest sum of leaf values a kind's trees may reach (its log-ratio to the baseline; fitted ones reach a few
#: units, and exp of this stays finite).
MAX_LEAF_SUM = 500.0
#: What `machine` records that a prediction depends on, compared on load (python's patch level is not).
COMPARED = ("device", "name", "vector", "cores", "threads", "torch", "onnxruntime", "openvino", "archgen")
_RUNTIME = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


class LatencyModelError(UserError):
    """A model file that cannot be used: unreadable, not a model, corrupt or edited; `field` names the field at
    fault, where one is ('' for the whole file), and `what` is wrong with it."""

    field = ""
    what = ""


class LatencyModelWarning(UserWarning):
    """A model made on another device, or with other library versions, than the ones at hand."""


def features(unit: KernelUnit) -> list[float]:
    """The unit's FEATURES, in order."""
    b, ci, co, k, s, g = unit.batch, unit.c_in, unit.c_out, unit.k, unit.stride, unit.groups
    kind = UNIT_KINDS[unit.kind]
    ho, wo = kind.out_size(unit)
    weights, macs = kind.weights(unit), kind.macs(unit)
    elems_in, elems_out = b * ci * unit.h * unit.w, b * co * ho * wo
    if kind.sums or "add" in unit.absorbed:
        elems_in += elems_out  # the sum's second input
    d = DTYPE_BYTES[unit.dtype]
    total = (elems_in + elems_out + weights) * d
    return [b, ci, co, k, s, g, unit.dilation, unit.h, unit.w, unit.mid, ho, wo, ci / g, co / g, macs,
            elems_in * d, elems_out * d, weights * d, total, macs / total if total else 0.0,
            "norm" in unit.absorbed, "act" in unit.absorbed, "add" in unit.absorbed, "gate" in unit.absorbed,
            ACT_CODES.get(unit.act or "", 0), _alignment(ci // g), _alignment(co // g)]


def _alignment(channels: int) -> int:
    """The largest power of two dividing `channels` (its lowest set bit), at most ALIGN."""
    return min(channels & -channels, ALIGN)


def machine(backend: str, device: str = "cpu") -> dict:
    """What identifies this device and the libraries a prediction depends on, read without importing torch."""
    name = cpu_name() if device == "cpu" else _gpu_name()
    out: dict[str, Any] = {"device": device, "name": name, "cores": os.cpu_count() or 1,
                           "threads": _threads(), "python": platform.python_version(),
                           "torch": library_version("torch")}
    if device == "cpu":
        out["vector"] = cpu_vector()
    if backend in _RUNTIME:
        out[backend] = library_version(_RUNTIME[backend])
    if backend == "onnxruntime":
        out["nchwc_block"] = nchwc_block(cpu_vector()) if device == "cpu" else 0
    import archgen

    out["archgen"] = archgen.__version__
    return out


def library_version(package: str) -> Optional[str]:
    """The installed package's version, None where it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _threads() -> int:
    """The threads a runtime here uses by default: OMP_NUM_THREADS where set, else the cores this process may
    run on."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _gpu_name() -> str:
    """The first NVIDIA GPU's model, from the driver's /proc files (no torch, no NVML)."""
    root = Path("/proc/driver/nvidia/gpus")
    found = False
    try:
        for info in sorted(root.glob("*/information")):
            found = True
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown GPU" if found else "no NVIDIA GPU"


def baseline_ms(coef: Any, x: Any) -> Any:
    """a x MACs + b x bytes + c per row of x (`coef`: one a, b, c for all rows, or a row of them per row)."""
    import numpy as np

    coef = np.asarray(coef, dtype=float)
    return np.maximum(coef[..., 0] * x[:, MACS_AT] + coef[..., 1] * x[:, BYTES_AT] + coef[..., 2], 1e-6)


def feature_matrix(units: Sequence[KernelUnit]) -> Any:
    """The units' FEATURES, a row each."""
    import numpy as np

    return np.array([features(u) for u in units], dtype=float).reshape(len(units), len(FEATURES))


# ---- the file ----

def _checksum(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_model(path: str | Path, doc: dict) -> None:
    """The model as JSON with its checksum, written whole (a temporary file, then a rename)."""
    from archgen.render import write_atomic

    write_atomic(str(path), json.dumps({**doc, "checksum": _checksum(doc)}, indent=1) + "\n")


def load_model(path: str | Path) -> "LatencyModel":
    """The model in `path`, checked: LatencyModelError for a file that is not one, or is corrupt or edited;
    LatencyModelWarning for each way its device and versions differ from this machine's. Nothing is
    unpickled or executed: the file is JSON, its trees arrays of numbers."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise LatencyModelError(f"cannot read the latency model '{path}': {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise LatencyModelError(f"'{path}' is not a latency model: it is not text (a model is the JSON file "
                                "archgen calibrate writes)") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, an integer past Python's digit limit, deep nesting
        raise LatencyModelError(f"'{path}' is not a latency model: it is not JSON archgen reads ({e}); a model is "
                                "the file archgen calibrate writes") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LatencyModelError(f"'{path}' is not a latency model written by archgen calibrate (its format is not "
                                f"{FORMAT}); make one with archgen calibrate --backend BACKEND -o DEVICE.json")
    if doc.get("checksum") != _checksum(doc):
        raise LatencyModelError(f"'{path}': the latency model's checksum does not match its content, so the file "
                                "is corrupt or was edited after archgen calibrate wrote it; calibrate again")
    try:
        model = LatencyModel(doc, str(path))
    except LatencyModelError as e:
        if not e.field:
            raise
        raise _invalid(str(path), e.field, e.what, _line_of(text, e.field)) from None
    for mismatch in _mismatches(doc["device"], machine(doc["backend"], doc["device"]["device"])):
        warnings.warn(f"latency model {path}: {mismatch}", LatencyModelWarning, stacklevel=2)
    return model


def _mismatches(made: dict, here: dict) -> list[str]:
    """How the device and versions the model was made with differ from this machine's, in words."""
    found = []
    for key in COMPARED:  # what both record: a key only one side has (another backend's runtime) is no difference
        if key in made and key in here and made[key] != here[key]:
            found.append(f"it was made with {key} {made.get(key)}, and this machine has {here.get(key) or 'none'}: "
                         "its predictions are for the machine that made it")
    return found


def _invalid(path: str, field: str, what: str, line: Optional[int] = None) -> LatencyModelError:
    at = f", line {line}" if line else ""
    error = LatencyModelError(f"'{path}'{at}: the latency model's field '{field}' {what}, though its checksum "
                              "matches: the file was written by another archgen, or made by hand; calibrate again")
    error.field, error.what = field, what  # for load_model to add the line
    return error


def _line_of(text: str, field: str) -> int:
    """The line of the JSON text that `field` (dotted: 'kinds.conv.baseline') is on: each key looked for inside
    its parent's value, as archgen writes the file (the key quoted, then a colon); the line of the nearest
    parent for a key its parent lacks."""
    at, start, end = 0, 0, len(text)
    for key in field.split("."):
        found = text.find(json.dumps(key) + ":", start, end)
        if found < 0:
            break
        at = found
        start = text.index(":", found) + 1
        while start < end and text[start].isspace():
            start += 1
        try:
            end = json.JSONDecoder().raw_decode(text, start)[1]  # where the key's value ends
        except ValueError:
            break
    return text.count("\n", 0, at) + 1


def _numbers(value: Any, path: str, where: str, integers: bool = False) -> list:
    kinds = (int,) if integers else (int, float)
    if not isinstance(value, list) or not all(isinstance(v, kinds) and not isinstance(v, bool) for v in value):
        raise _invalid(path, where, f"must be a list of {'integers' if integers else 'numbers'}")
    try:
        finite = integers or all(math.isfinite(v) for v in value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise _invalid(path, where, "must hold finite numbers")
    return value


_TYPE_NAMES = {str: "a string", dict: "a mapping", list: "a list", int: "an integer"}


def _field(doc: dict, key: str, kind: type, path: str, where: str = "") -> Any:
    """doc[key], which must be of `kind` (`where`: the dotted path to doc, for the message)."""
    if key not in doc:
        raise _invalid(path, f"{where}{key}", "is missing")
    if not isinstance(doc[key], kind) or isinstance(doc[key], bool):
        raise _invalid(path, f"{where}{key}", f"must be {_TYPE_NAMES[kind]}")
    return doc[key]


class _KindModel:
    """One kind's baseline, trees (as arrays) and calibrated ranges, as the model file holds them."""

    def __init__(self, baseline: Sequence[float], trees: Optional[dict], lo: Optional[Sequence[float]],
                 hi: Optional[Sequence[float]]) -> None:
        import numpy as np

        self.baseline = list(baseline)
        self.trees = None
        if trees is not None:
            self.trees = {k: np.asarray(trees[k], dtype=t) for k, t in (
                ("feature", np.intp), ("threshold", float), ("left", np.intp), ("right", np.intp), ("value", float),
                ("roots", np.intp))}
            self.depth = int(trees["depth"])
        self.lo = None if lo is None else np.asarray(lo, dtype=float)
        self.hi = None if hi is None else np.asarray(hi, dtype=float)
        #: What the kind's units were calibrated absorbing, and with which act ('' for none).
        self.patterns: set[tuple[tuple[str, ...], str]] = set()


class _Forest:
    """Every kind's model in one set of arrays, so that units of any mix of kinds are predicted by one walk of
    the trees: a new stage of a design search brings units of four or five kinds, and a walk per kind (numpy
    calls on a few rows each) cost a fifth of predicting it. Row r of a matrix is predicted by model
    `which[r]`: its baseline times exp of the sum of its trees' leaves. A kind with fewer trees (none, for one
    fitted on too few samples) has the rest rooted at a leaf of value 0, and a leaf is its own two children,
    so every row walks the deepest kind's depth and ends on leaves."""

    def __init__(self, models: Sequence[_KindModel]) -> None:
        import numpy as np

        n_trees = max((len(m.trees["roots"]) for m in models if m.trees is not None), default=0)
        feature, threshold, children, value = [np.zeros(1, np.intp)], [np.zeros(1)], [np.zeros(2, np.intp)], \
            [np.zeros(1)]  # node 0: the leaf of value 0
        roots = np.zeros((len(models), n_trees), np.intp)
        at, self.depth = 1, 0
        for i, m in enumerate(models):
            if m.trees is None:
                continue
            t = m.trees
            feature.append(t["feature"])
            threshold.append(t["threshold"])
            # node j's children at 2j (x <= threshold) and 2j + 1: one gather a step instead of where() over two
            children.append(np.stack([t["left"], t["right"]], 1).ravel() + at)
            value.append(t["value"])
            roots[i, :len(t["roots"])] = t["roots"] + at
            at += len(t["feature"])
            self.depth = max(self.depth, m.depth)
        self.feature, self.threshold = np.concatenate(feature), np.concatenate(threshold)
        self.children, self.value, self.roots = np.concatenate(children), np.concatenate(value), roots
        self.baseline = np.array([m.baseline for m in models], dtype=float)
        # a kind never calibrated has every row outside its ranges: lo above and hi below any feature
        self.lo = np.array([m.lo if m.lo is not None else np.full(len(RANGED), np.inf) for m in models])
        self.hi = np.array([m.hi if m.hi is not None else np.full(len(RANGED), -np.inf) for m in models])

    def ms(self, x: Any, which: Any) -> Any:
        """Each row's predicted ms under its kind's model (`which`: an index per row, or one for all)."""
        import numpy as np

        base = baseline_ms(self.baseline[which], x)
        if not self.roots.shape[1]:
            return base
        feature, threshold, children = self.feature, self.threshold, self.children
        node = np.broadcast_to(self.roots[which], (len(x), self.roots.shape[1]))
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            node = children[2 * node + (x[rows, feature[node]] > threshold[node])]
        return base * np.exp(self.value[node].sum(1))

    def outside(self, x: Any, which: Any) -> Any:
        """Which rows lie outside their kind's calibrated ranges (all of them for a kind never calibrated)."""
        ranged = x[:, RANGED_AT]
        return ((ranged < self.lo[which]) | (ranged > self.hi[which])).any(1)


def _kind_model(kind: str, entry: Any, path: str) -> _KindModel:
    where = f"kinds.{kind}."
    if not isinstance(entry, dict):
        raise _invalid(path, f"kinds.{kind}", "must be a mapping")
    baseline = _coefficients(_field(entry, "baseline", list, path, where), path, f"{where}baseline")
    ranges = _field(entry, "ranges", dict, path, where)
    lo, hi = [], []
    for name in RANGED:
        pair = _numbers(_field(ranges, name, list, path, f"{where}ranges."), path, f"{where}ranges.{name}")
        if len(pair) != 2 or pair[0] > pair[1]:
            raise _invalid(path, f"{where}ranges.{name}", "must be [low, high] with low <= high")
        lo.append(pair[0])
        hi.append(pair[1])
    patterns = _field(entry, "patterns", list, path, where)
    if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], list) and isinstance(p[1], str)
               and all(isinstance(role, str) for role in p[0]) for p in patterns):
        raise _invalid(path, f"{where}patterns", "must be a list of [absorbed roles, act] pairs")
    trees = entry.get("trees")
    if trees is not None:
        if not isinstance(trees, dict):
            raise _invalid(path, f"{where}trees", "must be a mapping or null")
        n = len(_numbers(_field(trees, "feature", list, path, f"{where}trees."), path, f"{where}trees.feature",
                         integers=True))
        for key, integers in (("threshold", False), ("left", True), ("right", True), ("value", False),
                              ("roots", True)):
            values = _numbers(_field(trees, key, list, path, f"{where}trees."), path, f"{where}trees.{key}",
                              integers)
            if key != "roots" and len(values) != n:
                raise _invalid(path, f"{where}trees.{key}", f"must have one entry per node ({n})")
            if integers and values and not 0 <= min(values) <= max(values) < n:
                raise _invalid(path, f"{where}trees.{key}", f"must index the {n} nodes")
        if trees["feature"] and not 0 <= min(trees["feature"]) <= max(trees["feature"]) < len(FEATURES):
            raise _invalid(path, f"{where}trees.feature", f"must index the {len(FEATURES)} features")
        if not trees["roots"]:
            raise _invalid(path, f"{where}trees.roots", "must list at least one tree (a kind without trees has "
                                                        "trees: null)")
        if len(trees["roots"]) * max(map(abs, trees["value"]), default=0.0) > MAX_LEAF_SUM:
            raise _invalid(path, f"{where}trees.value", f"must be leaves whose sum over the trees stays within "
                                                        f"+-{MAX_LEAF_SUM:g}")
        depth = _field(trees, "depth", int, path, f"{where}trees.")
        if not 0 <= depth <= 64:
            raise _invalid(path, f"{where}trees.depth", "must be between 0 and 64")
    model = _KindModel(baseline, trees, lo, hi)
    model.patterns = {(tuple(absorbed), act) for absorbed, act in patterns}
    return model


def _coefficients(value: Any, path: str, where: str) -> list[float]:
    coef = _numbers(value, path, where)
    if len(coef) != 3 or not all(0 <= c <= MAX_COEFFICIENT for c in coef):
        raise _invalid(path, where, f"must be three numbers (a, b, c) from 0 to {MAX_COEFFICIENT:g}")
    return coef


# ---- prediction ----

class Prediction(NamedTuple):
    """A network's predicted ms in total and per stage (stem, stage names, head), how many kernel units it
    runs, how many of them lie outside the calibrated ranges (predicted all the same), and the sum of its
    kernels before the network correction (what a correction is fitted on)."""

    total_ms: float
    per_stage: dict[str, float]
    units: int
    extrapolated: int
    kernel_ms: float


#: Blocks of a long stage walked before asking whether the rest repeat the last (archgen.design.fast_count's rule).
WALKED_DEPTH = 3


@dataclass(frozen=True)
class _Segment:
    """A stem, stage or head predicted: its kernels' ms, units and extrapolated units, what it changed in the
    unit before it (which took its opening norm: ms and extrapolated, before and after), and where it left the
    walk (output shape and layout, its last unit's number, and for a stage the channels and dilation it hands
    on). A long stage whose later blocks repeat is walked for its first `walked` blocks, and each further block
    adds `step` (ms, units, extrapolated); `walked` is 0 for a segment walked whole (a long stage whose blocks
    do not repeat is one: _WHOLE marks its short key, and it is remembered at its full depth)."""

    ms: float
    units: int
    extrapolated: int
    before_ms: float
    before_extrapolated: int
    state: tuple
    out_chs: int = 0
    dilation: int = 1
    step: tuple[float, int, int] = (0.0, 0, 0)
    walked: int = 0


#: A long stage whose blocks do not all repeat: look it up at its full depth.
_WHOLE = _Segment(0.0, 0, 0, 0.0, 0, ())


class LatencyModel:
    """A loaded model: `predict` a network's latency on the device, backend, dtype and layout it was fitted
    for, at any batch size."""

    def __init__(self, doc: dict, path: str) -> None:
        for key, kind in (("backend", str), ("dtype", str), ("layout", str), ("device", dict), ("kinds", dict),
                          ("network", dict), ("fallback", list)):
            _field(doc, key, kind, path)
        try:
            check_condition(doc["backend"], 1, doc["dtype"], doc["layout"])
        except UserError as e:
            raise _invalid(path, "backend", f"or its dtype or layout is not one archgen predicts ({e})") from None
        problem = placement_problem(doc["backend"], doc["dtype"], doc["layout"],
                                    _field(doc["device"], "device", str, path, "device."))
        if problem:
            raise _invalid(path, "backend", f"does not fit the model's dtype, layout and device ({problem})")
        if _field(doc, "features", list, path) != list(FEATURES):
            raise _invalid(path, "features", f"must be {', '.join(FEATURES)} (this archgen's)")
        self.doc, self.path = doc, path
        self.backend, self.dtype, self.layout = doc["backend"], doc["dtype"], doc["layout"]
        self.device: str = doc["device"]["device"]
        #: ONNX Runtime's NCHWc block on the machine that made the model: its units are grouped by it.
        self.nchwc_block = 0
        if self.backend == "onnxruntime":
            self.nchwc_block = _field(doc["device"], "nchwc_block", int, path, "device.")
            if self.nchwc_block not in (0, 8, 16):
                raise _invalid(path, "device.nchwc_block", "must be 0, 8 or 16 (ONNX Runtime's NCHWc blocks)")
        self.kinds = {kind: _kind_model(kind, entry, path) for kind, entry in doc["kinds"].items()}
        fallback = _coefficients(doc["fallback"], path, "fallback")
        #: The kinds' models and last the fallback (for a kind the file lacks), each row's by its index.
        self._forest = _Forest([*self.kinds.values(), _KindModel(fallback, None, None, None)])
        self._kind_index = {kind: i for i, kind in enumerate(self.kinds)}
        self._patterns = {kind: m.patterns for kind, m in self.kinds.items()}
        net = doc["network"]
        by = _field(net, "by", str, path, "network.")
        if by not in ("batch", "pooled"):
            raise _invalid(path, "network.by", "must be 'batch' or 'pooled'")
        self.by_batch = by == "batch"
        self.pooled = _coefficients(_field(net, "pooled", list, path, "network."), path, "network.pooled")
        self.batches = {b: _coefficients(c, path, f"network.batches.{b}")
                        for b, c in _field(net, "batches", dict, path, "network.").items()}
        self._kernels = Memo(1 << 18, "latency_model: kernels")
        self._segments = Memo(1 << 16, "latency_model: segments")
        #: Unit configurations by number, for the segments' keys (never cleared: a number must keep its unit).
        self._ids: dict[tuple, int] = {}
        self._units: list[KernelUnit] = []

    @property
    def describe(self) -> str:
        d = self.doc["device"]
        name = "".join(c for c in str(d.get("name", d["device"])) if c.isprintable())  # no escapes reach a terminal
        return f"{self.backend}, {self.dtype}, {self.layout} on {name}"

    def unit_ms(self, units: Sequence[KernelUnit]) -> list[tuple[float, bool]]:
        """Each unit's predicted ms (before the network correction) and whether it is extrapolated, memoised
        per configuration; the ones not seen yet predicted in one batch (one walk of every kind's trees)."""
        memo = self._kernels
        keys = [u[:-1] for u in units]  # the configuration: every field but the names, which come last
        found = [memo.get(key) for key in keys]
        missing: dict[tuple, KernelUnit] = {}
        for unit, key, hit in zip(units, keys, found):
            if hit is None:
                missing[key] = unit
        if not missing:
            return found
        import numpy as np

        todo = list(missing.values())
        x = feature_matrix(todo)
        fallback = len(self.kinds)
        which = np.array([self._kind_index.get(u.kind, fallback) for u in todo], np.intp)
        outside = self._forest.outside(x, which)
        known = self._patterns
        new = {key: memo.keep(key, (float(ms), bool(out) or (u.absorbed, u.act or "") not in known.get(u.kind, ())))
               for key, u, ms, out in zip(missing, todo, self._forest.ms(x, which), outside)}
        return [hit if hit is not None else new[key] for key, hit in zip(keys, found)]

    def correction(self, batch: int) -> list[float]:
        """a, b, c of the network correction at this batch size."""
        return self.batches.get(str(batch), self.pooled) if self.by_batch else self.pooled

    def predict(self, spec_or_plan: object, batch: int = 1, input_size: Optional[int] = None) -> Prediction:
        """The network's predicted latency in ms at `batch`, per stage and in total, with no model built.

        `spec_or_plan`: a ModelPlan, a spec framed by archgen.planner.framed (as a design search has counted
        it), or anything archgen.load_spec takes. A spec is walked stage by stage with each stage remembered
        (what a design search asks for thousands of times); a plan, or a spec the walk cannot settle (stochastic
        depth, a size too small), goes through kernel_units whole."""
        from archgen.grammar.loader import load_spec
        from archgen.planner import Framed, ModelPlan, framed, plan

        check_condition(self.backend, batch, self.dtype, self.layout)
        if isinstance(spec_or_plan, ModelPlan):
            return self._from_units(kernel_units(spec_or_plan, self.backend, batch, self.dtype, self.layout,
                                                 input_size, self.nchwc_block), batch)
        candidate = framed(spec_or_plan if isinstance(spec_or_plan, Framed) else load_spec(spec_or_plan))
        walked = self._walk(candidate, batch, input_size)
        if walked is not None:
            return walked
        units = kernel_units(plan(candidate), self.backend, batch, self.dtype, self.layout, input_size,
                             self.nchwc_block)
        return self._from_units(units, batch)

    def _from_units(self, units: list[KernelUnit], batch: int) -> Prediction:
        """The prediction of a network's units, each counted in the stage of the first record it covers."""
        per: dict[str, list[float]] = {}
        extrapolated = 0
        for unit, (ms, out) in zip(units, self.unit_ms(units)):
            stage = unit.names[0].split(".")[0] if unit.names else "head"
            acc = per.setdefault(stage, [0.0, 0])
            acc[0] += ms
            acc[1] += 1
            extrapolated += out
        return self._corrected({k: (v[0], v[1]) for k, v in per.items()}, len(units), extrapolated, batch)

    def _corrected(self, per: dict[str, tuple[float, int]], units: int, extrapolated: int, batch: int
                   ) -> Prediction:
        """The network correction applied stage by stage: a x kernels + b x units, and c shared by units, so that
        the stages sum to the total."""
        a, b, c = self.correction(batch)
        stages = {name: a * ms + b * n + c * n / max(units, 1) for name, (ms, n) in per.items()}
        return Prediction(sum(stages.values()), stages, units, extrapolated, sum(ms for ms, _ in per.values()))

    def _walk(self, candidate: Any, batch: int, input_size: Optional[int]) -> Optional[Prediction]:
        """The spec predicted stem, stage and head at a time, each remembered by the plain values that make it
        and by where the walk enters it; None where the walk cannot settle the network (kernel_units then
        plans it, and refuses what the planner refuses)."""
        from archgen.planner import head_plan, walk_stages
        from archgen.tally import TooSmall

        spec, f = candidate
        doc = spec.doc
        if doc.stochastic_depth is not None:
            return None
        size = input_size or doc.input.size
        walk = _SpecWalk(self, (self.backend, doc.norm.type, batch), (doc.input.channels, size, size, False, -1))
        stages = doc.stages
        network = (doc.shortcut, doc.stride_on, doc.multipliers.width, f.norm_groups)

        def place(i: int, family: Any, depth: int, in_chs: int, prev_dilation: int, input_from: str) -> Any:
            stage = stages[i]
            return walk.enter(i + 1, (family, in_chs, prev_dilation, stage.width, stage.stride, stage.dilation,
                                      stage.first_dilation, input_from, network),
                              lambda blocks: _stage_blocks(spec, i, family, in_chs, prev_dilation, blocks, input_from,
                                                           f.norm_groups), depth)

        try:
            walk.enter(0, f.stem, lambda _: ([("stem", f.stem, f.stem.layers)], 0, 1, False))
            out_chs = f.stem.out_chs
            for placed in walk_stages(f, place):
                out_chs = placed.out_chs
            head = head_plan(spec, f.families[-1])
            walk.enter(-1, (head, out_chs),
                       lambda _: ([("head", (head, out_chs), lambda: head.layers(out_chs))], 0, 1, False))
        except (_Unsettled, TooSmall):
            return None
        return walk.prediction(batch)

    def _settle(self, pending: "_Pending") -> _Segment:
        """A walked segment's figures: its own units (after the unit the walk started from, if any), the change
        it made to that unit, and for a repeating stage what its last walked block adds."""
        walk, before = pending.walk, pending.before
        units = walk.units
        predicted = self.unit_ms(units)
        before_ms, before_extrapolated = 0.0, 0
        if before is not None:
            (now_ms, now_out), (was_ms, was_out) = predicted[0], self.unit_ms([before])[0]
            before_ms, before_extrapolated = now_ms - was_ms, int(now_out) - int(was_out)
            units, predicted = units[1:], predicted[1:]
        ms, extrapolated = sum(m for m, _ in predicted), sum(out for _, out in predicted)
        step: tuple[float, int, int] = (0.0, 0, 0)
        if pending.upto is not None:  # what the last walked block added, each later block adds again
            full, earlier = self.unit_ms(walk.units), self.unit_ms(pending.upto)
            step = (sum(m for m, _ in full) - sum(m for m, _ in earlier), len(full) - len(earlier),
                    sum(o for _, o in full) - sum(o for _, o in earlier))
        return _Segment(ms, len(units), extrapolated, before_ms, before_extrapolated, pending.state, pending.out_chs,
                        pending.dilation, step, pending.walked)

    def _unit_id(self, unit: Optional[KernelUnit]) -> int:
        """The model's number for a unit configuration (-1: none), so that a segment's memo key holds an int."""
        if unit is None:
            return -1
        key = unit[:-1]
        known = self._ids.get(key)
        if known is None:
            known = self._ids[key] = len(self._units)
            self._units.append(unit)
        return known

    def _unit_of(self, number: int) -> Optional[KernelUnit]:
        return None if number < 0 else self._units[number]


def _stage_blocks(spec: Any, i: int, family: Any, in_chs: int, prev_dilation: int, depth: int, input_from: str,
                  norm_groups: int) -> tuple[list, int, int, bool]:
    """Stage i's first `depth` blocks as (prefix, what they are made from, their records), its output channels,
    its dilation, and whether the last two blocks are alike; _Unsettled for a block the planner would refuse
    (kernel_units's plan then says why)."""
    from archgen.planner import misgrouped_conv, misgrouped_norm, placement, stage_blocks

    at = placement(spec, i, family, in_chs, prev_dilation)
    blocks = stage_blocks(family, at, depth, i, input_from)
    for block in blocks:
        layers = block.layers()
        if misgrouped_conv(layers) or misgrouped_norm(layers, norm_groups):
            raise _Unsettled
    return ([(f"layer{i + 1}.{j}", (b.family, b.at), b.layers) for j, b in enumerate(blocks)], blocks[-1].out_chs,
            at.dilation, len(blocks) >= 2 and blocks[-1] == blocks[-2])


@dataclass
class _Pending:
    """A segment walked and not yet predicted: the walk (which started from `before`, the unit before the
    segment), where it left off, and for a repeating stage the units before its last walked block."""

    walk: Walk
    before: Optional[KernelUnit]
    state: tuple
    out_chs: int
    dilation: int
    upto: Optional[list[KernelUnit]] = None
    walked: int = 0


class _SpecWalk:
    """One prediction's walk over a spec's segments (0 the stem, i the i-th stage, -1 the head): each one
    remembered taken as it is, each new one walked through kernel_units's blocks, and predicted at the end (its
    new configurations in one batch). The unit a segment ends with, which the next may change, is carried as
    the model's number for it (cheaper to hash than the unit)."""

    def __init__(self, model: LatencyModel, context: tuple, state: tuple) -> None:
        self.model, self.context, self.state = model, context, state
        self.get = model._segments.get
        #: Per segment: its index, memo key, a _Segment or _Pending, and its depth (a stage's blocks).
        self.segments: list[tuple[int, tuple, Any, int]] = []

    def enter(self, index: int, key: object, blocks: Any, depth: int = 1) -> Any:
        """The segment entered from the current state: remembered, or walked through `blocks(n)`'s first n
        blocks as (prefix, made from, records) triples, with its output channels, dilation and whether its last
        two blocks are alike. A stage longer than WALKED_DEPTH is walked that far when the blocks after repeat."""
        long = depth > WALKED_DEPTH
        short_key = (self.context, index, key, 0 if long else depth, self.state)
        known = self.get(short_key)
        if known is _WHOLE:
            short_key, long = (self.context, index, key, depth, self.state), False
            known = self.get(short_key)
        if known is not None:
            self.segments.append((index, short_key, known, depth))
            self.state = known.state
            return known
        pending = self._walk(blocks, WALKED_DEPTH if long else depth, repeating=long)
        if pending is None:  # the blocks after the walked ones change: the stage is walked whole, at its depth
            self.model._segments.keep(short_key, _WHOLE)
            short_key = (self.context, index, key, depth, self.state)
            pending = self._walk(blocks, depth, repeating=False)
        self.segments.append((index, short_key, pending, depth))
        self.state = pending.state
        return pending

    def _walk(self, blocks: Any, depth: int, repeating: bool) -> Optional[_Pending]:
        """The segment's first `depth` blocks walked from the current state; None when `repeating` asks for
        the last block to repeat and it does not (it differs, or does not leave the walk where it found it)."""
        made, out_chs, dilation, alike = blocks(depth)
        model = self.model
        c, h, w, blocked, before_id = self.state
        before = model._unit_of(before_id)
        backend, norm, batch = self.context
        walk = Walk(backend, norm, batch, model.dtype, model.layout, c, h, w, blocked, before,
                    nchwc_block=model.nchwc_block)
        upto: Optional[list[KernelUnit]] = None
        entered = None
        for j, (prefix, made_from, layers) in enumerate(made):
            if repeating and j == len(made) - 1:
                upto = list(walk.units)
                entered = (walk.c, walk.h, walk.w, walk.blocked, model._unit_id(walk.units[-1]))
            walk.add(prefix, made_from, layers)
        state = (walk.c, walk.h, walk.w, walk.blocked, model._unit_id(walk.units[-1]) if walk.units else before_id)
        if repeating and not (alike and state == entered):
            return None
        return _Pending(walk, before, state, out_chs, dilation, upto if repeating else None,
                        depth if repeating else 0)

    def prediction(self, batch: int) -> Prediction:
        """The segments' ms added up, each segment's change to the unit before it counted in the segment that
        unit belongs to; the walked segments predicted (their new configurations in one batch) and remembered."""
        model = self.model
        walked = [seg.walk for _, _, seg, _ in self.segments if type(seg) is _Pending]
        if walked:
            model.unit_ms([u for walk in walked for u in walk.units])
        ms: list[float] = []
        counts: list[int] = []
        extrapolated = 0
        for index, key, seg, depth in self.segments:
            if type(seg) is _Pending:
                seg = model._segments.keep(key, model._settle(seg))
            if ms:
                ms[-1] += seg.before_ms
            more = depth - seg.walked if seg.walked > 0 else 0
            ms.append(seg.ms + more * seg.step[0])
            counts.append(seg.units + more * seg.step[1])
            extrapolated += seg.extrapolated + seg.before_extrapolated + more * seg.step[2]
        names = ["stem", *(f"layer{i}" for i in range(1, len(ms) - 1)), "head"]
        per = {name: (m, n) for name, m, n in zip(names, ms, counts) if n}  # a stem of no layers runs nothing
        return model._corrected(per, sum(counts), extrapolated, batch)


class _Unsettled(Exception):
    """A stage the walk leaves to the planner (a block it would refuse)."""
