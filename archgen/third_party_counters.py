"""Other tools' FLOP counters (fvcore, ptflops) beside archgen's on one model and one input, reconciled
layer by layer.

archgen counts from arithmetic (archgen.complexity); fvcore traces the model
with TorchScript and counts per aten op; ptflops hooks nn.Module calls. They
disagree on purpose, not by accident: each counts a different set of
operations. `RULES` writes down, per counter and per kind of layer, what it
counts, as a formula over archgen's analytic figures. `reconcile` runs fvcore
and ptflops, attributes their counts to archgen's layer names, and checks
every count against its rule, so a user sees why fvcore says 4.11 G, ptflops
4.13 G and the paper 4.1 for ResNet-50, and any count no rule explains is
flagged.

Module names: archgen's layer names (`layer1.0.conv1`, `stem.pool`,
`head.fc`) are the built model's module names; a layer with no module (the
residual `add`, which is functional) is counted only by the counters that see
functional ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from archgen.complexity import LayerCost, Profile, profile

COUNTERS = ("archgen", "fvcore", "ptflops")

#: Kinds of layer a rule is written for: archgen's `LayerCost.op`, with pools split by what they do.
POOL_KINDS = {"MaxPool2d": "max pool", "AvgPool2d": "avg pool", "AdaptiveAvgPool2d": "global avg pool",
              "AdaptiveMaxPool2d": "global max pool"}


@dataclass(frozen=True)
class Seen:
    """What the model showed for one module during the counted forward pass."""

    kind: str  # the module's class name
    in_elements: int
    out_elements: int


@dataclass(frozen=True)
class Rule:
    """What one counter counts for one kind of layer, in words and as a formula."""

    counts: str
    amount: Callable[[LayerCost, Seen | None], int]


def _macs(layer: LayerCost, seen: Seen | None) -> int:
    return layer.macs


def _bias(layer: LayerCost) -> int:
    """Bias terms of a conv or linear layer: its parameters beyond the weight (the weight is MACs per pixel)."""
    pixels = layer.out[1] * layer.out[2]
    return layer.params - layer.macs // pixels


def _macs_plus_bias_per_output(layer: LayerCost, seen: Seen | None) -> int:
    bias = _bias(layer)
    return layer.macs + (layer.out[0] * layer.out[1] * layer.out[2] if bias else 0)


def _elements(layer: LayerCost, seen: Seen | None) -> int:
    return layer.out[0] * layer.out[1] * layer.out[2]


def _twice_elements(layer: LayerCost, seen: Seen | None) -> int:
    return 2 * _elements(layer, seen)


def _nothing(layer: LayerCost, seen: Seen | None) -> int:
    return 0


def _pool_input_if_global_avg(layer: LayerCost, seen: Seen | None) -> int:
    return seen.in_elements if seen is not None and seen.kind == "AdaptiveAvgPool2d" else 0


def _pool_input_twice(layer: LayerCost, seen: Seen | None) -> int:
    return 2 * seen.in_elements if seen is not None else 0


def _act_once_or_twice(layer: LayerCost, seen: Seen | None) -> int:
    # nn.ReLU's hook counts, then F.relu, which it also patches; LeakyReLU and ReLU6 have a hook but call
    # F.leaky_relu and F.hardtanh, which are not patched. A module without a hook (seen is None) is counted
    # only by a patched function it calls: F.silu, F.gelu once (Hardswish and Hardsigmoid by none: no count).
    return _elements(layer, seen) * (2 if seen is not None and seen.kind == "ReLU" else 1)


def _archgen_other(layer: LayerCost, seen: Seen | None) -> int:
    return layer.other_ops


RULES: dict[str, dict[str, Rule]] = {
    "archgen": {
        "conv": Rule("multiply-adds, bias excluded (the papers' 'FLOPs')", _macs),
        "linear": Rule("multiply-adds, bias excluded", _macs),
        "bn": Rule("1 per element, reported apart from MACs", _archgen_other),
        "act": Rule("1 per element, reported apart from MACs", _archgen_other),
        "pool": Rule("1 per window element (global: per input element), reported apart from MACs",
                     _archgen_other),
        "add": Rule("1 per element, reported apart from MACs", _archgen_other),
        "mul": Rule("1 per element (a gate's multiply), reported apart from MACs", _archgen_other),
    },
    "fvcore": {
        "conv": Rule("multiply-adds; bias not counted", _macs),
        "linear": Rule("multiply-adds; bias not counted", _macs),
        "bn": Rule("2 per element (scale and shift, eval mode)", _twice_elements),
        "act": Rule("not counted (aten::relu ignored, leaky_relu unsupported)", _nothing),
        "pool": Rule("global avg pool: 1 per input element; max_pool2d and avg_pool2d unsupported, so 0",
                     _pool_input_if_global_avg),
        "add": Rule("not counted (aten::add is unsupported)", _nothing),
        "mul": Rule("not counted (aten::mul is unsupported)", _nothing),
    },
    "ptflops": {
        "conv": Rule("multiply-adds, + 1 per output element if it has a bias", _macs_plus_bias_per_output),
        "linear": Rule("multiply-adds, plus 1 per output for the bias", _macs_plus_bias_per_output),
        "bn": Rule("2 per element (affine)", _twice_elements),
        "act": Rule("ReLU: 2 per element (its module hook, then its patch of F.relu, which nn.ReLU calls); "
                    "LeakyReLU, ReLU6, SiLU, GELU: 1 (a hook or a patched function, not both); Hardswish, "
                    "Hardsigmoid: not counted",
                    _act_once_or_twice),
        "pool": Rule("2 per input element (its module hook, then its patch of the F.*pool2d the module calls)",
                     _pool_input_twice),
        "add": Rule("not counted (Tensor.__add__ is not patched)", _nothing),
        "mul": Rule("not counted (Tensor.__mul__ is not patched)", _nothing),
    },
}


@dataclass
class LayerCheck:
    """One of archgen's layers, with each counter's count beside what its rule predicts."""

    name: str
    op: str
    kind: str  # the op, with pools named by what they do ('max pool', 'global avg pool')
    counted: dict[str, int | None]  # None: the counter has no module of this name
    expected: dict[str, int]
    shape_ok: bool  # the model's output has the elements archgen predicts

    @property
    def unexplained(self) -> list[str]:
        """Counters whose count differs from their rule's prediction."""
        return [c for c, n in self.counted.items() if n is not None and n != self.expected[c]]


