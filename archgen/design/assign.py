"""Put values at key paths: into a raw YAML document, or into an already validated SpecDoc.

Both copy only along the paths they change, so a candidate costs a few small
copies, not a deep copy of the space's document. In a SpecDoc a block field
lives in its Block's or Stage's `args` (`("block", "cardinality")` is
`doc.block.args["cardinality"]`), and a stage rule in `stage_rule`
(`("stages", "regnet", "wa")` is `doc.stage_rule["regnet"].wa`), as the validator
stores them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from archgen.grammar import schema
from archgen.grammar.schema import shallow_copy
from archgen.grammar.yamlio import Path
from archgen.memo import Memo


class Unresolved(LookupError):
    """A raw path with no place in the validated document (a field the validator expands or renames)."""


def put_raw(raw: Any, path: Path, value: Any) -> Any:
    """`raw` with `value` at `path` (a copy along the path; the rest shared)."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    out = list(raw) if isinstance(raw, list) else dict(raw)
    out[key] = put_raw(raw[key], rest, value)
    return out


def get_doc(obj: Any, path: Path) -> Any:
    """The validated value at a raw path; Unresolved when the path has no place there."""
    for key in path:
        obj = _child(obj, key)
    return obj


@dataclass(frozen=True)
class Put:
    """Where values go under one object of a validated document, worked out once per space (`compile_puts`):
    each candidate then copies the objects on the way, each once however many values land under it (a
    RegNet rule's five fields: one copy of the rule)."""

    key: Any
    #: How the key is set: "item" (a list or mapping), "field", "arg" (a block field, in `args`) or
    #: "rule" (`stages:` written as a rule, stored as `stage_rule`).
    how: str
    #: The value's index when the path ends here, else None.
    value: int | None
    inner: tuple["Put", ...]


def compile_puts(obj: Any, paths: list[Path]) -> tuple[Put, ...]:
    """The puts of `paths` (value i goes at paths[i]) into documents shaped like `obj`; Unresolved when a path
    has no place in it."""
    return _compile(obj, [(path, i) for i, path in enumerate(paths)])


def _compile(obj: Any, paths: list[tuple[Path, int]]) -> tuple[Put, ...]:
    by_key: dict[Any, list[tuple[Path, int]]] = {}
    for path, i in paths:
        by_key.setdefault(path[0], []).append((path[1:], i))
    puts = []
    for key, rest in by_key.items():
        ends = [i for path, i in rest if not path]
        child = _child(obj, key)
        puts.append(Put(key, _how(obj, key), ends[-1] if ends else None,
                        () if ends else _compile(child, rest)))
    return tuple(puts)


def _how(obj: Any, key: Any) -> str:
    if isinstance(obj, (list, dict)):
        return "item"
    if key == "stages" and getattr(obj, "stage_rule", None) is not None:
        return "rule"
    return "field" if key in spec_fields(type(obj)) else "arg"


def put_doc(obj: Any, puts: tuple[Put, ...], values: tuple) -> Any:
    """A copy of a validated document with the compiled puts' values in it (copies only along their paths)."""
    out = list(obj) if isinstance(obj, list) else dict(obj) if isinstance(obj, dict) else shallow_copy(obj)
    for put in puts:
        if put.how == "item":
            out[put.key] = values[put.value] if put.value is not None else put_doc(obj[put.key], put.inner, values)
        elif put.how == "rule":
            out.stage_rule = values[put.value] if put.value is not None else put_doc(obj.stage_rule, put.inner,
                                                                                       values)
        elif put.how == "field":
            setattr(out, put.key, values[put.value] if put.value is not None
                    else put_doc(getattr(obj, put.key), put.inner, values))
        else:
            if out.args is obj.args:
                out.args = {**obj.args}
            out.args[put.key] = values[put.value] if put.value is not None else put_doc(obj.args[put.key],
                                                                                          put.inner, values)
    return out


def _child(obj: Any, key: Any) -> Any:
    if key == "stages" and getattr(obj, "stage_rule", None) is not None:
        return obj.stage_rule  # `stages:` written as a rule is stored as the document's stage_rule
    if isinstance(obj, list):
        if isinstance(key, int) and 0 <= key < len(obj):
            return obj[key]
    elif isinstance(obj, dict):
        if key in obj:
            return obj[key]
    elif dataclasses.is_dataclass(obj):
        if key in spec_fields(type(obj)):
            return getattr(obj, key)
        args = getattr(obj, "args", None)
        if isinstance(args, dict) and key in args:
            return args[key]
    raise Unresolved(key)


def spec_fields(cls: type) -> frozenset[str]:
    """The fields a spec writes on this schema class (asked once per class: this is the hot path)."""
    known = _spec_fields.get(cls)
    if known is None:
        known = _spec_fields.keep(cls, frozenset(schema.fields_of(cls)))
    return known


#: spec_fields by schema class (a few dozen classes).
_spec_fields = Memo(1024, "assign: spec fields")
