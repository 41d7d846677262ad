"""A design space: a spec whose fields may be distributions, plus a `space:` block of constraints and
objectives. Loaded and validated once, as strictly as a spec; then every candidate is made from it cheaply.

How the strictness is kept without validating each candidate from scratch:
every distribution's telling values (a choice's every option, a range's ends
and its second step) are substituted into the document, one at a time with the
others at their first value, and validated by the spec grammar's own
Validator, so a distribution over a field its family does not take, or a
value the field refuses, is an error at the distribution's line. Values drawn
later lie between validated ones, so a candidate is made by putting them into
the validated document (archgen.design.assign) and planned; what only the
planner can refuse (a cardinality that does not divide a width) rejects that
candidate. A space whose distributions change which fields are valid (a
choice over a block `type`, or over whole mappings) validates each candidate
in full instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from archgen.design import assign
from archgen.design.constraints import Constraint, parse_constraint
from archgen.design.distributions import Choice, Distribution, is_distribution, parse_distribution, with_field_type
from archgen.design.figures import FIGURES, PREDICTED
from archgen.design.objectives import Closest, Objective, Pareto
from archgen.errors import SpecError, did_you_mean
from archgen.grammar import schema
from archgen.grammar.loader import Raw, Spec, load_raw, load_spec, read_raw, resolve_name
from archgen.grammar.validate import Validator, describe
from archgen.grammar.yamlio import Loc, Path, format_path

#: The spaces archgen ships.
SPACES_DIR = FsPath(__file__).parent / "spaces"
#: The keys of a space's `space:` block.
SPACE_KEYS = ("constraints", "closest", "preserve", "per", "minimize", "maximize")
#: Spec fields a space file may not draw: they change which file is read or what the spec claims to be.
NOT_DRAWN = ("extends", "name", "paper", "torchvision")
#: Fields dropped from the specs a space writes: a sampled network is not the parent's paper model.
NOT_WRITTEN = ("extends", "paper", "torchvision", "space")


@dataclass(frozen=True)
class Axis:
    """One distribution and the field it sits on."""

    path: Path
    dist: Distribution
    #: A choice's options as the validator stores them (2 -> 2.0 for a float field), in order.
    validated: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return format_path(self.path)

    @property
    def label(self) -> str:
        """A short column heading: 'cardinality' for block.cardinality, 'depth2' for stages[1].depth, 'wa' for
        stages.regnet.wa, and 'regnet_depth' for stages.regnet.depth (not the counted figure `depth`)."""
        if len(self.path) == 3 and self.path[0] == "stages":
            if isinstance(self.path[1], int):
                return f"{self.path[2]}{self.path[1] + 1}"
            return f"{self.path[1]}_{self.path[2]}" if self.path[2] in FIGURES else self.path[2]
        if len(self.path) == 2 and self.path[0] in ("block", "input", "stem"):
            return self.path[1] if self.path[0] == "block" else f"{self.path[0]}_{self.path[1]}"
        return self.name


@dataclass
class Space:
    """A validated design space."""

    name: str
    file: str
    raw: dict
    locs: dict[Path, Loc]
    replaced_lists: dict[str, str]
    axes: list[Axis]
    constraints: list[Constraint]
    objective: Objective
    #: The representative spec, validated; None when each candidate is validated in full.
    template: Spec | None = field(default=None, repr=False)
    #: Where each axis's value goes in the template's document.
    puts: tuple[assign.Put, ...] = field(default=(), repr=False)

    def size(self) -> int | None:
        """Number of distinct candidates, or None for a space with a continuous axis."""
        total = 1
        for axis in self.axes:
            n = axis.dist.size()
            if n is None:
                return None
            total *= n
        return total

    def spec(self, values: tuple) -> Spec:
        """The candidate of these axis values (one per axis, in order), validated; SpecError if the
        spec grammar refuses it (only possible where the space validates candidates in full)."""
        if self.template is not None:
            doc = assign.put_doc(self.template.doc, self.puts, tuple(self.validated_value(axis, value)
                                                                     for axis, value in zip(self.axes, values)))
            return Spec(doc=doc, file=self.file, locs=self.locs, replaced_lists=self.replaced_lists)
        return validate_raw(self.raw_with(values), self, self.axes)

    def validated_value(self, axis: Axis, value: Any) -> Any:
        if isinstance(axis.dist, Choice):
            return axis.validated[axis.dist.options.index(value)]
        return value if axis.dist.integer else float(value)

    def raw_with(self, values: tuple) -> dict:
        raw = self.raw
        for axis, value in zip(self.axes, values):
            raw = assign.put_raw(raw, axis.path, value)
        return raw

    def written(self, values: tuple, name: str, description: str) -> dict:
        """The plain spec of a candidate, as a mapping to write as YAML: no distributions, no `space:`,
        nothing extended, and not the parent's paper or torchvision name."""
        raw = {k: v for k, v in self.raw_with(values).items() if k not in NOT_WRITTEN}
        return {"name": name, "description": description, **{k: v for k, v in raw.items()
                                                              if k not in ("name", "description")}}

    def labels(self) -> list[str]:
        """Column headings of the axes: short where they stay distinct, else the full paths."""
        short = [axis.label for axis in self.axes]
        return short if len(set(short)) == len(short) else [axis.name for axis in self.axes]

    def describe(self, values: tuple) -> str:
        return ", ".join(f"{axis.name}={value}" for axis, value in zip(self.axes, values))


