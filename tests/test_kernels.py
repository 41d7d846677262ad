"""bn_act computes act(x * scale + shift [+ r * rscale | + r]) exactly as float64 arithmetic rounded to
the storage type, for every layout, act, residual form and dtype, at shapes that do not divide the tile.

Where there is a GPU every test here runs the compiled kernel on it (DEVICE); elsewhere the same kernel
runs in Triton's interpreter on the CPU: `bn_act` reads TRITON_INTERPRET when called, and the kernel is
jitted on first use, so setting the variable here suffices whatever was imported before.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from archgen.kernels import bn_act, bn_act_reference, bn_scale_shift, launch_config, uses_triton
from archgen.kernels.bn_act import (TUNE_CONFIGS, LaunchConfig, RepeatedLaunch, _kernel, device_sms, plan_launch,
                                    tuned_configs)

#: Where the kernel runs: compiled on the GPU where there is one, else interpreted on the CPU.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

#: Storage types the interpreter handles (it computes through numpy; bfloat16 is emulated).
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
#: Rounding of the output to the storage type (1 ulp at the output's magnitude, and a bit).
TOL = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float64: 1e-12}

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (3, 17, 9, 11), (1, 64, 7, 7), (2, 130, 3, 3), (5, 6, 33, 1)]
RESIDUALS = ["none", "add", "bn"]
ACT_NAMES = ["relu", "leaky_relu", "silu", "none", "relu6", "hardswish"]


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def _inputs(shape, dtype, channels_last, residual, device=DEVICE, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = torch.randn(shape, generator=g).to(dtype)
    scale = torch.rand(c, generator=g) + 0.5
    shift = torch.randn(c, generator=g) * 0.5
    r = torch.randn(shape, generator=g).to(dtype) if residual != "none" else None
    rs = torch.rand(c, generator=g) + 0.5 if residual == "bn" else None
    rt = torch.randn(c, generator=g) * 0.5 if residual == "bn" else None
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        r = r.to(memory_format=torch.channels_last) if r is not None else None
    to = dict(device=device)
    return (x.to(**to), scale.to(**to), shift.to(**to), None if r is None else r.to(**to),
            None if rs is None else rs.to(**to), None if rt is None else rt.to(**to))


def _reference(x, scale, shift, r, rs, rt, act):
    scale, shift, r, rs, rt = (None if v is None else v.to(x.device) for v in (scale, shift, r, rs, rt))
    t = shift.double() + (rt.double() if rt is not None else 0)
    return bn_act_reference(x.double(), scale, t, r, rs, act, compute_dtype=torch.float64)


def _check(y, ref, dtype):
    assert not torch.isnan(y).any(), "an element was left unwritten (NaN poison survived)"
    err = ((y.double() - ref) / ref.abs().clamp(min=1.0)).abs().max().item()
    assert err <= TOL[dtype], f"max error {err:.3g} above {TOL[dtype]:.3g} for {dtype}"


def test_the_kernel_runs_on_this_machine():
    """The tests below would otherwise pass against the PyTorch fallback and test nothing."""
    assert uses_triton(torch.empty(1, device=DEVICE))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("residual", RESIDUALS)
def test_bn_act_matches_float64_on_odd_shapes(dtype, channels_last, residual):
    for i, shape in enumerate(SHAPES):
        act = ACT_NAMES[i % len(ACT_NAMES)]
        x, s, t, r, rs, rt = _inputs(shape, dtype, channels_last, residual, seed=i)
        out = torch.full_like(x, float("nan"))
        y = bn_act(x, s, t, r, rs, rt, act=act, out=out)
        assert y is out
        assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        _check(y, _reference(x, s, t, r, rs, rt, act), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("residual", ["none", "add", "bn"])
def test_a_squeeze_excitation_gate_multiplies_bn_before_the_add(dtype, channels_last, residual):
    """act(bn(x) * g[n, c] + r): each sample's channel scaled by its own gate, the residual not gated, on
    shapes whose rows do not divide the tile (channels_last finds the sample by row // (H * W))."""
    for i, shape in enumerate([(3, 5, 7, 2), (2, 130, 3, 3), (4, 17, 1, 9)]):
        act = ACT_NAMES[i % len(ACT_NAMES)]
        x, s, t, r, rs, _ = _inputs(shape, dtype, channels_last, residual, seed=10 + i)
        gate = torch.rand(shape[0], shape[1], 1, 1, generator=torch.Generator().manual_seed(i)).to(DEVICE)
        out = torch.full_like(x, float("nan"))
        y = bn_act(x, s, t, r, rs, act=act, gate=gate, out=out)
        y_double = x.double() * s.double().reshape(1, -1, 1, 1) + t.double().reshape(1, -1, 1, 1)
        y_double = y_double * gate.double()
        if r is not None:
            y_double = y_double + r.double() * (rs.double().reshape(1, -1, 1, 1) if rs is not None else 1)
        ref = bn_act_reference(y_double, None, None, act=act, compute_dtype=torch.float64)
        _check(y, ref, dtype)


def test_a_gate_of_the_wrong_shape_or_with_a_residual_shift_is_refused():
    x, s, t, r, rs, rt = _inputs((2, 4, 3, 3), torch.float32, False, "bn")
    with pytest.raises(ValueError, match="gate has shape"):
        bn_act(x, s, t, r, gate=torch.ones(4))
    with pytest.raises(ValueError, match="residual_shift with a gate"):
        bn_act(x, s, t, r, rs, rt, gate=torch.ones(2, 4))


@pytest.mark.parametrize("act", ACT_NAMES)
def test_every_act_on_each_layout_with_a_new_output(act):
    for channels_last in (False, True):
        x, s, t, r, _, _ = _inputs((2, 24, 13, 5), torch.float32, channels_last, "add", seed=3)
        y = bn_act(x, s, t, r, act=act)
        assert y.dtype == x.dtype and y.shape == x.shape
        _check(y, _reference(x, s, t, r, None, None, act), torch.float32)


@pytest.mark.parametrize("act", ["relu6", "hardswish"])
def test_the_mobile_acts_bend_where_torchs_do(act):
    """MobileNets' clipped acts on values across both bends (-3 and 3 for hardswish, 0 and 6 for relu6),
    against torch's own functions, not the kernel's reference."""
    x = torch.linspace(-10, 10, 2 * 3 * 41, device=DEVICE).reshape(2, 3, 41, 1)
    y = bn_act(x, None, torch.zeros(3), act=act)
    torch.testing.assert_close(y, getattr(torch.nn.functional, act)(x), rtol=0, atol=1e-6)


def test_leaky_relu_uses_darknets_slope():
    from archgen.layer_kinds.base import LEAKY_SLOPE

    x = -torch.ones(1, 2, 3, 3, device=DEVICE)
    y = bn_act(x, None, torch.zeros(2), act="leaky_relu")
    assert torch.equal(y, torch.full_like(x, -LEAKY_SLOPE))


def test_folded_bn_is_bias_add_act():
    """scale None: act(x + bias + r), what the block tail computes once the BN is folded into its conv."""
    x, _, t, r, _, _ = _inputs((2, 9, 6, 5), torch.float32, True, "add", seed=5)
    y = bn_act(x, None, t, residual=r)
    ref = torch.relu(x.double() + t.double().reshape(1, -1, 1, 1) + r.double())
    _check(y, ref, torch.float32)


def test_in_place_and_mixed_layouts():
    """out may be x itself; a residual in the other memory format is converted, not misread."""
    x, s, t, r, _, _ = _inputs((2, 12, 7, 9), torch.float32, False, "add", seed=6)
    r_cl = r.to(memory_format=torch.channels_last)
    ref = _reference(x, s, t, r, None, None, "relu")
    y = bn_act(x, s, t, r_cl, out=x)
    assert y is x
    _check(y, ref, torch.float32)


def test_other_strides_and_ranks():
    """A transposed (non-contiguous) input and 2-D / 5-D inputs (N, C, ...) work."""
    x = torch.randn(6, 5, 4, 3, device=DEVICE).transpose(2, 3)
    s, t = torch.rand(5) + 0.5, torch.randn(5)
    _check(bn_act(x, s, t), _reference(x, s, t, None, None, None, "relu"), torch.float32)
    for shape in [(7, 33), (2, 3, 4, 5, 6)]:
        x = torch.randn(shape, device=DEVICE)
        c = shape[1]
        s, t = torch.rand(c) + 0.5, torch.randn(c)
        _check(bn_act(x, s, t, act="none"), _reference(x, s, t, None, None, None, "none"), torch.float32)


def test_empty_tensor():
    x = torch.empty(0, 4, 3, 3, device=DEVICE)
    assert bn_act(x, torch.ones(4), torch.zeros(4)).shape == x.shape


def test_bn_scale_shift_reproduces_eval_batch_norm():
    bn = torch.nn.BatchNorm2d(8).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 5, 5)
    s, t = bn_scale_shift(bn)
    torch.testing.assert_close(bn_act(x.to(DEVICE), s, t, act="none").cpu(), bn(x), rtol=1e-5, atol=1e-5)


