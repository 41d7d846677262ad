"""How many design-space candidates archgen draws, plans and counts per second, beside tracing counters.

    python benchmarks/design_bench.py [--space regnetx_400mf] [--candidates 3000] [--search 100000]
                                      [--output benchmarks/results/design_bench.json]

Everything runs pinned to one core (sched_setaffinity, torch at one thread), after imports, in one process,
so the figures are ratios measured side by side:
- `design_path`: put drawn values into the validated space, plan (stages capped, repeats counted),
  count: what `archgen sample` and `archgen search` do per candidate, for `--candidates` buildable draws
  from empty memos (`archgen.memo.clear_all`: the short run's worst case, each new stage shape costed once);
- `stream`: `--stream` candidates drawn, put, planned and counted in one run from empty memos, unbuildable
  draws included (the issue's "drawn, planned and counted per second" over a run of realistic length);
- `profile_path`: the same candidates through `archgen.profile` (full plan and per-layer tally);
- `reload_path`: the same candidates written as YAML mappings and loaded from scratch (validation, plan,
  profile), what a loop over `archgen validate` would cost;
- `fvcore` and `ptflops`: the first few candidates built as torch models (build timed apart) and traced;
- `search`: a random search of `--search` candidates (its wall time), and tracemalloc's peak while
  sampling N and 10N specs (memory flat in N).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import time
import tracemalloc
from datetime import datetime, timezone
from importlib.metadata import version


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def design_path(space, values: list[tuple]) -> float:
    from archgen.design.fast_count import figures
    from archgen.memo import clear_all

    clear_all()
    seconds, _ = timed(lambda: [figures(space.spec(v)) for v in values])
    return seconds


def stream(space, n: int, seed: int) -> float:
    """Candidates per second drawn, put into the space, planned and counted, over a run of `n` from empty
    memos (unbuildable draws included, refused as the full path refuses them): `archgen sample` and
    `archgen search` without their bookkeeping."""
    from archgen.design.fast_count import figures
    from archgen.design.sample import draw
    from archgen.errors import SpecError
    from archgen.memo import clear_all

    def run() -> None:
        rng = random.Random(seed)
        for _ in range(n):
            try:
                figures(space.spec(draw(space, rng)))
            except SpecError:
                pass

    clear_all()
    seconds, _ = timed(run)
    return n / seconds


def draws(space, n: int, seed: int) -> list[tuple]:
    from archgen.design.sample import draw

    rng = random.Random(seed)
    return [draw(space, rng) for _ in range(n)]


def buildable(space, values: list[tuple]) -> list[tuple]:
    """The candidates the planner accepts (a few RegNet draws have too small a last stage, say)."""
    import archgen
    from archgen.errors import SpecError

    out = []
    for v in values:
        try:
            archgen.profile(space.spec(v))
            out.append(v)
        except SpecError:
            pass
    return out


def tracers(space, values: list[tuple]) -> list[dict]:
    import torch
    from fvcore.nn import FlopCountAnalysis
    from ptflops import get_model_complexity_info

    import archgen

    rows = []
    for v in values:
        spec = space.spec(v)
        size = spec.doc.input.size
        build_s, model = timed(lambda: archgen.build(spec).eval())
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            def fv():
                analysis = FlopCountAnalysis(model, x)
                analysis.unsupported_ops_warnings(False)
                analysis.uncalled_modules_warnings(False)
                return analysis.total()

            fvcore_s, fvcore_macs = timed(fv)
            ptflops_s, (pt_macs, pt_params) = timed(lambda: get_model_complexity_info(
                model, (3, size, size), as_strings=False, print_per_layer_stat=False, ost=io.StringIO()))
        from archgen.design.fast_count import figures

        counted = figures(spec)
        rows.append({"values": list(v), "build_s": build_s, "fvcore_s": fvcore_s, "ptflops_s": ptflops_s,
                     "archgen_macs": counted.macs, "fvcore_macs": int(fvcore_macs), "ptflops_macs": int(pt_macs),
                     "archgen_params": counted.params, "ptflops_params": int(pt_params)})
    return rows


def search_time(space, n: int) -> dict:
    from archgen.design.evaluate import Evaluator
    from archgen.design.search import search

    seconds, result = timed(lambda: search(space, space.objective, Evaluator(space, space.constraints), "random",
                                           n, seed=0))
    return {"candidates": result.tally.drawn, "seconds": seconds, "per_s": result.tally.drawn / seconds,
            "front": len(result.answers)}


def sampling_peak(space, n: int) -> dict:
    from archgen.design.evaluate import Evaluator, Rejections
    from archgen.design.sample import sample

    tally = Rejections()
    tracemalloc.start()
    for _ in sample(space, n, 1, Evaluator(space, space.constraints), tally):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"accepted": n, "drawn": tally.drawn, "peak_bytes": peak}


def machine() -> dict:
    import torch

    from archgen.bench.results import cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "pinned_to_cores": sorted(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform(), "load_average_1_5_15min": list(os.getloadavg()),
            "versions": {p: version(p) for p in ("torch", "fvcore", "ptflops", "archgen")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="regnetx_400mf")
    parser.add_argument("--candidates", type=int, default=3000)
    parser.add_argument("--slow", type=int, default=300, help="candidates through the profile and reload paths")
    parser.add_argument("--traced", type=int, default=5, help="candidates built and traced")
    parser.add_argument("--stream", type=int, default=20_000, help="candidates drawn and counted in a run")
    parser.add_argument("--search", type=int, default=100_000)
    parser.add_argument("--peak", type=int, default=200, help="N of the memory measure (N and 10N sampled)")
    parser.add_argument("--output", default="benchmarks/results/design_bench.json")
    args = parser.parse_args()

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    torch.set_num_threads(1)
    import yaml

    import archgen
    from archgen.design import load_space
    from archgen.grammar.loader import load_spec

    space = load_space(args.space)
    values = buildable(space, draws(space, args.candidates, 0))
    slow = values[: args.slow]
    design_s = design_path(space, values)
    profile_s, _ = timed(lambda: [archgen.profile(space.spec(v)) for v in slow])
    mappings = [yaml.safe_load(yaml.safe_dump(space.written(v, "x", ""))) for v in slow]
    reload_s, _ = timed(lambda: [archgen.profile(load_spec(m)) for m in mappings])
    per_s = {"design_path": len(values) / design_s, "stream": stream(space, args.stream, 1),
             "profile_path": len(slow) / profile_s, "reload_path": len(slow) / reload_s}
    print("candidates/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in per_s.items()), flush=True)
    traced = tracers(space, values[: args.traced])
    for name in ("fvcore", "ptflops"):
        per_s[name] = len(traced) / sum(r[f"{name}_s"] for r in traced)
    print(f"fvcore {per_s['fvcore']:.2f}/s, ptflops {per_s['ptflops']:.2f}/s (model built first, timed apart)",
          flush=True)
    search = search_time(space, args.search)
    print(f"random search of {search['candidates']:,}: {search['seconds']:.1f} s", flush=True)
    peaks = [sampling_peak(load_space("resnet_budget"), n) for n in (args.peak, 10 * args.peak)]
    result = {
        "benchmark": "design_bench", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "space": args.space, "candidates": len(values),
        "mean_blocks": sum(sum(len(s.blocks) for s in archgen.plan(space.spec(v)).stages) for v in slow) / len(slow),
        "per_s": per_s,
        "design_over_fvcore": per_s["design_path"] / per_s["fvcore"],
        "design_over_ptflops": per_s["design_path"] / per_s["ptflops"],
        "design_over_profile": per_s["design_path"] / per_s["profile_path"],
        "goal": {"per_s": 10_000, "search_100k_s": 30},
        "search": search, "sampling_peak": peaks, "traced": traced,
    }
    from archgen.render import write_atomic

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    write_atomic(args.output, json.dumps(result, indent=2) + "\n")
    print(f"memory: sampling {peaks[0]['accepted']} specs peaks at {peaks[0]['peak_bytes'] / 1e6:.1f} MB, "
          f"{peaks[1]['accepted']} at {peaks[1]['peak_bytes'] / 1e6:.1f} MB; wrote {args.output}")


if __name__ == "__main__":
    main()
