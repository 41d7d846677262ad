"""Kernel units: a network's layer records grouped into the kernels a backend runs, with the features a latency
model reads (kind, channels, kernel, stride, groups, dilation, input size, batch, dtype, layout).

A latency model fitted per (device, backend, dtype, layout, kernel kind) predicts a candidate from its units
without building it, so this is pure Python (no torch) and memoised per block configuration: the design hot
path asks it for thousands of candidates a second.

The grouping reads each record's role (archgen.layer_kinds.base.FUSE_ROLES) and each merge's (MERGE_ROLES),
never a family, so a new kind with a role is grouped without a word here. Per backend:

- eager: one unit per record (every norm, act, add, concat and dropout is its own op; a squeeze-and-excitation
  gate is one unit, of its six small ops).
- fused (`archgen.fuse`): what fuse.py rewrites. conv + norm (+ act) as one unit; conv with bias + act; norm
  (+ act); an adding block whose branch ends in conv + norm takes the add and the act after it into that conv's
  unit (and the SE gate between them, GatedTail); other adds and the acts after them stay separate; drop
  records are left out (their names ride with the unit before them); a merge fuse does not know (highway)
  leaves its block eager.
- onnxruntime (its CPU provider) and openvino (the ONNX file `archgen export` writes, at the bench's session
  options): observed with each runtime's own account of what it ran (tests/test_kernel_units.py holds the
  counts per op type), the exporter folds a batch norm that follows a conv into it and the runtimes fuse the
  act after it, so conv + norm + act is one unit, and a block's opening norm (with its act) joins the conv
  unit before the block when nothing else reads the block's input (a plain run, the head, a pre-activation
  block whose shortcut reads the pre-activated input):
  - ONNX Runtime runs a conv in its blocked NCHWc layout when its output channels are a multiple of the CPU's
    block (`nchwc_block`: 16 with AVX-512, 8 on other x86-64 CPUs) and it is dense, depthwise, or grouped in groups of whole
    blocks; pools and acts keep the layout they are given. It adds a residual in the pass of a branch's
    last conv (with the act after it) only when that conv applies no act yet and the shortcut's tensor is in
    the conv's output layout; otherwise the add and the act are kernels of their own (after a zero-padding
    shortcut, in the blocks after one, after an SE gate). A concat of blocked inputs of whole blocks stays
    blocked (DenseNet-121's growth of 32; not DenseNet-40's 12). The block is the CPU's, so a model records
    the block it was calibrated with and predicts with it on any machine. A norm that does not follow a conv is a
    BatchNormalization with its act apart, or, on a blocked input, a 1x1 depthwise NCHWc conv with the act
    in it (a `dwconv` unit); it folds a norm into a conv only when the conv took nothing else. A conv takes
    relu, leaky relu, sigmoid, relu6 (Clip) and hard sigmoid in, and hard swish only when it runs blocked; SiLU
    and GELU are kernels of their own (QuickGelu, Gelu); a linear layer takes relu, leaky relu, sigmoid and
    hard sigmoid in (FusedGemm), not relu6 or hard swish; flatten is a kernel.
  - OpenVINO adds a residual as a post-op of the branch's last conv when it applies no act yet, else of the
    projection's conv, else of the branch's last eltwise kernel (an SE gate's multiply, a norm), else as an
    eltwise kernel of its own; the act after the add joins whichever took it. A norm that does not follow a
    conv is a multiply with its act; an act joins the conv, norm, linear layer or add before it; the flatten
    after the global pool is a layout reorder or a view, counted with the pool.
  Both runtimes insert layout conversions (ONNX Runtime's ReorderInput/ReorderOutput, OpenVINO's Reorder)
  that are not units of the network: they depend on the layout each kernel chose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Sequence

from archgen.bench.unit_kinds import UNIT_KINDS
from archgen.errors import UserError
from archgen.layer_kinds import MERGE_KINDS
from archgen.layer_kinds.act import FUNCTIONS
from archgen.layer_kinds.base import LayerKind
from archgen.memo import Memo
from archgen.tally import Unnamed

if TYPE_CHECKING:
    from archgen.layer_kinds.block import BlockLayers
    from archgen.planner import ModelPlan

BACKENDS = ("eager", "fused", "onnxruntime", "openvino")
DTYPES = ("float32", "float16", "bfloat16")
LAYOUTS = ("nchw", "nhwc")

#: CPU architectures (platform.machine) and vector extensions (archgen.bench.results.cpu_vector) of x86-64.
_X86 = frozenset({"x86_64", "amd64", "avx512f", "avx2", "avx", "sse4_2"})


def nchwc_block(vector: str) -> int:
    """ONNX Runtime's NCHWc channel block on a CPU whose widest vector extension is `vector`: what decides which
    convs run blocked, and so which residual adds and hard swishes it fuses. MLAS (its platform setup) takes 16
    where AVX-512F is usable and 8 on any other x86-64 CPU; on other CPUs no blocked layout is modelled (0)."""
    v = vector.lower()
    return 16 if v == "avx512f" else 8 if v in _X86 else 0


@functools.lru_cache(maxsize=None)
def local_nchwc_block() -> int:
    """This CPU's NCHWc block (nchwc_block of its widest vector extension)."""
    from archgen.bench.results import cpu_vector

    return nchwc_block(cpu_vector())


