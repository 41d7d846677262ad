"""The fused BN + add + ReLU kernel against what else could compute it, and against the bandwidth ceiling.

For each activation shape at the end of ResNet-50's stages (batch 64 and 256), each dtype and each form
(act(bn(x) + r), act(bn1(x) + bn2(s)), act(bn(x))), times:

  fused          archgen.kernels.bn_act, launch from the heuristic table
  fused-tuned    the same kernel, launch chosen by triton.autotune (--tune)
  eager          torchvision's sequence: out = bn(x); out += r; relu_(out) (three kernels)
  compile        torch.compile of that function (Inductor's fused Triton kernel)
  copy           a device-to-device copy of the same number of bytes (read + write): the ceiling

and reports GB/s (bytes the function must read and write / median time) and the fraction of the copy's
GB/s. Times are medians from triton.testing.do_bench (CUDA events, L2 flushed between calls).

    python benchmarks/kernel_bench.py                       # GPU, all shapes, float32/float16/bfloat16
    python benchmarks/kernel_bench.py --tune --output benchmarks/results/kernel-h100.json
    TRITON_INTERPRET=1 python benchmarks/kernel_bench.py --device cpu --smoke   # checks the script only

Results (JSON, with the device, driver and versions) are written atomically; `--output` under
benchmarks/results/ for real runs. A --device cpu run is labelled as such and measures nothing useful.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (C, H, W) at the end of each ResNet-50 stage (the tensors each bottleneck's tail reads and writes).
RESNET50_STAGES = {"layer1": (256, 56, 56), "layer2": (512, 28, 28), "layer3": (1024, 14, 14),
                   "layer4": (2048, 7, 7)}
FORMS = ("identity", "projection", "bn_act")


def make_case(form: str, shape, dtype, device, channels_last: bool):
    import torch

    c = shape[1]
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    r = torch.randn(shape, generator=g).to(device=device, dtype=dtype) if form != "bn_act" else None
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        r = r.to(memory_format=torch.channels_last) if r is not None else None
    bns = []
    for _ in range(2 if form == "projection" else 1):
        bn = torch.nn.BatchNorm2d(c).to(device=device, dtype=dtype).eval()
        with torch.no_grad():
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        bns.append(bn)
    return x, r, bns


def functions(form: str, x, r, bns, tune: bool):
    """name -> zero-argument callable computing the same tensor."""
    import torch
    import torch.nn.functional as F

    from archgen.kernels import bn_act, bn_scale_shift

    s1, t1 = bn_scale_shift(bns[0])
    s2, t2 = bn_scale_shift(bns[1]) if form == "projection" else (None, None)

    def eager_fn(x, r):
        out = bns[0](x)
        if form == "identity":
            out += r
        elif form == "projection":
            out += bns[1](r)
        return F.relu_(out)

    compiled = torch.compile(eager_fn, dynamic=False)
    fused = lambda: bn_act(x, s1, t1, r, s2, t2)  # noqa: E731
    fns = {"fused": fused}
    if tune:
        fns["fused-tuned"] = lambda: bn_act(x, s1, t1, r, s2, t2, tune=True)
    fns["eager"] = lambda: eager_fn(x, r)
    fns["compile"] = lambda: compiled(x, r)
    return fns


def bytes_moved(x, r) -> int:
    """What the function must read and write: x, r (if any) and y; the per-channel vectors are negligible."""
    n = 3 if r is not None else 2
    return n * x.numel() * x.element_size()


def time_ms(fn, device: str, reps: int) -> tuple[float, float, float]:
    if device == "cuda":
        import triton.testing

        q = triton.testing.do_bench(fn, warmup=25, rep=max(reps, 20), quantiles=[0.5, 0.1, 0.9])
        return tuple(q)
    from archgen.bench.timing import time_cpu

    t = time_cpu(fn, 1, reps)
    return t.median, t.p10, t.p90


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--stages", default=",".join(RESNET50_STAGES), help="which of ResNet-50's stage ends")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument("--layouts", default="channels_last,nchw")
    ap.add_argument("--tune", action="store_true", help="also time triton.autotune's launch and record its choice")
    ap.add_argument("--reps", type=int, default=100, help="do_bench's rep time in ms (GPU) / calls (CPU)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, 1 rep: checks that the script runs")
    ap.add_argument("--output", help="results JSON (benchmarks/results/...)")
    args = ap.parse_args(argv)

    import torch

    from archgen.bench.results import environment
    from archgen.render import Table, render, write_atomic

    if args.device == "cuda" and not torch.cuda.is_available():
        print("kernel_bench: no CUDA GPU here; run on a GPU machine, or use --device cpu --smoke to check the "
              "script", file=sys.stderr)
        return 2
    batches = [int(b) for b in args.batches.split(",")]
    stages = {name: RESNET50_STAGES[name] for name in args.stages.split(",")}
    if args.smoke:
        batches, stages, args.reps = [2], {"layer4": (64, 7, 5)}, 1
        args.dtypes = args.dtypes.split(",")[0]
    env = environment(args.device)
    rows = []
    table = Table(title=f"bn_act vs eager vs torch.compile vs copy on {env['device']}",
                  columns=["stage", "batch", "elements", "dtype", "layout", "form", "backend", "median us",
                           "GB/s", "of copy", "x eager"])
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for batch in batches:
            for stage, (c, h, w) in stages.items():
                shape = (batch, c, h, w)
                for layout in args.layouts.split(","):
                    for form in args.forms.split(","):
                        x, r, bns = make_case(form, shape, dtype, args.device, layout == "channels_last")
                        nbytes = bytes_moved(x, r)
                        src = torch.empty(nbytes // 2, dtype=torch.uint8, device=args.device)
                        dst = torch.empty_like(src)
                        copy_ms = time_ms(lambda d=dst, s=src: d.copy_(s), args.device, args.reps)[0]
                        copy_gbs = nbytes / copy_ms / 1e6
                        results = {"copy": (copy_ms, None, None)}
                        for name, fn in functions(form, x, r, bns, args.tune).items():
                            try:
                                results[name] = time_ms(fn, args.device, args.reps)
                            except Exception as e:  # record, go on
                                results[name] = (None, None, f"{type(e).__name__}: {e}"[:200])
                        eager_ms = results["eager"][0]
                        for name, (med, p10, p90) in results.items():
                            gbs = nbytes / med / 1e6 if med else None
                            row = {"stage": stage, "shape": list(shape), "elements": x.numel(), "dtype": dtype_name,
                                   "layout": layout, "form": form, "backend": name, "median_ms": med,
                                   "p10_ms": p10 if not isinstance(p90, str) else None,
                                   "p90_ms": p90 if not isinstance(p90, str) else None,
                                   "error": p90 if isinstance(p90, str) else None,
                                   "bytes": nbytes, "gb_per_s": gbs,
                                   "fraction_of_copy": gbs / copy_gbs if gbs else None,
                                   "speedup_over_eager": eager_ms / med if med and eager_ms else None}
                            rows.append(row)
                            table.add(stage, batch, x.numel(), dtype_name, layout, form, name,
                                      None if med is None else f"{med * 1e3:.1f}",
                                      None if gbs is None else f"{gbs:.0f}",
                                      None if gbs is None else f"{gbs / copy_gbs:.0%}",
                                      None if row["speedup_over_eager"] is None else
                                      f"{row['speedup_over_eager']:.2f}x")
                        del x, r, bns, src, dst
    payload = {"environment": env, "kind": "kernel", "cpu_only": args.device == "cpu", "smoke": args.smoke,
               "args": vars(args), "results": rows}
    if args.tune:
        from archgen.kernels.bn_act import tuned_configs

        payload["tuned_configs"] = {" ".join(k): v for k, v in tuned_configs().items()}
    table.notes = [f"GB/s: bytes read and written by the function / median time; copy: the same bytes "
                   f"copied device to device; torch {env['torch']}, triton {env['triton']}, CUDA {env['cuda']}, "
                   f"driver {env['driver']}, archgen {env['git_revision']}, {env['date']}"]
    if args.device == "cpu":
        table.notes.insert(0, "CPU run: not a measurement of the GPU kernel (labelled cpu_only in the JSON)")
    print(render(table, "rich"))
    if args.output:
        import json

        write_atomic(args.output, json.dumps(payload, indent=2, default=str) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
