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
        for key in raw:
            if key not in fields:
                raise self.error(path + (key,), f"unknown field '{key}'.{did_you_mean(key, fields)} "
                                                f"Allowed here: {', '.join(fields)}")
        values = {}
        for name, f in fields.items():
            if name in raw:
                values[name] = self.value(hints[name], raw[name], path + (name,), f.metadata)
            elif f.metadata.get("required"):
                raise self.error(path, f"the required field '{name}' is missing ({f.metadata['doc']})")
        return cls(**values)

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