def bundled_spaces() -> list[str]:
    """Names of the spaces shipped in archgen/design/spaces/."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def locate_space(ref: str | FsPath) -> FsPath:
    """A space file: a path, or the name of a bundled space."""
    path = FsPath(ref)
    if path.is_file() or "/" in str(ref) or str(ref).endswith((".yaml", ".yml")):
        return path
    if str(ref) in bundled_spaces():
        return SPACES_DIR / f"{ref}.yaml"
    raise SpecError(f"no space file '{ref}' and no bundled space of that name.{did_you_mean(str(ref), bundled_spaces())}"
                    f" Bundled spaces: {', '.join(bundled_spaces())}", path=str(ref))


def is_space(ref: str | FsPath) -> bool:
    """Whether `ref` is a design space rather than a spec: a file whose own document has a `space:` block or a
    distribution, or the name of a bundled space that is no spec's. Lets `archgen validate` take either and check
    each by its own grammar; a file that cannot be read is left to the spec loader to report."""
    path = FsPath(ref)
    if path.is_file():
        try:
            doc, _ = read_raw(path)
        except SpecError:
            return False
        return isinstance(doc, dict) and ("space" in doc or holds_distribution(doc))
    if "/" in str(ref) or str(ref) not in bundled_spaces():
        return False
    try:
        resolve_name(str(ref))
    except SpecError:
        return True
    return False


def load_space(ref: str | FsPath) -> Space:
    """Read, merge (`extends`), and validate a design-space file (a path or a bundled space's name);
    SpecError at the line of any mistake."""
    raw, file = load_raw(locate_space(ref))
    doc = dict(raw.doc)
    validator = Validator(raw.locs, str(file))
    block = doc.pop("space", None)
    if block is None:
        block = {}
    elif not isinstance(block, dict):
        raise validator.error(("space",), f"found {describe(block)}; expected a mapping of {', '.join(SPACE_KEYS)}")
    axes = find_axes(doc, validator)
    if not axes:
        raise validator.error((), "no field holds a distribution, so this is a spec, not a design space; give a "
                                  "field {range: [lo, hi], step: s}, {log_uniform: [lo, hi]} or {choice: [...]}")
    named_here = raw.locs.get(("name",)) is not None and raw.locs[("name",)].file == str(file)
    space = Space(name=str(doc["name"]) if named_here else FsPath(file).stem, file=str(file), raw=doc, locs=raw.locs,
                  replaced_lists=raw.replaced_lists, axes=axes, constraints=[], objective=Pareto())
    template, axes = validate_axes(space, validator)
    space.axes = axes
    if fast_path(axes):
        space.template, space.puts = template, assign.compile_puts(template.doc, [axis.path for axis in axes])
    for key in block:
        if key not in SPACE_KEYS:
            raise validator.error(("space", key), f"unknown key '{key}'.{did_you_mean(key, SPACE_KEYS)} "
                                                  f"A space: block takes {', '.join(SPACE_KEYS)}")
    space.constraints = parse_constraints(block.get("constraints"), validator)
    space.objective = parse_objective(block, raw, file, axes, validator)
    return space


def find_axes(doc: dict, validator: Validator) -> list[Axis]:
    """Every distribution in the document, in the order written."""
    axes: list[Axis] = []

    def walk(value: Any, path: Path) -> None:
        if is_distribution(value):
            if path and path[0] in NOT_DRAWN:
                raise validator.error(path, f"'{path[0]}' cannot be drawn from a distribution; a space draws the "
                                            "fields of the network, not which file it extends or what it is called")
            dist = parse_distribution(value, path, validator)
            if isinstance(dist, Choice):
                for i, option in enumerate(dist.options):
                    if holds_distribution(option):
                        raise validator.error(path + ("choice", i), "a choice's options are plain values; a "
                                                                    "distribution inside one is not drawn")
            axes.append(Axis(path, dist))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, path + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, path + (i,))

    walk(doc, ())
    axes.sort(key=lambda axis: written_at(validator.locs, axis.path))
    return axes


def holds_distribution(value: Any) -> bool:
    if is_distribution(value):
        return True
    if isinstance(value, dict):
        return any(holds_distribution(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_distribution(v) for v in value)
    return False


def written_at(locs: dict[Path, Loc], path: Path) -> tuple[str, int, int]:
    loc = locs.get(path)
    return (loc.file, loc.line, loc.column) if loc else ("", 0, 0)


def validate_axes(space: Space, validator: Validator) -> tuple[Spec, list[Axis]]:
    """The representative spec (every axis at its first value), validated, and the axes told their field's
    type; each axis's other telling values validated in turn, so a bad one is an error at its line."""
    first = tuple(axis.dist.representatives()[0] for axis in space.axes)
    template = validate_raw(space.raw_with(first), space, space.axes)
    typed = []
    for i, axis in enumerate(space.axes):
        checked = [template] + [validate_raw(space.raw_with(first[:i] + (value,) + first[i + 1:]), space, [axis])
                                for value in axis.dist.representatives()[1:]]
        try:
            stored = [assign.get_doc(spec.doc, axis.path) for spec in checked]
        except assign.Unresolved:
            stored = None
        if isinstance(axis.dist, Choice):
            typed.append(Axis(axis.path, axis.dist, tuple(stored) if stored is not None else ()))
            continue
        if stored is not None and any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in stored):
            raise validator.error(axis.path, f"a {type(axis.dist).__name__.lower()} draws numbers, and "
                                             f"{axis.name} is not a number field; use {{choice: [...]}}")
        integer = (all(isinstance(v, int) for v in stored) if stored is not None
                   else all(float(x) == int(x) for x in (axis.dist.lo, axis.dist.hi, axis.dist.step or 1)))
        typed.append(Axis(axis.path, with_field_type(axis.dist, integer, axis.path, validator)))
    return template, typed


