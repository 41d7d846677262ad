"""The CLI stays thin: a command parses its options, calls one library function and renders (issue 18).

Orchestration (job grids, resuming, device and Ray choices, search strategies) lives in the library with its
own tests, so no function of archgen/cli/ may grow past 60 lines, its signature and docstring included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import archgen

CLI = Path(archgen.__file__).parent / "cli"
MAX_LINES = 60


def functions(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function and method in the file, decorators excluded."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{prefix}{child.name}", child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(path.read_text()), "")
    return found


def test_no_cli_function_is_longer_than_60_lines():
    long = [f"{path.name}:{line} {name} ({lines} lines)" for path in sorted(CLI.glob("*.py"))
            for name, line, lines in functions(path) if lines > MAX_LINES]
    assert not long, f"move the orchestration into the library: {long}"


def test_the_scan_sees_the_commands_and_measures_them_whole():
    """The scan is not vacuous: it finds the commands, with their option lists counted in their length."""
    found = {name: lines for path in CLI.glob("*.py") for name, _, lines in functions(path)}
    assert {"bench_command", "calibrate_command", "search_command", "JobProgress.job_done"} <= set(found)
    assert found["bench_command"] > 40  # its 18 options alone take more than 40 lines


def test_a_function_of_61_lines_is_caught(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    path = tmp_path / "long.py"
    path.write_text(f"def command():\n{body}\n")
    assert functions(path) == [("command", 1, 61)]
