"""How far a whole-pass measurement on this machine moves when it is taken again (issue 19's noise floor), and
whether a statistic other than the median would hold it still.

latency_bench.py measures its held-out networks twice and finds the second measurement within +-10% of the
first for only 28-74% of them, which caps what any predictor can show against them. This script asks why:
it measures the held-out networks of the first `--n` per space twice, interleaved in `--rounds` rounds of
`--reps` calls as latency_bench does, keeps every call, and reports

- the agreement of the two measurements (latency_bench.summary: within +-10%, median and worst error, tau)
  under the median of all calls, their minimum, their 10th percentile and lower quartile (as
  archgen.bench.timing.percentile interpolates them; the lower quartile is what archgen measures networks by),
  and the fastest round's median (what the machine gives in its fastest phase);
- each round's median over the network's fastest call in either measurement, in the order the networks
  were timed: slow phases that come and go for seconds at a time, machine-wide, show as runs of networks
  timed one after another that are all slow together.

    python benchmarks/measurement_noise.py --backend onnxruntime --batch 1 --n 8 --rounds 8 --reps 3

Results: benchmarks/results/measurement-noise-<backend>-b<batch>-<date>-<HHMM>.json, with every call's ms;
`--again FILE` computes a file's agreement again from its calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency_bench import HELD_OUT_SEED, HELD_OUT_SPACES, RESULTS, drawn, environment, summary, write_json  # noqa: E402


def statistics_of(reps: int) -> dict[str, Callable[[list[float]], float]]:
    """The statistics compared, each of a network's calls in timing order (`reps` a round); `lower_quartile`
    is the one archgen measures networks by."""
    from archgen.bench.kernel_timing import lower_quartile
    from archgen.bench.timing import percentile

    def fastest_round(calls: list[float]) -> float:
        return min(statistics.median(calls[i:i + reps]) for i in range(0, len(calls), reps))

    return {"median": statistics.median, "min": min, "p10": lambda calls: percentile(calls, 10),
            "lower_quartile": lower_quartile, "fastest_round_median": fastest_round}


def agreement(first: list[list[float]], second: list[list[float]], reps: int) -> dict[str, dict]:
    """Per statistic, the second measurement against the first (latency_bench.summary), printed."""
    out = {}
    for name, stat in statistics_of(reps).items():
        s = out[name] = summary([stat(c) for c in second], [stat(c) for c in first])
        print(f"{name:22s} within +-10% {s['within_10pct']:.0%}  median {s['median_error']:.1%}  "
              f"worst {s['worst_error']:.0%}  tau {s['kendall_tau']:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="onnxruntime", choices=("eager", "onnxruntime", "openvino"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--n", type=int, default=8, help="held-out networks per space (latency_bench's first n)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--again", type=Path, help="a results file: its agreement computed again from its calls")
    args = parser.parse_args()
    from archgen.bench.kernel_timing import time_network_batches

    if args.again is not None:
        done = json.loads(args.again.read_text())
        done["agreement"] = agreement(done["calls_ms"]["first"], done["calls_ms"]["second"], done["reps"])
        write_json(args.again, done)
        return

    started = dt.datetime.now(dt.timezone.utc)
    networks = drawn(list(HELD_OUT_SPACES), args.n, HELD_OUT_SEED)
    specs = [spec for _, spec in networks]
    load_before = os.getloadavg()
    calls = [time_network_batches(specs, args.backend, [args.batch], rounds=args.rounds, reps=args.reps,
                                  reduce=list)[args.batch] for _ in range(2)]
    first, second = calls
    agreed = agreement(first, second, args.reps)
    fastest = [min(min(a), min(b)) for a, b in zip(first, second)]
    phases = {which: [[statistics.median(c[r * args.reps:(r + 1) * args.reps]) / f for c, f in zip(timed, fastest)]
                      for r in range(args.rounds)] for which, timed in (("first", first), ("second", second))}
    for which, rounds in phases.items():
        for r, row in enumerate(rounds):
            print(f"{which} round {r}: " + " ".join(f"{x:.1f}" for x in row))
    out = {"benchmark": "measurement_noise", "started": started.isoformat(timespec="seconds"),
           "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "environment": environment("cpu"), "load_average_before": load_before,
           "load_average_after": os.getloadavg(), "backend": args.backend, "batch": args.batch,
           "rounds": args.rounds, "reps": args.reps,
           "networks": [{"space": space, "name": spec["name"]} for space, spec in networks],
           "agreement": agreed, "round_median_over_fastest": phases, "calls_ms": {"first": first, "second": second}}
    path = args.output or RESULTS / (f"measurement-noise-{args.backend}-b{args.batch}-{started:%Y-%m-%d-%H%M}.json")
    write_json(path, out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
