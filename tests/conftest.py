"""Shared fixtures: the torchvision reference data copied from shared/reference (see tests/data/README.md)."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import settings

# CI (which sets CI=true) draws the same examples on every run, from a seed hashed from each test's code, so a
# red run is the code's fault and a rerun shows it again; a failure prints the @reproduce_failure blob that
# replays it anywhere. Locally each run draws anew (more examples over time), and `--hypothesis-seed N`
# repeats a run's draw.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
if "CI" in os.environ:
    settings.load_profile("ci")

# Under pytest-xdist (the README's `-n auto`, a worker per core) each worker is one of several busy processes:
# torch's OpenMP pool of a thread per core would then spin-wait against the other workers, and make eager
# forwards many times slower. Set before any test imports torch, which reads it once.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def seeded_torch(request):
    """Each test's draws from torch's global generator (a built model's initial weights) are seeded from the
    test's own id: under `-n auto --dist loadfile` a worker runs whichever files come free, so the generator's
    state at a test used to depend on what ran before it, and a tolerance that held for most weights failed
    in CI for EfficientNet-B1's ONNX Runtime logits (0.062 against 0.046 allowed). torch is seeded only where a
    test module has imported it: tests of the pure-Python description must not import it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))


DATA = Path(__file__).parent / "data"

#: The smallest useful spec: two basic-block stages on 32x32 images (error, input and CLI tests edit it).
TINY_SPEC = """\
name: tiny
input: {channels: 3, size: 32, classes: 10}
stem: {type: cifar, width: 16}
block: {type: basic}
stages:
  - {depth: 1, width: 16}
  - {depth: 1, width: 32, stride: 2}
"""


def synthetic_ms(unit) -> float:
    """A kernel's ms by a known formula of its features (what a synthetic latency model is fitted on): a fixed
    cost, MACs (a grouped conv's at 1.6x, which the roofline baseline cannot see and the trees must learn) and
    bytes moved."""
    from archgen.bench.latency_model import FEATURES, features

    f = dict(zip(FEATURES, features(unit)))
    return 0.004 + f["macs"] * 3e-8 * (1.6 if unit.groups > 1 else 1.0) + f["bytes"] * 5e-8


#: The networks a synthetic model is calibrated on (kernels at batch 1 and 2, whole passes at batch 1): CIFAR
#: ResNets and two small ImageNet networks at 64 px, so that conv has trees and the rarer kinds the baseline.
SYNTHETIC_SPECS = (("resnet20_cifar", None), ("regnetx_002", 64), ("mobilenet_v3_small", 64))


def synthetic_latency_model(backend: str = "eager") -> dict:
    """A latency model fitted on SYNTHETIC_SPECS's kernels timed by synthetic_ms, and their whole passes taken
    as 1.1 x the kernels' sum + 0.05 ms: deterministic, and quick to fit."""
    from archgen.bench.kernel_units import kernel_units
    from archgen.bench.latency_fit import fit
    from archgen.bench.latency_model import machine

    samples, networks = {}, []
    for name, size in SYNTHETIC_SPECS:
        for batch in (1, 2):
            units = kernel_units(name, backend, batch, input_size=size)
            samples.update((u._replace(names=()), synthetic_ms(u)) for u in units)
            if batch == 1:
                networks.append((units, 1.1 * sum(map(synthetic_ms, units)) + 0.05))
    return fit(list(samples.items()), networks, {"backend": backend, "dtype": "float32", "layout": "nchw",
                                                 "batch_sizes": [1, 2], "device": machine(backend)})


@pytest.fixture(scope="session")
def latency_model_doc() -> dict:
    return synthetic_latency_model()


@pytest.fixture(scope="session")
def latency_model_file(latency_model_doc, tmp_path_factory) -> Path:
    """The synthetic eager model, written as archgen calibrate writes one."""
    from archgen.bench.latency_model import write_model

    path = tmp_path_factory.mktemp("latency") / "device.json"
    write_model(path, latency_model_doc)
    return path


def tiny_resnet(name: str, description: str) -> str:
    """A ResNet-18-like layout at a tenth of the width (two basic blocks a stage), for fast timing tests."""
    return (f"name: {name}\ndescription: {description}\ninput: {{channels: 3, size: 32, classes: 10}}\n"
            "stem: {type: cifar, width: 8}\nblock: {type: basic}\nstages:\n  - {depth: 2, width: 8}\n"
            "  - {depth: 2, width: 16, stride: 2}\nshortcut: projection\n")
TORCHVISION_TWINS = sorted(p.stem for p in (DATA / "torchvision").glob("*.json"))


