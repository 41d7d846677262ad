"""archgen.fuse gives an eval-mode model whose blocks end in bn_act, with eager's logits, on every bundled spec.

BN statistics are calibrated on a batch (so that a 1000-layer net stays finite in eval mode) and the BN
affine parameters randomised, so that a wrong scale, shift or fold shows. Every bundled spec is checked
with bn_act's PyTorch arithmetic (the rewrite is what is tested; the kernel has tests/test_kernels.py),
and one spec per block family again with the Triton kernel in the interpreter. Inputs are small.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn as nn

import archgen
from archgen.kernels import fuse
from archgen.kernels.fuse import BNAct, FusedBlock, register_fuse_rule
from archgen.grammar.loader import bundled_names
from conftest import specs_covering_every_design


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def _randomise_bns(model: nn.Module, seed: int = 0, size: int = 32, device: str = "cpu") -> nn.Module:
    """Random BN affines and statistics taken from one batch at `size` px (on `device`), so that the
    activations stay of order one at that size."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(device)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            m.bias.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
            m.momentum = 1.0  # the running statistics become one batch's
        model.train()
        model(torch.randn(2, 3, size, size, generator=g).to(device))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_((torch.rand(m.num_features, generator=g) * 0.1 - 0.05).to(device))
            m.running_var.clamp_(min=0.05)  # a 1x1 map over 2 images can give a variance near 0
    return model.eval()


def _assert_logits_equal(model: nn.Module, fused: nn.Module, x: torch.Tensor, rtol: float = 1e-4) -> None:
    with torch.no_grad():
        ref, got = model(x), fused(x)
    assert torch.isfinite(ref).all(), "the eager reference itself is not finite"
    assert not torch.isnan(got).any()
    scale = ref.abs().max().clamp(min=1.0)
    err = ((got - ref).abs().max() / scale).item()
    assert err <= rtol, f"logits differ by {err:.3g} of their largest magnitude"


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return _randomise_bns(archgen.build("resnet50"), size=64)


@pytest.mark.parametrize("fold_bn", [True, False], ids=["folded", "scale_shift"])
def test_fused_resnet50_gives_eager_logits(resnet50, fold_bn):
    fused = fuse(resnet50, fold_bn=fold_bn)
    assert not fused.training
    blocks = [m for m in fused.modules() if isinstance(m, FusedBlock) and m.tail is not None]
    assert len(blocks) == 16, "every bottleneck of ResNet-50's 3+4+6+3 ends in one fused kernel"
    _assert_logits_equal(resnet50, fused, torch.randn(2, 3, 64, 64))


def test_fused_resnet50_in_channels_last(resnet50):
    fused = fuse(resnet50).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    _assert_logits_equal(resnet50, fused, x)


def test_fuse_leaves_the_original_untouched(resnet50):
    before = {k: v.clone() for k, v in resnet50.state_dict().items()}
    fuse(resnet50)
    after = resnet50.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in resnet50.modules())


