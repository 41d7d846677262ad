"""What every archgen command shares: the output formats, one-paragraph errors with exit status 2,
and writing output files whole or not at all. Imports no torch."""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Callable, NoReturn, Optional

import typer

from archgen.errors import UserError


class Fmt(str, Enum):
    rich = "rich"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    latex = "latex"


FORMAT_OPTION = typer.Option(Fmt.rich, "--format", "-f", help="Output format (latex uses booktabs).")
OUTPUT_OPTION = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout.")


def fail(message: str) -> NoReturn:
    """Print one paragraph to stderr and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def friendly(fn: Callable) -> Callable:
    """Turn a user's mistake (UserError such as SpecError, an unreadable file) into one paragraph and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}")

    return wrapper


def check_output_path(path: Optional[Path]) -> None:
    """Refuse, before any work, an output whose directory is missing or that is a directory."""
    if path is None:
        return
    if path.is_dir():
        fail(f"cannot write '{path}': it is a directory; give a file name")
    if not path.resolve().parent.is_dir():
        fail(f"cannot write '{path}': its directory {path.resolve().parent} does not exist")


def emit(text: str, output: Optional[Path] = None) -> None:
    """Text to stdout, or to `output` written whole (a temporary file, then a rename)."""
    if output is None:
        sys.stdout.write(text)
        return
    from archgen.render import write_atomic

    check_output_path(output)
    write_atomic(os.fspath(output), text)
