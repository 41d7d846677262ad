"""Params, MACs and activations from arithmetic, with no model built and no tracing (as pycls does).

Conventions, stated once:
- MACs count the multiply-accumulates of convolutions and linear layers only,
  bias excluded: the papers' "FLOPs" and fvcore's conv + linear count.
- FLOPs = 2 x MACs.
- Activations = output elements of every conv and linear layer (pycls's `acts`).
- `other_ops` counts, apart, the element-wise work the papers leave out
  (batch norm, activation, pooling, residual add, the squeeze-and-excitation gate's multiply),
  one op per output element
  (per window element for pooling), for reconciliation with other counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archgen.tally import LayerCost, Tally, TooSmall

if TYPE_CHECKING:
    from archgen.layer_kinds.block import BlockLayers
    from archgen.planner import ModelPlan


#: What the figures mean, as every table that prints them says it.
COUNTING_NOTE = ("MACs: multiply-accumulates of convs and linear layers, bias excluded (the papers' 'FLOPs'); "
                 "FLOPs = 2 x MACs; activations: output elements of every conv and linear layer.")


@dataclass
class StageProfile:
    """One row of an architecture table: a stage's output and its blocks in bracket notation."""

    name: str
    out: tuple[int, int, int]
    blocks: list[tuple[str, int]]  # (notation, repeats), consecutive equal blocks merged
    params: int
    macs: int
    acts: int

    @property
    def notation(self) -> str:
        """Repeated blocks in the papers' brackets ('[1x1, 64; 3x3, 64; 1x1, 256] x 3'); stem and head plain."""
        if self.name in ("stem", "head"):
            return "; ".join(text for text, _ in self.blocks)
        return " ".join(f"[{text}] x {n}" for text, n in self.blocks)


@dataclass
class Profile:
    """Analytic counts of a whole network; see the module docstring for what each counts."""

    name: str
    input_size: int
    params: int
    macs: int
    acts: int
    other_ops: int
    stages: list[StageProfile]
    layers: list[LayerCost]

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self, layers: bool = False) -> dict:
        out = {"name": self.name, "input_size": self.input_size, "params": self.params, "macs": self.macs,
               "flops": self.flops, "acts": self.acts,
               "stages": [{"name": s.name, "output": list(s.out), "blocks": s.notation, "params": s.params,
                           "macs": s.macs, "acts": s.acts} for s in self.stages]}
        if layers:
            out["layers"] = [vars(layer) | {"out": list(layer.out)} for layer in self.layers]
        return out


def block_cost(d: "BlockLayers", t: Tally, out_chs: int, h: int, w: int) -> tuple[int, int]:
    """Walk one block's records (pre, branch, shortcut, merge, post) in `t`; return the output size."""
    for layer in d.pre:
        h, w = layer.cost(t, h, w)
    hb, wb = h, w
    for layer in d.branch:
        hb, wb = layer.cost(t, hb, wb)
    if d.merge.residual:
        hs, ws = (h, w) if d.shortcut is None else d.shortcut.cost(t, h, w)
        if (hs, ws) != (hb, wb):
            raise TooSmall(f"{t.prefix}: the branch outputs {hb}x{wb} and the shortcut {hs}x{ws} from a {h}x{w} "
                           "input, so they cannot be added")
    d.merge.cost(t, out_chs, h, w, hb, wb)
    for layer in d.post:
        hb, wb = layer.cost(t, hb, wb)
    return hb, wb


def profile(spec: object, input_size: int | None = None) -> Profile:
    """Params, MACs, FLOPs and activations per layer and per stage, from the plan alone.

    `spec` is anything `load_spec` takes, or a ModelPlan (planned once, handed on). `input_size`
    overrides the spec's `input.size`.
    """
    from archgen.planner import plan

    p = plan(spec)
    size = input_size or p.input_size
    t = Tally()
    rows: list[StageProfile] = []

    def close(name: str, start: int, out: tuple[int, int, int], blocks: list[tuple[str, int]]) -> None:
        part = t.layers[start:]
        rows.append(StageProfile(name, out, blocks, sum(x.params for x in part), sum(x.macs for x in part),
                                 sum(x.acts for x in part)))

    try:
        with t.scope("stem"):
            h, w = block_cost(p.stem.layers(), t, p.stem.out_chs, size, size)
        close("stem", 0, (p.stem.out_chs, h, w), [(p.stem.notation(), 1)])
        for stage in p.stages:
            start = len(t.layers)
            blocks: list[tuple[str, int]] = []
            with t.scope(stage.name):
                for i, b in enumerate(stage.blocks):
                    with t.scope(str(i)):
                        h, w = block_cost(b.layers(), t, b.out_chs, h, w)
                    text = b.notation()
                    if blocks and blocks[-1][0] == text:
                        blocks[-1] = (text, blocks[-1][1] + 1)
                    else:
                        blocks.append((text, 1))
            close(stage.name, start, (stage.out_chs, h, w), blocks)
        start = len(t.layers)
        with t.scope("head"):
            h, w = block_cost(p.head.layers(p.num_features), t, p.head.out_chs(p.num_features), h, w)
        close("head", start, (p.head.out_chs(p.num_features), h, w), [(p.head.notation(), 1)])
    except TooSmall as exc:
        raise _too_small(p, input_size, f"an input of {size}x{size} is too small for this network: {exc}; use a "
                                        "larger input or fewer downsampling stages") from None
    reduction = p.stages[-1].reduction
    if size < reduction:
        raise _too_small(p, input_size, f"an input of {size}x{size} is smaller than the network's total stride of "
                                        f"{reduction}, so its last stage would see less than one pixel; use an "
                                        f"input of at least {reduction}")
    return Profile(p.spec.name, size, t.params, t.macs, t.acts, sum(x.other_ops for x in t.layers), rows,
                   t.layers)


def _too_small(p: "ModelPlan", override: int | None, message: str) -> Exception:
    """At the spec's `input.size` line, or, for a size the caller chose, at no line of the spec."""
    if override is None:
        return p.spec.error(("input", "size"), message)
    from archgen.errors import SpecError

    return SpecError(message + f" (the input size {override} was asked for, not the spec's)", path=p.spec.file,
                     field="input size")


#: Largest model archgen builds unless asked (`max_params=`, `--max-params`): 4 GB of float32 weights.
DEFAULT_MAX_PARAMS = 1_000_000_000


def check_size(p: Profile, spec: object, max_params: int = DEFAULT_MAX_PARAMS) -> None:
    """Refuse, before anything is allocated, a model whose counted parameters pass `max_params`."""
    if p.params > max_params:
        raise spec.error(("stages",), f"the model would have {p.params:,} parameters, above the limit of "
                                      f"{max_params:,}; shrink it, or raise the limit (max_params=..., "
                                      "--max-params)")
