"""Timers: CUDA events on the GPU (optionally replaying a captured CUDA graph), perf_counter on the CPU.

Each returns a `Timing` of per-repetition milliseconds taken after `warmup` untimed calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


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
    method: str  # "cuda-events", "cuda-graph", "cpu-perf-counter", "cpu-process-time"

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
    return Timing([s.elapsed_time(e) for s, e in zip(starts, ends)], "cuda-events")


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
    return Timing(times, "cpu-perf-counter")


def time_cpu_process(fn: Callable[[], object], warmup: int, reps: int) -> Timing:
    """CPU time this process spends in each call (time.process_time): on a shared machine, the time the OS
    gives other processes is left out. It equals latency only with one torch thread (torch.set_num_threads(1));
    with more, it sums the threads' time."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return Timing(times, "cpu-process-time")