def validate_raw(raw: dict, space: Space, axes: list[Axis] = ()) -> Spec:
    """The spec grammar's verdict on one substitution; an error inside one of `axes` says it is a value the
    distribution draws."""
    try:
        doc = Validator(space.locs, space.file).dataclass(schema.SpecDoc, raw, ())
    except SpecError as exc:
        drawn = exc.field is not None and any(exc.field.startswith(axis.name) for axis in axes)
        if drawn and not exc.message.startswith("unknown field"):
            raise SpecError(f"{exc.message} (a value the distribution draws: every value it draws must be one the "
                            f"field takes)", path=exc.path, line=exc.line, column=exc.column,
                            field=exc.field) from None
        raise
    return Spec(doc=doc, file=space.file, locs=space.locs, replaced_lists=space.replaced_lists)


def fast_path(axes: list[Axis]) -> bool:
    """Whether candidates may skip validation: every axis resolves in the validated document and none
    changes which fields are valid (a block type, a whole mapping or list)."""
    for axis in axes:
        if axis.path[-1] == "type":
            return False
        if isinstance(axis.dist, Choice):
            if not axis.validated or any(isinstance(o, (dict, list)) for o in axis.dist.options):
                return False
    return True


def parse_constraints(raw: Any, validator: Validator) -> list[Constraint]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise validator.error(("space", "constraints"), f"found {describe(raw)}; expected a list such as "
                                                        "['macs <= 4.1G', 'params <= 25.6M']")
    return [parse_constraint(item, ("space", "constraints", i), validator) for i, item in enumerate(raw)]


def parse_objective(block: dict, raw: Raw, file: FsPath, axes: list[Axis], validator: Validator) -> Objective:
    """`closest: {FIGURE: TARGET}` or `preserve: FIGURE` (with `per:`), else a Pareto front over
    `minimize:` / `maximize:` (default: minimise params, MACs and activations)."""
    given = [k for k in ("closest", "preserve") if k in block]
    if len(given) > 1:
        raise validator.error(("space", given[1]), "closest and preserve both name a target; keep one")
    if given:
        for key in ("minimize", "maximize"):
            if key in block:
                raise validator.error(("space", key), f"a space with '{given[0]}' looks for the nearest candidate "
                                                      f"per group, not a front; remove '{key}' or '{given[0]}'")
        figure, target, source = closest_target(given[0], block[given[0]], raw, file, validator)
        return Closest(figure, target, source, parse_per(block.get("per"), axes, validator))
    if "per" in block:
        raise validator.error(("space", "per"), "'per' groups the answers of closest: or preserve:, and this "
                                                "space has neither")
    minimize = figure_list(block.get("minimize"), "minimize", validator)
    maximize = figure_list(block.get("maximize"), "maximize", validator)
    if not minimize and not maximize:
        return Pareto()
    return Pareto(tuple(minimize), tuple(maximize))