@dataclass
class Reconciliation:
    """The three counters on one model at one input size, layer by layer and in total."""

    name: str
    input_size: int
    profile: Profile
    layers: list[LayerCheck]
    totals: dict[str, int]
    #: Counts a counter made outside archgen's layers (functional ops, unknown modules): always flagged.
    unattributed: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Ops a tracer met and did not count, as it reports them (fvcore: {'aten::add': 16}).
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def flagged(self) -> list[str]:
        """Every difference no rule explains, in words (empty when the counters are reconciled)."""
        out = [f"{c} counts {n:,} at {where}, which is none of archgen's layers"
               for c, places in self.unattributed.items() for where, n in places.items() if n]
        for layer in self.layers:
            for c in layer.unexplained:
                out.append(f"{layer.name} ({layer.kind}): {c} counts {layer.counted[c]:,}, its rule predicts "
                           f"{layer.expected[c]:,}")
            if not layer.shape_ok:
                out.append(f"{layer.name}: the model's output size differs from archgen's")
        return out

    def by_kind(self) -> dict[str, dict[str, int]]:
        """Each counter's total per kind of layer ('conv', 'bn', 'max pool', ...): where the totals part."""
        out: dict[str, dict[str, int]] = {}
        for layer in self.layers:
            ran = [c for c in COUNTERS if c in layer.counted]  # only the counters this run used
            row = out.setdefault(layer.kind, {c: 0 for c in ran})
            for c in ran:
                row[c] += layer.counted[c] if layer.counted[c] is not None else layer.expected[c]
        return out


def _layer_kind(layer: LayerCost, seen: Seen | None) -> str:
    if layer.op == "pool" and seen is not None:
        return POOL_KINDS.get(seen.kind, "pool")
    if layer.op in ("conv", "linear") and _bias(layer):
        return f"{layer.op} with bias"
    return layer.op


