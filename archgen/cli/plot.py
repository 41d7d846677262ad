"""`archgen plot`, registered by archgen/cli/app.py; matplotlib is imported inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archgen.cli.common import check_output_path, friendly


@friendly
def plot_command(
    specs: Optional[List[str]] = typer.Argument(None, help="Spec names or YAML files (default: the whole zoo)."),
    output: Path = typer.Option(..., "--output", "-o", help="FILE.png or FILE.svg (written atomically)."),
    stages: bool = typer.Option(False, "--stages", help="Per-stage bars of params, MACs and activations for the "
                                                        "specs named, instead of params against MACs."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Count every spec at this image side (default: each spec's)."),
) -> None:
    """Plot params against MACs for SPECS or the zoo, or per-stage bars with --stages.

    Log axes, block families coloured; needs matplotlib (pip install 'archgen[plot]')."""
    from archgen.errors import UserError
    from archgen.plots import figure_format, save_figure, stages_figure, zoo_figure

    check_output_path(output)
    figure_format(output)
    if stages and not specs:
        raise UserError("--stages draws the specs named on the command line; name at least one")
    fig = stages_figure(specs, input_size) if stages else zoo_figure(specs or None, input_size)
    save_figure(fig, output)
    typer.echo(f"wrote {output}", err=True)
