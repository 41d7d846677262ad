"""Paper tables rebuilt from specs: each computed figure beside the number the paper printed.

Two shapes. An architecture table has a column per model and a row per part
of the network (the bracketed blocks times their depth, with the output
size), then rows of figures. A complexity table has a row per model and, per
figure, the printed number, archgen's, and their difference. A difference is
marked when the computed figure falls outside the printed rounding
(archgen.printed: '3.8' is met by 3.75 to 3.85).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from archgen.complexity import Profile, profile, stem_notation
from archgen.planner import ModelPlan, plan
from archgen.printed import parse_printed, within
from archgen.render import Table, human
from archgen.grammar.loader import Spec, load_spec
from archgen.grammar.schema import Citation
from archgen.tables.layouts import Layout, Row

#: Figures a paper prints, in table order, with the words a table uses for them.
FIGURES = {"params": "params", "macs": "MACs (the papers' FLOPs)", "flops": "FLOPs (2 x MACs)"}
OUTSIDE = "outside rounding"


@dataclass
class Figure:
    """One computed figure beside its printing (None when the paper printed none)."""

    name: str  # params, macs, flops
    value: int
    printed: Optional[str]
    input_size: Optional[int]  # the image side the value was counted at (None for params)
    source: Optional[Citation] = None  # the printing it stands beside

    @property
    def within(self) -> Optional[bool]:
        return None if self.printed is None else within(self.printed, self.value)

    def _scale_and_digits(self) -> tuple[float, int]:
        """The printed unit (0.27M -> 1e6) and one digit more than the paper printed."""
        printed = parse_printed(self.printed)
        mantissa = re.match(r"\s*([0-9]*(?:\.([0-9]*))?)", self.printed)
        value = float(mantissa.group(1) or 0)
        scale = 10 ** round(math.log10(printed.value / value)) if value else 1
        return scale, len(mantissa.group(2) or "") + 1

    def computed_text(self) -> str:
        if self.printed is None:
            return human(self.value)
        scale, digits = self._scale_and_digits()
        return f"{self.value / scale:.{digits}f}{_SUFFIX.get(scale, f'e{int(math.log10(scale))}')}"

    def difference_text(self) -> str:
        if self.printed is None:
            return ""
        scale, digits = self._scale_and_digits()
        diff = (self.value - parse_printed(self.printed).value) / scale
        text = f"{diff:+.{digits}f}{_SUFFIX.get(scale, '')}"
        if float(f"{diff:.{digits}f}") == 0:
            text = "0"
        return text if self.within else f"{text} ({OUTSIDE})"

    def to_dict(self) -> dict:
        return {"value": self.value, "printed": self.printed, "within_rounding": self.within,
                "difference": None if self.printed is None else self.value - parse_printed(self.printed).value,
                "input_size": self.input_size}


_SUFFIX = {1: "", 1e3: "K", 1e6: "M", 1e9: "G", 1e12: "T"}


@dataclass
class Model:
    """A spec in a table: its plan, analytic counts, the citation the table reads, and its figures."""

    label: str
    setting: str
    spec: Spec
    plan: ModelPlan
    profile: Profile
    citation: Optional[Citation]
    figures: dict[str, Figure]


def citations(spec: Spec) -> list[Citation]:
    """The spec's own paper and every other printing of it (`paper.also`)."""
    paper = spec.doc.paper
    if paper is None:
        return []
    return [paper, *(paper.also or [])]


def citation_in(spec: Spec, arxiv: Optional[str], table: Optional[str] = None) -> Optional[Citation]:
    """The printing of this model in paper `arxiv` (the spec's own paper when None): in `table` if the spec
    cites that table, else in any table of that paper (the table notes say which)."""
    found = citations(spec)
    if arxiv is None:
        return found[0] if found else None
    same_paper = [c for c in found if c.arxiv == arxiv]
    return next((c for c in same_paper if names_table(c, table)), same_paper[0] if same_paper else None)


def names_table(c: Citation, table: Optional[str]) -> bool:
    """Whether the citation's table text names `table` ('Table 8 (ResNet-50)' names 'Table 8', not 'Table 80')."""
    return table is not None and c.table is not None and re.search(rf"\b{re.escape(table)}\b", c.table) is not None


def model_for(spec_ref: object, label: str = "", setting: str = "", arxiv: Optional[str] = None,
              table: Optional[str] = None) -> Model:
    """Count a spec and pair each figure with the printing in paper `arxiv` (or the spec's own paper)."""
    spec = load_spec(spec_ref)
    p = plan(spec)
    citation = citation_in(spec, arxiv, table)
    counted = profile(p)
    figures = {}
    for name in FIGURES:
        # A paper's table reads its own paper; a free comparison takes each figure from the first printing of it.
        source = citation if arxiv is not None else next(
            (c for c in citations(spec) if getattr(c, name) is not None), citation)
        size = source.input_size if source is not None and source.input_size else None
        at_size = profile(p, size) if size and size != counted.input_size else counted
        value = {"params": counted.params, "macs": at_size.macs, "flops": at_size.flops}[name]
        figures[name] = Figure(name, value, getattr(source, name, None) if source else None,
                               None if name == "params" else at_size.input_size, source)
    return Model(label or spec.name, setting, spec, p, counted, citation, figures)


