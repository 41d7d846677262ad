"""Where an ONNX Runtime latency model's error on a whole network comes from: its kernel sum against ONNX
Runtime's own account of the same network's kernels, and its layout reorders.

    python benchmarks/ort_network_check.py MODEL.json [--spaces resnet_budget regnetx_400mf] [--n 3]

For N candidates of each space (drawn as calibrate draws them, seed 99, so none it calibrated on), one
2-thread session with profiling runs 20 passes; the last 10 are read. Per network it prints:

- the model's kernel sum (before the network correction) against the sum of ONNX Runtime's node times
  (ReorderInput and ReorderOutput apart): the kernels' own error;
- the reorders' share of node time and their count per pass: what kernel_units leaves out;
- the model's corrected prediction against the median wall time of a pass.

The profiler's own cost makes the passes a little slower than an unprofiled bench.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import warnings


def check(model_path: str, spaces: list[str], n: int) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    from archgen.bench.calibration import sampled
    from archgen.bench.latency_model import load_model
    from archgen.export import export_spec

    torch.set_num_threads(2)
    model = load_model(model_path)
    for space in spaces:
        for spec in sampled(space, n, 99):
            prediction = model.predict(spec, 1)
            kernels_ms, predicted_ms = prediction.kernel_ms, prediction.total_ms
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                export_spec(spec, path, "onnx")
                options = ort.SessionOptions()
                options.intra_op_num_threads, options.enable_profiling = 2, True
                options.profile_file_prefix = os.path.join(tmp, "profile")
                session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                feed = {session.get_inputs()[0].name: np.random.rand(1, 3, 224, 224).astype(np.float32)}
                for _ in range(20):
                    session.run(None, feed)
                with open(session.end_profiling()) as f:
                    events = json.load(f)
            passes = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[-10:]
            nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                     and e["ts"] >= passes[0]["ts"]]
            reorder = [e for e in nodes if e["args"].get("op_name", "").startswith("Reorder")]
            node_ms = sum(e["dur"] for e in nodes) / 10 / 1e3
            reorder_ms = sum(e["dur"] for e in reorder) / 10 / 1e3
            kernel_ms = node_ms - reorder_ms
            wall_ms = statistics.median(e["dur"] for e in passes) / 1e3
            print(f"{space:14s} kernels {kernels_ms:6.2f} ms predicted / {kernel_ms:6.2f} by ORT "
                  f"({kernels_ms / kernel_ms:4.2f}); reorders {reorder_ms / node_ms:5.1%} of node time, "
                  f"{len(reorder) / 10:4.1f} a pass; pass {predicted_ms:6.2f} predicted / {wall_ms:6.2f} "
                  f"({predicted_ms / wall_ms:4.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX Runtime latency model (archgen calibrate --backend onnxruntime)")
    parser.add_argument("--spaces", nargs="+", default=["resnet_budget", "regnetx_400mf", "mobile_mbconv"])
    parser.add_argument("--n", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    check(args.model, args.spaces, args.n)


if __name__ == "__main__":
    main()
