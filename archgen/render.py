"""One table model, five renderings: rich for people; json, csv, markdown and latex for programs and papers.

How a rich table meets a narrow terminal (80 columns, also the width a pipe gets). A cell, the
title and the notes wrap between words, never inside one, so no figure, path or spec name is split
across lines; a figure keeps its unit and its spread ('9.95 MiB', '0.597 ± 0.05'), a feature map its
channels ('14x14, 1024'), a batch its size ('batch 1') and a bracket of blocks its multiplicity
('1x1, 256] x 3') on one line. A word wider than the terminal (a long path) has a line of its own
and runs past the edge rather than being cut. Each column is at least as wide as its longest word,
header included, and the room left goes to the columns of longest text, the widest cut first. The
first of these that fits, with no cell wrapped to more than MAX_CELL_LINES lines, is drawn:

1. every column, in rich's box;
2. every column, compact: no vertical rules, two spaces between columns;
3. then 1 and 2 again without the table's first `droppable` column, then without the first two,
   and so on (the view names them, least needed first); a note says which were left out;
4. records: each row as lines of 'column  value', every column kept.

Figures are never abbreviated beyond their rounding, and csv and json always hold every column.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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


def quantity(n: int, noun: str) -> str:
    """'1 spec', '2 specs', '10,000 candidates': a count with its noun in the number it takes."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def share(part: float, whole: float) -> Number:
    """`part` as a percentage of `whole` for people ('12.5%'; '<0.1%' for a share that one decimal would
    print as none at all) and as a fraction for programs."""
    fraction = part / whole
    text = "<0.1%" if 0 < fraction < 0.0005 else f"{fraction:.1%}"
    return Number(fraction, text)


def one_format(values: Sequence[float | None], significant: int = 3, most: int = 3) -> list[Number | None]:
    """A column's figures at one number of decimals, enough for `significant` digits of its smallest (at
    most `most` decimals): a column reads '54.0, 74.7', never '54, 74.71'. None stays None (an empty cell)."""
    present = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    smallest = min(present, default=1.0)
    decimals = min(most, max(0, significant - 1 - math.floor(math.log10(smallest))))
    return [None if v is None else Number(v, f"{v:.{decimals}f}") for v in values]


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
    #: Columns a reader can do without, least needed first: what a rich table too wide for the terminal
    #: leaves out before it falls back to records (see the module docstring).
    droppable: tuple[str, ...] = ()

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


#: Stands for a space that must not break a line while rich wraps a cell (rich breaks at whitespace only);
#: a private-use character, one column wide, never in a cell's own text.
_GLUE = "\ue000"
#: The spaces a figure keeps: before its unit ('9.95 MiB') and around its spread ('0.5 ± 0.1').
_FIGURE_SPACE = re.compile(r"(?<=\d) (?=(?:[KMGT]i)?B\b|±)|(?<=±) (?=[-+.\d])")
#: The spaces between a bracket of blocks and its multiplicity ('... 1x1, 256] x 3'), and between a batch and
#: its size ('batch 1'), in any text.
_TIMES_SPACE = re.compile(r"(?<=\]) (?=x \d)|(?<=\] x) (?=\d)|(?<=\bbatch) (?=\d)")
#: The space between a feature map's size and its channels ('14x14, 1024'), in any text but a bracket of blocks
#: ('[1x1, 64; 3x3, 64; 1x1, 256] x 3' wraps between its layers' words, as the golden tables have it).
_SHAPE_SPACE = re.compile(r"(\b\d+x\d+,) (?=\d)")


def _glued(text: str, figure: bool = True) -> str:
    """`text` with the spaces that must not break glued; those of a figure's unit and spread only where
    `figure` (a Number's text, a title, a note: not a cell of names or words)."""
    text = _SHAPE_SPACE.sub(lambda m: m.group(1) + _GLUE, _TIMES_SPACE.sub(_GLUE, text))
    return _FIGURE_SPACE.sub(_GLUE, text) if figure else text


def _rich_text(value: Any) -> str:
    """The cell as rich draws it, with the spaces that must not break glued."""
    return _glued(cell(value), figure=isinstance(value, Number))


def _extent(text: str) -> tuple[int, int]:
    """(longest word, longest line) of a cell, in terminal columns."""
    from rich.cells import cell_len

    words = text.split()
    lines = text.splitlines() or [""]
    return max(map(cell_len, words), default=0), max(map(cell_len, lines))


def fitted_widths(columns: Sequence[str], rows: Sequence[Sequence[str]], room: int) -> list[int] | None:
    """Each column's width, so that all fit in `room` columns of text: at least its longest word (header
    included), at most its longest line, the widest cut first; None when the longest words alone overflow."""
    extents = [[_extent(c)] + [_extent(row[j]) for row in rows] for j, c in enumerate(columns)]
    least = [max(e[0] for e in column) for column in extents]
    most = [max(least[j], max(e[1] for e in column)) for j, column in enumerate(extents)]
    if sum(least) > room:
        return None
    cap = max(most, default=0)
    while sum(max(lo, min(hi, cap)) for lo, hi in zip(least, most)) > room:
        cap -= 1
    return [max(lo, min(hi, cap)) for lo, hi in zip(least, most)]


def wrap(text: str, width: int) -> list[str]:
    """`text` wrapped between words at `width` columns, as rich wraps a cell, except that a word wider than
    `width` has a line of its own, whole, rather than being folded."""
    from rich.cells import cell_len

    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lines.append("")
        for word in line.split():
            if lines[-1] and cell_len(lines[-1]) + 1 + cell_len(word) > width:
                lines.append(word)
            else:
                lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return lines


