"""Kernel configurations timed one by one, and whole networks timed interleaved: what the latency model is
fitted on (`archgen calibrate`) and checked against (`archgen search --verify`, the latency benchmark).

A kernel configuration is a `KernelUnit` with its names dropped. Each is timed in isolation, as the backend
runs it inside a network:

- eager: the unit's torch modules as the builder makes them (from the layer kinds' own records), in eval
  mode and under inference mode, as `archgen bench` runs a model; wall-clock, each call's time;
- fused: the modules `archgen.fuse` makes for it (conv with the norm folded and the act, add and SE gate in
  its epilogue: `ConvBNAct`, `BNAct`, `GatedTail`), timed likewise;
- onnxruntime and openvino: a tiny ONNX graph of what torch's exporter writes for the unit (the norm folded
  into the conv's weights and bias, the act as the exporter spells it, the residual add with a second input,
  the SE gate's ops, pools, Gemm, ...), with a dynamic batch axis like an exported network, run with the
  bench's session options (its threads; OpenVINO at f32 precision and the latency hint), so the runtime fuses
  it as it does in the network. Graphs are written with onnx.helper, not exported: a torch export per unit
  costs ~100 ms, a session ~10 ms (ONNX Runtime) and ~100 ms (OpenVINO).

  A graph alone is not a network, in two ways the runtimes' own accounts correct. Its inputs and output are
  plain NCHW tensors, so both runtimes convert layouts at its edges (ONNX Runtime's ReorderInput and
  ReorderOutput around its NCHWc kernels, OpenVINO's Reorder nodes), which cost as much as a depthwise conv
  or an act and which a network runs once, not per kernel. And ONNX Runtime adds a residual in its conv's
  pass only when the shortcut arrives in the conv's blocked layout, as it does in a network: so a map input
  of whole NCHWc blocks reaches the unit through a helper that ONNX Runtime runs blocked. A unit's time is
  then its own kernels' time in each timed run by the runtime's account (ONNX Runtime's profile,
  OpenVINO's performance counters), layout conversions and helpers left out.

A configuration's figure is the tenth percentile of its timed calls (`unit_statistic`).

torch.compile has no kernel rule (Inductor picks its kernels per graph, across units), so it is timed only
as whole networks. What a sum of isolated kernels still misses (per-kernel dispatch, per-pass overheads,
caches a network leaves cold) the latency model's network-level correction carries, fitted on whole
networks that `time_networks` times; calibrate reports the ratio.

torch, onnx, onnxruntime and openvino are imported inside the functions.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from archgen.bench.kernel_units import BACKENDS, KernelUnit, out_size
from archgen.bench.timing import percentile
from archgen.bench.unit_kinds import UNIT_KINDS
from archgen.errors import UserError

if TYPE_CHECKING:
    import onnx
    import torch
    import torch.nn as nn

#: Backends whose kernels `time_units` times: those with a kernel rule (torch.compile's kernels are Inductor's to
#: choose, per graph).
UNIT_BACKENDS = BACKENDS
#: Backends `time_networks` times (everything `archgen bench` runs).
NETWORK_BACKENDS = ("eager", "fused", "compile", "onnxruntime", "openvino")
#: The IR version torch's exporter writes at archgen's opset (archgen.export.ONNX_OPSET), so the runtimes read
#: unit graphs as they read an exported network.
IR_VERSION = 8
#: Names of a unit graph's helper nodes and tensors, which its timing leaves out.
HELPER = "helper_"


def _check_backend(backend: str, allowed: Sequence[str], what: str) -> None:
    if backend not in allowed:
        why = (" torch.compile's kernels are Inductor's to choose per graph, fused across units, so no "
               "kernel rule groups them: time it as whole networks" if backend == "compile" else "")
        raise UserError(f"{what}: unknown backend '{backend}'; choose one of {', '.join(allowed)}.{why}")


def _runs(call: Callable[[], object], warmup: int, reps: int, cap_ms: Optional[float]) -> int:
    """Call `warmup` times (once, if that call took `cap_ms`), then up to `reps` times, stopping once the timed
    calls took `cap_ms` (3 at least), so that a slow configuration costs little more than a fast one; the
    number of timed calls."""
    for _ in range(warmup):  # a warm-up call as long as the cap is warm-up enough
        t0 = time.perf_counter()
        call()
        if cap_ms is not None and (time.perf_counter() - t0) * 1e3 >= cap_ms:
            break
    spent, n = 0.0, 0
    while n < reps and (cap_ms is None or spent < cap_ms or n < 3):
        t0 = time.perf_counter()
        call()
        spent += (time.perf_counter() - t0) * 1e3
        n += 1
    return n


def unit_statistic(calls: list[float]) -> float:
    """What a kernel configuration's timed calls are summarised by: their tenth percentile. A kernel's calls run
    back to back, so what slows one of them (an interrupt, a page fault, another process) only adds to it. On
    this project's 2-core VM, 344 configurations of ONNX Runtime timed twice in a row (15 calls each, 2026-12-03)
    agreed within +-10% for 69-78% of them by the median of their calls and 77-88% by the tenth percentile (the
    median difference 3.8-5.6% against 2.5-3.8%); eager's 271, 69-76% against 74-79%; OpenVINO's 115, 40%
    against 60% (benchmarks/README.md)."""
    return percentile(calls, 10)


def _wall_ms(fn: Callable[[], object], warmup: int, reps: int, cap_ms: Optional[float],
             sync: Callable[[], None]) -> float:
    """The wall-clock ms of the timed calls (see _runs), by unit_statistic."""
    times: list[float] = []

    def call() -> None:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)

    n = _runs(call, warmup, reps, cap_ms)
    return unit_statistic(times[-n:])


# ---------------------------------------------------------------------------------------------------------
# torch units (eager, fused)


class _TorchMaker:
    """What a kind's torch_call (archgen.bench.unit_kinds) makes its call from: the unit's input `x`, tensors
    and modules in the unit's device, dtype and layout, and whether it runs fused."""

    def __init__(self, u: KernelUnit, fused: bool, device: str) -> None:
        import torch

        self.fused, self.device = fused, device
        self.dtype = getattr(torch, u.dtype)
        self.format = torch.channels_last if u.layout == "nhwc" else torch.contiguous_format
        self.vector = UNIT_KINDS[u.kind].reads_vector
        self.batch = u.batch
        self.x = self.tensor(u.c_in, u.h, u.w)

    def tensor(self, c: int, h: int, w: int) -> "torch.Tensor":
        import torch

        t = torch.randn((self.batch, c) if self.vector else (self.batch, c, h, w), device=self.device)
        t = t.to(self.dtype)
        return t.contiguous(memory_format=self.format) if t.dim() == 4 else t

    def ready(self, m: "nn.Module") -> "nn.Module":
        return m.eval().to(device=self.device, dtype=self.dtype, memory_format=self.format)


