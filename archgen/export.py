"""Export a spec's model for deployment: ONNX (with a dynamic batch axis, for ONNX Runtime) or
TorchScript, written whole or not at all.

ONNX goes through the TorchScript-based exporter (`dynamo=False`): it handles every bundled
spec, including the 1,000-layer CIFAR nets, in seconds where the dynamo exporter takes minutes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal, Optional

import torch
import torch.nn as nn

from archgen.errors import UserError
from archgen.render import current_umask
from archgen.grammar.loader import SpecLike

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


def export_model(model: nn.Module, path: str | os.PathLike, to: Target, *, in_chans: int, input_size: int) -> None:
    """Write `model` (put in eval mode) as ONNX or TorchScript, traced at 1 x in_chans x size x size."""
    if to not in TARGETS:
        raise UserError(f"cannot export to '{to}'; choose one of {', '.join(TARGETS)}")
    model.eval()
    x = example_input(model, in_chans, input_size)
    target = Path(path)
    if to == "onnx":
        def write(tmp: str) -> None:
            try:
                with torch.no_grad():
                    torch.onnx.export(model, (x,), tmp, dynamo=False, opset_version=ONNX_OPSET,
                                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
            except torch.onnx.errors.OnnxExporterError as exc:
                first = str(exc).strip().splitlines()[0][:300]
                known = "; ".join(f"known case: {note}" for note in onnx_notes(model))
                raise UserError(f"torch's ONNX exporter cannot export this network: {first}"
                                + (f". {known[0].upper()}{known[1:]}" if known else "")) from None
    else:
        def write(tmp: str) -> None:
            with torch.no_grad():
                traced = torch.jit.trace(model, x, check_trace=False)  # eval mode: nothing random to check
            traced.save(tmp)
    _write_atomic_with(target, write)


def export_spec(spec: SpecLike, path: str | os.PathLike, to: Target, *, weights: Optional[str | os.PathLike] = None,
                layout: str = "auto", input_size: Optional[int] = None) -> nn.Module:
    """Build a spec (with `weights` loaded by name, if given) and export it; returns the model exported.

    `input_size` is the side of the traced image (default: the spec's); the ONNX file still takes
    any batch size, and the spatial size the trace fixed.
    """
    from archgen.builder import build
    from archgen.complexity import profile
    from archgen.grammar.loader import load_spec
    from archgen.weights import load_weights

    loaded = load_spec(spec)
    size = profile(loaded, input_size).input_size  # refuses a size the network cannot take, as a SpecError
    model = build(loaded)
    if weights is not None:
        load_weights(model, weights, layout)
    export_model(model, path, to, in_chans=loaded.doc.input.channels, input_size=size)
    return model