class KernelUnit(NamedTuple):
    """One kernel a backend runs, from its input's shape (`h`, `w`; out_size gives its output's). `k`: the
    window's side (an adaptive pool's: the side it pools to); `absorbed`: the roles it took in besides its own
    ('norm', 'act', 'add', 'gate'), `act` the act it applies last (None: none); `names` the records it covers,
    by their full names (a merge as '<block>.<merge kind>'); `mid`: the hidden width of a squeeze-and-excitation
    gate."""

    kind: str
    c_in: int
    c_out: int
    k: int
    stride: int
    groups: int
    dilation: int
    h: int
    w: int
    batch: int
    dtype: str
    layout: str
    absorbed: tuple[str, ...]
    act: Optional[str]
    mid: int = 0
    #: Last, so that `unit[:-1]` is its configuration: what a latency model predicts and remembers it by.
    names: tuple[str, ...] = ()


def out_size(u: KernelUnit) -> tuple[int, int]:
    """The unit's output height and width, by its kind (archgen.bench.unit_kinds): the one rule the latency
    model's features and the timing of a unit in isolation both read, so that what is timed is what is
    predicted."""
    return UNIT_KINDS[u.kind].out_size(u)


@dataclass(frozen=True)
class _Rule:
    """How one backend groups a run of records."""

    name: str
    #: One unit per record.
    eager: bool = False
    #: Acts a conv (or linear) unit takes in after it; a conv without a norm takes one only with its own bias
    #: when `act_needs_bias_or_norm` (fuse.py's rule; the runtimes fuse any conv's act).
    acts: frozenset = frozenset()
    act_needs_bias_or_norm: bool = False
    #: Acts a conv takes in only when it runs in ONNX Runtime's NCHWc layout (hardswish: its NCHWc conv has it,
    #: the activations of its other convs do not).
    blocked_acts: frozenset = frozenset()
    #: Acts a linear layer takes in (ONNX Runtime's FusedGemm: not relu6's Clip, not hardswish).
    linear_acts: frozenset = frozenset()
    #: Acts a norm that does not follow a conv takes in (ONNX Runtime: none).
    norm_acts: frozenset = frozenset()
    #: Flatten counted with the unit before it (OpenVINO: a reorder or a view).
    flatten_absorbed: bool = False
    #: ONNX Runtime's NCHWc layout tracked through the network (in blocks of the CPU's, `nchwc_block`).
    blocked: bool = False
    #: A block that opens with a norm, on an input nothing else reads, has it taken into the unit before it:
    #: '' never, 'bare_conv' a conv that took nothing else (ONNX Runtime folds the norm into its weights),
    #: 'conv' any conv unit (OpenVINO's post-ops).
    join_norm: str = ""


