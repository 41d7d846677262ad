"""Block families and stage rules, registered by name.

A family is one frozen dataclass: its fields are exactly the `block:` fields
a spec may give it (a field outside them is an error naming the family and
the fields it takes), and its methods say everything else about it: where the
stage puts it (`expand_stage`), the plain layer records of one block
(`layers`), and the papers' bracket notation (`notation`). Cost, module and
fuse rule are all read from the same layer records (archgen.layer_kinds), so
they cannot drift apart. A stage rule (`stages: {regnet: {...}}`) is a
dataclass of the rule's fields that writes a spec's stages; it lives beside the
family whose stages it writes. Nothing here imports torch; archgen.blocks looks
families and rules up by name once every family module has registered.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, TypeVar

from archgen.grammar.schema import SpecDoc, shallow_copy
from archgen.layer_kinds.block import BlockLayers


@dataclass(frozen=True)
class Placement:
    """Where a block sits, filled by the planner from the stage and the network (not by the family's fields)."""

    in_chs: int
    width: int = 0
    stride: int = 1
    dilation: int = 1
    #: Dilation of the block's first 3x3 conv (the previous stage's, for the first block of a dilated stage).
    first_dilation: int = 1
    shortcut: str = "projection"
    stride_on: str = "3x3"
    survival: float = 1.0
    inverted_drop: bool = False
    #: What feeds the block: "block", or for the network's first block "stem" (a stem ending in a bare conv)
    #: or "stem_act" (a stem ending in BN + activation). Pre-activation units read it.
    input_from: str = "block"

    def moved(self, **changes: object) -> "Placement":
        """This placement with some fields changed (the design hot path places a stage's first blocks for every
        new shape, so this is schema.shallow_copy, not dataclasses.replace)."""
        return shallow_copy(self, **changes)


class Family(abc.ABC):
    """What a block type says about itself. Subclasses are frozen dataclasses registered with `@register_block`."""

    name: ClassVar[str]
    #: Pre-activation designs end with BN + activation before the head.
    final_norm: ClassVar[bool] = False
    #: Whether the block adds a shortcut to a residual branch (plain layers and dense layers do not).
    residual: ClassVar[bool] = True
    #: Placed by another family's `expand_stage` (a DenseNet transition), never named by a spec.
    internal: ClassVar[bool] = False
    #: The stage fields this family reads besides `depth` (and `type`); any other written there is an error.
    stage_fields: ClassVar[frozenset[str]] = frozenset({"width", "stride", "dilation", "first_dilation"})
    #: The network-level fields this family reads (`shortcut`, `stride_on`).
    network_fields: ClassVar[frozenset[str]] = frozenset({"shortcut"})

    @abc.abstractmethod
    def out_chs(self, at: Placement) -> int:
        """Channels the block outputs."""

    def check(self, at: Placement) -> tuple[str, str] | None:
        """(field, message) when these arguments cannot make a block here; None when they can."""
        return None

    def default_stride(self, stage_index: int) -> int:
        """The stride of a stage that writes none."""
        return 1

    def stride_problem(self, stride: int, stage_index: int) -> str | None:
        """Why a stage of this family cannot take this stride, or None."""
        return None

    def scaled(self, scale_width: Callable[[int], int]) -> "Family":
        """The family's arguments under the width multiplier (widths a family holds itself, as DenseNet's k)."""
        return self

    def expand_stage(self, at: Placement, depth: int, stage_index: int) -> list["PlannedBlock"]:
        """A stage of `depth` blocks: the first strides and maps in_chs, the rest keep the shape."""
        blocks = []
        in_chs, here = at.in_chs, at
        for i in range(depth):
            first = i == 0
            if i < 2 or in_chs != here.in_chs:  # else the same placement as the block before: shared, not copied
                here = at.moved(in_chs=in_chs, stride=at.stride if first else 1,
                                first_dilation=at.first_dilation if first else at.dilation)
            blocks.append(PlannedBlock(self, here))
            in_chs = self.out_chs(here)
        return blocks

    @abc.abstractmethod
    def layers(self, at: Placement) -> BlockLayers:
        """The block's layer records: the one description its cost, module and fuse rule read."""

    @abc.abstractmethod
    def notation(self, at: Placement) -> str:
        """The block as the papers bracket it, e.g. '1x1, 64; 3x3, 64; 1x1, 256'."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class PlannedBlock:
    """One concrete block of a plan: a family's arguments at one placement."""

    family: Family
    at: Placement

    @property
    def type(self) -> str:
        return self.family.name

    @property
    def out_chs(self) -> int:
        return self.family.out_chs(self.at)

    @functools.cached_property
    def layers_cached(self) -> BlockLayers:
        return self.family.layers(self.at)

    def layers(self) -> BlockLayers:
        """The block's layer records, made once (the planner's checks, the counter and the builder all read them)."""
        return self.layers_cached

    def notation(self) -> str:
        return self.family.notation(self.at)

    @property
    def is_residual(self) -> bool:
        """Whether this block adds a residual branch to a shortcut (what a lesion may delete and the ensemble
        view counts): what its merge record says, so a family that adds only where the shape allows (the
        inverted residual) says it once, in its records."""
        return self.layers().merge.residual


F = TypeVar("F", bound=type)

#: Every registered family, by name (archgen.blocks looks them up once all are registered).
REGISTRY: dict[str, type[Family]] = {}


def register_block(name: str) -> Callable[[F], F]:
    """Class decorator: make a family (a frozen dataclass subclass of Family) available as `block.type: name`."""

    def add(cls: F) -> F:
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return add


class StageRule(abc.ABC):
    """`stages:` written as a rule instead of a list: a dataclass (not frozen: a design space writes its
    fields) whose fields, made with `spec_field`, are the rule's, validated, documented and put in the JSON
    Schema as any section's are; its docstring is its documentation. Registered with `@register_stage_rule`;
    the grammar, the validator and the planner know a rule only through what this class declares."""

    name: ClassVar[str]
    #: Block fields the rule sets in every stage it generates: the block family must take them, and `block:`
    #: may not set them too (it would be overwritten).
    sets: ClassVar[tuple[str, ...]] = ()
    #: The rule's field that holds stages written as a list, which it generates one for one (None: it makes
    #: its stages from numbers). The validator checks them against their families at their own lines, and
    #: the planner points an error in a generated stage at the stage written.
    stage_list: ClassVar[str | None] = None

    def problem(self) -> tuple[str, str] | None:
        """(field, message) when fields valid one by one make no stages together; None when they do."""
        return None

    @abc.abstractmethod
    def expand(self, doc: SpecDoc) -> dict[str, Any]:
        """The document fields the rule writes in place of itself: `stages`, and any network-wide field it
        scales (`multipliers`), as values for a copy of `doc` (which the rule must not change)."""


R = TypeVar("R", bound=type)

#: Every registered stage rule, by name.
STAGE_RULES: dict[str, type[StageRule]] = {}


def register_stage_rule(name: str) -> Callable[[R], R]:
    """Class decorator: make a rule (a dataclass subclass of StageRule) available as `stages: {name: {...}}`."""

    def add(cls: R) -> R:
        if not issubclass(cls, StageRule) or name in STAGE_RULES:
            raise TypeError(f"stage rule '{name}' ({cls.__qualname__}) must subclass StageRule and be registered "
                            "once")
        cls.name = name
        STAGE_RULES[name] = cls
        return cls

    return add