def test_bad_arguments_say_what_is_wrong():
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="unknown act 'gelu'"):
        bn_act(x, None, torch.zeros(4), act="gelu")
    with pytest.raises(ValueError, match="3 elements; the input has 4 channels"):
        bn_act(x, torch.ones(3), torch.zeros(4))
    with pytest.raises(ValueError, match="residual shape"):
        bn_act(x, None, torch.zeros(4), residual=torch.randn(2, 4, 3, 2))
    with pytest.raises(ValueError, match="without a residual"):
        bn_act(x, None, torch.zeros(4), residual_scale=torch.ones(4))


def test_the_fallback_computes_the_same(monkeypatch):
    """Without CUDA and without TRITON_INTERPRET, bn_act is the PyTorch fallback, with the same results as the
    kernel (compiled on the GPU, or interpreted)."""
    x, s, t, r, rs, rt = _inputs((2, 5, 4, 3), torch.bfloat16, True, "bn", seed=9)
    y_kernel = bn_act(x, s, t, r, rs, rt)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, s, t, r, rs, rt = (v.cpu() for v in (x, s, t, r, rs, rt))
    assert not uses_triton(x)
    y_fallback = bn_act(x, s, t, r, rs, rt)
    torch.testing.assert_close(y_kernel.float().cpu(), y_fallback.float(), rtol=1e-2, atol=1e-2)


