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

import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from archgen.layers import BlockLayers

if TYPE_CHECKING:
    from archgen.planner import HeadPlan, ModelPlan


#: What the figures mean, as every table that prints them says it.
COUNTING_NOTE = ("MACs: multiply-accumulates of convs and linear layers, bias excluded (the papers' 'FLOPs'); "
                 "FLOPs = 2 x MACs; activations: output elements of every conv and linear layer.")


class TooSmall(ValueError):
    """A layer's output would have no pixels."""


@dataclass
class LayerCost:
    name: str
    op: str  # conv, linear, bn, act, pool, add, mul
    params: int
    macs: int
    acts: int
    other_ops: int
    out: tuple[int, int, int]  # channels, height, width


@dataclass
class Tally:
    """Records each layer's cost as a block's `cost` walks it, under a name scope."""

    layers: list[LayerCost] = field(default_factory=list)
    prefix: str = ""

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        saved = self.prefix
        self.prefix = f"{saved}.{name}" if saved else name
        try:
            yield
        finally:
            self.prefix = saved

    def _name(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _record(self, name: str, op: str, params: int, macs: int, acts: int, other_ops: int,
                out: tuple[int, int, int]) -> None:
        self.layers.append(LayerCost(self._name(name), op, params, macs, acts, other_ops, out))

    def conv(self, name: str, cin: int, cout: int, k: int, h: int, w: int, *, stride: int = 1,
             groups: int = 1, dilation: int = 1, padding: int | None = None, bias: bool = False) -> tuple[int, int]:
        pad = dilation * (k - 1) // 2 if padding is None else padding
        ho = conv_out(h, k, stride, pad, dilation)
        wo = conv_out(w, k, stride, pad, dilation)
        if ho < 1 or wo < 1:
            raise TooSmall(f"{self._name(name)} gets a {h}x{w} input and would output {ho}x{wo}")
        weight = cout * (cin // groups) * k * k
        self._record(name, "conv", weight + (cout if bias else 0), weight * ho * wo, cout * ho * wo, 0,
                     (cout, ho, wo))
        return ho, wo

    def bn(self, name: str, c: int, h: int, w: int) -> None:
        self._record(name, "bn", 2 * c, 0, 0, c * h * w, (c, h, w))

    def norm(self, name: str, c: int, h: int, w: int, *, ops_per_element: int) -> None:
        """A parameter-free normalisation (local response norm): other_ops only, `ops_per_element` each."""
        self._record(name, "norm", 0, 0, 0, c * h * w * ops_per_element, (c, h, w))

    def act(self, name: str, kind: str, c: int, h: int, w: int) -> None:
        if kind != "none":
            self._record(name, "act", 0, 0, 0, c * h * w, (c, h, w))

    def add(self, name: str, c: int, h: int, w: int) -> None:
        self._record(name, "add", 0, 0, 0, c * h * w, (c, h, w))

    def mul(self, name: str, c: int, h: int, w: int) -> None:
        """An element-wise multiply (a squeeze-and-excitation gate): other_ops only, as the add."""
        self._record(name, "mul", 0, 0, 0, c * h * w, (c, h, w))

    def pool(self, name: str, c: int, k: int, h: int, w: int, *, stride: int, padding: int = 0,
             ceil_mode: bool = False, global_pool: bool = False) -> tuple[int, int]:
        if global_pool:
            self._record(name, "pool", 0, 0, 0, c * h * w, (c, 1, 1))
            return 1, 1
        ho = conv_out(h, k, stride, padding, 1, ceil_mode)
        wo = conv_out(w, k, stride, padding, 1, ceil_mode)
        if ho < 1 or wo < 1:
            raise TooSmall(f"{self._name(name)} gets a {h}x{w} input and would output {ho}x{wo}")
        self._record(name, "pool", 0, 0, 0, c * ho * wo * k * k, (c, ho, wo))
        return ho, wo

    def adaptive_pool(self, name: str, c: int, size: int, h: int, w: int) -> tuple[int, int]:
        """Adaptive pooling to size x size (VGG's 7x7): one op per input element read by each output's window
        (torch's windows [floor(i h / s), ceil((i + 1) h / s)) overlap, or repeat a pixel, when s does not divide h)."""
        reads = adaptive_window_sum(h, size) * adaptive_window_sum(w, size)
        self._record(name, "pool", 0, 0, 0, c * reads, (c, size, size))
        return size, size

    def linear(self, name: str, cin: int, cout: int, bias: bool = True) -> None:
        self._record(name, "linear", cin * cout + (cout if bias else 0), cin * cout, cout, 0, (cout, 1, 1))

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def acts(self) -> int:
        return sum(layer.acts for layer in self.layers)


class Totals(Tally):
    """A Tally that keeps only the sums (and the linear layers' count, for the depth): what the design
    hot path needs, without a named record per layer."""

    # Plain counters, shadowing Tally's sums over its records.
    params = macs = acts = linears = 0

    def _record(self, name: str, op: str, params: int, macs: int, acts: int, other_ops: int,
                out: tuple[int, int, int]) -> None:
        self.params += params
        self.macs += macs
        self.acts += acts
        self.linears += op == "linear"


def adaptive_window_sum(size: int, out: int) -> int:
    """The summed window lengths of adaptive pooling from `size` to `out` along one axis."""
    return sum(-(-(i + 1) * size // out) - i * size // out for i in range(out))


def conv_out(size: int, k: int, stride: int, pad: int, dilation: int, ceil_mode: bool = False) -> int:
    span = size + 2 * pad - dilation * (k - 1) - 1
    if span < 0:
        return 0
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        # PyTorch drops a last window that would start in the right padding.
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1


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


def block_cost(d: BlockLayers, t: Tally, out_chs: int, h: int, w: int) -> tuple[int, int]:
    """Walk one block's records (pre, branch, shortcut, gate, merge, post) in `t`; return the output size."""
    for layer in d.pre:
        h, w = layer.cost(t, h, w)
    hb, wb = h, w
    for layer in d.branch:
        hb, wb = layer.cost(t, hb, wb)
    if d.residual:
        hs, ws = h, w
        with t.scope("downsample"):
            for layer in d.shortcut or ():
                hs, ws = layer.cost(t, hs, ws)
        if (hs, ws) != (hb, wb):
            raise TooSmall(f"{t.prefix}: the branch outputs {hb}x{wb} and the shortcut {hs}x{ws} from a {h}x{w} "
                           "input, so they cannot be added")
        if d.gate is not None:
            _gate_cost(d, t, out_chs, h, w)
        t.add("add", out_chs, hb, wb)
    for layer in d.post:
        hb, wb = layer.cost(t, hb, wb)
    return hb, wb


def _gate_cost(d: BlockLayers, t: Tally, out_chs: int, h: int, w: int) -> None:
    """A highway merge's extra work: the gate (conv + sigmoid), 1 - T, and the two products H * T and
    carry * (1 - T); the sum is the block's add."""
    ho, wo = d.gate.cost(t, h, w)
    t.add("carry_gate", out_chs, ho, wo)
    t.mul("transform", out_chs, ho, wo)
    t.mul("carry", out_chs, ho, wo)


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
        out = head_cost(p.head, p.num_features, t, h, w)
        close("head", start, out, [(head_notation(p), 1)])
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


def head_cost(head: "HeadPlan", c: int, t: Tally, h: int, w: int) -> tuple[int, int, int]:
    """The head's layers (final BN-act, pool, hidden fc-act layers, fc) on the last stage's c x h x w output, as
    network.Head makes them from the same HeadPlan; returns its output shape."""
    with t.scope("head"):
        if head.final_norm:
            t.bn("norm", c, h, w)
            t.act("act", head.final_act, c, h, w)
        if head.pool == "none":
            return c, h, w
        if head.pool_size == 1:
            t.pool("pool", c, 0, h, w, stride=1, global_pool=True)
        else:
            t.adaptive_pool("pool", c, head.pool_size, h, w)
        features = c * head.pool_size ** 2
        for i, width in enumerate(head.hidden):
            t.linear(f"hidden.{3 * i}", features, width)
            t.act(f"hidden.{3 * i + 1}", head.final_act, width, 1, 1)
            features = width
        if head.classes > 0:
            t.linear("fc", features, head.classes)
            return head.classes, 1, 1
    return features, 1, 1


def head_notation(p: "ModelPlan") -> str:
    """'global avg pool, 1000-d fc'; VGG's '7x7 adaptive avg pool; fc 4096; fc 4096; 1000-d fc'."""
    head = p.head
    if head.pool == "none":
        return "no pool"
    if not head.hidden and head.pool_size == 1:
        return f"global {head.pool} pool" + (f", {head.classes}-d fc" if head.classes else "")
    parts = [f"{head.pool_size}x{head.pool_size} adaptive {head.pool} pool"] if head.pool_size > 1 else \
        [f"global {head.pool} pool"]
    parts += [f"fc {width}" for width in head.hidden] + ([f"{head.classes}-d fc"] if head.classes else [])
    return "; ".join(parts)


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
