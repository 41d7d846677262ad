"""docs/spec.md's field reference, generated from the schema so the docs cannot drift from the validator.

Regenerate with `python -m archgen.grammar.docs > docs/spec.md`; a test fails when it is stale.
"""

from __future__ import annotations

import json
import typing

from archgen.grammar import schema

INTRO = """\
# The archgen spec grammar

A spec is one YAML mapping. This page is generated from `archgen/grammar/schema.py`
(`python -m archgen.grammar.docs > docs/spec.md`), as is the JSON Schema that
`archgen schema` prints (shipped as `archgen/schema/spec.schema.json`; point your
editor's YAML language server at it with
`# yaml-language-server: $schema=<path>/spec.schema.json`).

```yaml
name: resnext50_32x4d
description: ResNeXt-50 (32x4d)
paper: {title: Aggregated Residual Transformations for Deep Neural Networks, arxiv: "1611.05431",
        table: Table 1, params: 25.0M, macs: 4.2G}
input: {channels: 3, size: 224, classes: 1000}
stem: {type: imagenet, width: 64}
block: {type: bottleneck, cardinality: 32, base_width: 4}
stages:
  - {depth: 3, width: 64}
  - {depth: 4, width: 128, stride: 2}
  - {depth: 6, width: 256, stride: 2}
  - {depth: 3, width: 512, stride: 2}
shortcut: projection
stride_on: 3x3
```

## Rules the fields do not show

- **Counting.** MACs are the multiply-accumulates of convolutions and linear
  layers (bias excluded): the papers' "FLOPs". archgen prints FLOPs = 2 x MACs
  as a separate figure. Activations are the output elements of every conv and
  linear layer.
- **Block parameters** (`block:`) apply to every stage; a stage may override
  any of them (`stages: [{depth: 3, width: 64, cardinality: 16}]`). Unset
  parameters take the block family's defaults (`expansion` 4 for
  `bottleneck`, 1 for `basic`).
- **Multipliers.** depth: `max(round(d * depth), 1)`, halves rounding up.
  width: a multiplier of 1 leaves widths as written; otherwise each stem and
  stage width (and the growth rate) goes to the nearest multiple of 8, at
  least 8, and never more than 10% below `w * width`.
- **extends.** Names a bundled spec or a path relative to this file. Mappings
  merge key by key (this file wins); a list of mappings as long as the
  parent's merges item by item (`stages: [{depth: 3}, {depth: 4}, {depth: 23},
  {depth: 3}]` changes only the depths); anything else replaces the parent's
  value. Cycles and missing files are errors at the `extends:` line.
- **Shortcuts** change shape only where a block changes its channels or
  stride; elsewhere they are identities (option B of He et al. 2015).
- **Limits**, each a clear error: a stage's depth at most 2000 and 10,000
  blocks in a network; widths up to 65,536; an input at least as large as
  the network's total stride; at most 1,000,000,000 parameters unless
  `build(max_params=...)` or `--max-params` raises it (counted from the spec
  before anything is allocated). YAML is read safely: only plain scalars,
  lists and mappings; anchors are expanded under a budget of 20,000 values.

## Fields
"""


def _type_name(tp: object) -> str:
    inner, optional = schema.unwrap_optional(tp)
    origin = typing.get_origin(inner)
    if origin is typing.Literal:
        name = " \\| ".join(repr(a) for a in typing.get_args(inner))
    elif origin is list:
        (item,) = typing.get_args(inner)
        name = f"list of {_type_name(item)}"
    elif hasattr(inner, "__dataclass_fields__"):
        name = f"[{inner.__name__}](#{inner.__name__.lower()})"
    else:
        name = getattr(inner, "__name__", str(inner))
    return name + (" or null" if optional else "")


def _range(meta: dict) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is None and hi is None:
        return ""
    op = ">" if meta.get("exclusive_minimum") else ">="
    return f" ({op} {lo}, <= {hi})" if hi is not None else f" ({op} {lo})"


def _section(cls: type, title: str) -> list[str]:
    hints = schema.hints_of(cls)
    lines = [f"### {title}", "", " ".join((cls.__doc__ or "").split()), "",
             "| field | type | default | meaning | example |", "| --- | --- | --- | --- | --- |"]
    for name, f in schema.fields_of(cls).items():
        meta = f.metadata
        default = "required" if meta.get("required") else (
            "(section)" if f.default_factory is not schema.dataclasses.MISSING else repr(f.default))
        example = "" if meta.get("example") is None else f"`{name}: {json.dumps(meta['example'])}`"
        lines.append(f"| `{name}` | {_type_name(hints[name])}{_range(meta)} | {default} | "
                     f"{meta['doc'].replace('|', '/')} | {example} |")
    return lines + [""]


def spec_markdown() -> str:
    sections = [(schema.SpecDoc, "Top level"), (schema.Paper, "Paper"), (schema.Citation, "Citation"),
                (schema.Input, "Input"), (schema.Stem, "Stem"), (schema.Block, "Block"),
                (schema.Stage, "Stage"), (schema.Multipliers, "Multipliers"),
                (schema.StochasticDepth, "StochasticDepth"), (schema.Head, "Head")]
    out = [INTRO]
    for cls, title in sections:
        out += _section(cls, title)
    from archgen.blocks.registry import block_names

    out += ["## Registered block types", ""]
    from archgen.blocks.registry import get_block

    for name in block_names():
        doc = " ".join((type(get_block(name)).__doc__ or "").split())
        out.append(f"- `{name}`: {doc}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(spec_markdown(), end="")