def layout_models(layout: Layout) -> list[Model]:
    """The layout's models (every entry names a bundled spec; tests/test_tables.py holds that)."""
    return [model_for(entry.spec, entry.label, entry.setting, layout.source.arxiv, layout.source.table)
            for entry in layout.entries]


# ---- architecture tables ----

def architecture_parts(m: Model) -> dict[str, tuple[str, tuple[int, int, int]]]:
    """The network in parts, each with its text in the papers' notation and its output (c, h, w).

    Keys: 'stem' (its convs), 'stem.pool', 'layerN' (the stage's blocks), 'layerN.<type>'
    (blocks of another type inside a stage, such as DenseNet's transition), 'head'.
    """
    from archgen.blocks.registry import get_block

    parts: dict[str, tuple[str, tuple[int, int, int]]] = {}
    layers = m.profile.layers
    stem_text = stem_notation(m.plan)
    stem_layers = [x for x in layers if x.name.startswith("stem.")]
    if m.plan.stem.pool:
        conv_text, pool_text = stem_text.rsplit("; ", 1)
        last_conv = [x for x in stem_layers if x.op != "pool"][-1]
        parts["stem"] = (conv_text, last_conv.out)
        parts["stem.pool"] = (pool_text, stem_layers[-1].out)
    else:
        parts["stem"] = (stem_text, stem_layers[-1].out)
    for stage in m.plan.stages:
        types = [b.type for b in stage.blocks]
        main = types[-1]  # the stage's repeated block; a first block of another type (transition) stands apart
        groups: dict[str, list[tuple[str, int]]] = {}
        outs: dict[str, tuple[int, int, int]] = {}
        for i, b in enumerate(stage.blocks):
            key = stage.name if b.type == main else f"{stage.name}.{b.type}"
            text = get_block(b.type).notation(b)
            runs = groups.setdefault(key, [])
            if runs and runs[-1][0] == text:
                runs[-1] = (text, runs[-1][1] + 1)
            else:
                runs.append((text, 1))
            prefix = f"{stage.name}.{i}."
            outs[key] = [x for x in layers if x.name.startswith(prefix)][-1].out
        for key, runs in groups.items():
            # A lone block of another type (a transition) is written plainly, as the papers do.
            parts[key] = (" ".join(text if key != stage.name and n == 1 else f"[{text}] x {n}" for text, n in runs),
                          outs[key])
    head = m.profile.stages[-1]
    parts["head"] = (head.notation, head.out)
    return parts


def generic_rows(models: list[Model]) -> tuple[Row, ...]:
    """Rows for specs no layout describes: every part any of them has, in network order."""
    keys: dict[str, None] = {}
    for m in models:
        keys.update(dict.fromkeys(architecture_parts(m)))
    label = {"stem": "stem", "stem.pool": "stem pool", "head": "head"}
    ordered = sorted(keys, key=lambda k: (k != "stem", k != "stem.pool", k == "head",
                                          _stage_index(k), "." not in k))
    return tuple(Row(label.get(k, k.replace(".", " ")), (k,)) for k in ordered)


def _stage_index(key: str) -> int:
    match = re.match(r"layer(\d+)", key)
    return int(match.group(1)) if match else 0


def _size(out: tuple[int, int, int]) -> str:
    return f"{out[1]}x{out[2]}"


def architecture_table(title: str, models: list[Model], rows: tuple[Row, ...], notes: list[str]) -> Table:
    """A column per model, a row per part (bracketed blocks x depth), then each figure beside its printing."""
    parts = [architecture_parts(m) for m in models]
    t = Table(title, ["layer name", "output size", *(m.label for m in models)])
    for row in rows:
        present = [[p[k] for k in row.parts if k in p] for p in parts]
        if not any(present):
            continue
        outs = [cells[-1][1] for cells in present if cells]
        size = _size(outs[0])
        cells = []
        for found in present:
            text = ", then ".join(text for text, _ in found)
            if found and _size(found[-1][1]) != size:
                text += f" (output {_size(found[-1][1])})"
            cells.append(text)
        t.add(row.label, size, *cells)
    printed_figures = [f for f in FIGURES if any(m.figures[f].printed for m in models)] or ["params", "macs"]
    for i, name in enumerate(printed_figures):
        t.add(f"{FIGURES[name]}, paper", "", *(m.figures[name].printed or "-" for m in models), rule=i == 0)
        t.add(f"{FIGURES[name]}, archgen", _at(models, name), *(m.figures[name].computed_text() for m in models))
        if any(m.figures[name].printed for m in models):
            t.add(f"{FIGURES[name]}, difference", "", *(m.figures[name].difference_text() for m in models))
    t.notes.extend(notes)
    t.data = _table_data(t, models)
    return t


def _at(models: list[Model], figure: str) -> str:
    sizes = {m.figures[figure].input_size for m in models} - {None}
    return f"at {sizes.pop()}px" if len(sizes) == 1 else ""