_KERNEL_ACTS = frozenset(name for name, f in FUNCTIONS.items() if f.kernel)
RULES = {
    "eager": _Rule("eager", eager=True),
    "fused": _Rule("fused", acts=_KERNEL_ACTS, act_needs_bias_or_norm=True, norm_acts=_KERNEL_ACTS),
    # ONNX Runtime's conv activations (MLAS's: Relu, LeakyRelu, Sigmoid, Clip for relu6, HardSigmoid), seen in
    # its optimized graphs (MobileNetV2's 35 Clips and MobileNetV3's HardSigmoid gates ran in the convs)
    "onnxruntime": _Rule("onnxruntime", acts=frozenset({"relu", "leaky_relu", "sigmoid", "relu6", "hardsigmoid",
                                                        "none"}),
                         blocked_acts=frozenset({"hardswish"}),
                         linear_acts=frozenset({"relu", "leaky_relu", "sigmoid", "hardsigmoid", "none"}),
                         blocked=True, join_norm="bare_conv"),
    "openvino": _Rule("openvino", acts=frozenset(FUNCTIONS), linear_acts=frozenset(FUNCTIONS),
                      norm_acts=frozenset(FUNCTIONS), flatten_absorbed=True, join_norm="conv"),
}

_MERGE_NAMES = {cls: name for name, cls in MERGE_KINDS.items()}


class _Out(Unnamed):
    """A tally that keeps only the last output shape a record wrote (its channels)."""

    out: Optional[tuple[int, int, int]] = None

    def record(self, name: str, op: str, params: int, macs: int, acts: int, other_ops: int,
               out: tuple[int, int, int]) -> None:
        self.out = out


class _Op:
    """One record at its place: the unit it would be on its own, before grouping."""

    __slots__ = ("name", "record", "role", "kind", "c_in", "c_out", "k", "stride", "groups", "dilation", "h", "w",
                 "mid")

    def __init__(self, name: str, record: LayerKind, role: Optional[str], kind: str, c_in: int, c_out: int,
                 h: int, w: int) -> None:
        self.name, self.record, self.role, self.kind = name, record, role, kind
        self.c_in, self.c_out, self.h, self.w = c_in, c_out, h, w
        self.k = getattr(record, "k", 1)
        self.stride = getattr(record, "stride", 1)
        self.groups = getattr(record, "groups", 1)
        self.dilation = getattr(record, "dilation", 1)
        self.mid = getattr(record, "c_mid", 0)


#: A run: records in turn, a sequence's own as a nested run.
Run = list


class _Unit:
    """A unit being grouped: its first record's features, what it took in, and its output layout."""

    __slots__ = ("op", "kind", "absorbed", "act", "names", "blocked", "c_out", "mid", "groups")

    def __init__(self, op: _Op, kind: Optional[str] = None, blocked: bool = False) -> None:
        self.op, self.kind, self.absorbed = op, kind or op.kind, []
        self.act = op.record.kind if op.role == "act" else None
        self.names, self.blocked, self.c_out, self.mid = [op.name], blocked, op.c_out, op.mid
        self.groups = op.groups

    def take(self, op: _Op, role: str, act: Optional[str] = None) -> None:
        self.names.append(op.name)
        if role not in self.absorbed:
            self.absorbed.append(role)
        if act is not None:
            self.act = act

    def unit(self, batch: int, dtype: str, layout: str) -> KernelUnit:
        o = self.op
        return KernelUnit(self.kind, o.c_in, self.c_out, o.k, o.stride, self.groups, o.dilation, o.h, o.w, batch, dtype,
                          layout, tuple(self.absorbed), self.act, self.mid, tuple(self.names))