def torch_unit(u: KernelUnit, fused: bool, device: str) -> Callable[[], object]:
    """A call of the unit's modules (eval mode, on `device`, in its dtype and layout) on inputs of its
    shape: its kind's own (unit_kinds)."""
    return UNIT_KINDS[u.kind].torch_call(u, _TorchMaker(u, fused, device))


# ---------------------------------------------------------------------------------------------------------
# ONNX units (onnxruntime, openvino)


class _Graph:
    """A unit's ONNX graph being written: nodes, initializers (random weights), inputs."""

    def __init__(self, u: KernelUnit, blocked_inputs: bool = False) -> None:
        from onnx import TensorProto, helper

        self.u, self.nodes, self.inits, self.inputs = u, [], [], []
        self.blocked_inputs = blocked_inputs
        self.feeds: dict[str, tuple[int, ...]] = {}
        self._n = 0
        self._helper, self._float = helper, TensorProto.FLOAT

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def input(self, c: int, h: Optional[int] = None, w: Optional[int] = None) -> str:
        """A graph input of c channels (at h x w: a map), its batch axis dynamic as in an exported network.

        With `blocked_inputs`, a map of whole NCHWc blocks reaches the unit as ONNX Runtime hands it on inside
        a network, in its blocked layout: through a helper (a 1x1 depthwise conv, which ONNX Runtime runs
        blocked, then a 1x1 max pool, so that nothing of the unit fuses into the conv), which the timing
        leaves out (HELPER)."""
        from archgen.bench.kernel_units import local_nchwc_block

        name = f"in{len(self.inputs)}"
        dims = ["batch", c] + ([] if h is None else [h, w])
        self.inputs.append(self._helper.make_tensor_value_info(name, self._float, dims))
        self.feeds[name] = tuple([self.u.batch, c] + ([] if h is None else [h, w]))
        block = local_nchwc_block()
        if not self.blocked_inputs or h is None or not block or c % block:
            return name
        conv = f"{HELPER}{name}_conv"
        self.nodes.append(self._helper.make_node("Conv", [name, self.const((c, 1, 1, 1))], [conv], group=c,
                                                 kernel_shape=[1, 1]))
        self.nodes.append(self._helper.make_node("MaxPool", [conv], [f"{HELPER}{name}"], kernel_shape=[1, 1]))
        return f"{HELPER}{name}"

    def const(self, shape: tuple[int, ...], scale: float = 0.05, fill: Optional[float] = None) -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self.name("w")
        n = math.prod(shape)
        values = np.full(n, fill, np.float32) if fill is not None else np.resize(_noise(), n) * scale
        self.inits.append(numpy_helper.from_array(values.reshape(shape), name))
        return name

    def ints(self, values: Sequence[int]) -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self.name("i")
        self.inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(self._helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def act(self, x: str, kind: Optional[str]) -> str:
        """The act as torch's exporter writes it at archgen's opset (its function's `onnx` form)."""
        from archgen.layer_kinds.act import FUNCTIONS

        return FUNCTIONS[kind or "none"].onnx(self, x)

    def tail(self, y: str, u: KernelUnit) -> str:
        """The roles a unit absorbed after its own op, in order: a gate, the residual add (a second input), the
        act (a folded norm is already in the conv's weights and bias)."""
        ho, wo = out_size(u)
        for role in u.absorbed:
            if role == "gate":
                y = self.se(y, u.c_out, u.mid)
            elif role == "add":
                y = self.op("Add", y, self.input(u.c_out, ho, wo))
            elif role == "act":
                y = self.act(y, u.act)
        return y

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1,
             bias: bool = True) -> str:
        pad = dilation * (k - 1) // 2
        ins = [x, self.const((c_out, c_in // groups, k, k))] + ([self.const((c_out,))] if bias else [])
        return self.op("Conv", *ins, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                       dilations=[dilation, dilation], group=groups)

    def se(self, x: str, c: int, mid: int) -> str:
        """x times its squeeze-and-excitation gate: pool, 1x1 conv, relu, 1x1 conv, sigmoid, multiply."""
        g = self.op("GlobalAveragePool", x)
        g = self.op("Relu", self.conv(g, c, max(mid, 1), 1))
        return self.op("Mul", x, self.op("Sigmoid", self.conv(g, max(mid, 1), c, 1)))

    def batch_norm(self, x: str, c: int) -> str:
        return self.op("BatchNormalization", x, self.const((c,), fill=1.0), self.const((c,)),
                       self.const((c,)), self.const((c,), fill=1.0), epsilon=1e-5)

    def model(self, out: str) -> "onnx.ModelProto":
        h = self._helper
        rank = 2 if UNIT_KINDS[self.u.kind].writes_vector else 4
        dims = ["batch", "channels", "height", "width"][:rank]  # what the runtime infers
        graph = h.make_graph(self.nodes, "unit", self.inputs, [h.make_tensor_value_info(out, self._float, dims)],
                             self.inits)
        from archgen.export import ONNX_OPSET

        return h.make_model(graph, opset_imports=[h.make_opsetid("", ONNX_OPSET)], ir_version=IR_VERSION)


_NOISE: list = []


def _noise():
    """2^20 normal floats, drawn once (seeded): weights and inputs are tiled from them, since drawing a
    large conv's weights afresh would cost more than timing it."""
    import numpy as np

    if not _NOISE:
        _NOISE.append(np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32))
    return _NOISE[0]


def onnx_unit(u: KernelUnit, blocked_inputs: bool = False) -> tuple["onnx.ModelProto", dict[str, tuple[int, ...]]]:
    """The unit as the ONNX graph torch's exporter writes for it inside a network (its kind's own, unit_kinds),
    and its inputs' shapes (`blocked_inputs`: see _Graph.input)."""
    g = _Graph(u, blocked_inputs)
    kind = UNIT_KINDS[u.kind]
    x = g.input(u.c_in, *((None, None) if kind.reads_vector else (u.h, u.w)))
    return g.model(kind.onnx_graph(g, x, u)), g.feeds


def _feeds(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    import numpy as np

    return {name: np.resize(_noise(), math.prod(shape)).reshape(shape) for name, shape in shapes.items()}


def _time_onnxruntime(u: KernelUnit, device: str, warmup: int, reps: int, cap_ms: Optional[float]) -> float:
    """The unit's kernels' time by ONNX Runtime's own profile (unit_statistic over timed runs), its inputs handed
    in blocked as a network hands them on, and the layout conversions at the graph's edges left out."""
    import bisect
    import json
    import os
    import tempfile

    import onnxruntime as ort

    from archgen.bench.runner import onnxruntime_options

    model, shapes = onnx_unit(u, blocked_inputs=True)
    feeds = _feeds(shapes)
    options, providers = onnxruntime_options(device)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "unit")
        try:
            session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
            n = _runs(lambda: session.run(None, feeds), warmup, reps, cap_ms)
        except Exception:  # noqa: BLE001 - the runtime's refusal, whatever its own exception type: no time
            return math.nan
        with open(session.end_profiling()) as f:
            events = json.load(f)
    runs = sorted(e["ts"] for e in events if e.get("name") == "model_run")[-n:]
    per_run = [0.0] * n
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < runs[0]:
            continue
        if e["args"].get("op_name", "").startswith("Reorder") or e["name"].startswith(HELPER):
            continue
        per_run[bisect.bisect_right(runs, e["ts"]) - 1] += e["dur"] / 1e3
    return unit_statistic(per_run)


def _time_openvino(u: KernelUnit, device: str, warmup: int, reps: int, cap_ms: Optional[float]) -> float:
    """The unit's nodes' time by OpenVINO's performance counters (unit_statistic over timed inferences), its
    layout conversions (Reorder nodes) left out."""
    import openvino as ov

    from archgen.bench.runner import openvino_config

    core = ov.Core()
    model, shapes = onnx_unit(u)
    feeds = dict(enumerate(_feeds(shapes).values()))
    config = {**openvino_config(device), "PERF_COUNT": True}
    per_run: list[float] = []
    try:
        request = core.compile_model(core.read_model(model.SerializeToString()), "CPU", config).create_infer_request()

        def infer() -> None:
            request.infer(feeds)
            per_run.append(sum(p.real_time.total_seconds() for p in request.profiling_info
                               if p.node_type != "Reorder") * 1e3)

        n = _runs(infer, warmup, reps, cap_ms)
    except RuntimeError:  # the runtime's refusal: no time
        return math.nan
    return unit_statistic(per_run[-n:])


def _warm_allocator() -> None:
    """Have glibc's malloc serve tensors of up to 30 MB from its heap, as it does once a network's first pass
    has freed its activations (its mmap threshold rises to the largest mapped block freed, up to 32 MB). In a
    fresh process every larger output is mapped anew and page-faulted on each call, which in a VM costs more
    than the kernel itself (3-30 ms for a 1 ms conv, measured), and a network never pays it."""
    import torch

    torch.empty(30 << 18)  # allocated and freed at once


def time_units(units: Sequence[KernelUnit], backend: str, device: str = "cpu", *, warmup: int = 3, reps: int = 20,
               on_unit: Optional[Callable[[int], None]] = None, cap_ms: Optional[float] = None) -> list[float]:
    """The ms of each kernel configuration timed in isolation on `backend` (unit_statistic of its calls; see the
    module's docstring), in the order given; NaN for one the backend refuses to run (a runtime's error), which
    a fit leaves out.

    `on_unit(i)` follows the i-th; `cap_ms` stops a configuration's timed calls once they have taken that
    long (3 at least), so that calibrating large kernels costs little more than small ones.
    """
    import torch

    from archgen.bench.runner import missing_runtime

    _check_backend(backend, UNIT_BACKENDS, "time_units")
    missing = missing_runtime(backend)
    if missing:
        raise UserError(f"{missing}.")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if backend in ("eager", "fused"):
        _warm_allocator()
    out: list[float] = []
    with torch.inference_mode():
        for i, u in enumerate(units):
            if backend in ("onnxruntime", "openvino") and u.dtype != "float32":
                raise UserError(f"the {backend} backend runs float32 only (as archgen bench exports it), not "
                                f"{u.dtype}")
            if backend == "onnxruntime":
                out.append(_time_onnxruntime(u, device, warmup, reps, cap_ms))
            elif backend == "openvino":
                out.append(_time_openvino(u, device, warmup, reps, cap_ms))
            else:
                call = torch_unit(u, backend == "fused", device)
                try:
                    out.append(_wall_ms(call, warmup, reps, cap_ms, sync))
                except (RuntimeError, MemoryError):  # out of memory: no time
                    out.append(math.nan)
            if on_unit is not None:
                on_unit(i)
    return out


def lower_quartile(calls: list[float]) -> float:
    """What a network's interleaved calls are summarised by. On this project's 2-core VM, slow phases of 1.5-2x
    come and go machine-wide for seconds at a time, so a network's median depends on which phases its rounds
    met: 32 held-out networks timed twice, a minute apart (ONNX Runtime, batch 1, 8 rounds of 3 calls), agreed
    within +-10% for 53% and 59% of them by their median and 81% and 100% by their lower quartile
    (benchmarks/measurement_noise.py, results/measurement-noise-*-2026-12-03-*.json). A shift of the whole
    machine for longer than a measurement (eager's second pass ran 1.31x slower throughout) no statistic
    removes."""
    return percentile(calls, 25)


def check_network_timing(backend: str, device: str, dtype: str = "float32", layout: str = "nchw") -> None:
    """UserError, in a sentence, where networks cannot be timed on this backend, device, dtype and layout here (a
    CUDA GPU this machine lacks, a runtime not installed): what time_network_batches checks first, and what a
    command that times networks only at its end (search --verify) checks before its work."""
    from archgen.bench.device import require_device
    from archgen.bench.runner import missing_runtime

    _check_backend(backend, NETWORK_BACKENDS, "time_networks")
    require_device(device, "measure on the machine the latency model was calibrated on, or calibrate this one "
                           "(archgen calibrate --device cpu).")
    missing = missing_runtime(backend)
    if missing:
        raise UserError(f"{missing}.")
    if backend in ("onnxruntime", "openvino") and (dtype, layout) != ("float32", "nchw"):
        raise UserError(f"the {backend} backend runs the float32 NCHW model archgen exports, not {dtype} {layout}.")


def time_networks(specs: Sequence[str | dict], backend: str, batch: int, device: str = "cpu", *, rounds: int = 3,
                  reps: int = 10, image_size: Optional[int] = None,
                  on_network: Optional[Callable[[int], None]] = None, dtype: str = "float32",
                  layout: str = "nchw") -> list[float]:
    """The lower quartile (lower_quartile) of the ms of a forward pass of each network at `batch`, built (and
    exported for the runtimes) as
    `archgen bench` builds it, in `dtype` and `layout` (the runtimes: float32 NCHW, as exported); see
    time_network_batches."""
    return time_network_batches(specs, backend, [batch], device, rounds=rounds, reps=reps, image_size=image_size,
                                on_network=on_network, dtype=dtype, layout=layout)[batch]


def time_network_batches(specs: Sequence[str | dict], backend: str, batches: Sequence[int], device: str = "cpu", *,
                         rounds: int = 3, reps: int = 10, image_size: Optional[int] = None,
                         on_network: Optional[Callable[[int], None]] = None, dtype: str = "float32",
                         layout: str = "nchw", reduce: Callable[[list[float]], Any] = lower_quartile
                         ) -> dict[int, list[Any]]:
    """Per batch size, the lower quartile of the ms of each network's timed forward passes (or what `reduce`
    makes of them, round after round: `list` keeps them all), each network built (and exported) once.

    The networks are timed interleaved, `reps` calls of each in turn per round and batch size, after an
    untimed call (two on a runtime), so that a machine's drift over the run reaches them all alike; a runtime
    loads each network's session in its turn (see runner.runtime_loader). `on_network(i)` follows the i-th
    network's build (with its export), the slow part; torch.compile compiles on the first call.
    """
    import torch

    import archgen
    from archgen.bench.runner import make_backend, runtime_loader
    from archgen.bench.timing import time_cpu, time_cuda

    check_network_timing(backend, device, dtype, layout)
    if rounds < 1 or reps < 1 or not batches or min(batches) < 1:
        raise UserError(f"time_networks: rounds, reps and batch sizes must be 1 or more (got {rounds}, {reps} and "
                        f"{list(batches)}).")
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    runtime = backend in ("onnxruntime", "openvino")
    loaders: list[tuple[Callable[[], Callable], int, int]] = []  # each network's callable, made in its turn
    with torch.inference_mode():
        for i, ref in enumerate(specs):
            spec = archgen.load_spec(ref)
            size = archgen.profile(spec, input_size=image_size).input_size
            in_chans = spec.doc.input.channels
            built = archgen.build(spec, device=device).eval().to(dtype=getattr(torch, dtype), memory_format=fmt)
            if runtime:
                loader = runtime_loader(built, backend, device, in_chans, size)
            else:
                model = make_backend(backend, built, device, in_chans=in_chans, input_size=size)
                loader = lambda model=model: model  # noqa: E731
            loaders.append((loader, in_chans, size))
            if on_network is not None:
                on_network(i)
        timer = time_cuda if device == "cuda" else time_cpu
        out: dict[int, list[float]] = {}
        for batch in batches:
            times: list[list[float]] = [[] for _ in loaders]
            for _ in range(rounds):
                for i, (loader, in_chans, size) in enumerate(loaders):
                    x = torch.randn(batch, in_chans, size, size, device=device).to(getattr(torch, dtype))
                    model, x = loader(), x.contiguous(memory_format=fmt)
                    times[i] += timer(lambda: model(x), 2 if runtime else 1, reps).times_ms
                    del model
            out[batch] = [reduce(t) for t in times]
    return out
