"""Which statistic of a kernel's timed calls makes the better latency model: two models calibrated back to back
on this machine, one summarising each configuration's calls by their median (what calibration took until
2026-12-03) and one by kernel_timing.unit_statistic (their tenth percentile), then both judged on the same
held-out networks, measured once, interleaved (latency_bench's draws and figures, fewer networks).

    python benchmarks/unit_statistic_ab.py --backend onnxruntime --minutes 4 --n 12 --output results/x.json

Each model is reported as calibrated (`model`) and with its network correction refitted on the proxy
networks measured in this session (`model_refit`), which takes the VM's drift since calibration out of the
comparison; `repeat` is the held-out networks measured a second time against the first (the floor).
`--order` says which is calibrated first (the later one is calibrated closer to the measurement).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency_bench import (HELD_OUT_SPACES, PROXY_SEED, RESULTS, SPACES, drawn, environment,  # noqa: E402
                           family_representatives, held_out_networks, refit_correction, summary, write_json)

STATISTICS = {"median": statistics.median}


def calibrate(backend: str, statistic: str, minutes: float, batches: list[int], path: Path) -> tuple[Any, dict]:
    """A model calibrated with kernels summarised by `statistic` ('median' or 'unit_statistic')."""
    from archgen.bench import kernel_timing
    from archgen.bench.calibration import CalibrationRequest, run_calibration
    from archgen.bench.latency_model import load_model, write_model

    shipped = kernel_timing.unit_statistic
    kernel_timing.unit_statistic = STATISTICS.get(statistic, shipped)
    try:
        start = time.perf_counter()
        doc = run_calibration(CalibrationRequest(backend=backend, output=path, spaces=list(SPACES), minutes=minutes,
                                                 batch_sizes=batches))
        doc["meta"]["ab_statistic"] = statistic
        write_model(path, doc)
    finally:
        kernel_timing.unit_statistic = shipped
    return load_model(path), {"statistic": statistic, "minutes": (time.perf_counter() - start) / 60,
                              "cross_validated": {kind: {"samples": e["samples"], **e["cross_validated"]}
                                                  for kind, e in doc["kinds"].items()},
                              "pass_over_kernels": doc["network"].get("pass_over_kernels")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--n", type=int, default=12, help="held-out candidates per space")
    parser.add_argument("--proxy-n", type=int, default=4)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--order", default="median,unit_statistic")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    import archgen
    from archgen.bench.kernel_timing import time_network_batches

    batches = [int(b) for b in args.batch_sizes.split(",")]
    out: dict[str, Any] = {"benchmark": "unit_statistic_ab", "started": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), "environment": environment("cpu"), "args": {k: v for k, v in vars(args).items()
                                                                      if k != "output"}}
    models = {}
    for statistic in args.order.split(","):
        path = RESULTS / f"ab-{args.backend}-{statistic}.device.json"
        models[statistic], out[statistic] = calibrate(args.backend, statistic, args.minutes, batches, path)
        print(f"calibrated with the {statistic}: {out[statistic]['minutes']:.1f} min", file=sys.stderr)
    held_out = held_out_networks(list(HELD_OUT_SPACES), args.n, family_representatives(128))
    proxies = drawn(list(HELD_OUT_SPACES), args.proxy_n, PROXY_SEED)
    specs = [spec for _, _, spec in held_out] + [spec for _, spec in proxies]
    k = len(held_out)
    measured_at = time_network_batches(specs, args.backend, batches, rounds=args.rounds, reps=args.reps)
    again_at = time_network_batches(specs[:k], args.backend, batches, rounds=args.rounds, reps=args.reps)
    rows = []
    for batch in batches:
        measured = measured_at[batch]
        out.setdefault("repeat", {})[str(batch)] = summary(again_at[batch], measured[:k])
        for statistic, model in models.items():
            predictions = [model.predict(spec, batch=batch) for spec in specs]
            _, refitted = refit_correction(batch, predictions, k, measured)
            out[statistic].setdefault("by_batch", {})[str(batch)] = {
                "model": summary([p.total_ms for p in predictions[:k]], measured[:k]),
                "model_refit": summary(refitted[:k], measured[:k])}
            rows += [{"statistic": statistic, "batch": batch, "origin": origin, "name": name, "measured_ms": m,
                      "measured_again_ms": m2, "predicted_ms": p.total_ms, "refit_ms": r}
                     for (origin, name, _), m, m2, p, r in zip(held_out, measured, again_at[batch], predictions,
                                                               refitted)]
            print(f"b{batch} {statistic}: {out[statistic]['by_batch'][str(batch)]}", file=sys.stderr)
        print(f"b{batch} measured again: {out['repeat'][str(batch)]}", file=sys.stderr)
    out["networks"], out["macs"] = rows, {name: archgen.profile(spec).macs for _, name, spec in held_out}
    out["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out["load_average_after"] = os.getloadavg()
    write_json(args.output, out)


if __name__ == "__main__":
    main()
