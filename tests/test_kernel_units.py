"""Kernel units (archgen.bench.kernel_units): pure Python on every bundled spec, every record in exactly one unit
for every backend, exact unit lists for a tiny net, the fused units held to archgen.fuse's model, and the ONNX
Runtime and OpenVINO rules held to what the runtimes report running (ONNX Runtime's profile, OpenVINO's runtime
model) on small nets of each structure the rules treat differently."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import warnings

import pytest

import archgen
from archgen.bench.kernel_units import BACKENDS, KernelUnit, kernel_units, local_nchwc_block, nchwc_block, record_names
from archgen.errors import UserError
from archgen.grammar.loader import bundled_names
from archgen.layer_kinds import merge_kinds

TINY = {"name": "tiny", "input": {"channels": 3, "size": 32, "classes": 10}, "stem": {"type": "cifar", "width": 16},
        "block": {"type": "basic"}, "stages": [{"depth": 1, "width": 16}, {"depth": 1, "width": 32, "stride": 2}]}
#: A ResNeXt bottleneck with projections (grouped convs, a max-pooled stem).
BOTTLENECK = {"name": "bottle", "input": {"channels": 3, "size": 64, "classes": 10},
              "stem": {"type": "imagenet", "width": 16},
              "block": {"type": "bottleneck", "cardinality": 2, "base_width": 8},
              "stages": [{"depth": 2, "width": 16}, {"depth": 1, "width": 32, "stride": 2}]}
#: SE-ResNet: a gate before the add, with a projection and with an identity shortcut.
SE = {"name": "se", "input": {"channels": 3, "size": 64, "classes": 10}, "stem": {"type": "imagenet", "width": 16},
      "block": {"type": "bottleneck", "se_ratio": 0.25},
      "stages": [{"depth": 2, "width": 16}, {"depth": 1, "width": 32, "stride": 2}]}


def test_extraction_imports_no_torch() -> None:
    code = ("import sys, archgen; from archgen.bench.kernel_units import kernel_units; "
            "[kernel_units('regnetx_004', b) for b in ('eager', 'fused', 'onnxruntime', 'openvino')]; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", bundled_names())
def test_units_partition_the_records(name: str) -> None:
    """Every backend's units cover each record exactly once, and the records are the counter's layers (each
    layer the counter names is a record, lies inside one (an SE gate's pool and fcs), or is a row its block's
    merge wrote (a highway gate's products))."""
    names = record_names(name)
    assert len(names) == len(set(names))
    for backend in BACKENDS:
        covered = [n for u in kernel_units(name, backend) for n in u.names]
        assert sorted(covered) == sorted(names), backend
    inside = set(names)
    for layer in archgen.profile(name).layers:
        parts = layer.name.split(".")
        in_record = any(".".join(parts[:i]) in inside for i in range(len(parts), 0, -1))
        of_merge = any(".".join(parts[:-1] + [kind]) in inside for kind in merge_kinds())  # a merge's own rows
        assert in_record or of_merge, layer.name


def test_shapes_follow_the_counter() -> None:
    """Each conv unit's input size and channels are the counter's: its output is the counter's conv output."""
    rows = {layer.name: layer.out for layer in archgen.profile("resnet50").layers}
    for u in kernel_units("resnet50", "fused", batch=8, dtype="float16", layout="nhwc"):
        if u.kind == "conv":
            c, h, w = rows[u.names[0]]
            assert (u.c_out, -(-u.h // u.stride), -(-u.w // u.stride)) == (c, h, w), u
            assert (u.batch, u.dtype, u.layout) == (8, "float16", "nhwc")


def unit(kind: str, c_in: int, c_out: int, k: int, stride: int, h: int, absorbed: tuple = (), act=None,
         names: tuple = ()) -> KernelUnit:
    return KernelUnit(kind, c_in, c_out, k, stride, 1, 1, h, h, 1, "float32", "nchw", absorbed, act, names=names)


def test_tiny_units_per_backend() -> None:
    stem = ("stem.conv1", "stem.bn1", "stem.act1")
    l1 = ("layer1.0.conv1", "layer1.0.bn1", "layer1.0.act1")
    l1_tail = ("layer1.0.conv2", "layer1.0.bn2", "layer1.0.add", "layer1.0.act_out")
    l2 = ("layer2.0.conv1", "layer2.0.bn1", "layer2.0.act1")
    l2_tail = ("layer2.0.conv2", "layer2.0.bn2", "layer2.0.add", "layer2.0.act_out")
    proj = ("layer2.0.downsample.0", "layer2.0.downsample.1")
    cba, cna = ("norm", "act"), ("norm", "add", "act")
    fused = [unit("conv", 3, 16, 3, 1, 32, cba, "relu", stem), unit("conv", 16, 16, 3, 1, 32, cba, "relu", l1),
             unit("conv", 16, 16, 3, 1, 32, cna, "relu", l1_tail), unit("conv", 16, 32, 3, 2, 32, cba, "relu", l2),
             unit("conv", 16, 32, 1, 2, 32, ("norm",), None, proj),
             unit("conv", 32, 32, 3, 1, 16, cna, "relu", l2_tail),
             unit("global_pool", 32, 32, 1, 1, 16, names=("head.pool",)),
             unit("flatten", 32, 32, 1, 1, 1, names=("head.flatten", "head.drop")),
             unit("linear", 32, 10, 1, 1, 1, names=("head.fc",))]
    assert kernel_units(TINY, "fused") == fused
    runtime = fused[:4] + [fused[5], fused[4]] + fused[6:]  # the projection after the tail: the trace's order
    assert kernel_units(TINY, "onnxruntime", nchwc_block=16) == runtime
    assert kernel_units(TINY, "openvino") == runtime[:6] + [
        unit("global_pool", 32, 32, 1, 1, 16, names=("head.pool", "head.flatten", "head.drop")), runtime[-1]]
    eager = kernel_units(TINY, "eager")
    assert [u.names for u in eager] == [(n,) for n in record_names(TINY)]
    assert [u.kind for u in eager] == ["conv", "norm", "act"] * 2 + ["conv", "norm", "add", "act"] + \
        ["conv", "norm", "act", "conv", "norm", "conv", "norm", "add", "act", "global_pool", "flatten", "nop",
         "linear"]
    assert all(u.absorbed == () for u in eager)


def test_se_gate_and_dense_units() -> None:
    """fuse's GatedTail takes the gate, the add and the act into the last conv's unit; ONNX Runtime runs the
    gate, the add and the act apart; OpenVINO takes the add into the projection or the gate's multiply."""
    fused = kernel_units(SE, "fused")
    tails = [u for u in fused if "gate" in u.absorbed]
    gated = ("norm", "gate", "add", "act")
    assert [(u.names, u.c_out, u.absorbed, u.mid) for u in tails] == [  # the gate's width: a quarter of 64, 128
        (tuple(f"layer{b}.{n}" for n in ("conv3", "bn3", "se", "add", "act_out")), c, gated, c // 4)
        for b, c in (("1.0", 64), ("1.1", 64), ("2.0", 128))]
    ort = kernel_units(SE, "onnxruntime", nchwc_block=16)
    assert collections.Counter(u.kind for u in ort)["se_gate"] == 3
    assert [u.names for u in ort if u.kind in ("add", "act")] == [
        (f"layer{b}.{name}",) for b in ("1.0", "1.1", "2.0") for name in ("add", "act_out")]
    ov = {u.names[0]: u for u in kernel_units(SE, "openvino")}
    assert ov["layer1.0.downsample.0"].absorbed == ("norm", "add", "act")  # a projection: the add goes there
    assert ov["layer1.1.se"].absorbed == ("add", "act")  # the identity: into the gate's multiply
    dense = collections.Counter(u.kind for u in kernel_units("densenet121", "fused"))
    assert dense["concat"] == 6 + 12 + 24 + 16


def test_a_norm_onnx_runtime_runs_on_blocked_input_is_a_depthwise_unit() -> None:
    """ONNX Runtime turns a BatchNormalization on NCHWc input into a 1x1 depthwise conv: the unit says so
    (groups = channels), so its features count a multiply-add per element, not a dense conv's c x c MACs; timed
    alone it is exported as the BatchNormalization the network has."""
    from archgen.bench.kernel_timing import onnx_unit
    from archgen.bench.latency_model import FEATURES, features

    blocked = [u for u in kernel_units("densenet121", "onnxruntime", nchwc_block=16)
               if u.kind == "dwconv" and u.k == 1]
    assert len(blocked) >= 58  # the dense layers' and transitions' norms after a blocked concat
    for u in blocked:
        assert u.groups == u.c_in == u.c_out and "norm" in u.names[0].rsplit(".", 1)[-1], u
        f = dict(zip(FEATURES, features(u)))
        assert f["macs"] == u.batch * u.h * u.w * u.c_in
    ops = [n.op_type for n in onnx_unit(blocked[0]._replace(names=()))[0].graph.node]
    assert "BatchNormalization" in ops and "Conv" not in ops


@pytest.mark.parametrize("vector, block", [("avx512f", 16), ("avx2", 8), ("avx", 8), ("x86_64", 8), ("AMD64", 8),
                                           ("aarch64", 0), ("arm64", 0)])
def test_the_nchwc_block_is_mlas_choice_for_the_cpu(vector: str, block: int) -> None:
    """MLAS's platform setup: 16 channels with AVX-512F, 8 on any other x86-64 CPU; no blocked layout modelled
    elsewhere."""
    assert nchwc_block(vector) == block


def test_onnx_runtimes_units_follow_the_block() -> None:
    """MobileNetV3-Large's hard swish runs inside the convs ONNX Runtime blocks: with blocks of 8 all but the
    hidden fc's (a Gemm takes no hard swish); with 16, the 200- and 184-channel convs' stay apart too; with none,
    every one. The other backends do not depend on it."""
    acts = {block: [u for u in kernel_units("mobilenet_v3_large", "onnxruntime", nchwc_block=block)
                    if u.kind == "act"] for block in (0, 8, 16)}
    assert {block: len(units) for block, units in acts.items()} == {0: 21, 8: 1, 16: 7}
    assert {u.act for units in acts.values() for u in units} == {"hardswish"}
    for backend in ("eager", "fused", "openvino"):
        assert kernel_units("mobilenet_v3_large", backend, nchwc_block=8) == \
            kernel_units("mobilenet_v3_large", backend, nchwc_block=16)


def test_bad_requests_are_refused_in_a_sentence() -> None:
    with pytest.raises(UserError, match="unknown backend 'compile'.*Inductor"):
        kernel_units(TINY, "compile")
    with pytest.raises(UserError, match="unknown layout 'channels_last'; choose one of nchw, nhwc"):
        kernel_units(TINY, "eager", layout="channels_last")
    with pytest.raises(UserError, match="positive integer"):
        kernel_units(TINY, "eager", batch=0)
    with pytest.raises(UserError, match="smaller than the network's total stride of 2"):
        kernel_units(TINY, "fused", input_size=1)


# ------------------------------------------------------------------------ against the runtimes

#: The kernels each unit kind runs as, per runtime (an act by its function). A unit that is a small subgraph
#: lists them all: an SE gate (pool, two 1x1 convs with their acts, the multiply), a zero-padding shortcut
#: (slices and a pad), a highway gate (its conv with the sigmoid, 1 - T, two products, the sum; OpenVINO
#: fuses the sum and the act after it into one of them), ONNX Runtime's group norm (the exporter's reshapes
#: around an instance norm, then the affine map).
ORT_OPS = {"conv": {"Conv": 1}, "dwconv": {"Conv": 1}, "max_pool": {"MaxPool": 1}, "avg_pool": {"AveragePool": 1},
           "adaptive_pool": {"AveragePool": 1}, "global_pool": {"GlobalAveragePool": 1}, "flatten": {"Flatten": 1},
           "linear": {"Gemm": 1}, "linear+act": {"FusedGemm": 1},
           "add": {"Add": 1}, "norm": {"BatchNormalization": 1}, "concat": {"Concat": 1},
           "se_gate": {"GlobalAveragePool": 1, "Conv": 2, "Mul": 1}, "zero_pad": {"Slice": 2, "Pad": 1},
           "highway_gate": {"Conv": 1, "Sub": 1, "Mul": 2, "Add": 1},
           "group_norm": {"Shape": 1, "Reshape": 2, "InstanceNormalization": 1, "Mul": 1, "Add": 1},
           "act": {"relu": {"Relu": 1}, "leaky_relu": {"LeakyRelu": 1}, "sigmoid": {"Sigmoid": 1},
                   "silu": {"QuickGelu": 1}, "gelu": {"Gelu": 1}}}
OV_OPS = {"conv": {"Convolution": 1}, "dwconv": {"Convolution": 1}, "max_pool": {"Pooling": 1},
          "avg_pool": {"Pooling": 1}, "adaptive_pool": {"Pooling": 1}, "global_pool": {"Reduce": 1},
          "linear": {"FullyConnected": 1}, "norm": {"Eltwise": 1}, "add": {"Eltwise": 1},
          "concat": {"Concatenation": 1},
          "se_gate": {"Reduce": 1, "Convolution": 2, "Eltwise": 1}, "zero_pad": {"StridedSlice": 1, "Pad": 1},
          "highway_gate": {"Convolution": 1, "Eltwise": 3}}
#: Layout conversions the runtimes insert (which depend on each kernel's chosen layout, not on the network),
#: and OpenVINO's views: not units.
ORT_LAYOUT_OPS = {"ReorderInput", "ReorderOutput"}
OV_LAYOUT_OPS = {"Reorder", "Reshape", "Input", "Output", "Const"}


def expected(units: list[KernelUnit], table: dict) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for u in units:
        if u.kind == "act":
            out.update(table["act"][u.act])
        elif u.kind != "nop":
            out.update(table.get(f"{u.kind}+act", table[u.kind]) if "act" in u.absorbed else table[u.kind])
    return out


#: DarkNet: a leaky act before the add (no conv left to take it: OpenVINO adds apart), strided convs between.
DARKNET = {"name": "darknet", "input": {"channels": 3, "size": 64, "classes": 10},
           "stem": {"type": "cifar", "width": 16},
           "block": {"type": "darknet", "act": "leaky_relu"},
           "stages": [{"depth": 1, "width": 32, "stride": 2}, {"depth": 2, "width": 64, "stride": 2}]}
#: VGG with batch norm: stages of conv-BN-ReLU and max pools, a 7x7 adaptive pool, hidden fc layers with ReLU.
VGG = {"name": "vgg", "input": {"channels": 3, "size": 224, "classes": 10}, "stem": {"type": "none"},
       "block": {"type": "vgg", "batch_norm": True},
       "stages": [{"depth": 1, "width": 8}, {"depth": 1, "width": 16}, {"depth": 2, "width": 16},
                  {"depth": 1, "width": 32}, {"depth": 1, "width": 32}],
       "head": {"pool": "avg", "pool_size": 7, "hidden": [32, 32], "dropout": 0.5}}
RUNTIME_SPECS = {"tiny": (TINY, None), "bottleneck": (BOTTLENECK, None), "se": (SE, None),
                 "resnet20_cifar": ("resnet20_cifar", None), "densenet40_k12_cifar": ("densenet40_k12_cifar", None),
                 "densenet121": ("densenet121", 64), "regnety_002": ("regnety_002", 64),
                 "preact_resnet110_cifar": ("preact_resnet110_cifar", None),
                 "highway20_cifar": ("highway20_cifar", None), "darknet": (DARKNET, None), "vgg_bn": (VGG, None),
                 "silu": ({**TINY, "block": {"type": "basic", "act": "silu"}}, None),
                 "gelu": ({**TINY, "block": {"type": "basic", "act": "gelu"}}, None),
                 "frozen_bn": ({**TINY, "norm": {"type": "frozen_batch"}}, None),
                 "group_norm": ({**TINY, "norm": {"type": "group", "groups": 8}}, None)}
#: OpenVINO runs group norm as MVN with the act in it or after it, differently from block to block (the stem's
#: apart, the branches' in it): no rule holds, so it is checked on ONNX Runtime only.
OV_UNCHECKED = {"group_norm"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """Each small spec exported as `archgen bench` exports it (archgen.export, ONNX, float32)."""
    pytest.importorskip("onnx")
    from archgen.export import export_spec

    out = {}
    for key, (spec, size) in RUNTIME_SPECS.items():
        path = tmp_path_factory.mktemp("units") / f"{key}.onnx"
        export_spec(spec, path, "onnx", input_size=size)
        out[key] = (path, size or archgen.plan(spec).input_size)
    return out


@pytest.mark.parametrize("key", list(RUNTIME_SPECS))
def test_onnxruntime_runs_the_units(key: str, exported: dict, tmp_path) -> None:
    """ONNX Runtime at the bench's options (default graph optimisation, CPU): its profile's kernels per op type
    (FusedConv counted as Conv, layout reorders left out) are what the units say."""
    path, size = exported[key]
    ran = _ort_ran(path, size, tmp_path)
    assert ran == expected(kernel_units(RUNTIME_SPECS[key][0], "onnxruntime", input_size=size), ORT_OPS)


#: The mobile families at 64 px, and what a unit kind runs as beyond ORT_OPS / OV_OPS where their acts differ
#: (OpenVINO runs an SE gate's hard sigmoid as a Math node of its own); None: not checked on ONNX Runtime
#: (EfficientNet's SE runs its SiLU apart).
MOBILE_SPECS = {"mobilenet_v2": ({"act": {"relu6": {"Clip": 1}}}, {}),
                "mnasnet1_0": ({}, {}),
                "mobilenet_v3_small": ({"act": {"hardswish": {"HardSigmoid": 1, "Mul": 1}}},
                                       {"se_gate": {"Reduce": 1, "Convolution": 2, "Eltwise": 1, "Math": 1}}),
                "efficientnet_b0": (None, {})}


@pytest.fixture(scope="module")
def mobile_exported(tmp_path_factory) -> dict:
    pytest.importorskip("onnx")
    from archgen.export import export_spec

    out = {}
    for key in MOBILE_SPECS:
        path = tmp_path_factory.mktemp("mobile") / f"{key}.onnx"
        export_spec(key, path, "onnx", input_size=64)
        out[key] = path
    return out


def _ort_ran(path: Path, size: int, tmp_path: Path) -> collections.Counter:
    """ONNX Runtime's kernels per op type, at the bench's options (one thread), layout reorders left out."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, size, size), np.float32)})
    with open(session.end_profiling()) as f:
        events = json.load(f)
    ran = collections.Counter(e["args"]["op_name"] for e in events
                              if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"))
    ran["Conv"] += ran.pop("FusedConv", 0)
    return collections.Counter({op: n for op, n in ran.items() if op not in ORT_LAYOUT_OPS})


def _ov_ran(path: Path) -> collections.Counter:
    """OpenVINO's runtime-model nodes per type as the bench compiles it, reorders, views and constants left out."""
    ov = pytest.importorskip("openvino")
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    runtime = ov.Core().compile_model(str(path), "CPU", config).get_runtime_model()
    ran = collections.Counter(op.get_rt_info()["layerType"].astype(str) for op in runtime.get_ordered_ops())
    return collections.Counter({op: n for op, n in ran.items() if op not in OV_LAYOUT_OPS})


#: The NCHWc blocks the mobile check has been run with (AVX2's 8, on 2026-12-03). With AVX-512's 16 their 24-,
#: 40- and 72-channel convs are not whole blocks, where the rule is known to miss (docs/latency.md); until it is
#: run on such a CPU the check would only say whether the CI machine has AVX-512.
MOBILE_CHECKED_BLOCKS = (8,)


@pytest.mark.skipif(local_nchwc_block() not in MOBILE_CHECKED_BLOCKS,
                    reason="the mobile nets' ONNX Runtime kernels are checked with an NCHWc block of 8 (AVX2) only; "
                           "this CPU's block leaves their 24- and 40-channel convs part-blocked (docs/latency.md)")
@pytest.mark.parametrize("key", [key for key, (ort_extra, _) in MOBILE_SPECS.items() if ort_extra is not None])
def test_onnxruntime_runs_the_mobile_units(key: str, mobile_exported: dict, tmp_path) -> None:
    """MobileNetV2's relu6 (Clip) runs in its convs, as MnasNet's relu does: no such act is a kernel of its own;
    MobileNetV3's hard swish runs in the convs ONNX Runtime blocks (this CPU's NCHWc block), apart after others."""
    table = {**ORT_OPS, "act": {**ORT_OPS["act"], **MOBILE_SPECS[key][0].get("act", {})}}
    units = kernel_units(key, "onnxruntime", input_size=64)
    assert not [u for u in units if u.kind == "act" and u.act in ("relu", "relu6")]
    assert _ort_ran(mobile_exported[key], 64, tmp_path) == expected(units, table)


@pytest.mark.parametrize("key", list(MOBILE_SPECS))
def test_openvino_runs_the_mobile_units(key: str, mobile_exported: dict) -> None:
    assert _ov_ran(mobile_exported[key]) == expected(kernel_units(key, "openvino", input_size=64),
                                                     {**OV_OPS, **MOBILE_SPECS[key][1]})


def test_onnxruntime_leaves_a_linear_layers_hard_swish_apart_and_openvino_takes_it() -> None:
    """FusedGemm's activations lack hard swish and relu6 (MobileNetV3's hidden fc: a Gemm, then HardSigmoid and
    Mul); OpenVINO takes any act into its FullyConnected node."""
    head = {"onnxruntime": [u for u in kernel_units("mobilenet_v3_small", "onnxruntime") if u.kind == "linear"],
            "openvino": [u for u in kernel_units("mobilenet_v3_small", "openvino") if u.kind == "linear"]}
    assert [(u.act, "act" in u.absorbed) for u in head["onnxruntime"]] == [(None, False), (None, False)]
    assert [(u.act, "act" in u.absorbed) for u in head["openvino"]] == [("hardswish", True), (None, False)]
    acts = [u for u in kernel_units("mobilenet_v3_small", "onnxruntime") if u.kind == "act"]
    assert acts and {u.act for u in acts} == {"hardswish"}


@pytest.mark.parametrize("key", [key for key in RUNTIME_SPECS if key not in OV_UNCHECKED])
def test_openvino_runs_the_units(key: str, exported: dict) -> None:
    """OpenVINO compiled as the bench compiles it (CPU, f32, latency hint): the nodes of its runtime model (what
    it executes once it has fused: each lists the original layers it took in) per type, reorders, views and
    constants left out, are what the units say. (The performance counters' EXECUTED status is no count: a
    node that ran in under a microsecond reports NOT_RUN, as fused ones do.)"""
    path, size = exported[key]
    ran = _ov_ran(path)
    assert ran == expected(kernel_units(RUNTIME_SPECS[key][0], "openvino", input_size=size), OV_OPS)


FUSED_SPECS = ["tiny", "bottleneck", "se", "resnet20_cifar", "densenet40_k12_cifar", "preact_resnet110_cifar",
               "highway20_cifar", "darknet", "vgg_bn", "gelu", "group_norm"]


@pytest.mark.parametrize("key", FUSED_SPECS)
def test_fused_units_are_the_fused_models_kernels(key: str) -> None:
    """The `fused` units are what archgen.fuse makes: one per module of the fused model that runs (a fused
    conv-norm-act, a norm-act pass, a gated tail, an SE gate, a highway gate's transform, or a layer left
    eager), plus the adds and concats its blocks do in forward; dropout and identities run nothing."""
    import torch.nn as nn

    from archgen.kernels.fuse import BNAct, ConvBNAct, GatedTail

    spec = RUNTIME_SPECS[key][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fuse names what it leaves eager (GELU, group norm)
        model = archgen.fuse(archgen.build(spec))
    whole = (ConvBNAct, BNAct, GatedTail)
    kernels: list[str] = []

    def visit(m: nn.Module) -> None:
        merge_module = getattr(getattr(m, "records", None), "merge", None)
        merge_module = getattr(merge_module, "name", None)  # a merge with weights of its own (a highway gate)
        for name, child in m.named_children():
            grand = list(child.children())
            if isinstance(child, whole) or type(child).__name__ == "Rescale" or name == merge_module or \
                    (not grand and not isinstance(child, (nn.Identity, nn.Dropout, nn.Sequential))):
                kernels.append(type(child).__name__)
            else:
                visit(child)

    visit(model)
    units = kernel_units(spec, "fused")
    in_forward = sum(u.kind in ("add", "concat") for u in units)
    assert len(kernels) == len(units) - in_forward
    assert kernels.count("GatedTail") == sum("gate" in u.absorbed for u in units)
