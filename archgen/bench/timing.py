"""archgen's one timing module: every figure `archgen bench`, `archgen calibrate` and the benchmarks print is
taken here, so that a latency and a prediction read the same clocks.

Whole calls (`time_cuda`, `time_cuda_graph`, `time_cpu`) return a `Timing` of per-repetition milliseconds
after `warmup` untimed calls: CUDA events on the GPU, optionally replaying a captured CUDA graph, and
perf_counter on the CPU. `segment_times` times one forward pass segment by segment, for latency tables; on
the CPU it may read the process's CPU time instead, which leaves out the time a shared machine gives other
processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        raise ValueError("no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Timing:
    times_ms: list[float]
    method: str  # "cuda-events", "cuda-graph" or "cpu-perf-counter" (see timer_name)

    @property
    def median(self) -> float:
        return percentile(self.times_ms, 50)

    @property
    def p10(self) -> float:
        return percentile(self.times_ms, 10)

    @property
    def p90(self) -> float:
        return percentile(self.times_ms, 90)


def time_cuda(fn: Callable[[], object], warmup: int, reps: int) -> Timing:
    """One pair of CUDA events around each call; synchronised once at the end."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return Timing([s.elapsed_time(e) for s, e in zip(starts, ends)], timer_name("cuda"))


def time_cuda_graph(fn: Callable[[], object], warmup: int, reps: int) -> Timing:
    """Capture one call of `fn` (its inputs must be static tensors) in a CUDA graph and time replays."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(max(warmup, 3)):  # warm-up on a side stream, as capture requires
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    timing = time_cuda(graph.replay, warmup, reps)
    timing.method = "cuda-graph"
    return timing


def time_cpu(fn: Callable[[], object], warmup: int, reps: int) -> Timing:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(times, timer_name("cpu"))


def timer_name(device: str, cpu_time: bool = False) -> str:
    """The clock that times `device`, as results and latency tables record it."""
    return "cuda-events" if device == "cuda" else "cpu-process-time" if cpu_time else "cpu-perf-counter"


def segment_times(modules: list, x: Any, device: str, cpu_time: bool = False) -> tuple[list[float], Any]:
    """One forward pass through the modules in order: the ms each took, and the output. On the GPU one CUDA
    event between segments (synchronised once at the end); on the CPU perf_counter, or with cpu_time (one
    torch thread, set by the caller) this process's CPU time, which then equals latency."""
    import torch

    if device == "cuda":
        events = [torch.cuda.Event(enable_timing=True) for _ in range(len(modules) + 1)]
        events[0].record()
        y = x
        for module, event in zip(modules, events[1:]):
            y = module(y)
            event.record()
        torch.cuda.synchronize()
        return [a.elapsed_time(b) for a, b in zip(events, events[1:])], y
    clock = time.process_time if cpu_time else time.perf_counter
    times, y = [], x
    t = clock()
    for module in modules:
        y = module(y)
        now = clock()
        times.append((now - t) * 1e3)
        t = now
    return times, y


def call_ms(module: Any, x: Any, device: str, cpu_time: bool = False) -> float:
    """Ms of one call of a whole module, by the clock segments are timed with (the latency benchmark's
    held-out networks, measured beside the prediction)."""
    return segment_times([module], x, device, cpu_time)[0][0]
