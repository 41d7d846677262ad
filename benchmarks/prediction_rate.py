"""How fast latency models predict the candidates a design search meets, without the hour of measuring that
benchmarks/latency_bench.py spends on accuracy (issue 19's ">= 10,000 candidates a second on one core").

    archgen calibrate --backend onnxruntime --space regnetx_400mf --minutes 3 -o ort.json    # any model
    python benchmarks/prediction_rate.py ort.json [more.json ...] [--output results.json]

The rate does not depend on how long the model was calibrated: every kind the model fits has the same 200
trees of depth at most 6 (latency_fit.BOOSTING and ROUNDS), and a kind with few samples only the baseline.
It runs latency_bench.prediction_rate per model (RegNetX-400MF candidates, one core, the median of three
runs of each figure) and writes the rates with the machine, the versions and each model's backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency_bench import prediction_rate, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="DEVICE.json files written by archgen calibrate")
    parser.add_argument("--candidates", type=int, default=2000, help="candidates per pass (the stream is 10x)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    from archgen.bench.latency_model import load_model, machine

    out: dict = {"benchmark": "prediction_rate", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "load_average_1_5_15min": os.getloadavg(), "candidates": args.candidates, "models": {}}
    for path in args.models:
        model = load_model(path)
        rates = prediction_rate(model, args.candidates, 1, args.repeats)
        out["models"][path.name] = {"backend": model.backend, "machine": machine(model.backend),
                                    "kinds": sorted(model.kinds), **rates}
        print(f"{model.backend}: " + ", ".join(f"{key} {value:,.0f}" for key, value in rates.items()
                                                if key != "runs"), file=sys.stderr)
    out["load_average_after"] = os.getloadavg()
    if args.output is None:
        print(json.dumps(out, indent=2))
        return
    write_json(args.output, out)


if __name__ == "__main__":
    main()
