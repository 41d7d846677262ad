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
- **Block fields are the family's own.** `block:` is a tagged union on
  `type`: besides `type`, it takes exactly the fields of that block family
  (listed per family below), and a field outside them is an error naming the
  family and the fields it takes:

  ```text
  error: my.yaml:8:25: block.cardinality: unknown field 'cardinality' for block type 'dense'. Block type 'dense' takes: growth_rate, bn_size, compression, dropout
  error: my.yaml:6:30: stages[1].width: a 'dense' stage takes no 'width'; its stage fields are depth, stride (and the family's own: growth_rate, bn_size, compression, dropout)
  error: my.yaml:9:1: stride_on: no stage reads 'stride_on': block type basic takes no stride_on; remove it
  ```

  A stage may override any of its family's fields
  (`stages: [{depth: 3, width: 64, cardinality: 16}]`); a stage of another
  `type` than `block.type` takes that family's defaults and its own fields only.
  Each family also says which stage fields it reads (`width`, `stride`,
  `dilation`, `first_dilation`) and which top-level fields (`shortcut`,
  `stride_on`): writing one that no stage reads is an error, never ignored
  (`stride_on` on a basic-block network, `width` on a dense stage).
- **Every accepted spec builds.** The planner computes every layer's shape
  at `input.size` and refuses what the network cannot do, at the field's
  line: an even stem kernel (its padding of (k - 1) / 2 would not keep the
  size), a classifier without pooling (`head: {pool: none}` needs
  `classes: 0`), a cardinality that does not divide a conv's channels, a
  stage that cannot downsample, an input too small for the network.
  For example:

  ```text
  error: my.yaml:2:35: stem.kernel: found 4; the stem's convs pad by (k - 1) / 2 to keep the size up to the stride, which needs an odd kernel: use 3, 5, 7, ...
  error: my.yaml:4:8: head.pool: a classifier of 1000 classes needs the feature map pooled to a vector; use pool: avg or max, or classes: 0 for a backbone that returns the last stage's feature map
  error: my.yaml:3:29: block.cardinality: cardinality 3 does not divide the 64 -> 96 channels of basic conv 'conv1' in stage 1; choose a cardinality that divides both
  error: my.yaml:2:40: stem.deep_widths: found 1 widths; the deep stem's first two convs take exactly two (the third is `width`), e.g. [32, 32]
  ```
- **Dense stages downsample in their transition.** Every dense stage after
  the first begins with a transition (BN-ReLU-1x1 conv to
  `floor(compression * c)` channels, then average pooling by the stage's
  stride, **2 by default**; `stride: 1` leaves the pool out). The first dense
  stage has no transition before it, so a `stride` other than 1 there is an
  error: the stem downsamples. A DenseNet is therefore written
  `stages: [{depth: 6}, {depth: 12}, {depth: 24}, {depth: 16}]`.

  ```text
  error: my.yaml:3:21: stages[0].stride: the first dense stage has no transition before it, so it cannot downsample; leave its stride at 1 and let the stem downsample (later dense stages stride in their transition)
  ```
- **Stages from a rule.** `stages:` may be a mapping naming one rule instead
  of a list (`stages: {regnet: {depth: 22, w0: 24, wa: 24.48, wm: 2.54,
  group_width: 16}}`); the rule generates the stages, and errors in them point
  at the rule's fields. Each registered rule, its formula and its fields are
  listed under [Stage rules](#stage-rules).
- **The deep stem** takes `deep_widths`, exactly two widths (its first two
  convs; the third is `width`); other stems refuse the field.
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


def _section(cls: type, title: str, meanings: dict[str, str] | None = None) -> list[str]:
    """A heading, the class's docstring and its field table (`meanings` replaces a field's doc: one the registries
    complete)."""
    hints = schema.hints_of(cls)
    lines = [f"### {title}", "", " ".join((cls.__doc__ or "").split()), "",
             "| field | type | default | meaning | example |", "| --- | --- | --- | --- | --- |"]
    for name, f in schema.fields_of(cls).items():
        meta = f.metadata
        default = "required" if meta.get("required") else (
            "(section)" if f.default_factory is not schema.dataclasses.MISSING else repr(f.default))
        example = "" if meta.get("example") is None else f"`{name}: {json.dumps(meta['example'])}`"
        lines.append(f"| `{name}` | {_type_name(hints[name])}{_range(meta)} | {default} | "
                     f"{(meanings or {}).get(name, meta['doc']).replace('|', '/')} | {example} |")
    return lines + [""]


def spec_markdown() -> str:
    from archgen.blocks import block_names, family_class, stage_rule_class, stage_rule_names

    types = ", ".join(f"'{name}'" for name in block_names())
    block_type = f"{schema.fields_of(schema.Block)['type'].metadata['doc']} Registered: {types}."
    sections = [(schema.SpecDoc, "Top level"), (schema.Paper, "Paper"), (schema.Citation, "Citation"),
                (schema.Input, "Input"), (schema.Stem, "Stem"), (schema.Block, "Block"),
                (schema.Stage, "Stage"), (schema.Multipliers, "Multipliers"),
                (schema.StochasticDepth, "StochasticDepth"), (schema.NormChoice, "NormChoice"),
                (schema.Head, "Head")]
    out = [INTRO]
    for cls, title in sections:
        out += _section(cls, title, {"type": block_type} if cls is schema.Block else None)
    out += ["## Block families", "", "Each `block.type` and the fields it takes (in `block:` or a stage).", ""]
    for name in block_names():
        out += _family_section(family_class(name))
    out += ["## Stage rules", "", "Each rule `stages:` may name instead of a list, and its fields "
            "(`stages: {rule: {field: value, ...}}`).", ""]
    for name in stage_rule_names():
        out += _section(stage_rule_class(name), f"`{name}`")
    return "\n".join(out).rstrip("\n") + "\n"


def _family_section(family: type) -> list[str]:
    stage = ", ".join(f"`{f}`" for f in ["depth", *sorted(family.stage_fields)])
    network = ", ".join(f"`{f}`" for f in sorted(family.network_fields)) or "none"
    lines = _section(family, f"`{family.name}`")
    if not schema.fields_of(family):
        lines = lines[:4] + ["No fields of its own.", ""]
    return lines[:4] + [f"Stage fields: {stage}. Top-level fields read: {network}.", ""] + lines[4:]


if __name__ == "__main__":
    print(spec_markdown(), end="")
