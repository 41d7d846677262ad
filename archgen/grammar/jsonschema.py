"""JSON Schema (draft 2020-12) generated from the dataclasses in schema.py, so editors check and complete specs."""

from __future__ import annotations

import json
import typing
from typing import Any

from archgen.grammar import schema

_PRIMITIVES = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
               bool: {"type": "boolean"}}


def _type(tp: Any, meta: Any) -> dict:
    inner, optional = schema.unwrap_optional(tp)
    origin = typing.get_origin(inner)
    if origin is typing.Literal:
        out: dict = {"enum": list(typing.get_args(inner))}
    elif origin is list:
        (item,) = typing.get_args(inner)
        out = {"type": "array", "minItems": 1, "items": _type(item, {})}
    elif hasattr(inner, "__dataclass_fields__"):
        out = {"$ref": f"#/$defs/{inner.__name__}"}
    else:
        out = dict(_PRIMITIVES[inner])
        if meta.get("minimum") is not None:
            out["exclusiveMinimum" if meta.get("exclusive_minimum") else "minimum"] = meta["minimum"]
        if meta.get("maximum") is not None:
            out["maximum"] = meta["maximum"]
    if optional:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _object(cls: type) -> dict:
    hints = schema.hints_of(cls)
    props, required = {}, []
    for name, f in schema.fields_of(cls).items():
        prop = _type(hints[name], f.metadata)
        prop["description"] = f.metadata["doc"]
        if f.metadata.get("example") is not None:
            prop["examples"] = [f.metadata["example"]]
        props[name] = prop
        if f.metadata.get("required"):
            required.append(name)
    out = {"type": "object", "description": " ".join((cls.__doc__ or "").split()), "properties": props,
           "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _with_families(out: dict, families: list[type]) -> dict:
    """Block and Stage: also the families' fields, each family's only under its `type` (a tagged union).
    A stage without `type` takes the block's family, which a schema cannot see: it is checked by archgen."""
    own = set(out["properties"])
    for family in families:
        for name, prop in _object(family)["properties"].items():
            out["properties"].setdefault(name, prop)
    out["allOf"] = [{"if": {"properties": {"type": {"const": f.name}}, "required": ["type"]},
                     "then": {"propertyNames": {"enum": sorted(own | set(schema.fields_of(f)))}}}
                    for f in families]
    return out


def json_schema() -> dict:
    from archgen.blocks import block_names, family_class, stage_rule_class, stage_rule_names

    families = [family_class(name) for name in block_names()]
    rules = [stage_rule_class(name) for name in stage_rule_names()]
    defs = {cls.__name__: _object(cls) for cls in (schema.Citation, schema.Paper, schema.Input, schema.Stem,
                                                   schema.Multipliers, schema.StochasticDepth, schema.Head,
                                                   *rules, schema.NormChoice)}
    defs["StageRule"] = {"type": "object", "description": "`stages:` written as a rule that generates the stages "
                                                          "instead of a list: one mapping naming one rule.",
                         "properties": {rule.name: {"$ref": f"#/$defs/{rule.__name__}"} for rule in rules},
                         "additionalProperties": False, "minProperties": 1, "maxProperties": 1}
    defs["Block"] = _with_families(_object(schema.Block), families)
    defs["Stage"] = _with_families(_object(schema.Stage), families)
    block_type = defs["Block"]["properties"]["type"]
    block_type["anyOf"][0]["enum"] = block_names()
    block_type["description"] += f" Registered: {', '.join(block_names())}."
    root = _object(schema.SpecDoc)
    stages = root["properties"]["stages"]
    stages["anyOf"] = [{k: stages.pop(k) for k in ("type", "minItems", "items")}, {"$ref": "#/$defs/StageRule"}]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "archgen-spec.schema.json",
            "title": "archgen spec", **root, "$defs": defs}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"
