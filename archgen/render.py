"""One table model, five renderings: rich for people; json, csv, markdown and latex for programs and papers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("rich", "json", "csv", "markdown", "latex")


@dataclass(frozen=True)
class Number:
    """A figure as people read it (`text`, rounded: '25.56M') and as programs read it (`value`, exact:
    25557032): rich, markdown and latex print the text; csv and json carry the value. A cell that words
    several figures has a text of exact figures for its value."""

    value: int | float | str
    text: str

    def __str__(self) -> str:
        return self.text


def rounded(n: int | float, digits: int = 2) -> Number:
    """`n` shown rounded to people ('25.56M') and exact to programs."""
    return Number(n, human(n, digits))


@dataclass
class Table:
    """Rows of cells under named columns; `data` replaces the rows in JSON when a command has richer data.

    `key` names the table among a command's tables (`--table KEY`, the suffix of its CSV file).
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: Any = None
    #: Row indices drawn with a rule above them (totals).
    rules: set[int] = field(default_factory=set)
    key: str = "table"

    def add(self, *cells: Any, rule: bool = False) -> None:
        if rule:
            self.rules.add(len(self.rows))
        self.rows.append(list(cells))


def cell(value: Any) -> str:
    """A cell as people read it: rounded figures, floats to four significant digits."""
    if value is None:
        return ""
    if isinstance(value, Number):
        return value.text
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def exact_cell(value: Any) -> str:
    """A cell as programs read it: every number exact (a float to all its digits)."""
    if isinstance(value, Number):
        value = value.value
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def json_value(value: Any) -> Any:
    """json.dumps' fallback: a Number is its exact value; anything else unknown to JSON, its text."""
    return value.value if isinstance(value, Number) else str(value)


def render(tables: Table | list[Table], fmt: str, width: int | None = None) -> str:
    """Text of the tables in `fmt`; 'rich' is drawn `width` columns wide at most (default: the terminal's,
    as rich measures it). A note already printed under an earlier table is not printed again.
    CSV holds one table: several raise ValueError (write each with to_csv)."""
    tables = [tables] if isinstance(tables, Table) else tables
    if fmt == "json":
        payload = [t.data if t.data is not None else
                   {"title": t.title, "columns": t.columns, "rows": [dict(zip(t.columns, r)) for r in t.rows],
                    "notes": t.notes} for t in tables]
        return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=json_value) + "\n"
    if fmt == "csv":
        if len(tables) != 1:
            raise ValueError(f"CSV holds one table, not {len(tables)}: {', '.join(t.key for t in tables)}")
        return to_csv(tables[0])
    if fmt == "rich":
        return "\n".join(to_rich(t, width) for t in unrepeated_notes(tables))
    renderer = {"markdown": to_markdown, "latex": to_latex}[fmt]
    return "\n".join(renderer(t) for t in unrepeated_notes(tables))


def unrepeated_notes(tables: list[Table]) -> list[Table]:
    """The tables with each note kept only where it first appears (tables of one paper share notes)."""
    printed: set[str] = set()
    out = []
    for t in tables:
        notes = [n for n in dict.fromkeys(t.notes) if n not in printed]
        printed.update(notes)
        out.append(dataclasses.replace(t, notes=notes))
    return out


def to_csv(t: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(t.columns)
    for row in t.rows:
        writer.writerow([exact_cell(c) for c in row])
    return out.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(t: Table) -> str:
    lines = [f"**{t.title}**", "", "| " + " | ".join(_md_escape(c) for c in t.columns) + " |",
             "|" + "|".join(" --- " for _ in t.columns) + "|"]
    lines += ["| " + " | ".join(_md_escape(cell(c)) for c in row) + " |" for row in t.rows]
    if t.notes:
        lines += [""] + [f"- {_md_escape(n)}" for n in t.notes]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(t: Table) -> str:
    """A booktabs table, ready for \\usepackage{booktabs}."""
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(t.title)}}}",
             r"\begin{tabular}{" + "l" * len(t.columns) + "}", r"\toprule",
             " & ".join(latex_escape(c) for c in t.columns) + r" \\", r"\midrule"]
    for i, row in enumerate(t.rows):
        if i in t.rules:
            lines.append(r"\midrule")
        lines.append(" & ".join(latex_escape(cell(c)) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in t.notes:
        lines.append(r"\par\smallskip{\footnotesize " + latex_escape(note) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_rich(t: Table, width: int | None = None) -> str:
    """The table drawn by rich, at most `width` columns wide (default: the terminal's width, as rich's
    Console measures it: the COLUMNS variable, the terminal, or 80); no line ends in spaces."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    table = RichTable(title=t.title, title_justify="left", show_lines=False)
    for c in t.columns:
        table.add_column(c, overflow="fold")
    for i, row in enumerate(t.rows):
        table.add_row(*[escape(cell(c)) for c in row], end_section=(i + 1) in t.rules)
    console = Console(width=width or Console().width, record=True, file=io.StringIO(), force_terminal=False)
    console.print(table)
    for note in t.notes:
        console.print(note, markup=False, highlight=False)
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: POSIX offers no other way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file.

    The file gets the mode any new file gets (0o666 less the umask), not
    mkstemp's private 0o600, so results are readable by whoever the umask allows.
    """
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory", path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, "No such directory", directory)
    fd, tmp = tempfile.mkstemp(prefix=".archgen-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def human(n: float, digits: int = 2) -> str:
    """25557032 -> '25.56M'; the figures tables print for people (json keeps exact integers)."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return f"{n:g}"
