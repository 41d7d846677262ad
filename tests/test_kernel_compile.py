"""Every specialisation of the bn_act kernel that `bn_act` (and so `fuse`) can launch compiles for sm_80 (A100)
and sm_90 (H100, H200), and the channels_last path reads and writes 16 bytes at a time: checked on a machine with
no GPU, so that a kernel change the GPU compiler rejects fails here, not on the first GPU run.

Triton compiles for a target it is not running on: `triton.compile(ASTSource(fn, signature, constexprs, attrs),
target=GPUTarget("cuda", 90, 32))` runs the whole pipeline, PTX and then a cubin from the ptxas bundled in the
Triton wheel, with no CUDA library loaded. What is compiled is what a launch compiles: each call is planned by
`plan_launch` (what `bn_act` runs before the kernel) on meta tensors, and Triton's own launch binder turns its
arguments into the signature, the constexprs and the divisibility hints (`tt.divisibility` 16 on pointers, and on
integers that are multiples of 16; integers equal to 1 become constants), as `JITFunction.run` does.

What is compiled: for each of the 432 kinds of call of `call_forms()` (3 storage types, 2 layouts, scale or
not, gate or not, 3 residual forms, 6 acts), planned at a typical shape of its layout, a cover of the
combinations on each GPU target rather than all of them, since the kernel's flags change a few lines each and
what a target's lowering may reject is an instruction for a storage type and layout (an act's math on bf16, a
vector load or store of an operand). Both targets compile every storage type x layout x scale x gate x
residual with relu (72). sm_90 (H100, H200: the GPUs archgen is lent) adds every storage type x layout x act x
residual with a scale and a gate, the call that reads the most operands (162 in all); sm_80 (A100) adds every
storage type x layout x act with a scale, no gate and an added residual (102 in all). So every act meets every
storage type and layout on both targets, and every residual form and the gate on sm_90. Then, on both targets:
with 64-bit offsets (tensors of 2**31 elements or more), the forms that cross the offsets with every operand
read through them (storage type x layout x gate x residual, with a scale and relu: the flag changes only the
offset arithmetic); and a few edge shapes (batch 1 at 1x1, odd sizes) for each storage type and layout. About
360 compilations of 0.1 to 0.3 s of CPU each (most of it in Triton's TTGIR and LLVM passes, a fifth in ptxas),
spread over the machine's cores in worker processes (Triton's compiler holds the GIL, so threads would not
help), cached in a fresh directory as on a CI machine. The full 630-call matrix this replaced took 86 s of wall
time and 170 s of CPU on the 2-core VM, a quarter of the suite's CPU (2026-12-04).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest

triton = pytest.importorskip("triton")

import torch  # noqa: E402

from archgen.kernels.bn_act import (ACTS, DTYPES, RESIDUALS, CallForm, KernelLaunch, _kernel,  # noqa: E402
                                    call_forms, plan_launch)

#: The GPUs compiled for: (compute capability, who has it).
TARGETS = {80: "A100", 90: "H100, H200"}
#: The target of the GPUs archgen is lent: its cover adds every act x residual with a scale and a gate.
LENT_TARGET = 90

#: The shape each call is planned at, per layout: ResNet-50's layer1 at batch 8 in channels_last (rows of 256
#: channels, a multiple of 16; the largest tiles, 8 warps), its layer4 at batch 1 in NCHW (rows of 7 x 7 = 49
#: columns, which divide nothing: the scalar path; small tiles, 4 warps).
SHAPES = {True: (8, 256, 56, 56), False: (1, 2048, 7, 7)}
#: Shapes of 2**31 elements or more, which switch the offsets to 64 bits: one with rows a multiple of 16, one
#: with 129 x 129 = 16641 columns.
INT64_SHAPES = {True: (2048, 64, 128, 128), False: (2048, 64, 129, 129)}
#: Shapes whose integers hit Triton's other specialisations: batch 1 at 1x1 (rows and H*W equal to 1 become
#: constants) and odd sizes that divide nothing.
EDGE_SHAPES = [(1, 64, 1, 1), (1, 3, 5, 7)]


def _int64_form(form: CallForm) -> bool:
    """The forms compiled with 64-bit offsets: each gate and residual choice (what is read through the offsets)
    for each storage type and layout; with a scale and relu, which the flag does not touch."""
    return form.scale and form.act == "relu"


def _edge_form(form: CallForm) -> bool:
    """The forms compiled at the edge shapes: every storage type and layout, with a scale and a residual."""
    return form.scale and not form.gate and form.residual == "add" and form.act == "relu"


def _compiled_for(what: str, form: CallForm, capability: int) -> bool:
    """Whether a planned call is compiled for this target: every 64-bit and edge call; of the typical ones each
    storage type x layout x scale x gate x residual with relu, and with a scale each storage type x layout x act
    x residual with a gate (LENT_TARGET) or with no gate and an added residual (the other target)."""
    if what != "typical" or form.act == "relu":
        return True
    if capability == LENT_TARGET:
        return form.scale and form.gate
    return form.scale and not form.gate and form.residual == "add"


def _launch(form: CallForm, shape: tuple[int, ...]) -> KernelLaunch:
    """The launch `bn_act` would make for a call of this form on tensors of this shape (planned on the meta
    device, so the 64-bit shapes cost no memory)."""
    n, c = shape[:2]
    meta = dict(device="meta")
    x = torch.empty(shape, dtype=form.dtype, **meta)
    if form.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    vec = torch.empty(c, **meta)
    residual = torch.empty_like(x) if form.residual != "none" else None
    gate = torch.empty(n, c, dtype=form.dtype, **meta) if form.gate else None
    _, launch = plan_launch(x, vec if form.scale else None, vec, residual,
                            vec if form.residual == "bn" else None, act=form.act, gate=gate)
    assert launch is not None
    return launch


def _planned() -> list[tuple[str, CallForm, tuple[int, ...], KernelLaunch]]:
    """(what, form, shape, launch) for everything compiled."""
    out = []
    for form in call_forms():
        out.append(("typical", form, SHAPES[form.channels_last], _launch(form, SHAPES[form.channels_last])))
        if _int64_form(form):
            shape = INT64_SHAPES[form.channels_last]
            out.append(("64-bit offsets", form, shape, _launch(form, shape)))
        if _edge_form(form):
            out.extend(("edge", form, shape, _launch(form, shape)) for shape in EDGE_SHAPES)
    return out


def _compile_inputs(launch: KernelLaunch, capability: int) -> tuple[dict, dict, dict, dict]:
    """(signature, constexprs, attrs, options) for `launch` on a GPU of this capability, made by Triton's own
    launch binder from the launch's arguments, as `JITFunction.run` makes them (the same in Triton 3.6 and 3.9;
    the one place to change if this private API moves)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    fn = _kernel(False, False)
    backend = make_backend(GPUTarget("cuda", capability, 32))
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, launch.kwargs, bound, specialization, options)
    return signature, constexprs, attrs, options.__dict__


