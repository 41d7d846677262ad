"""Where the host's time goes when a fused model runs without CUDA graphs, and what RepeatedLaunch saves.

A GPU as fast as an H200 finishes ResNet-50's kernels at batch 64 sooner than one host thread can launch
them, so a pass takes as long as its launches. This times, on the GPU:

1. the host's time per call (a tiny tensor, so that the GPU waits on the host) of: one PyTorch op; eager's
   block tail (BN, add, ReLU: three ops); `bn_act` (checks, planning, launch); a fused module's
   `RepeatedLaunch` (planned once per shape); and the bare Triton launch of a planned call;
2. ResNet-50 passes (bfloat16, channels_last) at batch 1 and 64: eager, fused with RepeatedLaunch, and fused
   calling bn_act each time, interleaved in rounds so that clock changes meet every variant alike.

    python benchmarks/launch_overhead.py --output benchmarks/results/launch-overhead-h200.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def host_us_per_call(fn, calls: int) -> float:
    """Wall time per call over `calls` calls, after a warm-up, the GPU drained before and after."""
    import torch

    for _ in range(200):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def call_costs(calls: int) -> dict[str, float]:
    import torch
    import torch.nn as nn

    from archgen.kernels.bn_act import RepeatedLaunch, _kernel, bn_act, bn_scale_shift, plan_launch

    x = torch.randn(1, 64, 8, 8, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    r = torch.randn_like(x)
    bn = nn.BatchNorm2d(64).cuda().to(torch.bfloat16).eval()
    scale, shift = (v.cuda() for v in bn_scale_shift(bn))
    repeated = RepeatedLaunch()
    _, launch = plan_launch(x, None, shift, r)
    kernel = _kernel(False, False)
    grid, kwargs = launch.grid(), launch.kwargs

    def eager_tail():
        with torch.no_grad():
            y = bn(x)
            y += r
            return torch.relu_(y)

    return {"one torch op (relu)": host_us_per_call(lambda: torch.relu(x), calls),
            "eager tail (bn, add, relu)": host_us_per_call(eager_tail, calls),
            "bn_act": host_us_per_call(lambda: bn_act(x, None, shift, r), calls),
            "RepeatedLaunch": host_us_per_call(lambda: repeated(x, None, shift, r), calls),
            "bare Triton launch": host_us_per_call(lambda: kernel[grid](*launch.args, **kwargs), calls)}


def passes(batch_sizes: list[int], rounds: int, per_round: int) -> list[dict]:
    import torch

    import archgen
    from archgen.kernels import fuse
    from archgen.kernels.bn_act import bn_act
    from archgen.kernels.fuse import KernelVectors

    torch.manual_seed(0)
    model = archgen.build("resnet50").cuda().to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
    fused = fuse(model)
    unplanned = fuse(model)
    for m in unplanned.modules():
        if isinstance(m, KernelVectors):
            m.launch = bn_act  # every call checked and planned anew, as before RepeatedLaunch
    variants = {"eager": model, "fused": fused, "fused, bn_act each call": unplanned}
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=torch.bfloat16).to(
            memory_format=torch.channels_last)
        times: dict[str, list[float]] = {name: [] for name in variants}
        with torch.no_grad():
            for name, net in variants.items():
                for _ in range(5):
                    net(x)
            for _ in range(rounds):
                for name, net in variants.items():
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    torch.cuda.synchronize()
                    start.record()
                    for _ in range(per_round):
                        net(x)
                    end.record()
                    end.synchronize()
                    times[name].append(start.elapsed_time(end) / per_round)
        eager = statistics.median(times["eager"])
        for name, ms in times.items():
            rows.append({"batch": batch, "variant": name, "median_ms": statistics.median(ms), "rounds_ms": ms,
                         "speedup_over_eager": eager / statistics.median(ms)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--batch-sizes", default="1,64")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--output")
    args = ap.parse_args(argv)

    import torch

    from archgen.bench.results import environment
    from archgen.render import write_atomic

    if not torch.cuda.is_available():
        print("launch_overhead: no CUDA GPU here; it measures the GPU's host overhead only", file=sys.stderr)
        return 2
    costs = call_costs(args.calls)
    print("host time per call, us (1x64x8x8 bfloat16, channels_last):")
    for name, us in costs.items():
        print(f"  {name:28s} {us:7.1f}")
    rows = passes([int(b) for b in args.batch_sizes.split(",")], args.rounds, args.per_round)
    print("ResNet-50 pass, bfloat16, channels_last, no CUDA graphs (median of rounds, ms):")
    for row in rows:
        print(f"  batch {row['batch']:<4d} {row['variant']:26s} {row['median_ms']:7.3f}  "
              f"{row['speedup_over_eager']:.2f}x eager")
    if args.output:
        payload = {"environment": environment("cuda"), "args": vars(args), "host_us_per_call": costs,
                   "passes": rows}
        write_atomic(args.output, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
