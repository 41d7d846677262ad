"""One memory pass for the end of a block: y = act((x * scale + shift) [* gate] [+ r * rscale | + r]).

In inference a batch norm is a per-channel affine map, computed once from the
running statistics (`scale = gamma / sqrt(var + eps)`, `shift = beta - mean *
scale`, see `bn_scale_shift`). Eager PyTorch spends three passes over memory
on BN, the residual add and ReLU; `bn_act` spends one:

    act(bn(x) + r)          bn_act(x, s, t, residual=r)                 identity shortcut
    act(bn1(x) + bn2(r))    bn_act(x, s1, t1, r, residual_scale=s2, residual_shift=t2)   projection
    act(bn(x))              bn_act(x, s, t)                             pre-activation, DenseNet
    act(x + b [+ r])        bn_act(x, None, b, residual=r)              a BN folded into the conv
    act(bn(x) * g + r)      bn_act(x, s, t, residual=r, gate=g)         squeeze-and-excitation before the add
                                                                        (SE-ResNet; g is (N, C))

`act` is 'relu', 'silu', 'leaky_relu' (slope `archgen.layer_kinds.base.LEAKY_SLOPE`, 0.1,
DarkNet's), 'relu6', 'hardswish' (MobileNets') or 'none'. `x` is (N, C, *spatial), contiguous in NCHW or in
channels_last; other strides are made contiguous first. Arithmetic is in
float32 whatever the storage type (float32, float16, bfloat16); the output has
`x`'s dtype and memory format.

Where it runs: the Triton kernel on CUDA tensors; on CPU tensors the same
kernel in Triton's interpreter when TRITON_INTERPRET=1 is set (read at call
time; slow, for tests); otherwise, on the CPU or where Triton is missing, a
pure-PyTorch fallback with the same arithmetic (`bn_act_reference`).

Launch: a 2-D grid of tiles over the tensor seen as rows x columns, so that the
channel of a tile is found without a per-element division: NCHW is (N*C) rows
of H*W, channels_last is (N*H*W) rows of C. `launch_config` picks the tile and
warps from the shape (the table `TILE_RULES` says why); `tune=True` (or
ARCHGEN_TUNE=1) lets triton.autotune time `TUNE_CONFIGS` per shape on the GPU
instead, and `tuned_configs()` reports what it chose so the table can learn.
`plan_launch` does all of a launch but run it (on any device, the meta one
included), and `call_forms()` lists every kind of call that launches, so that
tests/test_kernel_compile.py compiles each specialisation for sm_90 (and a
pairwise cover of them for sm_80) on a machine without a GPU.
"""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch

from archgen.layer_kinds.act import apply_act

if TYPE_CHECKING:
    import torch.nn as nn

#: Activation names and the codes the kernel is specialised on: the act kind's table says which it computes
#: (`kernel`), and a test holds the two to the same names; the arithmetic per code is the kernel's own.
ACTS = {"none": 0, "relu": 1, "leaky_relu": 2, "silu": 3, "relu6": 4, "hardswish": 5}
#: Residual forms and their codes: none, added as is, or scaled by a second BN's scale (a projection shortcut).
RESIDUALS = {"none": 0, "add": 1, "bn": 2}
#: Storage types the kernel runs on; others (float64) take `bn_act_reference`, with the same float32 arithmetic.
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _leaky_slope() -> float:
    from archgen.layer_kinds.base import LEAKY_SLOPE

    return LEAKY_SLOPE


# --------------------------------------------------------------------------------------------- kernel