def test_a_repeated_launch_plans_each_shape_once_and_computes_what_bn_act_does():
    """A fused module's calls, pass after pass: planned once per shape and layout, the same tensor as bn_act's
    each time; a residual bn_act would convert first (the other layout) is not planned, and still right."""
    launch = RepeatedLaunch()
    for _ in range(2):
        for shape, channels_last in [((2, 24, 5, 3), True), ((2, 24, 5, 3), False), ((1, 9, 4, 4), True)]:
            x, s, t, r, rs, _ = _inputs(shape, torch.bfloat16, channels_last, "bn", seed=shape[1])
            y = launch(x, s, t, r, rs, act="silu")
            assert y.stride() == x.stride()
            _check(y, _reference(x, s, t, r, rs, None, "silu"), torch.bfloat16)
            gate = torch.rand(shape[0], shape[1], device=DEVICE)
            assert torch.equal(launch(x, None, t, r, gate=gate, act="relu"),
                               bn_act(x, None, t, r, gate=gate, act="relu"))
    assert len(launch) == 6
    x, s, t, r, _, _ = _inputs((2, 24, 5, 3), torch.float32, True, "add", seed=1)
    other_layout = r.contiguous()
    _check(launch(x, s, t, other_layout), _reference(x, s, t, r, None, None, "relu"), torch.float32)
    assert len(launch) == 6


def test_launch_config_covers_the_shape_in_powers_of_two():
    for rows, cols in [(1, 1), (64 * 256, 3136), (64 * 3136, 256), (49, 2048), (10**6, 3), (3, 10**6)]:
        for itemsize in (2, 4):
            cfg = launch_config(rows, cols, itemsize)
            for v in (cfg.block_r, cfg.block_c):
                assert v & (v - 1) == 0
            assert cfg.block_c <= 1024 and cfg.block_r * cfg.block_c <= 8192
            assert cfg.num_warps in (4, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bn_act_on_the_gpu_at_network_sizes(dtype):
    """The heuristic's launches at the sizes networks meet (a ResNet-50 stage at batch 64, a head's 1x1),
    beside the odd shapes, in both layouts and every residual form."""
    for i, shape in enumerate(SHAPES + [(64, 256, 56, 56), (3, 2048, 7, 7), (1, 1000, 1, 1)]):
        for channels_last in (False, True):
            for residual in RESIDUALS:
                act = ACT_NAMES[(i + len(residual)) % len(ACT_NAMES)]
                x, s, t, r, rs, rt = _inputs(shape, dtype, channels_last, residual, seed=i)
                out = torch.full_like(x, float("nan"))
                y = bn_act(x, s, t, r, rs, rt, act=act, out=out)
                _check(y, _reference(x, s, t, r, rs, rt, act), dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_every_tuning_candidate_computes_the_same(channels_last):
    """triton.autotune may launch any of TUNE_CONFIGS for some shape, so each tile is checked, launched
    directly, on a shape no tile divides (not only the one autotune happens to pick below)."""
    x, s, t, r, rs, rt = _inputs((3, 130, 9, 11), torch.bfloat16, channels_last, "bn", seed=7)
    ref = _reference(x, s, t, r, rs, rt, "silu")
    for block_r, block_c, warps in TUNE_CONFIGS:
        out = torch.full_like(x, float("nan"))
        target, launch = plan_launch(x, s, t, r, rs, rt, "silu", out=out, sms=device_sms(x.device.index or 0))
        launch = dataclasses.replace(launch, config=LaunchConfig(block_r, block_c, warps))
        _kernel(False, False)[launch.grid()](*launch.args, **launch.kwargs)
        assert target is out
        _check(out, ref, torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_autotuned_launch_computes_the_same_and_reports_its_choice():
    shapes = [((64, 256, 56, 56), True), ((3, 130, 9, 11), False)]
    for i, (shape, channels_last) in enumerate(shapes):
        x, s, t, r, rs, rt = _inputs(shape, torch.float16, channels_last, "add", seed=20 + i)
        out = torch.full_like(x, float("nan"))
        _check(bn_act(x, s, t, r, act="relu", out=out, tune=True), _reference(x, s, t, r, None, None, "relu"),
               torch.float16)
    chosen = tuned_configs()
    assert len(chosen) >= len(shapes)
    assert all((c["BLOCK_R"], c["BLOCK_C"], c["num_warps"]) in TUNE_CONFIGS for c in chosen.values())