def wrapped_lines(text: str, width: int) -> int:
    """The lines `text` takes when wrapped between words at `width` columns (as rich wraps a cell)."""
    return len(wrap(text, width))


#: The frames a table is drawn in, tried in this order, each with the columns its rules and padding take
#: from a line of n columns: rich's heavy-headed box (a border left of every column and one at the end, a
#: space each side of a cell), then no vertical rules, two spaces between columns.
_FRAMES: dict[str, Callable[[int], int]] = {"boxed": lambda n: 3 * n + 1, "compact": lambda n: 2 * (n - 1)}
#: Lines a cell may wrap to and the table still read as a table, rather than as a column of fragments.
MAX_CELL_LINES = 4


def rich_layout(t: Table, cells: list[list[str]], width: int) -> tuple[list[int], list[int], str] | None:
    """(the columns kept, their widths, the frame) of the fullest table that fits `width` with no cell over
    MAX_CELL_LINES lines: every column boxed, then compact, then without the first droppable column, boxed
    and compact, and so on; None when none fits, and the table is printed as records."""
    for leave_out in range(len(t.droppable) + 1):
        dropped = set(t.droppable[:leave_out])
        kept = [j for j, c in enumerate(t.columns) if c not in dropped]
        rows = [[row[j] for j in kept] for row in cells]
        for frame, cost in _FRAMES.items():
            widths = fitted_widths([t.columns[j] for j in kept], rows, width - cost(len(kept)))
            if widths is not None and all(wrapped_lines(text, w) <= MAX_CELL_LINES
                                          for row in rows for text, w in zip(row, widths)):
                return kept, widths, frame
    return None


def to_rich(t: Table, width: int | None = None) -> str:
    """The table drawn by rich, at most `width` columns wide (default: the terminal's width, as rich's
    Console measures it: the COLUMNS variable, the terminal, or 80); no line ends in spaces. A width too
    narrow for the table compacts it, drops its droppable columns, or prints records (see the module
    docstring)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    width = width or Console().width
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=False)
    _print_prose(console, t.title)
    cells = [[_rich_text(c) for c in row] for row in t.rows]
    layout = rich_layout(dataclasses.replace(t, columns=[_glued(c) for c in t.columns],
                                             droppable=tuple(_glued(c) for c in t.droppable)), cells, width)
    notes = list(t.notes)
    if layout is None:
        _print_records(console, t, cells)
    else:
        kept, widths, frame = layout
        table = RichTable(show_lines=False) if frame == "boxed" else \
            RichTable(box=box.SIMPLE, show_edge=False, padding=(0, 1, 0, 0), pad_edge=False)
        for j, w in zip(kept, widths):
            table.add_column(Text(_glued(t.columns[j])), width=w, overflow="fold")
        for i, row in enumerate(cells):
            table.add_row(*[Text(row[j]) for j in kept], end_section=(i + 1) in t.rules)
        console.print(table)
        left_out = [c for j, c in enumerate(t.columns) if j not in kept]
        if left_out:
            notes.append(f"Left out to fit {width} columns: {', '.join(repr(c) for c in left_out)}; a wider "
                         "terminal (COLUMNS=N) or --format csv or json shows every column.")
    for note in notes:
        _print_prose(console, note)
    return "".join(line.rstrip().replace(_GLUE, " ") + "\n" for line in console.export_text().splitlines())


def _print_prose(console: Any, text: str) -> None:
    """A title or a note, wrapped between words to the console's width; a word wider than that (a long path)
    on a line of its own, whole, past the edge."""
    from rich.text import Text

    for line in wrap(_glued(text), console.width):
        console.print(Text(line), no_wrap=True, overflow="ignore", crop=False)


def _print_records(console: Any, t: Table, cells: list[list[str]]) -> None:
    """A table too wide for the terminal, a row at a time: each non-empty cell on its own line beside its
    column's name, indented by two, the names aligned; a blank line between rows. A value's word wider than
    its room runs past the edge, whole."""
    from rich.cells import cell_len
    from rich.text import Text

    columns = [_glued(c) for c in t.columns]
    rows = [[(c, text) for c, text in zip(columns, row) if text] for row in cells]
    # Two columns of indent and two between a name and its value; the names wrap, rather than a value's word.
    room = console.width - 4
    longest_value = max((_extent(text)[0] for pairs in rows for _, text in pairs), default=0)
    names = min(max(map(cell_len, columns)), max(max(_extent(c)[0] for c in columns), room - longest_value))
    for i, pairs in enumerate(rows):
        if i:
            console.print()
        for name, text in pairs:
            name_lines, value_lines = wrap(name, names), wrap(text, room - names)
            for k in range(max(len(name_lines), len(value_lines))):
                left = name_lines[k] if k < len(name_lines) else ""
                right = value_lines[k] if k < len(value_lines) else ""
                console.print(Text(f"  {left}{' ' * (names - cell_len(left))}  {right}"), no_wrap=True,
                              overflow="ignore", crop=False)


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
    try:
        fd, tmp = tempfile.mkstemp(prefix=".archgen-", dir=directory)
    except OSError as e:  # the error names the temporary file, which the user never asked for
        raise type(e)(e.errno, f"cannot write there ({e.strerror})", path) from None
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