def _ops(layers: Sequence[LayerKind], prefix: str, c: int, h: int, w: int, norm: str = "norm"
         ) -> tuple[Run, int, int, int]:
    """The records as ops with their input shapes, and the run's output shape; `norm` names the network's norm
    units ('group_norm' for group norm, a kernel of another kind)."""
    run: Run = []
    sink = _Out()
    for layer in layers:
        name = f"{prefix}.{layer.name}"
        role = layer.fusable
        if role == "sequence":
            sub, c, h, w = _ops(layer.layers, name, c, h, w, norm)
            run.append(sub)
            continue
        sink.out = None
        ho, wo = layer.cost(sink, h, w)
        # a record that writes no counted output keeps its input's channels, plus any it pads with zeros
        c_out = sink.out[0] if sink.out is not None else c + getattr(layer, "extra_channels", 0)
        kind = layer.unit_kind(ho, wo, norm)
        unit_kind = UNIT_KINDS.get(kind)
        if unit_kind is None:
            raise ValueError(f"the layer kind {type(layer).__name__} runs as the kernel kind '{kind}', which "
                             "archgen.bench.unit_kinds does not register: register it there (its output size, "
                             "weights, torch call and ONNX graph), or name a registered one as the layer kind's "
                             "`unit`")
        op = _Op(name, layer, role, kind, getattr(layer, "c_in", c), c_out, h, w)
        if unit_kind.pools_to:
            op.k = ho  # the side it pools to, which out_size reads back
        run.append(op)
        c, h, w = c_out, ho, wo
    return run, c, h, w


def _flat(run: Run) -> list[_Op]:
    out: list[_Op] = []
    for item in run:
        out += _flat(item) if isinstance(item, list) else [item]
    return out


