"""Specs a design command makes, as plain YAML files written whole (a temporary file, then a rename)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from archgen.render import write_atomic


def spec_text(mapping: dict, header: str) -> str:
    """YAML of a spec, leaf mappings on one line as the bundled specs write them, under a comment."""
    body = yaml.safe_dump(mapping, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def write_spec(path: Path, mapping: dict, header: str) -> None:
    write_atomic(os.fspath(path), spec_text(mapping, header))


def prepare_dir(directory: Path) -> None:
    """Make the output directory (its parent must exist); refuse a file in its place."""
    from archgen.errors import UserError

    if directory.exists() and not directory.is_dir():
        raise UserError(f"cannot write specs into '{directory}': it is a file; give a directory")
    if not directory.resolve().parent.is_dir():
        raise UserError(f"cannot write specs into '{directory}': its parent {directory.resolve().parent} does not "
                        "exist")
    directory.mkdir(exist_ok=True)