@pytest.mark.parametrize("name", specs_covering_every_design())
def test_every_block_structure_fused_gives_eager_logits(name, monkeypatch):
    """Every block structure of the zoo (each in its smallest spec) fused gives eager's logits."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # on the CPU: bn_act's PyTorch arithmetic, fast
    torch.manual_seed(1)
    model = _randomise_bns(archgen.build(name), seed=1)
    fused = fuse(model)
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):  # VGG without BN has nothing to fuse
        assert any(isinstance(m, BNAct) for m in fused.modules()), "nothing was fused"
    # Deep nets (plain56, a 1001-layer pre-activation net) amplify rounding differences, since a folded
    # conv rounds differently from conv + BN: 5e-3 of the logits, where a wrong fold is off by O(1).
    _assert_logits_equal(model, fused, torch.randn(1, 3, 32, 32), rtol=5e-3)


#: One spec per block family, run through the Triton kernel (interpreted on the CPU).
FAMILY_SPECS = ["resnet18", "resnext50_32x4d", "densenet121", "darknet53", "preact_resnet164_cifar",
                "resnet50_d", "plain20_cifar", "seresnet50", "mobilenet_v3_small", "efficientnet_b0"]


@pytest.mark.parametrize("name", [n for n in FAMILY_SPECS if n in bundled_names()])
def test_one_spec_per_family_through_the_kernel(name):
    from archgen.kernels import uses_triton

    assert uses_triton(torch.empty(1, device="cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(2)
    model = _randomise_bns(archgen.build(name), seed=2)
    _assert_logits_equal(model, fuse(model), torch.randn(1, 3, 32, 32), rtol=1e-3)


@pytest.mark.parametrize("fold_bn", [True, False], ids=["folded", "scale_shift"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_squeeze_excitation_before_the_add_is_one_kernel_pass(fold_bn, channels_last):
    """SE-ResNeXt's tail (bn3 -> SE gate -> add -> act) becomes one GatedTail in every block, identity and
    projection shortcuts alike, through the Triton kernel, with eager's logits."""
    from archgen.kernels.fuse import GatedTail

    spec = _tiny("bottleneck", se_ratio=0.25, cardinality=2, base_width=8)
    torch.manual_seed(3)
    model = _randomise_bns(archgen.build(spec), seed=3)
    fused = fuse(model, fold_bn=fold_bn)
    blocks = [m for m in fused.modules() if isinstance(m, FusedBlock) and m.residual]  # not the stem
    assert len(blocks) == 4 and all(isinstance(b.tail, GatedTail) for b in blocks)
    x = torch.randn(2, 3, 32, 32)
    if channels_last:
        model, fused, x = (model.to(memory_format=torch.channels_last), fused.to(memory_format=torch.channels_last),
                           x.to(memory_format=torch.channels_last))
    _assert_logits_equal(model, fused, x, rtol=1e-4)


def test_the_kernels_vectors_stay_float32_in_a_half_model():
    """model.to(bfloat16) would round each BN's scale and shift to 8 bits; BNAct's and GatedTail's stay float32."""
    from archgen.kernels.fuse import GatedTail, KernelVectors

    fused = fuse(_randomise_bns(archgen.build(_tiny("bottleneck", se_ratio=0.25)), seed=5)).to(torch.bfloat16)
    modules = [m for m in fused.modules() if isinstance(m, KernelVectors)]
    assert any(isinstance(m, GatedTail) for m in modules)
    assert all(getattr(m, name) is None or getattr(m, name).dtype == torch.float32
               for m in modules for name in m.VECTORS)


def test_squeeze_excitation_with_stochastic_depth_stays_eager_at_the_add():
    """A dropped-path factor would scale the gate's input too, so that tail keeps the add in PyTorch."""
    from archgen.kernels.fuse import GatedTail

    spec = {**_tiny("bottleneck", se_ratio=0.25), "stochastic_depth": {"final_survival": 0.5}}
    model = _randomise_bns(archgen.build(spec), seed=4)
    fused = fuse(model)
    assert not any(isinstance(m, GatedTail) for m in fused.modules())
    _assert_logits_equal(model, fused, torch.randn(2, 3, 32, 32), rtol=1e-4)


def _tiny(block: str, **extra) -> dict:
    return {"name": f"tiny_{block}", "input": {"channels": 3, "size": 32, "classes": 10},
            "stem": {"type": "cifar", "width": 8}, "block": {"type": block, **extra},
            "stages": [{"depth": 2, "width": 8}, {"depth": 2, "width": 16, "stride": 2}]}


