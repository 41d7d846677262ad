"""The design path's speed before and after a change, side by side in one run (issue 18's "do not go below").

    git worktree add /tmp/base dba06ee        # the tree to compare with
    python benchmarks/design_ab.py --base /tmp/base [--rounds 6] [--output benchmarks/results/design_ab.json]

Each round runs, in fresh processes pinned to the same core, base and this tree (each first in every other
round, so that an order effect falls on both), the design path (`figures(space.spec(values))`, what sample and
search do per candidate) over the same 3,000 buildable RegNetX-400MF draws, three times from memos cleared by
that tree's own call (base: design/count.clear_memos; here: archgen.memo.clear_all, which empties every memo,
so this tree's "cold" is the colder) and three times warm, and three times from every memo and lru_cache of
archgen cleared ("cold_all": the same start for both trees); then fvcore traces --traced of the candidates,
built by this tree. Alternating spreads the VM's drift over both trees; the medians and the ratio over fvcore
are reported per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

#: Run in a tree's own process (its benchmarks/ and archgen/ first on the path).
CHILD = r"""
import json, os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.path.insert(0, "benchmarks")
import design_bench as db
from archgen.design.space import load_space
space = load_space("regnetx_400mf")
values = db.buildable(space, db.draws(space, 6000, 0))[:3000]
try:
    from archgen.design.fast_count import figures
    from archgen.memo import clear_all as clear
except ImportError:
    from archgen.design.count import figures, clear_memos as clear
def clear_everything():
    # the tree's own call, then every lru_cache of archgen and every Memo it holds (dba06ee's own call left the
    # planner's, the stem's and RegNet's caches warm; this tree's clear_all leaves nothing for this to find)
    import functools, gc
    from archgen.memo import Memo
    clear()
    for obj in gc.get_objects():
        if isinstance(obj, Memo):
            obj.clear()
        elif isinstance(obj, functools._lru_cache_wrapper) and obj.__module__.startswith("archgen"):
            obj.cache_clear()
def rate():
    t = time.perf_counter(); [figures(space.spec(v)) for v in values]; return len(values) / (time.perf_counter() - t)
out = {"n": len(values), "cold": [], "warm": [], "cold_all": []}
for _ in range(3):
    clear(); out["cold"].append(rate())
    out["warm"].append(rate())
    clear_everything(); out["cold_all"].append(rate())
traced = int(sys.argv[1])
if traced:
    import torch
    torch.set_num_threads(1)
    rows = db.tracers(space, values[:traced])
    out["fvcore"] = traced / sum(r["fvcore_s"] for r in rows)
print(json.dumps(out))
"""


def child(tree: Path, traced: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(traced)], cwd=tree, env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a worktree of the code to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--traced", type=int, default=10)
    parser.add_argument("--output", type=Path, default=HERE / "benchmarks/results/design_ab.json")
    args = parser.parse_args()
    runs: dict[str, dict[str, list[float]]] = {label: {"cold": [], "warm": [], "cold_all": []}
                                               for label in ("base", "this")}
    fvcore: list[float] = []
    for i in range(args.rounds):
        pair = (("base", args.base), ("this", HERE))
        for label, tree in pair if i % 2 == 0 else pair[::-1]:  # each tree first in every other round
            out = child(tree, args.traced if label == "this" else 0)
            for kind in runs[label]:
                runs[label][kind] += out[kind]
            fvcore += [out["fvcore"]] if "fvcore" in out else []
        print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
    fv = statistics.median(fvcore)
    base_rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.base, capture_output=True, text=True).stdout
    this_rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout
    result = {"benchmark": "design_ab", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpu_cores": os.cpu_count(), "load_average_1_5_15min": os.getloadavg(),
              "revisions": {"base": base_rev.strip(), "this": this_rev.strip()},
              "fvcore_per_s": fv, "fvcore_runs": fvcore}
    for label, r in runs.items():
        result[label] = {**{f"{kind}_per_s": statistics.median(r[kind]) for kind in r},
                         **{f"{kind}_over_fvcore": statistics.median(r[kind]) / fv for kind in r}, "runs": r}
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.output)
    print(json.dumps({k: v for k, v in result.items() if k in ("fvcore_per_s", "base", "this")}, default=str)[:600])


if __name__ == "__main__":
    main()