def _kernel_source():
    import triton
    import triton.language as tl

    @triton.jit
    def bn_act_kernel(x_ptr, scale_ptr, shift_ptr, gate_ptr, r_ptr, rscale_ptr, out_ptr,
                      rows, cols, C, HW, slope,
                      CH_ON_COLS: tl.constexpr,  # channels_last: channel = column; NCHW: channel = row % C
                      HAS_SCALE: tl.constexpr,   # False: the BN was folded, shift is the conv's bias
                      GATE: tl.constexpr,        # multiply by a per-(sample, channel) gate (SE) before the add
                      RES: tl.constexpr,         # 0 none, 1 + r, 2 + r * rscale
                      ACT: tl.constexpr,         # 0 none, 1 relu, 2 leaky relu, 3 silu, 4 relu6, 5 hardswish
                      INT64: tl.constexpr,
                      BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        r_idx = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        c_idx = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        r_mask = r_idx < rows
        c_mask = c_idx < cols
        mask = r_mask[:, None] & c_mask[None, :]
        if INT64:
            offs = r_idx.to(tl.int64)[:, None] * cols + c_idx[None, :]
        else:
            offs = r_idx[:, None] * cols + c_idx[None, :]
        x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
        # Per-channel parameters: one load per tile row (NCHW) or column (channels_last).
        if CH_ON_COLS:
            shift = tl.load(shift_ptr + c_idx, mask=c_mask).to(tl.float32)[None, :]
        else:
            ch = r_idx % C
            shift = tl.load(shift_ptr + ch, mask=r_mask).to(tl.float32)[:, None]
        if HAS_SCALE:
            if CH_ON_COLS:
                scale = tl.load(scale_ptr + c_idx, mask=c_mask).to(tl.float32)[None, :]
            else:
                scale = tl.load(scale_ptr + ch, mask=r_mask).to(tl.float32)[:, None]
            y = x * scale + shift
        else:
            y = x + shift
        if GATE:
            # gate is (N, C) contiguous: NCHW rows are n * C + c already; channels_last rows are n * HW + hw.
            if CH_ON_COLS:
                g_offs = (r_idx // HW)[:, None] * C + c_idx[None, :]
            else:
                g_offs = r_idx[:, None] + c_idx[None, :] * 0
            y = y * tl.load(gate_ptr + g_offs, mask=mask).to(tl.float32)
        if RES == 1:
            y += tl.load(r_ptr + offs, mask=mask).to(tl.float32)
        if RES == 2:
            if CH_ON_COLS:
                rscale = tl.load(rscale_ptr + c_idx, mask=c_mask).to(tl.float32)[None, :]
            else:
                rscale = tl.load(rscale_ptr + ch, mask=r_mask).to(tl.float32)[:, None]
            y += tl.load(r_ptr + offs, mask=mask).to(tl.float32) * rscale
        # `y < 0` is False for NaN, so NaN passes through as in torch.relu.
        if ACT == 1:
            y = tl.where(y < 0, 0.0, y)
        if ACT == 2:
            y = tl.where(y < 0, y * slope, y)
        if ACT == 3:
            y = y / (1.0 + tl.exp(-y))  # silu: y * sigmoid(y)
        if ACT == 4:
            y = tl.where(y < 0, 0.0, tl.where(y > 6.0, 6.0, y))
        if ACT == 5:  # hardswish: y * relu6(y + 3) / 6
            y = y * tl.where(y + 3.0 < 0, 0.0, tl.where(y + 3.0 > 6.0, 6.0, y + 3.0)) / 6.0
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)

    return bn_act_kernel


#: Candidates triton.autotune times per (rows, cols, layout, dtype) when tuning is on.
TUNE_CONFIGS = [(br, bc, w) for (br, bc) in ((1, 1024), (2, 1024), (4, 512), (8, 256), (16, 128), (32, 64),
                                               (64, 64), (8, 512), (16, 256), (64, 128), (128, 32))
                for w in (4, 8)]


@functools.lru_cache(maxsize=None)
def _kernel(interpret: bool, tuned: bool):
    """The jitted kernel, built on first use: triton.jit reads TRITON_INTERPRET when it decorates,
    so building lazily lets the variable be set any time before the first call."""
    import triton
    from triton import knobs

    with knobs.runtime.scope():  # restores the knob and the environment variable
        knobs.runtime.interpret = interpret
        fn = _kernel_source()
    if not tuned:
        return fn
    configs = [triton.Config({"BLOCK_R": br, "BLOCK_C": bc}, num_warps=w) for br, bc, w in TUNE_CONFIGS]
    # restore_value: timing runs must not apply the map twice when `out` aliases `x` (in place).
    return triton.autotune(configs, key=["rows", "cols", "CH_ON_COLS", "RES", "HAS_SCALE", "GATE"],
                           restore_value=["out_ptr"])(fn)


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def uses_triton(x: torch.Tensor) -> bool:
    """Whether `bn_act(x, ...)` runs the Triton kernel (CUDA, or the interpreter on the CPU)."""
    if not triton_available() or x.dtype not in DTYPES:
        return False
    return x.is_cuda or (x.device.type == "cpu" and _interpret())


# ------------------------------------------------------------------------------------- launch choice

@dataclass(frozen=True)
class LaunchConfig:
    block_r: int
    block_c: int
    num_warps: int


#: What the heuristic does and why; revise from `tuned_configs()` after GPU runs (benchmarks/README.md).
TILE_RULES = """\
- a tile is BLOCK_R rows x BLOCK_C columns, BLOCK_C the power of two >= the row length, capped at 1024;
- tile elements: 4096 for 4-byte types, 8192 for 2-byte ones (16 KB per operand per tile: 16 B vector
  loads for every thread at 8 warps), shrunk (down to 512) until there are >= 2 tiles per SM of the device
  (its multi_processor_count), so that small, latency-bound tensors (batch 1) still fill the GPU;
- 8 warps for tiles of 4096 elements or more, else 4;
- under the interpreter: one large tile (16384 elements), since its cost is per program, not per element."""

#: Streaming multiprocessors assumed when no CUDA device is given (an H100 SXM has 132).
DEFAULT_SMS = 132


@functools.lru_cache(maxsize=None)
def device_sms(index: int) -> int:
    """The SM count of CUDA device `index`, read once."""
    return torch.cuda.get_device_properties(index).multi_processor_count


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def launch_config(rows: int, cols: int, itemsize: int, interpret: bool = False,
                  sms: int = DEFAULT_SMS) -> LaunchConfig:
    """The tile and warps for a rows x cols problem on a GPU of `sms` multiprocessors (see TILE_RULES)."""
    block_c = min(_pow2_ceil(cols), 1024)
    if interpret:
        tile = 16384
    else:
        tile = 8192 if itemsize <= 2 else 4096
        while tile > 512 and (rows * cols) / tile < 2 * sms:
            tile //= 2
    block_c = min(block_c, tile)
    block_r = max(1, min(_pow2_ceil(rows), tile // block_c))
    warps = 8 if block_r * block_c >= 4096 else 4
    return LaunchConfig(block_r, block_c, warps)


@dataclass(frozen=True)
class CallForm:
    """A kind of `bn_act` call, by what the kernel is specialised on apart from the shape: the storage type,
    the layout, whether a scale and a gate are given, the residual's form and the act."""

    dtype: torch.dtype
    channels_last: bool
    scale: bool
    gate: bool
    residual: str
    act: str


def call_forms() -> list[CallForm]:
    """Every kind of call that launches the kernel (432), each its own compiled specialisation: listed from the
    values `plan_launch` dispatches on, so that tests/test_kernel_compile.py can compile them all for GPUs this
    machine lacks and follows the launcher when a choice is added."""
    return [CallForm(*choice) for choice in itertools.product(DTYPES, (False, True), (False, True), (False, True),
                                                              RESIDUALS, ACTS)]


@dataclass(frozen=True)
class KernelLaunch:
    """One launch as `bn_act` makes it: the arguments, the constexprs, the heuristic's tile and grid. Planned
    apart from running so that a test can compile exactly what a run would launch, with no GPU."""

    args: tuple
    flags: dict[str, object]
    config: LaunchConfig
    rows: int
    cols: int

    @property
    def kwargs(self) -> dict[str, object]:
        """The keywords of the launch: the flags, the tile and the warps."""
        return {**self.flags, "BLOCK_R": self.config.block_r, "BLOCK_C": self.config.block_c,
                "num_warps": self.config.num_warps}

    def grid(self, meta: Optional[dict] = None) -> tuple[int, int]:
        """Tiles over rows and columns, for the heuristic's tile or for autotune's `meta`."""
        if meta is None:
            return _cdiv(self.rows, self.config.block_r), _cdiv(self.cols, self.config.block_c)
        return _cdiv(self.rows, meta["BLOCK_R"]), _cdiv(self.cols, meta["BLOCK_C"])


def tuned_configs() -> dict:
    """What triton.autotune chose in this process: {(rows, cols, ch_on_cols, res, has_scale, ...): config}."""
    fn = _kernel(False, True)
    return {tuple(str(k) for k in key): {"BLOCK_R": cfg.kwargs["BLOCK_R"], "BLOCK_C": cfg.kwargs["BLOCK_C"],
                                         "num_warps": cfg.num_warps}
            for key, cfg in getattr(fn, "cache", {}).items()}


# --------------------------------------------------------------------------------------- public API

def bn_scale_shift(bn: "nn.BatchNorm2d") -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) in float32 from a BN's running statistics: bn(x) == x * scale + shift in eval mode."""
    with torch.no_grad():
        var = bn.running_var.float()
        mean = bn.running_mean.float()
        scale = torch.rsqrt(var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.float()
        shift = -mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias.float()
    return scale, shift


def _layout(x: torch.Tensor) -> Optional[bool]:
    """True: channels_last (channel on columns); False: NCHW-contiguous; None: neither."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        # A tensor both ways (H*W == 1, or C == 1) prefers long rows.
        if not x.is_contiguous() or x.shape[2] * x.shape[3] < x.shape[1]:
            return True
    if x.is_contiguous():
        return False
    return None


def _vector(v: Optional[torch.Tensor], name: str, c: int, device: torch.device) -> Optional[torch.Tensor]:
    if v is None:
        return None
    if isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.dim() == 1 and v.numel() == c \
            and v.device == device and v.is_contiguous():
        return v  # as given: a fused module's buffer, every call
    if not isinstance(v, torch.Tensor):
        v = torch.as_tensor(v, dtype=torch.float32)
    if v.numel() != c:
        raise ValueError(f"bn_act: {name} has {v.numel()} elements; the input has {c} channels")
    return v.reshape(c).to(device=device, dtype=torch.float32).contiguous()


def bn_act(x: torch.Tensor, scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
           residual: Optional[torch.Tensor] = None, residual_scale: Optional[torch.Tensor] = None,
           residual_shift: Optional[torch.Tensor] = None, act: str = "relu", *,
           gate: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None, slope: Optional[float] = None,
           tune: Optional[bool] = None) -> torch.Tensor:
    """act((x * scale + shift) [* gate] [+ residual * residual_scale + residual_shift]), in one pass.

    x: (N, C, *spatial), float32/float16/bfloat16. scale, shift: per-channel (C,) vectors (any float
    dtype; computed in float32), either may be None (1 and 0). residual: x's shape; it is added as is,
    or scaled by residual_scale (a second BN) when given; residual_shift is added to shift once, on
    the host. act: 'relu', 'silu', 'leaky_relu' (slope `slope`, default LEAKY_SLOPE = 0.1), 'relu6',
    'hardswish' or 'none'.
    gate: a per-sample, per-channel multiplier of shape (N, C) or (N, C, 1, 1) (a squeeze-and-excitation
    gate), applied before the residual is added (not with residual_shift, which would be gated too).
    out: where to write (x's shape, dtype and memory format; may be `x` itself, in place); a new
    tensor otherwise. tune: let triton.autotune choose the launch on CUDA (default: ARCHGEN_TUNE=1).

    Runs the Triton kernel on CUDA, in Triton's interpreter on the CPU when TRITON_INTERPRET=1,
    and the pure-PyTorch `bn_act_reference` otherwise.
    """
    if not uses_triton(x):
        scale, shift, residual_scale, gate, slope = _checked(x, scale, shift, residual, residual_scale,
                                                             residual_shift, act, gate, out, slope)
        return bn_act_reference(x, scale, shift, residual, residual_scale, act, gate=gate, out=out, slope=slope)
    interpret = x.device.type == "cpu"
    tuned = (not interpret) and (tune if tune is not None else os.environ.get("ARCHGEN_TUNE") == "1")
    sms = device_sms(x.device.index or 0) if x.is_cuda else DEFAULT_SMS
    target, launch = plan_launch(x, scale, shift, residual, residual_scale, residual_shift, act, gate=gate, out=out,
                                 slope=slope, interpret=interpret, sms=sms)
    if launch is not None:
        fn = _kernel(interpret, tuned)
        if tuned:
            fn[launch.grid](*launch.args, **launch.flags)
        else:
            grid = launch.grid()
            if grid[0] > 2**31 - 1 or grid[1] > 65535:
                raise ValueError(f"bn_act: tensor of shape {tuple(x.shape)} needs a grid of {grid}, "
                                 "beyond CUDA's limits")
            fn[grid](*launch.args, **launch.kwargs)
    if out is not None and target is not out:
        out.copy_(target)
        return out
    return target


#: Plans a `RepeatedLaunch` keeps before it starts again (a module called at ever new shapes, say).
MAX_PLANS = 64


@dataclass(frozen=True)
class _Plan:
    """What a launch takes beside the call's tensors, fixed by their shapes, strides and dtypes."""

    tuned: bool
    interpret: bool
    kwargs: dict
    grid: tuple[int, int]
    sizes: tuple  # rows, cols, C, HW, slope: the kernel's scalar arguments


class RepeatedLaunch:
    """`bn_act` for a caller that makes the same call pass after pass (a fused module, with its vectors, act
    and slope fixed): the first call at each shape, layout and dtype is checked and planned as bn_act's,
    and later ones only allocate the output and launch. Where the GPU waits on the host, as it does for
    ResNet-50 at batch 64 without CUDA graphs on an H200 (benchmarks/README.md), bn_act's checks and planning
    cost as much host time as the launch itself. A call whose tensors bn_act would first convert (a
    residual in the other layout, vectors not float32) is not planned: it takes bn_act each time."""

    def __init__(self) -> None:
        self._plans: dict[tuple, Optional[_Plan]] = {}

    def __len__(self) -> int:
        return sum(plan is not None for plan in self._plans.values())

    def __call__(self, x: torch.Tensor, scale: Optional[torch.Tensor], shift: torch.Tensor,
                 residual: Optional[torch.Tensor] = None, residual_scale: Optional[torch.Tensor] = None,
                 act: str = "relu", *, gate: Optional[torch.Tensor] = None, slope: Optional[float] = None,
                 tune: Optional[bool] = None) -> torch.Tensor:
        """bn_act(x, scale, shift, residual, residual_scale, act=act, gate=gate, slope=slope, tune=tune)."""
        if tune is None:
            tune = os.environ.get("ARCHGEN_TUNE") == "1"
        key = (x.shape, x.stride(), x.dtype, x.device, shift.dtype, shift.device, tune, act, slope, scale is None,
               gate is None, residual_scale is None, None if residual is None else (residual.stride(), residual.dtype))
        plan = self._plans.get(key, False)
        if plan is False:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._plan(x, scale, shift, residual, residual_scale, act, gate, slope, tune)
        if plan is None or not uses_triton(x):
            return bn_act(x, scale, shift, residual, residual_scale, act=act, gate=gate, slope=slope, tune=tune)
        out = torch.empty_like(x)
        if gate is not None:
            gate = gate.reshape(x.shape[0], x.shape[1]).to(torch.float32).contiguous()
        args = (x, shift if scale is None else scale, shift, shift if gate is None else gate,
                x if residual is None else residual, shift if residual_scale is None else residual_scale, out,
                *plan.sizes)
        if plan.tuned:
            rows, cols = plan.sizes[:2]
            _kernel(False, True)[lambda meta: (_cdiv(rows, meta["BLOCK_R"]), _cdiv(cols, meta["BLOCK_C"]))](
                *args, **plan.kwargs)
        else:
            _kernel(plan.interpret, False)[plan.grid](*args, **plan.kwargs)
        return out

    @staticmethod
    def _plan(x: torch.Tensor, scale: Optional[torch.Tensor], shift: torch.Tensor, residual: Optional[torch.Tensor],
              residual_scale: Optional[torch.Tensor], act: str, gate: Optional[torch.Tensor], slope: Optional[float],
              tune: bool) -> Optional[_Plan]:
        """The launch of this call, or None where bn_act would convert a tensor first or not launch."""
        if not uses_triton(x):
            return None
        interpret = x.device.type == "cpu"
        sms = device_sms(x.device.index or 0) if x.is_cuda else DEFAULT_SMS
        _, launch = plan_launch(x, scale, shift, residual, residual_scale, None, act, gate=gate, slope=slope,
                                interpret=interpret, sms=sms)
        if launch is None:
            return None
        given = (x, scale, shift, residual, residual_scale)
        args = launch.args
        used = (args[0], args[1] if scale is not None else None, args[2], args[4] if residual is not None else None,
                args[5] if residual_scale is not None else None)
        grid = launch.grid()
        if any(a is not b for a, b in zip(given, used)) or grid[0] > 2**31 - 1 or grid[1] > 65535:
            return None
        tuned = tune and not interpret
        return _Plan(tuned, interpret, dict(launch.flags) if tuned else launch.kwargs, grid,
                     tuple(launch.args[7:]))


def _checked(x: torch.Tensor, scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
             residual: Optional[torch.Tensor], residual_scale: Optional[torch.Tensor],
             residual_shift: Optional[torch.Tensor], act: str, gate: Optional[torch.Tensor],
             out: Optional[torch.Tensor], slope: Optional[float]) -> tuple[Optional[torch.Tensor], ...]:
    """bn_act's arguments checked, the vectors and the gate as float32 (so that their storage type never
    makes another kernel), residual_shift added into shift: (scale, shift, residual_scale, gate, slope)."""
    if act not in ACTS:
        raise ValueError(f"bn_act: unknown act {act!r}; choose one of {', '.join(ACTS)}")
    if x.dim() < 2:
        raise ValueError(f"bn_act: x must be (N, C, ...), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"bn_act: x must be floating point, got {x.dtype}")
    c = x.shape[1]
    scale = _vector(scale, "scale", c, x.device)
    shift = _vector(shift, "shift", c, x.device)
    residual_scale = _vector(residual_scale, "residual_scale", c, x.device)
    residual_shift = _vector(residual_shift, "residual_shift", c, x.device)
    if residual is None and (residual_scale is not None or residual_shift is not None):
        raise ValueError("bn_act: residual_scale / residual_shift given without a residual")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"bn_act: residual shape {tuple(residual.shape)} differs from x's {tuple(x.shape)}")
    if gate is not None:
        if gate.numel() != x.shape[0] * c or (gate.dim() > 1 and tuple(gate.shape[:2]) != (x.shape[0], c)):
            raise ValueError(f"bn_act: gate has shape {tuple(gate.shape)}; it must be (N, C) = "
                             f"({x.shape[0]}, {c}), or (N, C, 1, ...)")
        gate = gate.reshape(x.shape[0], c).to(device=x.device, dtype=torch.float32).contiguous()
        if residual_shift is not None:
            raise ValueError("bn_act: residual_shift with a gate would be gated with the shift; add it to the "
                             "residual instead")
    if residual_shift is not None:
        shift = residual_shift if shift is None else shift + residual_shift
    if slope is None:
        slope = _leaky_slope()
    if out is not None and (out.shape != x.shape or out.dtype != x.dtype):
        raise ValueError("bn_act: out must have x's shape and dtype")
    return scale, shift, residual_scale, gate, slope


def plan_launch(x: torch.Tensor, scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
                residual: Optional[torch.Tensor] = None, residual_scale: Optional[torch.Tensor] = None,
                residual_shift: Optional[torch.Tensor] = None, act: str = "relu", *,
                gate: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None,
                slope: Optional[float] = None, interpret: bool = False,
                sms: int = DEFAULT_SMS) -> tuple[torch.Tensor, Optional[KernelLaunch]]:
    """Everything `bn_act` does before the kernel runs, on any device (on the meta device, shapes alone):
    (the tensor the kernel writes, the launch; None when x is empty). Arguments as bn_act's; interpret and
    sms as launch_config's."""
    scale, shift, residual_scale, gate, slope = _checked(x, scale, shift, residual, residual_scale, residual_shift,
                                                         act, gate, out, slope)
    ch_on_cols = _layout(x)
    if ch_on_cols is None:
        x = x.contiguous()
        ch_on_cols = False
    fmt = torch.channels_last if ch_on_cols else torch.contiguous_format
    if residual is not None and not residual.is_contiguous(memory_format=fmt):
        residual = residual.contiguous(memory_format=fmt)
    if residual is not None and residual.dtype != x.dtype:
        residual = residual.to(x.dtype)
    target = out
    if out is None or not out.is_contiguous(memory_format=fmt):
        target = torch.empty_like(x, memory_format=fmt)
    numel = x.numel()
    if not numel:
        return target, None
    c = x.shape[1]
    if ch_on_cols:
        rows, cols = numel // c, c
    else:
        rows, cols = x.shape[0] * c, numel // max(1, x.shape[0] * c)
    if shift is None:
        shift = torch.zeros(c, device=x.device, dtype=torch.float32)
    res = "none" if residual is None else ("bn" if residual_scale is not None else "add")
    args = (x, scale if scale is not None else shift, shift, gate if gate is not None else shift,
            residual if residual is not None else x,
            residual_scale if residual_scale is not None else shift,
            target, rows, cols, c, numel // max(1, x.shape[0] * c), float(slope))
    flags = dict(CH_ON_COLS=ch_on_cols, HAS_SCALE=scale is not None, GATE=gate is not None, RES=RESIDUALS[res],
                 ACT=ACTS[act], INT64=numel >= 2**31 - 1)
    cfg = launch_config(rows, cols, x.element_size(), interpret, sms)
    return target, KernelLaunch(args, flags, cfg, rows, cols)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def bn_act_reference(x: torch.Tensor, scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
                     residual: Optional[torch.Tensor] = None, residual_scale: Optional[torch.Tensor] = None,
                     act: str = "relu", *, gate: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None,
                     slope: float = 0.1, compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The same map in PyTorch ops, computed in `compute_dtype` (the CPU fallback, and the tests' oracle
    with float64). Differentiable; keeps x's memory format."""
    shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
    y = x.to(compute_dtype)
    if scale is not None:
        y = y * scale.to(compute_dtype).reshape(shape)
    if shift is not None:
        y = y + shift.to(compute_dtype).reshape(shape)
    if gate is not None:
        y = y * gate.to(compute_dtype).reshape((x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2))
    if residual is not None:
        r = residual.to(compute_dtype)
        if residual_scale is not None:
            r = r * residual_scale.to(compute_dtype).reshape(shape)
        y = y + r
    y = apply_act(act, y, slope)
    result_dtype = x.dtype if compute_dtype == torch.float32 else compute_dtype
    if out is not None:
        out.copy_(y)
        return out
    return y.to(result_dtype)