@pytest.mark.parametrize("variant", [
    {"shortcut": "zero_pad"},
    {"shortcut": "avgpool_projection"},
    {"shortcut": "none"},
    {"act": "leaky_relu"},
], ids=["zero_pad", "avgpool_projection", "plain", "leaky_relu"])
def test_shortcut_and_act_variants(variant):
    spec = _tiny("basic")
    spec.update({k: v for k, v in variant.items() if k != "act"})
    if "act" in variant:
        spec["block"]["act"] = variant["act"]
    model = _randomise_bns(archgen.build(spec))
    fused = fuse(model)
    if spec.get("shortcut") == "none":  # a plain net: each block one conv-BN-act run, no add to fuse into
        assert all(isinstance(m, FusedBlock) and not m.residual for m in fused.layer1)
    else:
        assert any(isinstance(m, FusedBlock) and m.tail is not None for m in fused.modules())
    for fold_bn in (True, False):
        _assert_logits_equal(model, fuse(model, fold_bn=fold_bn), torch.randn(2, 3, 32, 32))


def test_stochastic_depth_is_folded_into_the_tail():
    spec = _tiny("bottleneck")
    spec["stochastic_depth"] = {"final_survival": 0.5}  # eval: the branch scaled by its survival
    model = _randomise_bns(archgen.build(spec))
    from archgen.modules import DropPath

    assert any(isinstance(m, DropPath) for m in model.modules())
    _assert_logits_equal(model, fuse(model), torch.randn(2, 3, 32, 32))


def test_unknown_blocks_stay_eager():
    class Mystery(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.sigmoid(self.bn(self.conv(x)))

    model = _randomise_bns(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), Mystery()))
    fused = fuse(model)
    assert isinstance(fused[-1], Mystery) and isinstance(fused[-1].bn, nn.BatchNorm2d)
    _assert_logits_equal(model, fused, torch.randn(2, 3, 8, 8))


def test_a_family_registers_its_own_rule():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return torch.relu(self.bn(x))

    @register_fuse_rule(Scaled)
    def rule(m, fold_bn):
        return BNAct.from_bn(m.bn, "relu")

    model = _randomise_bns(nn.Sequential(Scaled()))
    fused = fuse(model)
    assert isinstance(fused[0], BNAct)
    _assert_logits_equal(model, fused, torch.randn(2, 3, 5, 5))


def test_training_mode_runs_eagerly_and_says_so_once():
    import archgen.kernels.fuse as fuse_module

    model = _randomise_bns(archgen.build(_tiny("basic")))
    fused = fuse(model).train()
    fuse_module._warned_training = False
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fused(x).sum().backward()
        fused(x)
    messages = [str(w.message) for w in caught if "archgen.fuse" in str(w.message)]
    assert len(messages) == 1 and "inference" in messages[0]
    assert x.grad is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_fused_models_on_the_gpu(dtype, monkeypatch):
    """Every bundled network, fused, is at least as close to float64 as eager in the same dtype (within 2x,
    or tol). The BN statistics are taken at the test's input size: from 32 px, DenseNet-264's logits
    reached 1e22 at 128 px, beyond float16. Float32 convs run in float32, not in the TF32 that cuDNN
    otherwise uses on this GPU, so that tol is float32's rounding."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    tol = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 6e-2}[dtype]
    failures = []
    for name in bundled_names():
        torch.manual_seed(0)
        model = _randomise_bns(archgen.build(name), size=128, device="cuda")
        model = model.to(dtype).to(memory_format=torch.channels_last)
        x = torch.randn(4, 3, 128, 128, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
        ref64 = copy.deepcopy(model).double()  # the same weights, as rounded to dtype, in float64
        with torch.no_grad():
            want = ref64(x.double())
            got = fuse(model)(x).double()
            eager = model(x).double()
        scale = want.abs().max().clamp(min=1.0)
        fused_error = ((got - want).abs().max() / scale).item()
        eager_error = ((eager - want).abs().max() / scale).item()
        if not fused_error <= max(tol, 2 * eager_error):  # NaN fails too
            failures.append(f"{name}: fused {fused_error:.2g}, eager {eager_error:.2g}")
    assert not failures, f"{len(failures)} of {len(bundled_names())} networks: " + "; ".join(failures)
