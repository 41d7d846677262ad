"""Turn a raw YAML mapping into the schema's dataclasses, or raise SpecError at the offending line."""

from __future__ import annotations

import math
import typing
from typing import Any

from archgen.errors import SpecError, did_you_mean
from archgen.grammar import schema
from archgen.grammar.yamlio import Loc, Path, format_path


class Validator:
    """Walks a raw document against the schema; every error names file, line and field."""

    def __init__(self, locs: dict[Path, Loc], file: str) -> None:
        self.locs = locs
        self.file = file

    def error(self, path: Path, message: str) -> SpecError:
        probe = path
        while probe and probe not in self.locs:
            probe = probe[:-1]
        loc = self.locs.get(probe)
        return SpecError(message, path=loc.file if loc else self.file, line=loc.line if loc else None,
                         column=loc.column if loc else None, field=format_path(path) or None)

    def dataclass(self, cls: type, raw: Any, path: Path) -> Any:
        if not isinstance(raw, dict):
            raise self.error(path, f"found {describe(raw)}; expected a mapping of {cls.__name__.lower()} fields "
                                   f"({', '.join(schema.fields_of(cls))})")
        fields = schema.fields_of(cls)
        hints = schema.hints_of(cls)
        open_to_family = getattr(cls, "family_args", False)
        for key in raw:
            if key not in fields and not open_to_family:
                home = misplaced(str(key), raw[key]) if cls is schema.SpecDoc and not path else ""
                raise self.error(path + (key,), f"unknown field '{key}'.{home or did_you_mean(key, fields)} "
                                                f"Allowed here: {', '.join(fields)}")
        values = {}
        rule = self.stage_rule(raw, path) if cls is schema.SpecDoc else None
        for name, f in fields.items():
            if name == "stages" and rule is not None:
                values["stage_rule"] = rule
            elif name in raw:
                values[name] = self.value(hints[name], raw[name], path + (name,), f.metadata)
            elif f.metadata.get("required"):
                raise self.error(path, f"the required field '{name}' is missing ({f.metadata['doc']})")
        if open_to_family:
            values["args"] = {k: v for k, v in raw.items() if k not in fields}
        obj = cls(**values)
        if cls is schema.SpecDoc:
            obj.written = frozenset(raw)
            self.family_fields(obj)
        return obj

    def stage_rule(self, raw: dict, path: Path) -> dict | None:
        """`stages:` written as a mapping is a rule that generates the stages: exactly one registered rule, by
        name, with its fields."""
        from archgen.blocks import stage_rule_class, stage_rule_names

        rule = raw.get("stages")
        if not isinstance(rule, dict):
            return None
        at = path + ("stages",)
        if len(rule) != 1:
            raise self.error(at, f"a stage rule is one mapping naming one rule ({', '.join(stage_rule_names())}), "
                                 "e.g. {regnet: {depth: 22, w0: 24, wa: 24.48, wm: 2.54, group_width: 16}}; or "
                                 "write the stages as a list")
        ((name, fields),) = rule.items()
        try:
            cls = stage_rule_class(str(name))
        except KeyError as exc:
            raise self.error(at + (name,), exc.args[0]) from None
        return {name: self.dataclass(cls, fields, at + (name,))}

    def family_fields(self, doc: schema.SpecDoc) -> None:
        """Validate `block:` and each stage against its family (a tagged union on `type`): the family's own
        fields only, and of the stage fields only those the family reads."""
        from archgen.blocks import block_names, spec_family

        def family(name: str, at: Path) -> type:
            try:
                return spec_family(name)
            except KeyError as exc:
                raise self.error(at, exc.args[0]) from None

        block_family = family(doc.block.type, ("block", "type")) if doc.block.type is not None else None
        if doc.block.args and block_family is None:
            first = next(iter(doc.block.args))
            raise self.error(("block", first), f"block fields need a block type: add 'type:' (one of "
                                               f"{', '.join(block_names())}) to say whose field '{first}' is")
        if block_family is not None:
            doc.block.args = self.args_of(block_family, doc.block.args, ("block",))
        stages, at = doc.stages, ("stages",)
        if doc.stage_rule is not None:
            ((name, rule),) = doc.stage_rule.items()
            self.rule_family(doc, name, rule, block_family)
            stages = getattr(rule, rule.stage_list) if rule.stage_list else []
            at = (*at, name, rule.stage_list)
        for i, stage in enumerate(stages):
            fam = family(stage.type, at + (i, "type")) if stage.type is not None else block_family
            if fam is None:
                raise self.error(at + (i,), "no block type: set 'block: {type: ...}' (one of "
                                            f"{', '.join(block_names())}) or this stage's 'type'")
            stage.args = self.args_of(fam, stage.args, at + (i,), also=list(schema.fields_of(schema.Stage)))
            for field in schema.PLACEMENT_FIELDS:
                if getattr(stage, field) is not None and field not in fam.stage_fields:
                    takes = ", ".join(["depth", *sorted(fam.stage_fields)])
                    raise self.error(at + (i, field), f"a '{fam.name}' stage takes no '{field}'; its stage "
                                                      f"fields are {takes} (and the family's own: "
                                                      f"{', '.join(fam.field_names()) or 'none'})")

    def rule_family(self, doc: schema.SpecDoc, name: str, rule: Any, fam: type | None) -> None:
        """A stage rule that sets block fields in every stage it generates (RegNet's group width): the block
        family must take them, and `block:` must not set them too."""
        from archgen.blocks import block_names, spec_family

        sets = rule.sets
        missing = [f for f in sets if fam is None or f not in fam.field_names()]
        if missing:
            takers = [n for n in block_names() if set(sets) <= set(spec_family(n).field_names())]
            found = (f"block type '{fam.name}' takes no {' or '.join(missing)}" if fam is not None else
                     "no block type is set")
            raise self.error(("stages", name), f"the {name} rule sets each stage's {' and '.join(sets)}, and "
                                               f"{found}: use block: "
                                               f"{' or '.join('{type: ' + t + '}' for t in takers)}")
        for field in sets:
            if field in doc.block.args:
                where = f"stages.{name}.{field}" if field in schema.fields_of(type(rule)) else f"stages.{name}"
                raise self.error(("block", field), f"'{field}' is set by the stage rule for every stage it "
                                                   f"generates ({where}); write it there only")

    def args_of(self, fam: type, raw: dict, path: Path, also: list[str] = ()) -> dict:
        """The family's fields in `raw`, validated; an unknown one is an error naming the family's fields
        (and `also`, the fields of the section itself: a stage's depth, width, ...)."""
        fields = schema.fields_of(fam)
        hints = schema.hints_of(fam)
        values = {}
        for key, value in raw.items():
            if key not in fields:
                others = ", ".join(fields) or "no fields of its own"
                takes = f"block type '{fam.name}' takes: {others}"
                takes = f" A stage takes {', '.join(also)}, and {takes}" if also else f" B{takes[1:]}"
                raise self.error(path + (key,), f"unknown field '{key}' for block type '{fam.name}'."
                                                f"{did_you_mean(str(key), [*also, *fields])}{takes}")
            values[key] = self.value(hints[key], value, path + (key,), fields[key].metadata)
        return values

    def value(self, tp: Any, raw: Any, path: Path, meta: Any) -> Any:
        inner, optional = schema.unwrap_optional(tp)
        if raw is None:
            if optional:
                return None
            raise self.error(path, f"is empty (null); expected {expected(inner, meta)}")
        origin = typing.get_origin(inner)
        if origin is typing.Literal:
            choices = typing.get_args(inner)
            if raw not in choices:
                raise self.error(path, f"found {describe(raw)}; allowed: {', '.join(map(repr, choices))}."
                                       f"{did_you_mean(raw, [str(c) for c in choices])}")
            return raw
        if origin is list:
            (item_type,) = typing.get_args(inner)
            if not isinstance(raw, list):
                raise self.error(path, f"found {describe(raw)}; expected a list")
            if not raw:
                raise self.error(path, "is an empty list; give at least one item")
            return [self.value(item_type, item, path + (i,), meta) for i, item in enumerate(raw)]
        if isinstance(inner, type) and hasattr(inner, "__dataclass_fields__"):
            return self.dataclass(inner, raw, path)
        if inner is bool:
            if not isinstance(raw, bool):
                raise self.error(path, f"found {describe(raw)}; expected true or false")
            return raw
        if inner is str:
            if not isinstance(raw, str):
                raise self.error(path, f"found {describe(raw)}; expected text")
            return raw
        if inner is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self.error(path, f"found {describe(raw)}; expected {expected(int, meta)}")
            self.check_range(raw, path, meta, int)
            return raw
        if inner is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise self.error(path, f"found {describe(raw)}; expected {expected(float, meta)}")
            self.check_range(raw, path, meta, float)
            return float(raw)
        raise TypeError(f"schema type {inner!r} has no validator")  # a bug in schema.py, not user input

    def check_range(self, raw: float, path: Path, meta: Any, tp: type) -> None:
        lo, hi = meta.get("minimum"), meta.get("maximum")
        too_low = lo is not None and (raw <= lo if meta.get("exclusive_minimum") else raw < lo)
        if too_low or (hi is not None and raw > hi):
            raise self.error(path, f"found {raw}; expected {expected(tp, meta)}")


