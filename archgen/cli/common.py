"""What every archgen command shares: the output formats, one-paragraph errors with exit status 2,
and writing output files whole or not at all. Imports no torch."""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn, Optional

import typer

from archgen.errors import UserError

if TYPE_CHECKING:
    from archgen.render import Table


class Fmt(str, Enum):
    rich = "rich"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    latex = "latex"


FORMAT_OPTION = typer.Option(Fmt.rich, "--format", "-f", help="Output format (latex uses booktabs).")
OUTPUT_OPTION = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout; "
                                                           "CSV of several tables: one file per table, FILE-KEY.csv.")
TABLE_OPTION = typer.Option(None, "--table", metavar="KEY",
                            help="Only the table of this key (a mistaken key lists them).")


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
    directory = path.resolve().parent
    if not directory.is_dir():
        fail(f"cannot write '{path}': its directory {directory} does not exist")
    import tempfile

    try:  # what writing it will do first (write_atomic): a file beside it; found out now, not after the work
        tempfile.TemporaryFile(prefix=".archgen-", dir=directory).close()
    except OSError as e:
        fail(f"cannot write '{path}': its directory {directory} takes no new file ({e.strerror}); give another path")


def emit(text: str, output: Optional[Path] = None) -> None:
    """Text to stdout, or to `output` written whole (a temporary file, then a rename)."""
    if output is None:
        sys.stdout.write(text)
        return
    from archgen.render import write_atomic

    check_output_path(output)
    write_atomic(os.fspath(output), text)


def emit_tables(tables: list[Table], fmt: Fmt, output: Optional[Path], only: Optional[str]) -> None:
    """Render a command's tables to stdout or `output`; `only` keeps the table of that key.

    CSV holds one table, so several are never run together in one stream: with
    `output` each goes to its own file beside it (FILE-KEY.csv, named on stderr);
    without, the command stops and says how to pick one.
    """
    from archgen.render import render, to_csv

    if only is not None:
        tables = [pick_table(tables, only)]
    if fmt is not Fmt.csv or len(tables) == 1:
        emit(render(tables, fmt.value), output)
        return
    keys = ", ".join(t.key for t in tables)
    if output is None:
        fail(f"this command makes {len(tables)} tables ({keys}) and CSV holds one: pick one with --table KEY "
             f"(e.g. --table {tables[0].key}), or give --output FILE to write one CSV file per table")
    written = [csv_path(output, t.key) for t in tables]
    for t, path in zip(tables, written):
        emit(to_csv(t), path)
    typer.echo(f"wrote {len(written)} CSV files, one per table: {', '.join(map(str, written))}", err=True)


def pick_table(tables: list[Table], key: str) -> Table:
    """The table of `key`, or a one-paragraph error listing the keys there are."""
    for t in tables:
        if t.key == key:
            return t
    fail(f"no table '{key}' here; this command makes {', '.join(t.key for t in tables)}")


def csv_path(output: Path, key: str) -> Path:
    """Where one of several tables goes: out.csv -> out-stages.csv."""
    return output.with_name(f"{output.stem}-{key}.csv")
