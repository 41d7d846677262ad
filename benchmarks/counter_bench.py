"""How much faster the analytic counter is than fvcore and ptflops.

    python benchmarks/counter_bench.py [--size 224] [--repeat 3] [--output benchmarks/results/counter_bench.json]

archgen's figure is the best of `--repeat` runs, the tracers' one run each (they take
seconds, so one run is within noise of the best), all timed after every import (torch,
fvcore, ptflops, archgen's block registry), so it measures counting only:
- archgen: `archgen.profile(spec)` (no model, no tracing);
- fvcore: `FlopCountAnalysis(model, x).total()` on a model already built;
- ptflops: `get_model_complexity_info(model, ...)` on a model already built.
Building the model (which fvcore and ptflops need and archgen does not) is
timed apart, as `build_s`. `cold_process_s` is a fresh Python process running
`import archgen; archgen.profile('resnet152')`, torch's import included.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str, size: int, repeat: int) -> dict:
    import torch
    from fvcore.nn import FlopCountAnalysis
    from ptflops import get_model_complexity_info

    import archgen

    spec = archgen.load_spec(name)
    channels = spec.doc.input.channels
    size = min(size, spec.doc.input.size) if spec.doc.input.size < 64 else size
    start = time.perf_counter()
    model = archgen.build(spec).eval()
    build_s = time.perf_counter() - start
    x = torch.randn(1, channels, size, size)

    def fvcore() -> None:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.total()

    def ptflops() -> None:
        get_model_complexity_info(model, (channels, size, size), as_strings=False, print_per_layer_stat=False,
                                  ost=io.StringIO())

    with torch.no_grad():
        row = {"spec": name, "input_size": size, "build_s": build_s,
               "archgen_s": best_of(lambda: archgen.profile(spec, size), repeat),
               "fvcore_s": best_of(fvcore, 1), "ptflops_s": best_of(ptflops, 1)}
    row["fvcore_over_archgen"] = row["fvcore_s"] / row["archgen_s"]
    row["ptflops_over_archgen"] = row["ptflops_s"] / row["archgen_s"]
    return row


def cold_process() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import archgen; archgen.profile('resnet152')"], check=True)
    return time.perf_counter() - start


def machine() -> dict:
    import torch

    from archgen.bench.results import cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": {p: version(p) for p in ("torch", "fvcore", "ptflops", "archgen")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--specs", nargs="*", help="default: resnet152 and every bundled spec")
    parser.add_argument("--output", default="benchmarks/results/counter_bench.json")
    args = parser.parse_args()

    from archgen.grammar.loader import bundled_names

    names = args.specs or bundled_names()
    rows = []
    for name in dict.fromkeys(["resnet152", *names]):
        rows.append(measure(name, args.size, args.repeat))
        r = rows[-1]
        print(f"{name:28s} archgen {r['archgen_s'] * 1e3:8.2f} ms  fvcore {r['fvcore_s'] * 1e3:9.1f} ms "
              f"({r['fvcore_over_archgen']:6.0f}x)  ptflops {r['ptflops_s'] * 1e3:9.1f} ms "
              f"({r['ptflops_over_archgen']:5.0f}x)", flush=True)
    totals = {k: sum(r[k] for r in rows) for k in ("archgen_s", "fvcore_s", "ptflops_s", "build_s")}
    result = {"benchmark": "counter_bench", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "timing": "after imports; archgen best of --repeat, fvcore and ptflops one run each (see the docstring)",
              "repeat": args.repeat, "cold_process_s": cold_process(), "totals": totals,
              "all_specs_fvcore_over_archgen": totals["fvcore_s"] / totals["archgen_s"],
              "all_specs_ptflops_over_archgen": totals["ptflops_s"] / totals["archgen_s"],
              "rows": rows}
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    from archgen.render import write_atomic

    write_atomic(args.output, json.dumps(result, indent=2) + "\n")
    print(f"all {len(rows)} specs: archgen {totals['archgen_s']:.2f} s, fvcore {totals['fvcore_s']:.1f} s "
          f"({result['all_specs_fvcore_over_archgen']:.0f}x), ptflops {totals['ptflops_s']:.1f} s "
          f"({result['all_specs_ptflops_over_archgen']:.0f}x); cold process {result['cold_process_s']:.2f} s")


if __name__ == "__main__":
    main()