#: The sections a top-level field may have been meant for, in the order a hint names them.
SECTIONS = {"block": None, "stem": schema.Stem, "head": schema.Head, "input": schema.Input, "norm": schema.NormChoice,
            "multipliers": schema.Multipliers, "stochastic_depth": schema.StochasticDepth}


def misplaced(key: str, value: Any) -> str:
    """' `act` belongs under `block:` ...' when a top-level key is a field of a section (or of every stage):
    the likeliest mistake is an indent, and "Did you mean 'paper'?" would send the user the wrong way."""
    from archgen.blocks import block_names, spec_family

    if key == "space":
        return (" A `space:` block makes this file a design space (docs/design.md), which archgen validate, "
                "sample, search and calibrate --space read; a spec to build or count cannot hold one.")
    homes = []
    for section, cls in SECTIONS.items():
        if cls is not None and key in schema.fields_of(cls):
            homes.append(f"`{section}:`")
        elif cls is None and key in schema.fields_of(schema.Block):
            homes.append("`block:`")
        elif cls is None:
            names = block_names()
            takers = [n for n in names if key in spec_family(n).field_names()]
            if takers:
                others = [n for n in names if n not in takers]
                plural = "s" if len(takers) > 1 else ""
                whose = (f" (block type{plural} {', '.join(takers)})" if len(takers) <= len(others) else
                         f" (every block type but {', '.join(others)})" if others else "")
                homes.append(f"`block:`{whose}")
    if key in schema.fields_of(schema.Stage):
        homes.append("each item of `stages:`")
    if not homes:
        return ""
    if len(homes) == 1:
        scalar = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        example = f", e.g. {homes[0].split('`')[1]} {{{key}: {value}}}" if scalar and homes[0][0] == "`" else ""
        return f" `{key}` belongs under {homes[0]}, not at the top level{example}."
    return f" `{key}` belongs under {', '.join(homes[:-1])} or {homes[-1]}, not at the top level."


def expected(tp: Any, meta: Any) -> str:
    noun = {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(tp, str(tp))
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        op = "above" if meta.get("exclusive_minimum") else "from"
        return f"{noun} {op} {fmt(lo)} {'up to' if op == 'above' else 'to'} {fmt(hi)}"
    return noun


def fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def describe(raw: Any) -> str:
    if isinstance(raw, bool):
        return f"the boolean {str(raw).lower()}"
    if isinstance(raw, (int, float)):
        return f"the number {raw}"
    if isinstance(raw, str):
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        return f"the text '{shown}'"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    return repr(raw)
