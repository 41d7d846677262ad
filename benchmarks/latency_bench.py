"""Latency prediction against measurement, on specs held out of the calibration set (issue 11).

Calibrates a latency table on a few specs (each distinct stem, block and head of theirs timed inside whole
passes of their networks, as archgen calibrate does), predicts the latency of other specs that reuse those
configurations (deeper siblings) with archgen.bench.latency.predict, measures those specs whole, and reports
the relative error |predicted - measured| / measured per spec, backend and batch size, with its median and
worst per backend. The goal in the issue: median <= 10% and worst <= 25% for eager and fused on a 2-core CPU.
Nothing is judged in CI.

Both sides are timed in one interleaved loop: each repetition runs one segment-timed pass of every
calibration network and one whole pass of every held-out network, in a shuffled order, and each side keeps
its medians over the repetitions. A shared VM's speed drifts by up to 1.5x within seconds (a whole network
and the chain of its own segments, timed one after the other, differed by a third); interleaved, both
sides meet the same moments, so what is left is the predictor's error, not the drift's.

    python benchmarks/latency_bench.py --cpu-time       # CPU, ~5 minutes on 2 cores
    python benchmarks/latency_bench.py --device cuda    # the same report on a GPU
    python benchmarks/latency_bench.py --quick          # CIFAR specs only, to check the script

Results: benchmarks/results/latency-<device>-<timer>-<date>.json, with the device, versions, the threads used and
the load average before and after (a shared machine's load shows in the errors).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
#: (calibration specs, held-out specs that reuse their configurations, input size)
SUITES = {
    "cifar": (["resnet20_cifar", "plain20_cifar"], ["resnet56_cifar", "resnet110_cifar", "plain56_cifar"], None),
    "imagenet": (["resnet18", "resnet50"], ["resnet34", "resnet101", "resnet152"], 112),
}


def whole_networks(cells: list[tuple[str, str, int]], size, device: str) -> dict:
    """(spec, backend) -> (the built network on its backend, batch -> its input), for the measured cells."""
    import torch

    import archgen
    from archgen.bench.runner import make_backend

    out = {}
    for spec, backend, batch in cells:
        if (spec, backend) not in out:
            prof = archgen.profile(spec, size)
            out[spec, backend] = (make_backend(backend, archgen.build(spec, device=device).eval(), device), {},
                                  prof.input_size)
        model, inputs, side = out[spec, backend]
        inputs[batch] = torch.randn(batch, 3, side, side, device=device)
    return out


def interleaved(calibration: list[str], cells: list[tuple[str, str, int]], backends: list[str], batches: list[int],
                size, device: str, warmup: int, reps: int, cpu_time: bool) -> tuple[dict, dict]:
    """The latency table of the calibration specs and each cell's measured ms, timed pass by pass in one
    loop by archgen.bench.latency.time_interleaved (one round: see the module docstring)."""
    from archgen.bench.latency import latency_table, plan_calibration, segmented, time_interleaved
    from archgen.bench.timing import call_ms

    jobs, entries = plan_calibration(calibration, backends, ["float32"], [False], batches, size)
    nets = [segmented(job, device, cpu_time) for job in jobs]
    wholes = whole_networks(cells, size, device)

    def call(spec: str, backend: str, batch: int):
        model, inputs, _ = wholes[spec, backend]
        return lambda: call_ms(model, inputs[batch], device, cpu_time)

    measured_segments, measured = time_interleaved(nets, warmup, reps, cpu_time, rounds=1,
                                                   calls={cell: call(*cell) for cell in cells})
    for key, times in measured_segments.items():
        entries[key]["ms"].update(times)
    table = latency_table(entries, calibration, device, backends, ["float32"], [False], batches, size,
                          {"warmup": warmup, "reps": reps, "rounds": 1,
                           "method": "interleaved with the measured networks"}, cpu_time)
    return table, measured


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    ap.add_argument("--cpu-time", action="store_true", help="on the CPU, time both sides by the process's CPU time "
                    "with one torch thread, so that a shared machine's other load is left out")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--backends", default="eager,fused")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=30, help="interleaved repetitions; each side keeps its medians")
    ap.add_argument("--quick", action="store_true", help="the CIFAR suite only")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)

    import torch

    from archgen.bench.latency import predict
    from archgen.bench.results import environment

    if args.device == "cuda" and not torch.cuda.is_available():
        print("latency_bench: no CUDA GPU here; run on a GPU machine, or leave out --device cuda", file=sys.stderr)
        return 2
    if args.cpu_time:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    backends = args.backends.split(",")
    load_before = os.getloadavg()
    env = environment(args.device)
    rows = []
    for suite, (calibration, held_out, size) in SUITES.items():
        if args.quick and suite != "cifar":
            continue
        cells = [(spec, backend, batch) for spec in held_out for backend in backends for batch in batches]
        print(f"[{suite}] calibrating on {', '.join(calibration)} and measuring {', '.join(held_out)}, "
              f"{args.reps} interleaved repetitions", file=sys.stderr)
        table, measured = interleaved(calibration, cells, backends, batches, size, args.device, args.warmup,
                                      args.reps, args.cpu_time)
        for spec, backend, batch in cells:
            predicted = predict(spec, table, batch, "float32", False, backend, size).total_ms
            ms = measured[spec, backend, batch]
            error = abs(predicted - ms) / ms
            rows.append({"suite": suite, "spec": spec, "backend": backend, "batch": batch, "image_size": size,
                         "predicted_ms": predicted, "measured_ms": ms, "relative_error": error})
            print(f"  {spec} {backend} batch {batch}: predicted {predicted:.4g} ms, measured {ms:.4g} ms, error "
                  f"{error:.1%}", file=sys.stderr)
    summary = {}
    for backend in backends:
        errors = [r["relative_error"] for r in rows if r["backend"] == backend]
        summary[backend] = {"median_relative_error": statistics.median(errors), "worst_relative_error": max(errors),
                            "cells": len(errors)}
        print(f"{backend}: median error {summary[backend]['median_relative_error']:.1%}, worst "
              f"{summary[backend]['worst_relative_error']:.1%} over {len(errors)} held-out cells")
    payload = {"environment": env, "torch_threads": torch.get_num_threads(), "load_average_before": load_before,
               "load_average_after": os.getloadavg(),
               "config": {"suites": {k: {"calibration": v[0], "held_out": v[1], "image_size": v[2]}
                                     for k, v in SUITES.items() if not args.quick or k == "cifar"},
                          "batch_sizes": batches, "backends": backends, "dtype": "float32", "layout": "nchw",
                          "warmup": args.warmup, "reps": args.reps, "method": "interleaved",
                          "timer": table["config"]["timer"]},
               "summary": summary, "results": rows}
    slug = re.sub(r"[^a-z0-9]+", "-", env["device"].lower()).strip("-")[:40]
    out = Path(args.results_dir) / f"latency-{slug}-{table['config']['timer']}-{dt.date.today().isoformat()}.json"
    from archgen.render import write_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(str(out), json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
