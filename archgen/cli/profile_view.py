"""What `archgen profile` shows: counts per stage and per layer, memory, and the three counters reconciled.

Memory, exactly as estimated (all from the analytic layer list, no model built):
- weights: parameters, plus BN running mean and variance, x bytes per element;
- inference activations: the largest working set of any layer while it runs: its
  input and output, plus its block's input when the block holds it for a
  shortcut or concatenation, x batch x bytes. No allocator overhead, workspace
  or copies made by concatenation;
- training activations: every layer's output (conv, BN, activation, pooling,
  add, linear) plus the input image, x batch x bytes: what autograd keeps for
  the backward pass when nothing is recomputed. PyTorch's in-place ReLU shares
  its input's storage, so its real figure is lower; gradients (the size of
  the weights) and optimizer state are not included.
"""

from __future__ import annotations

from dataclasses import dataclass

from archgen.complexity import COUNTING_NOTE, LayerCost, Profile
from archgen.render import Number, Table, human, rounded

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def _elements(layer: LayerCost) -> int:
    c, h, w = layer.out
    return c * h * w


def _block_of(name: str) -> str:
    """'layer1.0.conv1' -> 'layer1.0'; 'layer1.0.downsample.0' -> 'layer1.0'; stem and head layers -> ''."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0].startswith("layer") and len(parts) > 2 else ""


@dataclass(frozen=True)
class Memory:
    """Bytes, as the module docstring defines them."""

    weights: int
    inference_activations: int
    training_activations: int
    batch: int
    dtype: str


def memory(p: Profile, batch: int = 1, dtype: str = "float32", in_chans: int = 3) -> Memory:
    size = DTYPE_BYTES[dtype]
    layers = p.layers
    image = in_chans * p.input_size * p.input_size
    running_stats = sum(layer.params for layer in layers if layer.op == "bn")  # mean + var: as many as scale + shift
    peak, previous, block, held = image, image, "", 0
    for layer in layers:
        name = _block_of(layer.name)
        out = _elements(layer)
        if name != block:
            block, held = name, (previous if name else 0)
            peak = max(peak, previous + out)  # the block's first layer reads the held input itself
        else:
            peak = max(peak, held + previous + out)
        previous = out
    training = image + sum(_elements(layer) for layer in layers)
    return Memory((p.params + running_stats) * size, peak * batch * size, training * batch * size, batch, dtype)


def _bytes(n: int) -> Number:
    """n bytes, in binary units for people ('97.49 MiB'), exact for programs."""
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return Number(n, f"{n / scale:.2f} {unit}")
    return Number(n, f"{n} B")


def stages_table(p: Profile, batch: int, dtype: str) -> Table:
    t = Table(f"{p.name} at {p.input_size}x{p.input_size}, by stage",
              ["stage", "output", "params", "MACs", "FLOPs", "activations", f"training acts ({dtype}, batch {batch})"],
              key="stages", droppable=(f"training acts ({dtype}, batch {batch})", "FLOPs"))
    per_stage: dict[str, int] = {}
    for layer in p.layers:
        key = layer.name.split(".")[0]
        per_stage[key] = per_stage.get(key, 0) + _elements(layer)
    size = DTYPE_BYTES[dtype]
    for s in p.stages:
        c, h, w = s.out
        t.add(s.name, f"{h}x{w}, {c}", rounded(s.params), rounded(s.macs), rounded(2 * s.macs), rounded(s.acts),
              _bytes(per_stage.get(s.name, 0) * batch * size))
    t.add("total", "", rounded(p.params), rounded(p.macs), rounded(p.flops), rounded(p.acts), "", rule=True)
    t.notes.append(COUNTING_NOTE)
    t.data = {"stages": p.to_dict()["stages"], "params": p.params, "macs": p.macs, "flops": p.flops, "acts": p.acts}
    return t


def layers_table(p: Profile) -> Table:
    t = Table(f"{p.name} at {p.input_size}x{p.input_size}, by layer",
              ["layer", "op", "output", "params", "MACs", "FLOPs", "other ops"], key="layers",
              droppable=("FLOPs", "other ops"))
    for layer in p.layers:
        c, h, w = layer.out
        t.add(layer.name, layer.op, f"{h}x{w}, {c}", rounded(layer.params), rounded(layer.macs),
              rounded(2 * layer.macs), rounded(layer.other_ops))
    t.notes.append("other ops: element-wise work outside MACs (BN, activation, pooling, residual add), one per "
                   "output element (pooling: per window element).")
    t.data = [vars(layer) | {"out": list(layer.out), "flops": 2 * layer.macs} for layer in p.layers]
    return t


def memory_table(p: Profile, m: Memory) -> Table:
    t = Table(f"{p.name}: memory at batch {m.batch}, {m.dtype}", ["what", "bytes", "includes"], key="memory")
    t.add("weights", _bytes(m.weights), "parameters and BN running mean and variance")
    t.add("inference activations", _bytes(m.inference_activations),
          "largest working set of one layer: its input and output, plus its block's input held for the "
          "shortcut or concatenation; no allocator overhead or workspace")
    t.add("training activations", _bytes(m.training_activations),
          "every layer's output and the input image, kept for backward; gradients (= weights) and optimizer "
          "state excluded; in-place ReLU makes PyTorch's figure lower")
    t.data = vars(m)
    return t


def reconciliation_tables(r: "object", printed: list[tuple[str, str]], show_layers: bool) -> list[Table]:
    """By kind of layer: what each counter counts and how much; then the totals beside the papers' figures;
    then the layers (all with `show_layers`, else only those no rule explains)."""
    from archgen.third_party_counters import COUNTERS, RULES

    active = [c for c in COUNTERS if c in r.totals]
    kinds = Table(f"{r.name} at {r.input_size}x{r.input_size}: what each counter counts",
                  ["layers", *active, *(f"{c} rule" for c in active if c != "archgen")], key="counters")
    ops_of_kind = {layer.kind: layer.op for layer in r.layers}
    for kind, amounts in r.by_kind().items():
        op = ops_of_kind[kind]
        kinds.add(kind, *(rounded(amounts[c], 3) for c in active),
                  *(RULES[c][op].counts for c in active if c != "archgen"))
    archgen_row = ["total", Number(r.totals["archgen"], human(r.totals["archgen"], 3) + " (MACs only)"),
                   *(rounded(r.totals[c], 3) for c in active[1:])]
    kinds.add(*archgen_row, *("" for _ in active[1:]), rule=True)
    for where, text in printed:
        kinds.add(where, text, *("" for _ in active[1:]), *("" for _ in active[1:]))
    for c, ops in r.skipped.items():
        if ops:
            kinds.notes.append(f"{c} met and did not count: " + ", ".join(f"{op} x{n}" for op, n in ops.items()))
    kinds.notes.append("archgen's MACs count convs and linear layers only (the papers' convention); its other "
                       "rows are element-wise work it reports apart.")
    flagged = r.flagged
    kinds.notes.append("Every count matches its rule." if not flagged else
                       f"{len(flagged)} difference(s) no rule explains: " + "; ".join(flagged[:20]))
    kinds.data = {"name": r.name, "input_size": r.input_size, "totals": r.totals, "by_kind": r.by_kind(),
                  "rules": {c: {op: rule.counts for op, rule in RULES[c].items()} for c in active},
                  "skipped": r.skipped, "unattributed": r.unattributed, "flagged": flagged}
    tables = [kinds]
    rows = [layer for layer in r.layers if show_layers or layer.unexplained or not layer.shape_ok]
    if rows:
        t = Table(f"{r.name}: by layer", ["layer", "kind", *active, *(f"{c} rule" for c in active[1:]), "flag"],
                  key="counter-layers")
        for layer in rows:
            t.add(layer.name, layer.kind, *(layer.counted[c] if layer.counted[c] is not None else "-"
                                            for c in active),
                  *(layer.expected[c] for c in active[1:]), "unexplained" if layer.unexplained else "")
        t.data = [{"name": x.name, "kind": x.kind, "counted": x.counted, "expected": x.expected,
                   "unexplained": x.unexplained} for x in rows]
        tables.append(t)
    return tables
