"""The `archgen` command: parse arguments, call the library, render. Nothing else lives here.

Torch is imported inside the commands that need it, so `archgen --help` answers at once.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import List, Optional

import typer

from archgen.cli.bench import bench_command
from archgen.cli.calibrate import calibrate_command
from archgen.cli.design import sample_command, scale_command, search_command
from archgen.cli.common import FORMAT_OPTION, Fmt, check_output_path, emit, friendly
from archgen.complexity import DEFAULT_MAX_PARAMS
from archgen.cli.ensemble import lesion_command, paths_command
from archgen.cli.export import export_command
from archgen.cli.plot import plot_command
from archgen.cli.tables import profile_command, table_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compile YAML specs of ResNet-family networks into PyTorch; count, compare and benchmark them.")


def _print_version(asked: bool) -> None:
    if asked:
        from archgen import __version__

        typer.echo(f"archgen {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print archgen's version and exit.")) -> None:
    """Options of `archgen` itself, before the command."""


@app.command()
@friendly
def build(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Image side for the shape check and counts (default: the spec's)."),
    fmt: Fmt = FORMAT_OPTION,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Save the weights: FILE.safetensors (records "
                                          "the spec's name and archgen's version) or FILE.pt (a plain state dict)."),
    max_params: int = typer.Option(DEFAULT_MAX_PARAMS, "--max-params", help="Refuse larger models (counted first)."),
) -> None:
    """Build SPEC, check every stage's shape with a forward pass, and summarise it."""
    from archgen.cli import summary
    from archgen.render import render

    check_output_path(output)
    if output is not None:
        from archgen.weights import save_weights, weights_format

        weights_format(output)  # refuse an unknown suffix before any work
    result = summary.build_and_check(spec, input_size=input_size, max_params=max_params, weights=output is not None)
    if output is not None:
        save_weights(result.model, output, spec_name=result.profile.name)
    typer.echo(render(summary.build_table(result.profile, result.plan), fmt.value), nl=False)
    if output is not None:
        typer.echo(f"saved the state dict to {output}", err=True)


@app.command()
@friendly
def validate(
    specs: List[str] = typer.Argument(..., help="Spec names or YAML files."),
    max_params: int = typer.Option(DEFAULT_MAX_PARAMS, "--max-params", help="Refuse larger models."),
) -> None:
    """Check specs without building them: grammar, block parameters, shapes and size.

    A design space (a file with a `space:` block or distributions, or a bundled space's name) is checked as
    `archgen sample` and `search` read it. Fast: nothing is built, and torch is not imported.
    """
    from archgen.complexity import check_size, profile
    from archgen.design.space import is_space, load_space
    from archgen.grammar.loader import load_spec
    from archgen.errors import SpecError
    from archgen.render import human

    errors = []
    for spec in specs:
        try:
            if is_space(spec):
                space = load_space(spec)
                size, axes = space.size(), "axis" if len(space.axes) == 1 else "axes"
                typer.echo(f"ok  {_named(spec, space.name)}: design space, {len(space.axes)} {axes} "
                           f"({', '.join(space.labels())}), "
                           f"{f'{size:,} candidates' if size is not None else 'continuous'}")
                continue
            loaded = load_spec(spec)
            p = profile(loaded)
            check_size(p, loaded, max_params)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        typer.echo(f"ok  {_named(spec, p.name)}: {human(p.params)} params, {human(p.macs)} MACs at {p.input_size}px")
    if errors:
        for message in errors:
            typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)


def _named(given: str, name: str) -> str:
    """What the user gave, and the spec's name only where it says more (a path), so a line fits 80 columns."""
    return given if given == name else f"{given} ({name})"


@app.command("list")
@friendly
def list_specs(fmt: Fmt = FORMAT_OPTION) -> None:
    """List the bundled specs with their papers and totals."""
    from archgen.cli import summary
    from archgen.render import render

    typer.echo(render(summary.list_table(), fmt.value), nl=False)


@app.command()
@friendly
def schema(output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to a file.")) -> None:
    """Print the JSON Schema of a spec, for editors (yaml-language-server's `$schema`)."""
    from archgen.grammar.jsonschema import json_schema_text

    emit(json_schema_text(), output)


# The other commands, one module each; each imports torch only inside its body.
app.command("table")(table_command)
app.command("profile")(profile_command)
app.command("paths")(paths_command)
app.command("lesion")(lesion_command)
app.command("bench")(bench_command)
app.command("calibrate")(calibrate_command)
app.command("export")(export_command)
app.command("plot")(plot_command)
app.command("sample")(sample_command)
app.command("scale")(scale_command)
app.command("search")(search_command)


def _help_in_paragraphs() -> None:
    """Each command's docstring as its help, every paragraph on one line: typer keeps a docstring's line
    breaks, so a paragraph wrapped for the source would show at 80 columns as long lines broken short; on one
    line, rich wraps it to the terminal's width."""
    for info in app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            paragraphs = inspect.cleandoc(info.callback.__doc__).split("\n\n")
            info.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


_help_in_paragraphs()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