# ---- complexity tables ----

def complexity_table(title: str, models: list[Model], notes: list[str]) -> Table:
    """A row per model; per printed figure: the paper's number, archgen's, and the difference."""
    figures = [f for f in FIGURES if any(m.figures[f].printed for m in models)] or ["params", "macs"]
    has_setting = any(m.setting for m in models)
    columns = ["model", *(["setting"] if has_setting else [])]
    for name in figures:
        columns += [f"{FIGURES[name]}, paper", f"{FIGURES[name]}, archgen", "difference"]
    t = Table(title, columns)
    for m in models:
        cells: list[Any] = [m.label, *([m.setting] if has_setting else [])]
        for name in figures:
            fig = m.figures[name]
            cells += [fig.printed or "-", fig.computed_text(), fig.difference_text()]
        t.add(*cells)
    t.notes.extend(notes)
    t.data = _table_data(t, models)
    return t


# ---- shared ----

def _table_data(t: Table, models: list[Model]) -> dict:
    """The JSON form: exact integers and the printings they are compared with."""
    return {"title": t.title, "columns": t.columns, "rows": t.rows, "notes": t.notes,
            "models": [{"label": m.label, "setting": m.setting, "spec": m.spec.name,
                        "source": _cite(m.citation) if m.citation else None,
                        **{name: fig.to_dict() for name, fig in m.figures.items()}} for m in models]}


def _cite(c: Citation) -> str:
    who = f"{c.authors} {c.year}" if c.authors else (c.title or "")
    return ", ".join(x for x in (who, c.table, f"arXiv:{c.arxiv}" if c.arxiv else None) if x)


def _citation_notes(models: list[Model], own_paper: bool) -> list[str]:
    notes = []
    for m in models:
        c = m.citation
        if c is None:
            notes.append(f"{m.label}: its spec cites no printed numbers.")
            continue
        text = f"{m.label}: " + (f"printed in {_cite(c)}" if own_paper else "")
        if c.note:
            text += ("; " if own_paper else "") + c.note
        if own_paper or c.note:
            notes.append(text)
        for f in m.figures.values():
            if f.printed is not None and f.source is not c:
                notes.append(f"{m.label}: {FIGURES[f.name]} printed in {_cite(f.source)}"
                             + (f"; {f.source.note}" if f.source.note else ""))
    return notes


def _outside_note(models: list[Model]) -> list[str]:
    if any(f.within is False for m in models for f in m.figures.values()):
        return [f"'{OUTSIDE}': the computed figure is not what the printed one rounds from (the paper's 3.8 "
                "means 3.75 to 3.85); the notes say why where it is known."]
    return []


def layout_table(layout: Layout) -> Table:
    """One of the papers' tables, regenerated."""
    models, notes = layout_models(layout), []
    title = f"{layout.source.cite}: {layout.source.title}"
    elsewhere = [f"{m.label} {m.setting}".strip() + f" ({m.citation.table})" for m in models
                 if m.citation is not None and m.citation.table and not names_table(m.citation, layout.source.table)]
    if elsewhere:
        notes.append(f"Printed in another table of the same paper: {', '.join(elsewhere)}.")
    notes = [f"Reproduces: {layout.convention}", *notes, *_citation_notes(models, own_paper=False),
             *_outside_note(models), *layout.notes]
    if layout.shape == "architecture":
        return architecture_table(title, models, layout.rows or generic_rows(models), notes)
    return complexity_table(title, models, notes)


def specs_table(spec_refs: list[object]) -> Table:
    """Any specs side by side (a user's own files too), each beside its own paper's printed numbers."""
    models = [model_for(ref) for ref in spec_refs]
    notes = ["MACs are multiply-adds of convs and linear layers, bias excluded (what the ResNet-era papers "
             "call FLOPs); FLOPs = 2 x MACs.", *_citation_notes(models, own_paper=True), *_outside_note(models)]
    return architecture_table(" vs ".join(m.label for m in models), models, generic_rows(models), notes)


def stages_table(spec_refs: list[object]) -> Table:
    """Where two or more models differ: params and MACs stage by stage."""
    models = [model_for(ref) for ref in spec_refs]
    columns = ["stage"]
    for m in models:
        columns += [f"{m.label} params", f"{m.label} MACs"]
    t = Table("Params and MACs by stage", columns)
    names = list(dict.fromkeys(s.name for m in models for s in m.profile.stages))
    for name in names:
        cells: list[Any] = [name]
        for m in models:
            stage = next((s for s in m.profile.stages if s.name == name), None)
            cells += [human(stage.params), human(stage.macs)] if stage else ["", ""]
        t.add(*cells)
    t.add("total", *(x for m in models for x in (human(m.profile.params), human(m.profile.macs))), rule=True)
    t.data = {"title": t.title, "models": [{"spec": m.spec.name, "input_size": m.profile.input_size,
                                            "stages": [{"name": s.name, "params": s.params, "macs": s.macs}
                                                       for s in m.profile.stages]} for m in models]}
    return t
