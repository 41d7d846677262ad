"""End-to-end runs behind the issue's targets, with the results files under benchmarks/results/.

  1. ResNet-50, bfloat16, channels_last, batch 64: eager, fused, compile (CUDA events);
  2. ResNet-50, bfloat16, channels_last, batch 1 with CUDA graphs: eager, fused, compile;
  3. the default backbone set (resnet50, resnext50_32x4d, wide_resnet50_2, densenet121), batches
     1, 8, 64, 256, bfloat16, channels_last (the `archgen bench --gpu` default set).

It prints each target beside what was measured; it does not judge timings in CI, and it makes up
nothing: without a GPU it exits 2.

    python benchmarks/e2e_bench.py                          # all three, ~10 minutes on an H100
    python benchmarks/e2e_bench.py --only 1,2 --reps 200
    python benchmarks/e2e_bench.py --device cpu --smoke     # checks the script on a CPU (labelled CPU)

Each run is also one `archgen bench` command line, e.g. for 1:
    archgen bench resnet50 --gpu --dtype bfloat16 --channels-last --batch-sizes 64 \
        --output benchmarks/results/e2e-resnet50-b64.json
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--only", default="1,2,3")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="tiny input, 1 rep, eager+fused: checks the script")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)

    import torch

    from archgen.cli.bench import results_table
    from archgen.bench.results import environment, write_results
    from archgen.bench.runner import DEFAULT_SPECS, BenchConfig, run
    from archgen.render import render

    if args.device == "cuda" and not torch.cuda.is_available():
        print("e2e_bench: no CUDA GPU here; run on a GPU machine (or --device cpu --smoke to check the script)",
              file=sys.stderr)
        return 2
    gpu = args.device == "cuda"
    common = dict(device=args.device, dtype="bfloat16", channels_last=True, warmup=args.warmup, reps=args.reps)
    runs = {
        "1": ("resnet50 bf16 channels_last b64", BenchConfig(specs=["resnet50"], batch_sizes=[64], **common),
              "fused >= 1.3x eager, and within 10% of compile"),
        "2": ("resnet50 bf16 channels_last b1 cuda graphs",
              BenchConfig(specs=["resnet50"], batch_sizes=[1], cuda_graphs=gpu, **common), "fused >= 2x eager"),
        "3": ("default set bf16 channels_last", BenchConfig(specs=list(DEFAULT_SPECS), batch_sizes=[1, 8, 64, 256],
                                                            **common), "(survey)"),
    }
    env = environment(args.device)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    tag = slug(env["device"])[:40] + ("-cpu-smoke" if args.smoke else "")
    for key in args.only.split(","):
        title, cfg, target = runs[key]
        if args.smoke:
            cfg.specs, cfg.batch_sizes, cfg.reps, cfg.warmup, cfg.image_size = ["resnet18"], [1], 1, 0, 64
            cfg.backends, cfg.dtype = ["eager", "fused"], "float32"
        from archgen.grammar.loader import bundled_names

        missing = [s for s in cfg.specs if s not in bundled_names()]
        cfg.specs = [s for s in cfg.specs if s not in missing]
        if missing:
            print(f"skipping specs not bundled: {', '.join(missing)}", file=sys.stderr)
        print(f"[{key}] {title}; target: {target}", file=sys.stderr)
        rows = run(cfg, on_done=lambda r: print(f"  {r.spec} {r.backend} batch {r.batch}: "
                                                  f"{r.median_ms if r.median_ms is None else round(r.median_ms, 3)} "
                                                  f"ms ({r.status})", file=sys.stderr))
        print(render(results_table(rows, env, [f"target: {target}"]), "rich"))
        out = Path(args.results_dir) / f"e2e-{key}-{slug(title)}-{tag}.json"
        for path in write_results(out, rows, env, {**cfg.as_dict(), "title": title, "target": target,
                                                   "cpu_only": not gpu}):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
