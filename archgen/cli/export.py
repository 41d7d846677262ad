"""`archgen export`, registered by archgen/cli/app.py; torch is imported inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from archgen.cli.common import check_output_path, friendly


@friendly
def export_command(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    to: str = typer.Option(..., "--to", help="onnx (dynamic batch axis, for ONNX Runtime) or torchscript."),
    output: Path = typer.Option(..., "--output", "-o", help="The file to write (atomically)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights to load by name first: .safetensors "
                                                                    "or .pt, in archgen's, torchvision's or "
                                                                    "timm's layout."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Image side of the traced input (default: the spec's)."),
) -> None:
    """Export SPEC's model (random weights unless --weights) as ONNX or TorchScript."""
    from archgen.errors import UserError
    from archgen.export import TARGETS, export_spec

    if to not in TARGETS:
        raise UserError(f"cannot export to '{to}'; --to takes one of {', '.join(TARGETS)}")
    check_output_path(output)
    export_spec(spec, output, to, weights=weights, input_size=input_size)
    typer.echo(f"wrote {to} to {output}", err=True)