def fvcore_by_module(model: Any, x: Any) -> tuple[dict[str, int], int, dict[str, int]]:
    """fvcore's count per module name (leaf modules), its total, and the ops it skipped."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    per_module = {name: sum(ops.values()) for name, ops in analysis.by_module_and_operator().items()}
    return per_module, int(analysis.total()), dict(analysis.unsupported_ops())


def ptflops_by_module(model: Any, size: int, channels: int) -> tuple[dict[str, int], int, dict[str, Seen]]:
    """ptflops's count per module name, its total, and each hooked module's tensor sizes.

    ptflops counts in two ways: a hook on each supported module, and patches
    of torch.nn.functional (F.relu, F.max_pool2d, ...) whose counts it sums
    with no module attached. Both are wrapped here to record which module
    each count came from (a functional call is charged to the module whose
    forward made it); the counting itself is ptflops's own.
    """
    import io

    from ptflops import get_model_complexity_info
    from ptflops.pytorch_ops import FUNCTIONAL_MAPPING, MODULES_MAPPING, TENSOR_OPS_MAPPING

    names = {id(m): name for name, m in model.named_modules()}
    counts: dict[str, int] = {}
    seen: dict[str, Seen] = {}
    running: list[str] = []

    def charge(name: str, amount: Any) -> None:
        counts[name] = counts.get(name, 0) + int(amount)

    def wrap_module_hook(hook: Callable) -> Callable:
        def recording(module: Any, inputs: tuple, output: Any) -> None:
            before = module.__flops__
            hook(module, inputs, output)
            name = names.get(id(module), "?")
            charge(name, module.__flops__ - before)
            seen[name] = Seen(type(module).__name__, inputs[0].numel(), output.numel())

        return recording

    def wrap_functional(handler: Callable) -> Callable:
        def recording(*args: Any, **kwargs: Any) -> Any:
            amount = handler(*args, **kwargs)
            charge(running[-1] if running else "", amount)
            return amount

        return recording

    saved = [(mapping, dict(mapping)) for mapping in (FUNCTIONAL_MAPPING, TENSOR_OPS_MAPPING)]
    def enter(module: Any, inputs: tuple) -> None:
        running.append(names[id(module)])

    def leave(module: Any, inputs: tuple, output: Any) -> None:  # returns None: the output stays as it is
        running.pop()

    handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(enter),
                                                    m.register_forward_hook(leave))]
    try:
        for mapping, _ in saved:
            mapping.update({op: wrap_functional(handler) for op, handler in mapping.items()})
        macs, _ = get_model_complexity_info(
            model, (channels, size, size), as_strings=False, print_per_layer_stat=False, ost=io.StringIO(),
            custom_modules_hooks={k: wrap_module_hook(v) for k, v in MODULES_MAPPING.items()})
    finally:
        for mapping, original in saved:
            mapping.clear()
            mapping.update(original)
        for h in handles:
            h.remove()
    if macs is None:
        raise RuntimeError("ptflops could not count this model")
    return counts, int(macs), seen


def reconcile(spec: object, input_size: int | None = None, counters: tuple[str, ...] = COUNTERS) -> Reconciliation:
    """Run the counters on the spec's model with one image of `input_size` and check each count against its rule."""
    import torch

    from archgen.builder import build
    from archgen.planner import plan

    unknown = [c for c in counters if c not in COUNTERS]
    if unknown:
        raise ValueError(f"unknown counter {', '.join(unknown)}; choose from {', '.join(COUNTERS)}")
    p = plan(spec)
    counted_profile = profile(p, input_size)
    size = counted_profile.input_size
    model = build(p.spec).eval()
    traced: dict[str, dict[str, int]] = {"archgen": {}}
    totals = {"archgen": counted_profile.macs}
    skipped: dict[str, dict[str, int]] = {}
    seen: dict[str, Seen] = {}
    with torch.no_grad():
        if "ptflops" in counters or "fvcore" in counters:
            # ptflops's pass also records every module's shapes, which the pool rules read.
            pt_counts, pt_total, seen = ptflops_by_module(model, size, p.in_chans)
            if "ptflops" in counters:
                traced["ptflops"], totals["ptflops"] = pt_counts, pt_total
        if "fvcore" in counters:
            x = torch.randn(1, p.in_chans, size, size)
            traced["fvcore"], totals["fvcore"], skipped["fvcore"] = fvcore_by_module(model, x)

    active = [c for c in COUNTERS if c in traced]
    checks = []
    for layer in counted_profile.layers:
        s = seen.get(layer.name)
        expected = {c: RULES[c][layer.op].amount(layer, s) for c in active}
        counted: dict[str, int | None] = {"archgen": expected["archgen"]}
        for c in active[1:]:
            counted[c] = traced[c].get(layer.name)
        checks.append(LayerCheck(layer.name, layer.op, _layer_kind(layer, s), counted, expected,
                                 shape_ok=s is None or s.out_elements == _elements(layer, s)))
    return Reconciliation(p.spec.name, size, counted_profile, checks, totals,
                          _unattributed(traced, totals, counted_profile, active), skipped)


def _unattributed(traced: dict[str, dict[str, int]], totals: dict[str, int], p: Profile,
                  active: list[str]) -> dict[str, dict[str, int]]:
    """Per counter, counts that fall outside archgen's layers: at other modules, or in no module at all."""
    ours = {layer.name for layer in p.layers}
    out: dict[str, dict[str, int]] = {}
    for c in active[1:]:
        per_module = traced[c]
        leaves = {name: n for name, n in per_module.items()
                  if name and not any(other.startswith(name + ".") for other in per_module)}
        places = {name: n for name, n in leaves.items() if name not in ours and n}
        outside = totals[c] - sum(leaves.values())
        if outside:
            places["(no module: functional ops)"] = outside
        out[c] = places
    return out