class _Grouper:
    """Groups runs of ops by one backend's rule, tracking ONNX Runtime's layout where the rule asks."""

    def __init__(self, rule: _Rule, norm: str, block: int) -> None:
        self.rule = rule
        #: The NCHWc block where the rule tracks that layout, else 0 (nothing runs blocked).
        self.block = block if rule.blocked else 0
        #: A norm folds only when it is a batch norm (frozen or not): group norm has no running statistics.
        self.norm_folds = norm in ("batch", "frozen_batch")
        self.norm_kind = "group_norm" if norm == "group" else "norm"

    def role(self, op: _Op) -> Optional[str]:
        """The op's role where the backend can use it (a norm that cannot fold has none)."""
        if op.role == "norm" and not self.norm_folds:
            return None
        return op.role

    def conv_blocked(self, op: _Op) -> bool:
        """Whether ONNX Runtime runs this conv in its NCHWc layout (what its add fusion depends on)."""
        block = self.block
        if not block or op.c_out % block:
            return False
        if op.groups == 1 or op.groups == op.c_in == op.c_out:
            return True  # a dense conv reads any input channels (an unblocked input directly)
        return (op.c_in // op.groups) % block == 0 and (op.c_out // op.groups) % block == 0

    def group(self, run: Run, blocked: bool = False) -> tuple[list[_Unit], bool]:
        """The run's units and whether its output is in ONNX Runtime's blocked layout."""
        rule = self.rule
        units: list[_Unit] = []
        if rule.eager:
            return [_Unit(op) for op in _flat(run)], False
        pending: list[_Op] = []  # drop records before any unit: they ride with the first
        i = 0
        while i < len(run):
            item = run[i]
            if isinstance(item, list):
                sub, blocked = self.group(item, blocked)
                units += sub
                i += 1
                continue
            role = self.role(item)
            if role == "drop":
                if units:
                    units[-1].names.append(item.name)
                else:
                    pending.append(item)
                i += 1
                continue
            nxt = self._next(run, i + 1)
            if role == "conv":
                u = _Unit(item, blocked=self.conv_blocked(item))
                j = i + 1
                has_norm = nxt is not None and self.role(run[nxt]) == "norm"
                if has_norm:
                    u.take(run[nxt], "norm")
                    j = nxt + 1
                    nxt = self._next(run, j)
                act = self._act(run, nxt, rule.acts | rule.blocked_acts if u.blocked else None)
                if act is not None and (has_norm or not rule.act_needs_bias_or_norm or item.record.bias):
                    u.take(run[nxt], "act", act)
                    j = nxt + 1
                units.append(u)
                i = j
            elif role == "norm":
                if self.block and blocked and item.c_out % self.block == 0:
                    # ONNX Runtime's NCHWc BatchNormalization: a 1x1 depthwise conv, and featured as one (a
                    # multiply-add per element, not the c x c MACs of a dense conv)
                    u = _Unit(item, "dwconv", blocked=True)
                    u.groups = item.c_out
                    acts = rule.acts | rule.blocked_acts
                else:
                    u, acts = _Unit(item), rule.norm_acts
                act = self._act(run, nxt, acts)
                units.append(u)
                if act is not None:
                    u.take(run[nxt], "act", act)
                    i = nxt + 1
                else:
                    i += 1
            elif UNIT_KINDS[item.kind].reads_vector and self._act(run, nxt, rule.linear_acts) is not None:
                u = _Unit(item)
                u.take(run[nxt], "act", self._act(run, nxt, rule.linear_acts))
                units.append(u)
                i = nxt + 1
            elif UNIT_KINDS[item.kind].reshapes and rule.flatten_absorbed and units:
                units[-1].names.append(item.name)
                i += 1
            else:
                # ONNX Runtime pools and applies an act in the layout it is given
                keeps = UNIT_KINDS[item.kind].keeps_layout or item.role == "act"
                keeps = bool(self.block) and keeps and blocked and item.c_out % self.block == 0
                units.append(_Unit(item, blocked=keeps))
                i += 1
            if pending and units:
                units[0].names[1:1] = [op.name for op in pending]
                pending = []
            blocked = units[-1].blocked if units else blocked
        if pending:  # a run of drop records alone: nothing runs, the names still belong somewhere
            units.append(_Unit(pending[0], "nop"))
            units[-1].names += [op.name for op in pending[1:]]
        return units, blocked

    def _next(self, run: Run, j: int) -> Optional[int]:
        """The index of the next op the kernel would see (drop records skipped), or None."""
        while j < len(run) and not isinstance(run[j], list) and self.role(run[j]) == "drop":
            j += 1
        return j if j < len(run) and not isinstance(run[j], list) else None

    def _act(self, run: Run, j: Optional[int], acts: Optional[frozenset] = None) -> Optional[str]:
        """The act at j if this backend takes it into the unit before it."""
        if j is None or self.role(run[j]) != "act":
            return None
        kind = run[j].record.kind
        return kind if kind in (self.rule.acts if acts is None else acts) else None


def _merge_op(d: "BlockLayers", prefix: str, c_in: int, c: int, h: int, w: int, split: tuple[int, int, int]
              ) -> _Op:
    """The merge as an op: one that reads the split tensor (a highway gate's conv) from its shape, at its stride;
    a concat from the block's input channels to the merged channels; anything else the branch's output's
    shape."""
    kind = _MERGE_NAMES[type(d.merge)]
    role, unit_kind = d.merge.fusable, d.merge.unit
    if d.merge.reads_split:
        c_split, h_split, w_split = split
        return _Op(f"{prefix}.{kind}", d.merge, role, unit_kind, c_split, c, h_split, w_split)
    return _Op(f"{prefix}.{kind}", d.merge, role, unit_kind, c_in if role == "join" else c,
               d.merge.out_channels(c_in, c), h, w)


def _block(d: "BlockLayers", prefix: str, c: int, h: int, w: int, g: _Grouper, blocked: bool
           ) -> tuple[list[_Unit], int, int, int, bool]:
    """One block's units, its output shape and layout."""
    norm = g.norm_kind
    pre, c1, h1, w1 = _ops(d.pre, prefix, c, h, w, norm)
    branch, cb, hb, wb = _ops(d.branch, prefix, c1, h1, w1, norm)
    split = (c1, h1, w1) if d.split == "pre" else (c, h, w)
    shortcut = _ops((d.shortcut,), prefix, *split, norm)[0] if d.shortcut is not None else []
    post, co, ho, wo = _ops(d.post, prefix, d.merge.out_channels(c, cb), hb, wb, norm)
    how = d.merge.fusable
    rule = g.rule
    if how == "run":
        if rule.name == "fused":
            a, blocked = g.group(pre, blocked)
            b, blocked = g.group(branch + post, blocked)
            return a + b, co, ho, wo, blocked
        units, blocked = g.group(pre + branch + post, blocked)
        return units, co, ho, wo, blocked
    merge = _merge_op(d, prefix, c, cb, hb, wb, split)
    eager = rule.eager or (how is None and rule.name == "fused")
    if eager:
        units = [_Unit(op) for op in _flat(pre + branch + shortcut) + [merge] + _flat(post)]
        return units, co, ho, wo, False
    if rule.name == "fused":
        units, blocked = g.group(pre, blocked)
        return units + _fused_tail(d, branch, shortcut, merge, post, g), co, ho, wo, False
    units, pre_blocked = g.group(pre, blocked)
    body, body_blocked = g.group(branch, pre_blocked)
    units += body
    split_blocked = blocked if d.split == "input" else pre_blocked
    short, short_blocked = g.group(shortcut, split_blocked) if shortcut else ([], split_blocked)
    if how != "add":  # a concat, or a merge no runtime fuses (a highway gate): its own unit
        m = _Unit(merge)
        if how == "join":  # ONNX Runtime concatenates blocked inputs of whole blocks blocked
            m.blocked = blocked and body_blocked and c % g.block == 0 and cb % g.block == 0
        act = _single_act(post, g)
        if how is None and rule.name == "openvino" and act is not None:  # an eltwise chain: the act joins it
            m.take(_flat(post)[0], "act", act)
            return units + short + [m], co, ho, wo, False
        rest, blocked = g.group(post, m.blocked)
        return units + short + [m] + rest, co, ho, wo, blocked
    act = _single_act(post, g)
    last = units[-1]
    if rule.name == "openvino":  # the add is a post-op of a conv that has none yet, or joins an eltwise chain
        into = last if _bare_conv(last) else short[-1] if short and _bare_conv(short[-1]) else \
            last if last.op.role in ("gate", "norm") else None
    else:  # a conv's sum input, in the conv's own layout
        into = last if _bare_conv(last) and last.blocked == short_blocked else None
    take_act = act is not None and (act in rule.acts or into is not None and into.blocked and act in rule.blocked_acts)
    if into is None:
        into = _Unit(merge, blocked=last.blocked and short_blocked)  # ONNX Runtime adds blocked tensors blocked
        short.append(into)
        if rule.name != "openvino":
            take_act = False
    else:
        into.take(merge, "add")
    if take_act:
        into.take(_flat(post)[0], "act", act)
        return units + short, co, ho, wo, into.blocked
    rest, blocked = g.group(post, into.blocked)
    return units + short + rest, co, ho, wo, blocked


def _bare_conv(u: _Unit) -> bool:
    """A conv unit that applies no act yet: a sum may still be added in its pass."""
    return u.op.role == "conv" and "act" not in u.absorbed


def _single_act(post: Run, g: _Grouper) -> Optional[str]:
    """The kind of the one act after an add, or None when the block has something else (or nothing) there."""
    ops = _flat(post)
    if len(ops) == 1 and g.role(ops[0]) == "act":
        return ops[0].record.kind
    return None


def _fused_tail(d: "BlockLayers", branch: Run, shortcut: Run, merge: _Op, post: Run, g: _Grouper) -> list[_Unit]:
    """fuse.py's rule for a block after its pre-activation: the branch, and the tail that may take the add."""
    if d.merge.fusable == "join":
        a, _ = g.group(branch)
        m = _Unit(merge)
        b, _ = g.group(post)
        return a + [m] + b
    if post:
        act = _single_act(post, g)
        act = act if act is not None and act in g.rule.acts else None
        tail_ok = act is not None
    else:
        act, tail_ok = None, True
    roles = [g.role(op) if not isinstance(op, list) else "sequence" for op in branch[-3:]]
    survives = d.inverted_drop or d.survival >= 1.0
    short, _ = g.group(shortcut)
    if roles == ["conv", "norm", "gate"] and tail_ok and survives:
        head, _ = g.group(branch[:-3])
        conv, norm, gate = branch[-3:]
        u = _Unit(conv)
        u.take(norm, "norm")
        u.take(gate, "gate")
        u.mid = gate.mid
        return head + short + [_tail(u, merge, post, act)]
    if roles[-2:] == ["conv", "norm"] and tail_ok:
        head, _ = g.group(branch[:-2])
        u = _Unit(branch[-2])
        u.take(branch[-1], "norm")
        return head + short + [_tail(u, merge, post, act)]
    a, _ = g.group(branch)
    return a + short + [_Unit(merge)] + [_Unit(op) for op in _flat(post)]


def _tail(u: _Unit, merge: _Op, post: Run, act: Optional[str]) -> _Unit:
    u.take(merge, "add")
    if post:
        u.take(_flat(post)[0], "act", act)
    return u


_MEMO = Memo(1 << 16, "kernel_units: blocks")


class Walk:
    """A network's blocks grouped in turn, carrying what the next block's grouping reads: the shape and layout
    its input arrives in, and the unit before it (which may take the block's opening norm in). kernel_units
    walks a whole plan; a latency predictor walks one stage at a time from where the last left off, seeding
    `units` with the unit before the stage, so that it can remember a stage's units by what it starts from."""

    def __init__(self, backend: str, norm: str, batch: int, dtype: str, layout: str, c: int, h: int, w: int,
                 blocked: bool = False, before: Optional[KernelUnit] = None, *, nchwc_block: int) -> None:
        self.grouper = _Grouper(RULES[backend], norm, nchwc_block)
        self.context = (backend, self.grouper.norm_folds, self.grouper.block, batch, dtype, layout)
        self.c, self.h, self.w, self.blocked = c, h, w, blocked
        #: The units so far (`before` first, where given: a block may take its opening norm into it).
        self.units: list[KernelUnit] = [] if before is None else [before]

    def add(self, prefix: str, made_from: object, layers: Callable[[], "BlockLayers"]) -> None:
        """The block's units appended (`made_from`: what its records are made from, cheaper to hash than the
        records; `layers` makes them on a miss), memoised by it, its place and its input."""
        g = self.grouper
        backend, _, _, batch, dtype, layout = self.context
        key = (*self.context, prefix, made_from, self.c, self.h, self.w, self.blocked)
        hit = _MEMO.get(key)
        if hit is None:
            d = layers()
            units, c2, h2, w2, blocked2 = _block(d, prefix, self.c, self.h, self.w, g, self.blocked)
            opens = bool(g.rule.join_norm) and _opens_with_norm(d, g)
            hit = _MEMO.keep(key, ([u.unit(batch, dtype, layout) for u in units], c2, h2, w2, blocked2, opens))
        units, self.c, self.h, self.w, self.blocked, opens = hit
        if opens and self.units and units:
            units = _join(self.units, units, g.rule)
        self.units += units


def kernel_units(plan_or_spec: object, backend: str, batch: int = 1, dtype: str = "float32", layout: str = "nchw",
                 input_size: Optional[int] = None, nchwc_block: Optional[int] = None) -> list[KernelUnit]:
    """The kernels `backend` runs for a network, in order, each with the features a latency model reads.

    `plan_or_spec`: a ModelPlan or anything `archgen.plan` takes; `input_size` overrides the spec's;
    `nchwc_block`: ONNX Runtime's channel block (None: this CPU's, local_nchwc_block). Every record of the
    network lands in exactly one unit (`names`). Pure Python; blocks are memoised by what they
    are made from, their place and their input shape, so candidates of one design space share the work.
    """
    from archgen.planner import ModelPlan, plan

    check_condition(backend, batch, dtype, layout)
    p = plan_or_spec if isinstance(plan_or_spec, ModelPlan) else plan(plan_or_spec)
    if input_size is not None and input_size != p.input_size:
        from archgen.complexity import profile

        profile(p, input_size)  # refuses, in a sentence, a size the network cannot take (the plan's size it can)
    size = input_size or p.input_size
    block = local_nchwc_block() if nchwc_block is None else nchwc_block
    walk = Walk(backend, p.spec.doc.norm.type, batch, dtype, layout, p.in_chans, size, size, nchwc_block=block)
    walk.add("stem", p.stem, p.stem.layers)
    for stage in p.stages:
        for i, b in enumerate(stage.blocks):
            walk.add(f"{stage.name}.{i}", (b.family, b.at), b.layers)
    walk.add("head", (p.head, p.num_features), lambda: p.head.layers(p.num_features))
    return walk.units


def placement_problem(backend: str, dtype: str, layout: str, device: str) -> Optional[str]:
    """What is wrong, in words, with running `backend` at this dtype and layout on this device (None: nothing):
    the rule calibrate asks of a request and a model file of what it holds."""
    if backend in ("onnxruntime", "openvino") and (dtype, layout) != ("float32", "nchw"):
        return f"the {backend} backend runs the float32 NCHW model archgen exports (not {dtype}, {layout})"
    if device not in ("cpu", "cuda") or (backend == "openvino" and device != "cpu"):
        return f"the device is cpu or cuda (openvino: cpu only), not '{device}'"
    return None


def check_condition(backend: str, batch: int, dtype: str, layout: str) -> None:
    """UserError, in a sentence, for a backend, batch, dtype or layout no rule here covers."""
    for value, allowed, what in ((backend, BACKENDS, "backend"), (dtype, DTYPES, "dtype"),
                                 (layout, LAYOUTS, "layout")):
        if value not in allowed:
            raise UserError(f"kernel units: unknown {what} '{value}'; choose one of {', '.join(allowed)}"
                            + (" (torch.compile's kernels are Inductor's to choose, so it has no rule here)"
                               if value == "compile" else ""))
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise UserError(f"kernel units: the batch must be a positive integer, not {batch!r}")


def _opens_with_norm(d: "BlockLayers", g: _Grouper) -> bool:
    """Whether the block's first record is a norm and nothing else reads the block's input (a run, or an add
    whose shortcut reads the pre-activated input)."""
    first = (d.pre + d.branch)[:1]
    if not first or first[0].fusable != "norm" or not g.norm_folds:
        return False
    return d.merge.fusable == "run" or (d.merge.fusable == "add" and d.split == "pre")


def _join(out: list[KernelUnit], units: list[KernelUnit], rule: _Rule) -> list[KernelUnit]:
    """The block's opening norm (and its act) taken into the unit before the block, where the rule allows;
    the block's units left."""
    prev, first = out[-1], units[0]
    if not UNIT_KINDS[prev.kind].folds_norm or (rule.join_norm == "bare_conv" and prev.absorbed):
        return units
    taken, names, act = 1, first.names, first.act
    absorbed = ("norm", "act") if "act" in first.absorbed else ("norm",)
    if act is None and len(units) > 1 and UNIT_KINDS[units[1].kind].act_only and units[1].act in rule.acts:
        taken, names, act, absorbed = 2, names + units[1].names, units[1].act, ("norm", "act")
    out[-1] = prev._replace(absorbed=tuple(dict.fromkeys(prev.absorbed + absorbed)), act=act,
                            names=prev.names + names)
    return units[taken:]


def record_names(plan_or_spec: object, input_size: Optional[int] = None) -> list[str]:
    """Every record's full name, in order, with each merge that does work as '<block>.<merge kind>': what the
    units of any backend partition."""
    return [name for u in kernel_units(plan_or_spec, "eager", input_size=input_size) for name in u.names]