def figure_list(raw: Any, key: str, validator: Validator) -> list[str]:
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise validator.error(("space", key), f"found {describe(raw)}; expected figures, e.g. [macs, params]")
    for i, name in enumerate(items):
        if name not in FIGURES:
            at = ("space", key, i) if isinstance(raw, list) else ("space", key)
            raise validator.error(at, f"unknown figure {describe(name)}.{did_you_mean(str(name), FIGURES)} "
                                      f"Figures: {', '.join(FIGURES)}")
    return list(items)


def closest_target(key: str, value: Any, raw: Raw, file: FsPath, validator: Validator) -> tuple[str, float, str]:
    """(figure, target value, where it came from) of `closest: {params: resnet50}` / `{params: 36.5M}`,
    or of `preserve: params` (the figure of the spec this space extends)."""
    from archgen.design.fast_count import figures
    from archgen.printed import parse_printed

    at = ("space", key)
    if key == "preserve":
        if value not in FIGURES:
            raise validator.error(at, f"found {describe(value)}; preserve takes a figure "
                                      f"({', '.join(FIGURES)}) of the spec this space extends")
        parent = raw.doc.get("extends")
        if parent is None:
            raise validator.error(at, "preserve keeps a figure of the spec this space extends, and it extends "
                                      "none; add 'extends:' or write closest: {FIGURE: SPEC or NUMBER}")
        reference, figure = parent, value
        refuse_predicted(figure, at, validator)
    else:
        if not isinstance(value, dict) or len(value) != 1:
            raise validator.error(at, f"found {describe(value)}; expected one figure and its target, e.g. "
                                      "{params: resnet50} or {params: 36.5M}")
        ((figure, reference),) = value.items()
        if figure not in FIGURES:
            raise validator.error(at + (figure,), f"unknown figure '{figure}'.{did_you_mean(figure, FIGURES)} "
                                                  f"Figures: {', '.join(FIGURES)}")
        refuse_predicted(figure, at + (figure,), validator)
        if isinstance(reference, (int, float)) and not isinstance(reference, bool):
            return figure, float(reference), f"{reference:,}"
        if not isinstance(reference, str):
            raise validator.error(at + (figure,), f"found {describe(reference)}; expected a number such as 36.5M "
                                                  "or a spec (a bundled name or a path)")
        try:
            return figure, parse_printed(reference).value, reference
        except ValueError:
            pass  # not a printed number such as 36.5M: a spec's name or path, read below
    from archgen.grammar.loader import locate

    try:
        spec = load_spec(locate(reference, FsPath(file).parent))
    except SpecError as exc:
        raise validator.error(at, f"cannot count the reference spec '{reference}': {exc}") from None
    return figure, float(figures(spec).get(figure)), f"{spec.name}'s {figure}"


def refuse_predicted(figure: str, at: Path, validator: Validator) -> None:
    """A target is a counted figure: a predicted one (latency) depends on the table a search is given."""
    if figure in PREDICTED:
        counted = ", ".join(f for f in FIGURES if f not in PREDICTED)
        raise validator.error(at, f"closest: and preserve: aim at a counted figure ({counted}); '{figure}' is "
                                  "predicted from the latency table a search is given: constrain it instead, e.g. "
                                  "constraints: ['latency <= 5'] with archgen search --latency TABLE.json")


def parse_per(raw: Any, axes: list[Axis], validator: Validator) -> tuple[Path, ...]:
    """`per: [block.cardinality]`: the axes whose values group the answers."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    names = {axis.name: axis.path for axis in axes}
    out = []
    for i, name in enumerate(items):
        if name not in names:
            at = ("space", "per", i) if isinstance(raw, list) else ("space", "per")
            raise validator.error(at, f"{describe(name)} is not a field this space draws.{did_you_mean(str(name), names)}"
                                      f" Its distributions sit on {', '.join(names)}")
        out.append(names[name])
    return tuple(out)

