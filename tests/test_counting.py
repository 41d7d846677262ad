"""The analytic counter (no model, no tracing) against torchvision's numbers and fvcore's tracer."""

from __future__ import annotations

import pytest
import torch

import archgen
from archgen.grammar.loader import bundled_names
from conftest import TORCHVISION_TWINS, specs_covering_every_design, torchvision_reference

#: Image side for the fvcore cross-check: the formula is size-independent, small inputs keep CI fast.
CHECK_SIZE = 64
#: fvcore's tracer spends about 30 s on a 600-block network on a CI core. Deeper specs are checked on the
#: meta device for params; their blocks are those of the shallower CIFAR nets that fvcore does trace
#: (resnet110_cifar, preact_resnet164_cifar, resnet110_sd_cifar).
TRACE_MAX_BLOCKS = 200


def total_blocks(spec) -> int:
    from archgen.planner import plan

    return sum(len(stage.blocks) for stage in plan(spec).stages)


def fvcore_counts(model, size: int, channels: int = 3):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model.eval(), torch.randn(1, channels, size, size))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis.by_operator()


@pytest.mark.parametrize("name", specs_covering_every_design())
def test_analytic_macs_equal_fvcore_conv_plus_linear(name):
    """fvcore traces every block structure of the zoo (each in its smallest spec); the counter's MACs equal
    its conv + linear count exactly. Every other spec's params are checked below."""
    spec = archgen.load_spec(name)
    size = min(spec.doc.input.size, CHECK_SIZE)
    counted = archgen.profile(spec, input_size=size)
    if total_blocks(spec) > TRACE_MAX_BLOCKS:
        model = archgen.build(spec, device="meta")
        assert counted.params == sum(p.numel() for p in model.parameters())
        pytest.skip(f"{total_blocks(spec)} blocks: params checked on the meta device; fvcore traces the "
                    "same blocks in the shallower CIFAR specs")
    model = archgen.build(spec)
    assert counted.params == sum(p.numel() for p in model.parameters())
    ops = fvcore_counts(model, size, spec.doc.input.channels)
    assert counted.macs == ops.get("conv", 0) + ops.get("linear", 0)


@pytest.mark.parametrize("name", bundled_names())
def test_every_spec_has_the_params_and_stage_shapes_it_counts(name):
    """Built on the meta device (no memory), every bundled model has the counted parameters, and each stage
    outputs the shape the plan computed, at the spec's own input size."""
    counted = archgen.profile(name)
    model = archgen.build(name, device="meta").eval()  # eval: stochastic depth draws no random numbers
    assert sum(p.numel() for p in model.parameters()) == counted.params
    x = torch.empty(1, archgen.load_spec(name).doc.input.channels, counted.input_size, counted.input_size, device="meta")
    with torch.no_grad():
        outs = model.forward_stages(x)
    assert [tuple(o.shape[1:]) for o in outs] == [s.out for s in counted.stages[1:-1]]


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "mobilenet_v2", "mobilenet_v3_large",
                                  "mobilenet_v3_small", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
                                  "efficientnet_b3"])
def test_fvcore_total_at_224_is_our_macs_plus_two_ops_per_bn_element_plus_pooling(name):
    """fvcore's total for torchvision's model (reference data) = conv + linear + BN (2 per element) + global pool
    (the squeeze-and-excitation pools too)."""
    p = archgen.profile(name, input_size=224)
    bn = sum(layer.other_ops for layer in p.layers if layer.op == "bn")
    pool = sum(layer.other_ops for layer in p.layers if layer.op == "pool" and layer.out[1:] == (1, 1))
    assert p.macs + 2 * bn + pool == torchvision_reference(name)["fvcore_total_224"]


def test_mnasnet_fvcore_total_leaves_out_the_head_pool_torchvision_writes_as_a_mean():
    """torchvision's MNASNet pools with x.mean([2, 3]), which fvcore does not count: its total is archgen's
    MACs + 2 per BN element, and no pool."""
    p = archgen.profile("mnasnet1_0")
    bn = sum(layer.other_ops for layer in p.layers if layer.op == "bn")
    pools = [layer for layer in p.layers if layer.op == "pool"]
    assert [layer.name for layer in pools] == ["head.pool"] and pools[0].other_ops == 1280 * 7 * 7
    assert p.macs + 2 * bn == torchvision_reference("mnasnet1_0")["fvcore_total_224"]


def test_resnet50_stride_placement_gives_the_two_published_layouts():
    """He et al. 2015 stride the first 1x1 (3.86 GMACs); torchvision the 3x3 (4.09 GMACs)."""
    v15 = archgen.profile("resnet50")
    v1 = archgen.profile({**_resnet50_raw(), "stride_on": "1x1"})
    assert round(v15.macs / 1e9, 2) == 4.09
    assert round(v1.macs / 1e9, 2) == 3.86
    assert v1.params == v15.params == 25_557_032


def test_counts_per_stage_add_up_to_the_totals():
    p = archgen.profile("resnext50_32x4d")
    assert sum(s.params for s in p.stages) == p.params == 25_028_904
    assert sum(s.macs for s in p.stages) == p.macs
    assert p.flops == 2 * p.macs
    assert [s.out for s in p.stages[1:-1]] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert p.stages[1].notation == "[1x1, 128; 3x3, 128, C=32; 1x1, 256] x 3"


def test_activations_are_conv_output_elements():
    p = archgen.profile("resnet18", input_size=224)
    convs = [layer for layer in p.layers if layer.op == "conv"]
    assert p.acts == sum(c * h * w for c, h, w in (layer.out for layer in convs)) + 1000
    assert p.layers[0].out == (64, 112, 112)


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_built_model_exposes_its_stages_as_a_backbone(name):
    model = archgen.build(name, device="meta")
    info = list(model.feature_info)[1:]  # timm's map 0 is the stem's; the stages follow
    reductions = [i["reduction"] for i in info]
    # ResNets and DenseNets have four stages at 4..32; mobile networks one per table row, some keeping the size.
    assert reductions == sorted(reductions) and sorted(set(reductions))[-4:] == [4, 8, 16, 32]
    if not name.startswith(("mobilenet", "efficientnet", "mnasnet")):
        assert reductions == [4, 8, 16, 32]
    x = torch.empty(1, 3, 64, 64, device="meta")
    outs = model.forward_stages(x)
    assert [o.shape[1] for o in outs] == [i["num_chs"] for i in info]
    assert [64 // o.shape[-1] for o in outs] == [i["reduction"] for i in info]


def _resnet50_raw():
    import yaml

    from archgen.grammar.loader import bundled_dir

    return yaml.safe_load((bundled_dir() / "resnet50.yaml").read_text())
