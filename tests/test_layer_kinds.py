"""A layer kind and a merge kind are each one unit: its record counts what its module holds, fuse asks it what
the kernel may take, and a kind defined in one place is counted, built and fused with nothing else touched."""

from __future__ import annotations

import dataclasses
import typing
import warnings

import pytest
import torch
import torch.nn as nn

import archgen
from archgen.complexity import block_cost
from archgen.grammar import schema
from archgen.kernels import fuse
from archgen.kernels.bn_act import ACTS
from archgen.layer_kinds import layer_kinds, merge_kinds
from archgen.layer_kinds.act import FUNCTIONS, Act, apply_act
from archgen.layer_kinds.base import LAYER_KINDS, LayerKind, layer_kind
from archgen.layer_kinds.block import BlockLayers
from archgen.layer_kinds.conv import Conv
from archgen.layer_kinds.gate import Gate
from archgen.layer_kinds.linear import Flatten, Linear
from archgen.layer_kinds.merges import ADD
from archgen.layer_kinds.norm import LocalResponseNorm, Norm
from archgen.layer_kinds.plain import Dropout, Identity, Sequence
from archgen.layer_kinds.pool import AdaptivePool, Pool
from archgen.layer_kinds.squeeze_excite import SqueezeExcite
from archgen.layer_kinds.zero_pad import ZeroPad
from archgen.modules import Block
from archgen.tally import Tally

#: One record of every layer kind archgen ships, with the shape of its input (without the batch axis).
RECORDS = [
    (Conv("conv", 16, 32, 3, stride=2, groups=4, dilation=2, bias=True), (16, 9, 9)),
    (Linear("fc", 48, 10), (48,)),
    (Flatten("flatten"), (3, 4, 4)),
    (Norm("bn", 16), (16, 5, 5)),
    (LocalResponseNorm("lrn", 16), (16, 5, 5)),
    (Act("act", 16, "leaky_relu"), (16, 5, 5)),
    (Pool("pool", 16, "avg", 2, 2, ceil_mode=True, count_include_pad=False), (16, 7, 7)),
    (AdaptivePool("pool", 16, "max", 3), (16, 7, 7)),
    (Dropout("drop", 0.5), (16, 3, 3)),
    (Identity("fc"), (16, 3, 3)),
    (SqueezeExcite("se", 16, 4), (16, 6, 6)),
    (ZeroPad("downsample", 2, 16), (16, 6, 6)),
    (Sequence("downsample", (Conv("0", 16, 32, 1, 2), Norm("1", 32))), (16, 6, 6)),
]


def test_every_registered_kind_is_exercised_here():
    assert set(layer_kinds().values()) == {type(record) for record, _ in RECORDS}
    assert set(merge_kinds()) == {"none", "add", "concat", "gate"}


@pytest.mark.parametrize("record, shape", RECORDS, ids=[type(r).__name__ for r, _ in RECORDS])
def test_a_kinds_counted_parameters_and_output_are_its_modules(record, shape):
    t = Tally()
    h, w = record.cost(t, *shape[1:]) if len(shape) == 3 else record.cost(t, 1, 1)
    module = record.module().eval()
    with torch.no_grad():
        y = module(torch.randn(2, *shape))
    assert t.params == sum(p.numel() for p in module.parameters())
    assert tuple(y.shape[2:]) == ((h, w) if y.dim() == 4 else ())
    if t.layers:  # a layer that does no counted work (zero padding, flatten, dropout) records nothing
        assert t.layers[-1].out[0] == y.shape[1]


def test_linear_and_flatten_count_the_pooled_vector():
    head = archgen.plan("vgg16").head.layers(512)
    t = Tally()
    block_cost(head, t, 1000, 7, 7)
    assert [x.name for x in t.layers if x.op == "linear"] == ["hidden.0", "hidden.3", "fc"]
    assert t.params == 512 * 7 * 7 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000


def test_the_highway_gate_merge_counts_its_conv_and_builds_it_with_the_carry_bias():
    gate = Gate("gate", 8, 16, 3, 2, -3.0)
    t = Tally()
    gate.cost(t, 16, 8, 8, 4, 4)
    module = gate.module()
    assert t.params == sum(p.numel() for p in module.parameters()) == 16 * 8 * 9 + 16
    assert torch.all(module.conv.bias == -3.0)
    assert [x.name for x in t.layers] == ["gate.conv", "gate.sigmoid", "carry_gate", "transform", "carry", "add"]


