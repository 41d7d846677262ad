"""Regenerate tests/data/{torchvision,timm}/<model>.json from torchvision or timm itself (not run by the tests).

The shared reference set (shared/reference/README.md) covers 11 torchvision and 5 timm models; this script
reproduces its format and fill rule for the others a spec claims to equal. It needs torchvision (and timm),
which the CPU torch build used by CI lacks, so it runs in a separate environment:

    python3 -m venv /tmp/tvenv && . /tmp/tvenv/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 fvcore ptflops
    python tests/data/tools/make_reference.py resnext101_64x4d wide_resnet101_2 densenet161
    python tests/data/tools/make_reference.py --library timm seresnext50_32x4d resnext50d_32x4d

Check first that it reproduces a shared file: `--check resnet18` (or `--library timm --check seresnet50`)
compares its output with the file in tests/data/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from pathlib import Path

import torch
import torchvision

DATA = Path(__file__).resolve().parents[1]


def fill(key: str, shape: list[int]) -> torch.Tensor:
    """The fill rule of shared/reference/README.md (tests/conftest.py::filled_state_dict is the same rule)."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.long)
    if key.endswith("running_var"):
        return 1.0 + 0.25 * torch.rand(shape, generator=g)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if key.endswith("bias"):
        return 0.05 * torch.randn(shape, generator=g)
    if len(shape) == 1:
        return 1.0 + 0.1 * torch.randn(shape, generator=g)
    return torch.randn(shape, generator=g) * math.sqrt(1 / math.prod(shape[1:]))


def create(library: str, name: str) -> tuple[torch.nn.Module, str]:
    """The model with no weights, and where it came from."""
    if library == "timm":
        import timm

        return timm.create_model(name, pretrained=False), f"timm {timm.__version__} create_model('{name}', pretrained=False)"
    return getattr(torchvision.models, name)(), f"torchvision {torchvision.__version__} models.{name}()"


def reference(library: str, name: str) -> dict:
    from fvcore.nn import FlopCountAnalysis
    from ptflops import get_model_complexity_info

    model, source = create(library, name)
    model = model.eval()
    entries = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    params = sum(p.numel() for p in model.parameters())
    model.load_state_dict({k: fill(k, shape) for k, shape in entries})
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
        fvcore_total = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224)).total()
        macs, _ = get_model_complexity_info(model, (3, 224, 224), as_strings=False, print_per_layer_stat=False)
    return {"model": name, "source": source, "params": params,
            "fvcore_total_224": int(fvcore_total), "ptflops_macs_224": int(macs), "state_dict": entries,
            "input": {"shape": [2, 3, 224, 224], "generator_seed": 0, "dist": "standard normal"},
            "logits": [[float(f"{v:.7g}") for v in row] for row in logits.tolist()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--library", choices=["torchvision", "timm"], default="torchvision")
    parser.add_argument("--check", help="compare the output for this model with its file, write nothing")
    args = parser.parse_args()
    if args.check:
        ours = reference(args.library, args.check)
        theirs = json.loads((DATA / args.library / f"{args.check}.json").read_text())
        same = {k: ours[k] == theirs[k] for k in ("params", "fvcore_total_224", "ptflops_macs_224", "state_dict")}
        worst = max(abs(a - b) for ra, rb in zip(ours["logits"], theirs["logits"]) for a, b in zip(ra, rb))
        print(f"{args.check}: {same}; largest logit difference {worst:.2e}")
        return 0 if all(same.values()) and worst < 1e-4 else 1
    for name in args.models:
        out = DATA / args.library / f"{name}.json"
        out.write_text(json.dumps(reference(args.library, name)))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
