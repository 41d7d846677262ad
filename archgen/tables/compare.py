"""Paper tables rebuilt from specs: each computed figure beside the number the paper printed.

Three shapes. An architecture table has a column per model and a row per part
of the network (the bracketed blocks times their depth, with the output
size), then rows of figures. An operator table is one model in the columns
MobileNetV2's Table 2 prints (input, operator, t, c, n, s), with archgen's
notation beside each row, then the figures. A complexity table has a row per model and, per
figure, the printed number, archgen's, and their difference. A difference is
marked when the computed figure falls outside the printed rounding
(archgen.printed: '3.8' is met by 3.75 to 3.85).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

from archgen.complexity import Profile, profile
from archgen.planner import ModelPlan, plan
from archgen.printed import parse_printed, within
from archgen.render import Number, Table, rounded
from archgen.grammar.loader import Spec, load_spec
from archgen.grammar.schema import Citation
from archgen.layer_kinds.conv import Conv
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
            return rounded(self.value).text
        scale, digits = self._scale_and_digits()
        return f"{self.value / scale:.{digits}f}{_SUFFIX.get(scale, f'e{int(math.log10(scale))}')}"

    def computed(self) -> Number:
        """The exact value, shown to one digit more than the paper printed."""
        return Number(self.value, self.computed_text())

    def difference(self) -> Optional[int]:
        """Computed less printed, exactly (a count: the printed '25.5M' is 25,500,000), or None."""
        return None if self.printed is None else round(self.value - parse_printed(self.printed).value)

    def difference_text(self) -> str:
        if self.printed is None:
            return ""
        scale, digits = self._scale_and_digits()
        diff = (self.value - parse_printed(self.printed).value) / scale
        text = f"{diff:+.{digits}f}{_SUFFIX.get(scale, '')}"
        if float(f"{diff:.{digits}f}") == 0:
            text = "0"
        return text if self.within else f"{text} ({OUTSIDE})"

    def difference_cell(self) -> Number | str:
        """The difference exact for programs, rounded (and marked when outside the rounding) for people."""
        return "" if self.printed is None else Number(self.difference(), self.difference_text())

    def to_dict(self) -> dict:
        return {"value": self.value, "printed": self.printed, "within_rounding": self.within,
                "difference": self.difference(), "input_size": self.input_size}


_SUFFIX = {1: "", 1e3: "K", 1e6: "M", 1e9: "G", 1e12: "T"}

#: What the papers' ResNets use and so what a table takes for granted: ReLU and batch norm.
DEFAULT_ACT_NORM = ("relu", "batch norm")


def act_and_norm(p: ModelPlan, counted: Profile) -> tuple[str, str]:
    """The network's activations and normalisation in words ('leaky_relu (slope 0.1)', 'group norm (32
    groups)', 'no norm'). The papers' notation leaves both out, so two networks that differ only there
    would print the same blocks; a table states them where they differ from DEFAULT_ACT_NORM."""
    doc = p.spec.doc
    acts = dict.fromkeys(getattr(b.family, "act", "relu") for s in p.stages for b in s.blocks)
    act = ", ".join(f"leaky_relu (slope {doc.leaky_slope:g})" if a == "leaky_relu" else a for a in acts)
    if not any(layer.op == "bn" for layer in counted.layers):
        return act, "no norm"
    norm = {"batch": "batch norm", "frozen_batch": "frozen batch norm",
            "group": f"group norm ({doc.norm.groups} groups)"}[doc.norm.type]
    return act, norm


def act_norm_note(p: ModelPlan, counted: Profile) -> str:
    """'act: silu; norm: group norm (32 groups)' or 'no norm': the parts that differ from ReLU and batch
    norm, or ''."""
    said = act_and_norm(p, counted)
    return "; ".join(words if words == "no norm" else f"{what}: {words}"
                     for what, words, default in zip(("act", "norm"), said, DEFAULT_ACT_NORM) if words != default)


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
    parts: dict[str, tuple[str, tuple[int, int, int]]] = {}
    layers = m.profile.layers
    stem_text = m.plan.stem.notation()
    stem_layers = [x for x in layers if x.name.startswith("stem.")]
    if m.plan.stem.pool:
        conv_text, pool_text = stem_text.rsplit("; ", 1)
        last_conv = [x for x in stem_layers if x.op != "pool"][-1]
        parts["stem"] = (conv_text, last_conv.out)
        parts["stem.pool"] = (pool_text, stem_layers[-1].out)
    elif stem_layers:  # a 'none' stem (VGG) has no part
        parts["stem"] = (stem_text, stem_layers[-1].out)
    for stage in m.plan.stages:
        types = [b.type for b in stage.blocks]
        main = types[-1]  # the stage's repeated block; a first block of another type (transition) stands apart
        groups: dict[str, list[tuple[str, int]]] = {}
        outs: dict[str, tuple[int, int, int]] = {}
        for i, b in enumerate(stage.blocks):
            key = stage.name if b.type == main else f"{stage.name}.{b.type}"
            text = b.notation()
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


def architecture_table(title: str, models: list[Model], rows: tuple[Row, ...], notes: list[str],
                       key: str) -> Table:
    """A column per model, a row per part (bracketed blocks x depth), then each figure beside its printing."""
    parts = [architecture_parts(m) for m in models]
    t = Table(title, ["layer name", "output size", *(m.label for m in models)], key=key)
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
    said = [act_and_norm(m.plan, m.profile) for m in models]
    if any(words != DEFAULT_ACT_NORM for words in said):
        t.add("act; norm", "", *("; ".join(words) for words in said))
    printed_figures = [f for f in FIGURES if any(m.figures[f].printed for m in models)] or ["params", "macs"]
    for i, name in enumerate(printed_figures):
        t.add(f"{FIGURES[name]}, paper", "", *(m.figures[name].printed or "-" for m in models), rule=i == 0)
        t.add(f"{FIGURES[name]}, archgen", _at(models, name), *(m.figures[name].computed() for m in models))
        if any(m.figures[name].printed for m in models):
            t.add(f"{FIGURES[name]}, difference", "", *(m.figures[name].difference_cell() for m in models))
    t.notes.extend(notes)
    t.data = _table_data(t, models)
    return t


def _at(models: list[Model], figure: str) -> str:
    sizes = {m.figures[figure].input_size for m in models} - {None}
    return f"at {sizes.pop()}px" if len(sizes) == 1 else ""


# ---- operator tables ----

class Operator(NamedTuple):
    """One row of an operator table (MobileNetV2's Table 2): what feeds it, its expansion t, its output, how
    often it repeats (n) and its stride (s), and archgen's notation of it."""

    input: tuple[int, int, int]
    t: str
    out: tuple[int, int, int]
    n: int
    s: str
    text: str


def operator_parts(m: Model) -> dict[str, Operator]:
    """The network as an operator table lists it. Keys: 'stem', 'layerN', and the head's steps ('head.conv',
    'head.pool', 'head.fc'). A stage's t is its first block's first conv's output over its input channels (the
    expansion of an inverted residual; 1 where there is no expansion conv), n its blocks, s the stride it
    takes; a pool or fc has no stride."""
    layers = m.profile.layers
    blocks = architecture_parts(m)
    parts: dict[str, Operator] = {}
    shape = (m.plan.in_chans, m.plan.input_size, m.plan.input_size)

    def add(key: str, out: tuple[int, int, int], t: str, n: int, strides: bool, text: str) -> None:
        nonlocal shape
        parts[key] = Operator(shape, t, out, n, str(shape[1] // out[1]) if strides else "-", text)
        shape = out

    stem = [x for x in layers if x.name.startswith("stem.")]
    if stem:
        add("stem", stem[-1].out, "-", 1, True, m.plan.stem.notation())
    for stage in m.plan.stages:
        first = next(x for x in stage.blocks[0].layers().leaves() if isinstance(x, Conv))
        out = [x for x in layers if x.name.startswith(f"{stage.name}.")][-1].out
        add(stage.name, out, f"{first.c_out / first.c_in:g}", len(stage.blocks), True, blocks[stage.name][0])
    for name, text in m.plan.head.parts():
        out = next(x for x in layers if x.name == f"head.{name}").out
        add(f"head.{name}", out, "-", 1, name == "conv", text)
    return parts


def operator_table(title: str, m: Model, rows: tuple[Row, ...], notes: list[str], key: str) -> Table:
    """The paper's own columns (input, operator, t, c, n, s), regenerated from one spec, beside archgen's
    notation of each row; then each figure beside its printing."""
    parts = operator_parts(m)
    t = Table(title, ["input", "operator", "t", "c", "n", "s", m.label], key=key)
    for row in rows:
        for part in (parts[k] for k in row.parts if k in parts):
            c, h, w = part.input
            t.add(f"{h}x{w}x{c}", row.label, part.t, part.out[0], part.n, part.s, part.text)
    said = act_and_norm(m.plan, m.profile)
    if said != DEFAULT_ACT_NORM:
        t.add("", "act; norm", "", "", "", "", "; ".join(said))
    for i, name in enumerate(f for f in FIGURES if m.figures[f].printed):
        t.add("", f"{FIGURES[name]}, paper", "", "", "", "", m.figures[name].printed, rule=i == 0)
        t.add(_at([m], name), f"{FIGURES[name]}, archgen", "", "", "", "", m.figures[name].computed())
        t.add("", f"{FIGURES[name]}, difference", "", "", "", "", m.figures[name].difference_cell())
    t.notes.extend(notes)
    t.data = _table_data(t, [m])
    return t


# ---- complexity tables ----

def complexity_table(title: str, models: list[Model], notes: list[str], key: str) -> Table:
    """A row per model; per printed figure: the paper's number, archgen's, and the difference."""
    figures = [f for f in FIGURES if any(m.figures[f].printed for m in models)] or ["params", "macs"]
    has_setting = any(m.setting for m in models)
    columns = ["model", *(["setting"] if has_setting else [])]
    for name in figures:
        columns += [f"{FIGURES[name]}, paper", f"{FIGURES[name]}, archgen", "difference"]
    t = Table(title, columns, key=key)
    for m in models:
        cells: list[Any] = [m.label, *([m.setting] if has_setting else [])]
        for name in figures:
            fig = m.figures[name]
            cells += [fig.printed or "-", fig.computed(), fig.difference_cell()]
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


#: Where one sentence of a note ends and the next begins ("et al. 2015" and "Fig. 5" do not end one).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])")


def _citation_notes(models: list[Model], own_paper: bool) -> list[str]:
    """Each model's citation notes, each sentence printed once: a sentence several models' notes share
    (ResNeXt-50's 2x40d, 4x24d and 8x14d specs open with the same paragraph) is printed under all their names."""
    said: dict[str, tuple[list[int], bool]] = {}  # sentence -> (models saying it, whether it opens a note)
    for i, m in enumerate(models):
        for note in _model_notes(m, own_paper):
            for position, sentence in enumerate(_SENTENCE_BREAK.split(note)):
                holders, _ = said.setdefault(sentence, ([], position == 0))
                if i not in holders:
                    holders.append(i)
    notes: list[str] = []
    group: list[str] = []
    group_holders: list[int] = []
    for sentence, (holders, opens) in said.items():
        if group and (opens or holders != group_holders):
            notes.append(f"{_names([models[i] for i in group_holders], models)}: {' '.join(group)}")
            group = []
        group.append(sentence)
        group_holders = holders
    if group:
        notes.append(f"{_names([models[i] for i in group_holders], models)}: {' '.join(group)}")
    return notes


def _model_notes(m: Model, own_paper: bool) -> list[str]:
    """What a table says about one model's printed numbers: where they were printed and the specs' notes."""
    c = m.citation
    if c is None:
        return ["its spec cites no printed numbers."]
    notes = []
    text = f"printed in {_cite(c)}" if own_paper else ""
    if c.note:
        text += ("; " if own_paper else "") + c.note
    if own_paper or c.note:
        notes.append(text)
    for f in m.figures.values():
        if f.printed is not None and f.source is not c:
            notes.append(f"{FIGURES[f.name]} printed in {_cite(f.source)}"
                         + (f"; {f.source.note}" if f.source.note else ""))
    return notes


def _names(models: list[Model], table: list[Model]) -> str:
    """'ResNeXt-50 2 x 40d, 4 x 24d and 8 x 14d': the models' labels, with their settings where the table
    holds several models of one label (so a note on the one ResNet-50 reads the same in every table)."""
    shared = {m.label for m in table if sum(other.label == m.label for other in table) > 1}
    settings: dict[str, list[str]] = {}
    for m in models:
        settings.setdefault(m.label, [])
        if m.label in shared and m.setting and m.setting not in settings[m.label]:
            settings[m.label].append(m.setting)
    return _and([f"{label} {_and(found)}" if found else label for label, found in settings.items()])


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


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
    key = re.sub(r"[^a-z0-9]+", "", layout.source.table.lower())  # 'Table 1' -> 'table1'
    if layout.shape == "architecture":
        return architecture_table(title, models, layout.rows or generic_rows(models), notes, key)
    if layout.shape == "operators":
        return operator_table(title, models[0], layout.rows, notes, key)
    return complexity_table(title, models, notes, key)


def specs_table(spec_refs: list[object]) -> Table:
    """Any specs side by side (a user's own files too), each beside its own paper's printed numbers."""
    models = [model_for(ref) for ref in spec_refs]
    notes = ["MACs are multiply-adds of convs and linear layers, bias excluded (what the ResNet-era papers "
             "call FLOPs); FLOPs = 2 x MACs.", *_citation_notes(models, own_paper=True), *_outside_note(models)]
    return architecture_table(" vs ".join(m.label for m in models), models, generic_rows(models), notes, "specs")


def stages_table(spec_refs: list[object]) -> Table:
    """Where two or more models differ: params and MACs stage by stage."""
    models = [model_for(ref) for ref in spec_refs]
    columns = ["stage"]
    for m in models:
        columns += [f"{m.label} params", f"{m.label} MACs"]
    t = Table("Params and MACs by stage", columns, key="stages")
    names = list(dict.fromkeys(s.name for m in models for s in m.profile.stages))
    for name in names:
        cells: list[Any] = [name]
        for m in models:
            stage = next((s for s in m.profile.stages if s.name == name), None)
            cells += [rounded(stage.params), rounded(stage.macs)] if stage else ["", ""]
        t.add(*cells)
    t.add("total", *(x for m in models for x in (rounded(m.profile.params), rounded(m.profile.macs))), rule=True)
    t.data = {"title": t.title, "models": [{"spec": m.spec.name, "input_size": m.profile.input_size,
                                            "stages": [{"name": s.name, "params": s.params, "macs": s.macs}
                                                       for s in m.profile.stages]} for m in models]}
    return t