def _init_worker(cache_dir: str) -> None:
    os.environ["TRITON_CACHE_DIR"] = cache_dir


def _compile(capability: int, signature: dict, constexprs: dict, attrs: dict, options: dict) -> dict:
    """Compile in a worker process; what the tests read from the PTX and the cubin, or the error."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        kernel = triton.compile(ASTSource(_kernel(False, False), signature, constexprs, attrs),
                                target=GPUTarget("cuda", capability, 32), options=options)
    except Exception as e:  # reported by the test, with the call that failed
        return {"error": f"{type(e).__name__}: {str(e)[-2000:]}"}
    ptx = kernel.asm.get("ptx", "")
    stores = re.findall(r"\bst\.global(\.\S+)", ptx)
    return {"error": None, "ptx_target": re.search(r"^\.target\s+(\S+)", ptx, re.M).group(1) if ptx else None,
            "cubin_bytes": len(kernel.asm.get("cubin", b"")),
            "loads_v4": len(re.findall(r"\bld\.global\.v4\.", ptx)),
            "stores": len(stores), "stores_v4": sum(s.startswith(".v4.") for s in stores)}


@pytest.fixture(scope="module")
def planned():
    return _planned()


@pytest.fixture(scope="module")
def compiled(planned):
    """{(index into planned, capability): what _compile saw}."""
    jobs = {(i, cap): (cap, *_compile_inputs(launch, cap)) for i, (what, form, _, launch) in enumerate(planned)
            for cap in TARGETS if _compiled_for(what, form, cap)}
    workers = max(1, min(len(os.sched_getaffinity(0)), 8))
    with tempfile.TemporaryDirectory() as cache_dir:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(cache_dir,)) as pool:
            # Calls that plan the same launch (both layouts at 1x1 are channels_last) compile once.
            futures: dict = {}
            for inputs in jobs.values():
                futures.setdefault(repr(inputs), pool.submit(_compile, *inputs))
            return {key: futures[repr(inputs)].result() for key, inputs in jobs.items()}


def _describe(entry, capability: int) -> str:
    what, form, shape, launch = entry
    return (f"{form.dtype} {'channels_last' if form.channels_last else 'nchw'} scale={form.scale} "
            f"gate={form.gate} residual={form.residual} act={form.act} at {shape} ({what}; flags {launch.flags}, "
            f"{launch.config}) for sm_{capability}")


def test_call_forms_are_every_choice_the_launcher_makes(planned):
    """Each form is its own specialisation, each flag the kernel takes is set by the launch, and each takes
    every value across what is compiled: a choice added to the launcher and not to call_forms() fails here."""
    forms = call_forms()
    assert len(forms) == len(DTYPES) * 2 * 2 * 2 * len(RESIDUALS) * len(ACTS) == 432
    typical = [(form.dtype, tuple(launch.flags.items())) for what, form, _, launch in planned if what == "typical"]
    assert len(set(typical)) == len(forms)
    fn = _kernel(False, False)
    constexprs = {p.name for p in fn.params if p.is_constexpr}
    for *_, launch in planned:
        assert set(launch.kwargs) - {"num_warps"} == constexprs
    for flag in planned[0][3].flags:
        assert len({launch.flags[flag] for *_, launch in planned}) >= 2, f"{flag} never varies"
    assert {launch.flags["ACT"] for *_, launch in planned} == set(ACTS.values())
    assert {launch.flags["RES"] for *_, launch in planned} == set(RESIDUALS.values())


def test_every_launch_of_the_cover_compiles_for_sm90_and_sm80(planned, compiled):
    failures = [f"{_describe(planned[i], cap)}: {result['error']}" for (i, cap), result in compiled.items()
                if result["error"]]
    assert not failures, f"{len(failures)} of {len(compiled)} compilations failed; first:\n" + "\n\n".join(failures[:3])
    for cap in TARGETS:
        typical = [planned[i][1] for i, c in compiled if c == cap and planned[i][0] == "typical"]
        assert len(typical) == (162 if cap == LENT_TARGET else 102)
        assert len([i for i, c in compiled if c == cap and planned[i][0] != "typical"]) == 36 + 12
        pairs = {(f.dtype, f.channels_last, f.act) for f in typical}
        assert pairs == {(f.dtype, f.channels_last, f.act) for f in call_forms()}, f"sm_{cap}: an act not met"
        assert {(f.dtype, f.channels_last, f.scale, f.gate, f.residual) for f in typical} == {
            (f.dtype, f.channels_last, f.scale, f.gate, f.residual) for f in call_forms()}
    lent = [planned[i][1] for i, c in compiled if c == LENT_TARGET and planned[i][0] == "typical"]
    assert {(f.act, f.residual) for f in lent} == {(f.act, f.residual) for f in call_forms()}
    assert {f.act for f in lent if f.gate} == set(ACTS)
    for (i, cap), result in compiled.items():
        assert result["ptx_target"].startswith(f"sm_{cap}"), _describe(planned[i], cap)
        assert result["cubin_bytes"] > 0 and result["stores"] > 0, _describe(planned[i], cap)


def test_channels_last_reads_and_writes_16_bytes_at_a_time(planned, compiled):
    """With rows of channels a multiple of 16 (the hints Triton adds at launch), every store of the output is a
    128-bit `st.global.v4`, and x (and the residual, of the same type) are loaded in as many 128-bit pieces."""
    checked = 0
    for (i, cap), result in compiled.items():
        what, form = planned[i][:2]
        if not (form.channels_last and what in ("typical", "64-bit offsets")):
            continue
        operands = 1 + (form.residual != "none")
        assert result["stores"] == result["stores_v4"] > 0, _describe(planned[i], cap)
        assert result["loads_v4"] >= operands * result["stores_v4"], _describe(planned[i], cap)
        checked += 1
    # half of each target's cover is channels_last, and half of the 36 calls with 64-bit offsets
    assert checked == 162 // 2 + 102 // 2 + len(TARGETS) * 18
