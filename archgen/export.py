"""Export a spec's model for deployment: ONNX (with a dynamic batch axis, and with `dynamic_size` dynamic
height and width, for ONNX Runtime) or TorchScript, written whole or not at all.

ONNX goes through the TorchScript-based exporter (`dynamo=False`): it handles every bundled
spec, including the 1,000-layer CIFAR nets, in seconds where the dynamo exporter takes minutes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator, Literal, Optional

import torch
import torch.nn as nn

from archgen.errors import UserError
from archgen.render import current_umask
from archgen.grammar.loader import SpecLike
from archgen.planner import ModelPlan

Target = Literal["onnx", "torchscript"]
TARGETS: tuple[str, ...] = ("onnx", "torchscript")

#: The ONNX opset written; ONNX Runtime 1.18 and later run it.
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def example_input(model: nn.Module, in_chans: int, input_size: int) -> torch.Tensor:
    """One image of the model's input shape, on the model's device, for tracing."""
    device = next(model.parameters()).device
    return torch.zeros(1, in_chans, input_size, input_size, device=device)


def _write_atomic_with(path: Path, write) -> None:
    """Run `write(tmp_path)` on a temporary file beside `path`, then rename it into place."""
    directory = path.resolve().parent
    if not directory.is_dir():
        raise UserError(f"cannot write '{path}': its directory {directory} does not exist")
    if path.is_dir():
        raise UserError(f"cannot write '{path}': it is a directory; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=".archgen-", suffix=path.suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # the mode any new file gets, not mkstemp's 0o600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def onnx_notes(model: nn.Module) -> list[str]:
    """What the kinds of the model's layers say about torch's ONNX exporter, each once (archgen's blocks and
    head keep the records they were made from)."""
    notes = (layer.onnx_note for m in model.modules() if getattr(m, "records", None) is not None
             for layer in m.records.leaves())
    return list(dict.fromkeys(note for note in notes if note))


def check_target(to: str, dynamic_size: bool) -> None:
    """Refuse an unknown target, and `dynamic_size` where it would mean nothing: a TorchScript trace already
    runs at any batch and image size."""
    if to not in TARGETS:
        raise UserError(f"cannot export to '{to}'; choose one of {', '.join(TARGETS)}")
    if dynamic_size and to != "onnx":
        raise UserError(f"a dynamic image size (--dynamic-size) is an ONNX option; a {to} file already runs at "
                        "any batch and image size the network takes, so leave it out")


def check_dynamic_size(p: ModelPlan) -> None:
    """Refuse, from the plan and before anything is built, a network one ONNX file cannot serve at every size.

    Only a head that pools to a fixed map larger than 1x1 and flattens it (VGG's 7x7 into 25,088 fc inputs)
    bakes the size in: ONNX has no adaptive pooling, so torch's exporter writes such a pool as a fixed window
    computed from the traced map, and cannot when that map's size is left dynamic. Every other structure of
    the zoo (global pools, strided and dilated convs, zero-padding shortcuts, dense concatenations, SE and
    highway gates) computes its shapes from the input's, and is tested at two sizes from one file.
    """
    head = p.head
    if head.pool == "none" or head.pool_size == 1:
        return
    side = head.pool_size
    raise p.spec.error(("head", "pool_size"),
                       f"an ONNX file with a dynamic image size (--dynamic-size) cannot hold this head: it pools "
                       f"the last map to {side}x{side} and flattens it into {p.num_features * side ** 2:,} fc "
                       f"inputs, and ONNX has no adaptive pooling, so torch's exporter can write that pool only "
                       f"for one image size. Export at a fixed size instead (leave out --dynamic-size; "
                       f"--input-size picks the size, one whose last map is a multiple of {side}), export "
                       f"TorchScript (--to torchscript), which runs at any size, or give the head a global pool "
                       f"(pool_size: 1) and train its first fc layer for it")


@contextlib.contextmanager
def _exporter_silenced() -> Iterator[None]:
    """Keep torch's ONNX exporter off the terminal while it runs: on a failure it prints the whole TorchScript
    IR graph ('Torch IR graph at exception', ~100 lines) to the process's stdout from C++, and warns about
    constant folding and its own deprecation through Python. What it has to say that matters comes back as
    its exception, which export_model turns into one paragraph; so both file descriptors point at the null
    device (C++ writes bypass sys.stdout) and warnings are ignored, for the export's duration only."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _exporter_refusal(model: nn.Module, exc: RuntimeError) -> UserError:
    """torch's reason in a sentence (its message without the IR it appends or its invitation to file an
    issue), the model, and what would export it."""
    reason = str(exc).strip().split("\n", 1)[0]
    for tail in (" [Caused by", " Please feel free to request support"):
        reason = reason.split(tail, 1)[0]
    reason = reason.strip().rstrip(".")[:300]
    name = getattr(model, "name", type(model).__name__)
    if "adaptive" in reason:
        hint = ("ONNX has no adaptive pooling: torch's exporter writes an adaptive pool to a fixed map (VGG's "
                "7x7) as a fixed window, which it can do only for a traced map whose size it knows and which is "
                "a multiple of the pooled size (VGG at 224x224), not one whose size is dynamic or hidden from it. "
                "TorchScript (--to torchscript) exports such a head and runs it at any size")
    else:
        hint = ("This is a limit of torch's ONNX exporter, not of the model; TorchScript (--to torchscript) "
                "traces the same model")
    known = "".join(f" Known case: {note}." for note in onnx_notes(model))
    return UserError(f"cannot export {name} to ONNX: torch {torch.__version__}'s exporter (opset {ONNX_OPSET}) "
                     f"stopped with '{reason}'.{known} {hint}")


def export_model(model: nn.Module, path: str | os.PathLike, to: Target, *, in_chans: int, input_size: int,
                 dynamic_size: bool = False) -> None:
    """Write `model` (put in eval mode) as ONNX or TorchScript, traced at 1 x in_chans x size x size.

    The ONNX file's batch axis is dynamic; `dynamic_size` makes its height and width dynamic too, so one
    file serves every image size the network takes.
    """
    check_target(to, dynamic_size)
    model.eval()
    x = example_input(model, in_chans, input_size)
    target = Path(path)
    if to == "onnx":
        image_axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}

        def write(tmp: str) -> None:
            try:
                with torch.no_grad(), _exporter_silenced():
                    torch.onnx.export(model, (x,), tmp, dynamo=False, opset_version=ONNX_OPSET,
                                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                      dynamic_axes={INPUT_NAME: image_axes, OUTPUT_NAME: {0: "batch"}})
            except RuntimeError as exc:  # the exporter's errors (OnnxExporterError and the tracer's) are these
                raise _exporter_refusal(model, exc) from None
    else:
        def write(tmp: str) -> None:
            with torch.no_grad():
                traced = torch.jit.trace(model, x, check_trace=False)  # eval mode: nothing random to check
            traced.save(tmp)
    _write_atomic_with(target, write)


def export_spec(spec: SpecLike, path: str | os.PathLike, to: Target, *, weights: Optional[str | os.PathLike] = None,
                layout: str = "auto", input_size: Optional[int] = None, dynamic_size: bool = False) -> nn.Module:
    """Build a spec (with `weights` loaded by name, if given) and export it; returns the model exported.

    `input_size` is the side of the traced image (default: the spec's); the ONNX file takes any batch
    size, and, with `dynamic_size`, any image size (refused from the plan, before a model is built, for a
    head that pools to a fixed map: see check_dynamic_size); else the size the trace fixed.
    """
    from archgen.builder import build
    from archgen.complexity import profile
    from archgen.grammar.loader import load_spec
    from archgen.planner import plan
    from archgen.weights import load_weights

    check_target(to, dynamic_size)
    p = plan(load_spec(spec))
    if dynamic_size:
        check_dynamic_size(p)
    size = profile(p, input_size).input_size  # refuses a size the network cannot take, as a SpecError
    model = build(p)
    if weights is not None:
        load_weights(model, weights, layout)
    export_model(model, path, to, in_chans=p.in_chans, input_size=size, dynamic_size=dynamic_size)
    return model