def test_the_acts_fuse_may_take_are_exactly_those_the_kernel_computes_and_a_spec_names_the_tables_acts():
    assert {kind for kind, f in FUNCTIONS.items() if f.kernel} == set(ACTS)
    assert typing.get_args(schema.Act) == ("relu", "leaky_relu", "silu", "gelu", "relu6", "hardswish", "none")
    assert typing.get_args(schema.Gate) == ("sigmoid", "hardsigmoid")


@pytest.mark.parametrize("kind", list(FUNCTIONS))
@pytest.mark.parametrize("inplace", [False, True])
def test_fuses_eager_act_is_the_act_kinds_module(kind, inplace):
    """Where no kernel runs, fuse applies an act through the table's torch function: the module's arithmetic."""
    x = torch.linspace(-5, 5, 48).reshape(1, 3, 4, 4)
    expected = Act("a", 3, kind).module()(x.clone())
    torch.testing.assert_close(apply_act(kind, x.clone(), 0.1, inplace=inplace), expected, rtol=0, atol=0)


def test_every_kind_runs_as_a_kernel_kind_that_says_how_it_is_timed():
    """What a record runs as alone (its `unit_kind`) is a registered kernel kind, which builds its own torch call
    and ONNX graph: the latency model's timing and features read the kind, never a branch of their own."""
    from archgen.bench.unit_kinds import UNIT_KINDS, UnitKind

    for record, shape in RECORDS:
        if record.fusable != "sequence":
            out = record.cost(Tally(), *shape[1:]) if len(shape) == 3 else (1, 1)
            assert {record.unit_kind(*out, norm) for norm in ("norm", "group_norm")} <= set(UNIT_KINDS), record
    assert {m.unit for m in merge_kinds().values() if m.fusable != "run"} == {"add", "concat", "highway_gate"}
    assert {Conv("c", 8, 8, 3, groups=8).unit_kind(4, 4, "norm"), Pool("p", 8, "max", 3, 2).unit_kind(4, 4, "norm"),
            AdaptivePool("p", 8, "avg", 1).unit_kind(1, 1, "norm"), Norm("bn", 8).unit_kind(4, 4, "group_norm")} == \
        {"dwconv", "max_pool", "global_pool", "group_norm"}
    for kind in UNIT_KINDS.values():
        assert type(kind).torch_call is not UnitKind.torch_call, kind.name
        assert type(kind).onnx_graph is not UnitKind.onnx_graph, kind.name


def test_a_kind_must_name_a_role_fuse_knows():
    with pytest.raises(TypeError, match="fusable"):
        @layer_kind("typo_in_role")
        @dataclasses.dataclass(frozen=True)
        class Typo(LayerKind):
            fusable = "actt"
            name: str
    assert "typo_in_role" not in LAYER_KINDS


def test_a_new_kind_in_one_place_is_counted_built_and_fused(monkeypatch):
    """Hard swish, as the sketch of STYLE.md has it: registered by name, costed, built, and left eager by fuse
    (no kernel computes it) while the conv-BN before it still fuses; nothing else in archgen changes."""
    monkeypatch.setattr("archgen.layer_kinds.base.LAYER_KINDS", dict(LAYER_KINDS))

    @layer_kind("hswish")
    @dataclasses.dataclass(frozen=True)
    class HardSwish(LayerKind):
        name: str
        c: int

        def cost(self, t: Tally, h: int, w: int) -> tuple[int, int]:
            t.record(self.name, "act", 0, 0, 0, self.c * h * w, (self.c, h, w))
            return h, w

        def module(self, first: bool = False) -> nn.Module:
            return nn.Hardswish()

    layers = BlockLayers(branch=(Conv("conv1", 8, 8, 3), Norm("bn1", 8), HardSwish("act1", 8),
                                 Conv("conv2", 8, 8, 3), Norm("bn2", 8)), merge=ADD, post=(Act("act_out", 8),))
    t = Tally()
    assert block_cost(layers, t, 8, 6, 6) == (6, 6)
    assert [x.name for x in t.layers] == ["conv1", "bn1", "act1", "conv2", "bn2", "add", "act_out"]
    torch.manual_seed(0)
    block = Block(layers).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = nn.Sequential(block)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # hard swish is no norm or act a kernel was asked to take: no warning
        fused = fuse(model)
    assert fused[0].tail is not None and isinstance(fused[0].body.act1, nn.Hardswish)
    from archgen.bench.kernel_units import Walk

    walk = Walk("eager", "batch", 1, "float32", "nchw", 8, 6, 6, nchwc_block=0)
    with pytest.raises(ValueError, match="kernel kind 'hswish', which archgen.bench.unit_kinds does not register"):
        walk.add("layer1.0", "hswish-block", lambda: layers)  # a latency model needs its kernel kind
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
