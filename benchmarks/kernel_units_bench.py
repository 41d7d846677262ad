"""How many RegNetX-400MF-size candidates per second `kernel_units` groups, per backend.

    python benchmarks/kernel_units_bench.py [--candidates 300] [--seed 0]

The candidates are regnetx_004's spec with the RegNet rule's depth, w0, wa, wm and group width drawn around
its own (16-24 blocks, about 70 units each once fused), planned before timing: a latency predictor has the
plan already. Each backend is timed twice over the same candidates, in one process pinned to one core:
`cold` from an empty memo (every block configuration grouped once), `warm` with every block remembered (the
steady state of a search whose candidates share block configurations). Prints one line per (backend, pass);
nothing is written.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from pathlib import Path

import yaml

import archgen
from archgen.bench import kernel_units as ku
from archgen.errors import SpecError
from archgen.memo import clear_all


def candidates(n: int, seed: int) -> list:
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "specs" / "regnetx_004.yaml").read_text())
    rng = random.Random(seed)
    plans = []
    while len(plans) < n:
        spec = copy.deepcopy(raw)
        rule = spec["stages"]["regnet"]
        rule.update(depth=rng.randint(16, 24), w0=rng.choice(range(16, 57, 8)), wa=round(rng.uniform(20, 40), 2),
                    wm=round(rng.uniform(2.2, 2.8), 2), group_width=rng.choice([8, 16, 24]))
        spec["name"] = f"candidate{len(plans)}"
        try:
            plans.append(archgen.plan(spec))
        except SpecError:  # a draw the rule cannot quantize into groups: draw again
            continue
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    plans = candidates(args.candidates, args.seed)
    for backend in ku.BACKENDS:
        for label in ("cold", "warm"):
            if label == "cold":
                clear_all()
            start = time.perf_counter()
            units = sum(len(ku.kernel_units(p, backend)) for p in plans)
            seconds = time.perf_counter() - start
            print(f"{backend:12s} {label}: {len(plans) / seconds:8,.0f} candidates/s {units / seconds:10,.0f} units/s "
                  f"({units / len(plans):.0f} units each)")
    assert "torch" not in sys.modules, "kernel units imported torch"


if __name__ == "__main__":
    main()
