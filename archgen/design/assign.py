"""Put values at key paths: into a raw YAML document, or into an already validated SpecDoc.

Both copy only along the paths they change, so a candidate costs a few small
copies, not a deep copy of the space's document. In a SpecDoc a block field
lives in its Block's or Stage's `args` (`("block", "cardinality")` is
`doc.block.args["cardinality"]`), and a stage rule in `stage_rule`
(`("stages", "regnet", "wa")` is `doc.stage_rule.regnet.wa`), as the validator
stores them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from archgen.grammar import schema
from archgen.grammar.yamlio import Path


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


def put_doc_many(obj: Any, assignments: list[tuple[Path, Any]]) -> Any:
    """A copy of a validated document with every (path, value) put, each object on the way copied once
    however many values land under it (a RegNet rule's five fields: one copy of the rule)."""
    if len(assignments) == 1 and not assignments[0][0]:
        return assignments[0][1]
    by_key: dict[Any, list[tuple[Path, Any]]] = {}
    for path, value in assignments:
        by_key.setdefault(path[0], []).append((path[1:], value))
    if isinstance(obj, list):
        out = list(obj)
        for key, rest in by_key.items():
            out[key] = put_doc_many(obj[key], rest)
        return out
    if isinstance(obj, dict):
        return {**obj, **{key: put_doc_many(obj[key], rest) for key, rest in by_key.items()}}
    out = shallow_copy(obj)
    args = None
    for key, rest in by_key.items():
        inner = put_doc_many(_child(obj, key), rest)
        if key == "stages" and getattr(obj, "stage_rule", None) is not None:
            out.stage_rule = inner
        elif key in spec_fields(type(obj)):
            setattr(out, key, inner)
        else:
            args = {**obj.args} if args is None else args
            args[key] = inner
    if args is not None:
        out.args = args
    return out


def shallow_copy(obj: Any) -> Any:
    """A dataclass instance's shallow copy, without copy.copy's pickling protocol (this is the hot path)."""
    out = object.__new__(type(obj))
    out.__dict__.update(obj.__dict__)
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


@functools.lru_cache(maxsize=None)
def spec_fields(cls: type) -> frozenset[str]:
    """The fields a spec writes on this schema class (asked once per class: this is the hot path)."""
    return frozenset(schema.fields_of(cls))
