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
    dynamic_size: bool = typer.Option(False, "--dynamic-size",
                                      help="ONNX only: height and width as dynamic axes too, so one file runs at "
                                           "every image size the network takes (refused for a head that "
                                           "flattens a fixed pooled map, such as VGG's 7x7)."),
) -> None:
    """Export SPEC's model (random weights unless --weights) as ONNX or TorchScript."""
    from archgen.export import check_target, export_spec

    check_target(to, dynamic_size)
    check_output_path(output)
    export_spec(spec, output, to, weights=weights, input_size=input_size, dynamic_size=dynamic_size)
    typer.echo(f"wrote {to} to {output}", err=True)
