"""Latency prediction against measurement, on specs held out of the calibration set (issue 11).

Calibrates a latency table on a few specs (archgen.bench.latency.calibrate: each distinct stem, block and
head timed once), predicts the latency of other specs that reuse those configurations (deeper siblings),
measures those specs whole in the same run, and reports the relative error |predicted - measured| /
measured per spec, backend and batch size, with its median and worst per backend. The goal in the issue:
median <= 10% and worst <= 25% for eager and fused on a 2-core CPU. Nothing is judged in CI.

Both sides are timed alike: each configuration (and each whole network) keeps the lowest median of
`--rounds` rounds of `--reps` passes, and calibration and measurement alternate over `--sweeps` sweeps, each
side keeping its lowest figure, since a shared VM's speed drifts over minutes and a side timed only in a
slow spell would be off by the drift.

    python benchmarks/latency_bench.py --cpu-time       # CPU, ~10 minutes on 2 cores
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


def measure_whole(spec: str, backend: str, batch: int, size, device: str, warmup: int, reps: int,
                  cpu_time: bool, rounds: int) -> float:
    """Ms of the whole network on one random batch, with the timer and rounds the table was calibrated with
    (the lowest of the rounds' medians)."""
    import torch

    import archgen
    from archgen.bench.latency import time_rounds
    from archgen.bench.runner import make_backend
    from archgen.bench.timing import time_cpu, time_cpu_process, time_cuda

    prof = archgen.profile(spec, size)
    model = make_backend(backend, archgen.build(spec, device=device).eval(), device)
    x = torch.randn(batch, 3, prof.input_size, prof.input_size, device=device)
    timer = time_cuda if device == "cuda" else time_cpu_process if cpu_time else time_cpu
    with torch.inference_mode():
        return time_rounds(lambda: model(x), timer, warmup, reps, rounds)


def lowest(table: dict, other: dict) -> dict:
    """`table` with each configuration's time the lower of its and `other`'s (same specs and conditions)."""
    for key, entry in table["blocks"].items():
        for cond, ms in other["blocks"][key]["ms"].items():
            entry["ms"][cond] = min(entry["ms"].get(cond, ms), ms)
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    ap.add_argument("--cpu-time", action="store_true", help="on the CPU, time both sides by the process's CPU time "
                    "with one torch thread, so that a shared machine's other load is left out")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--backends", default="eager,fused")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --reps; both sides keep the lowest median")
    ap.add_argument("--sweeps", type=int, default=2, help="calibrate-then-measure sweeps; each side keeps its "
                    "lowest figure over them")
    ap.add_argument("--quick", action="store_true", help="the CIFAR suite only")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)

    import torch

    from archgen.bench.latency import calibrate, predict
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
        table, measured = None, {}
        for sweep in range(args.sweeps):
            # Calibrating and measuring alternate, sweep after sweep, and each side keeps its lowest figure: a
            # shared VM's speed drifts over minutes, and one side timed only in a slow spell would be off by it.
            print(f"[{suite}] sweep {sweep + 1}/{args.sweeps}: calibrating on {', '.join(calibration)}",
                  file=sys.stderr)
            fresh = calibrate(calibration, args.device, backends, ["float32"], [False], batches, args.warmup,
                              args.reps, size, cpu_time=args.cpu_time, rounds=args.rounds)
            table = fresh if table is None else lowest(table, fresh)
            for cell in cells:
                ms = measure_whole(*cell, size, args.device, args.warmup, args.reps, args.cpu_time, args.rounds)
                measured[cell] = min(measured.get(cell, ms), ms)
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
                          "warmup": args.warmup, "reps": args.reps, "rounds": args.rounds, "sweeps": args.sweeps,
                          "timer": table["config"]["timer"]},
               "summary": summary, "results": rows}
    slug = re.sub(r"[^a-z0-9]+", "-", env["device"].lower()).strip("-")[:40]
    out = Path(args.results_dir) / f"latency-{slug}-{table['config']['timer']}-{dt.date.today().isoformat()}.json"
    from archgen.render import write_atomic

    write_atomic(str(out), json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