def torchvision_reference(name: str) -> dict:
    return json.loads((DATA / "torchvision" / f"{name}.json").read_text())


def filled_state_dict(entries: list) -> dict:
    """torchvision's state dict filled by the reference fill rule (tests/data/README.md)."""
    import torch

    out = {}
    for key, shape in entries:
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            value = torch.zeros((), dtype=torch.long)
        elif key.endswith("running_var"):
            value = 1.0 + 0.25 * torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            value = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("bias"):
            value = 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            value = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            value = torch.randn(shape, generator=g) * math.sqrt(1 / math.prod(shape[1:]))
        out[key] = value
    return out


def assert_reference_logits(name: str, ref: dict, layout: str):
    """The reference's filled state dict, loaded by name (archgen.load_weights), gives its stored logits."""
    import torch

    import archgen

    model = archgen.build(name).eval()
    archgen.load_weights(model, filled_state_dict(ref["state_dict"]), layout=layout)
    x = torch.randn(*ref["input"]["shape"], generator=torch.Generator().manual_seed(ref["input"]["generator_seed"]))
    with torch.no_grad():
        logits = model(x)
    expected = torch.tensor(ref["logits"])
    assert logits.shape == expected.shape
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    return model


@pytest.fixture(scope="session")
def reference():
    return torchvision_reference


def _record_shape(layer) -> tuple:
    """A layer record's structure without its sizes: its kind and the settings that take another code path
    (kernel, stride, grouped or not, dilated or not, activation or pooling kind); a sequence's records."""
    fields = getattr(layer, "__dataclass_fields__", {})
    if "layers" in fields:
        return (type(layer).__name__, tuple(map(_record_shape, layer.layers)))
    return (type(layer).__name__, *(
        (name, getattr(layer, name)) for name in ("k", "stride", "kind", "ceil_mode", "bias") if name in fields),
        ("grouped", getattr(layer, "groups", 1) > 1), ("dilated", getattr(layer, "dilation", 1) > 1))


def _block_shape(d) -> tuple:
    records = lambda layers: tuple(map(_record_shape, layers))  # noqa: E731
    return (records(d.pre), records(d.branch), None if d.shortcut is None else _record_shape(d.shortcut),
            type(d.merge).__name__, d.split, records(d.post), d.survival < 1.0, d.inverted_drop)


def design_signatures(name: str) -> frozenset:
    """Every distinct block structure a bundled spec contains (stem, blocks, head), sizes aside."""
    import archgen

    p = archgen.plan(name)
    head = p.head
    shapes = {("stem", _block_shape(p.stem.layers())),
              ("head", head.final_norm, head.final_act, head.pool, head.dropout > 0, head.classes > 0)}
    shapes |= {_block_shape(b.layers()) for stage in p.stages for b in stage.blocks}
    return frozenset(shapes)


#: Above this many parameters, a check of block structures runs a spec's quarter-width twin instead.
SLIM_ABOVE = 10_000_000


def structure_twin(name: str) -> str | dict:
    """What a check of block structures (not of sizes) runs for the bundled spec `name`: the spec, or above
    SLIM_ABOVE parameters its twin at a quarter of the width where the twin has the same design signatures.
    Exporting and running ResNet-50's structures at a quarter of its 25.6M parameters tests the same paths in a
    fifth of the time; a spec whose rule the multiplier would change (RegNetY-32GF's group widths stop dividing)
    runs whole."""
    import archgen
    from archgen.errors import UserError

    if archgen.profile(name).params <= SLIM_ABOVE:
        return name
    twin = {"extends": name, "name": f"{name}_quarter", "multipliers": {"width": 0.25}}
    try:
        return twin if design_signatures(twin) == design_signatures(name) else name
    except UserError:
        return name


@functools.lru_cache(maxsize=None)
def specs_covering_every_design() -> tuple[str, ...]:
    """The fewest, smallest bundled specs that together contain every block structure of the zoo.

    The all-spec checks that build and run a model (fuse, fvcore, ONNX) test code paths, and a path is
    the same whatever the widths and depths: so each structure is run once, in the smallest spec that
    has it (smallest by parameters), instead of once per model. Checks against a reference (params,
    logits of every twin, printed figures) still run on every spec.
    """
    import archgen
    from archgen.grammar.loader import bundled_names

    covered: set = set()
    chosen = []
    for name in sorted(bundled_names(), key=lambda n: (archgen.profile(n).params, n)):
        new = design_signatures(name) - covered
        if new:
            chosen.append(name)
            covered |= new
    return tuple(sorted(chosen))
