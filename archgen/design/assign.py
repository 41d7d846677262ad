"""Put values at key paths: into a raw YAML document, or into an already validated SpecDoc.

Both copy only along the paths they change, so a candidate costs a few small
copies, not a deep copy of the space's document. In a SpecDoc a block field
lives in its Block's or Stage's `args` (`("block", "cardinality")` is
`doc.block.args["cardinality"]`), and a stage rule in `stage_rule`
(`("stages", "regnet", "wa")` is `doc.stage_rule.regnet.wa`), as the validator
stores them.
"""

from __future__ import annotations

import copy
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


def put_doc(obj: Any, path: Path, value: Any) -> Any:
    """A copy of a validated document with `value` at the raw `path`."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    inner = put_doc(_child(obj, key), rest, value)
    if isinstance(obj, list):
        out = list(obj)
        out[key] = inner
        return out
    if isinstance(obj, dict):
        return {**obj, key: inner}
    out = copy.copy(obj)
    if key == "stages" and getattr(obj, "stage_rule", None) is not None:
        out.stage_rule = inner
    elif key in spec_fields(type(obj)):
        setattr(out, key, inner)
    else:
        out.args = {**obj.args, key: inner}
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
