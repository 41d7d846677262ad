"""Blocks registered by name. Every family takes the same `BlockArgs`, so the
builder and the counter never special-case a block: they look it up and call
`module`, `cost` and `notation`."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

from archgen.errors import did_you_mean

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.complexity import Tally


@dataclass(frozen=True)
class BlockArgs:
    """The one keyword set every block takes (fields a family does not use are ignored)."""

    type: str
    in_chs: int
    width: int
    stride: int = 1
    dilation: int = 1
    first_dilation: int = 1
    cardinality: int = 1
    base_width: int = 64
    expansion: int = 1
    width_factor: float = 1.0
    growth_rate: int = 32
    bn_size: int = 4
    compression: float = 0.5
    dropout: float = 0.0
    act: str = "relu"
    shortcut: str = "projection"
    stride_on: str = "3x3"
    survival: float = 1.0
    inverted_drop: bool = False
    #: What feeds the block: "block" (another block), or, for the network's first block, "stem" (a stem ending
    #: in a bare conv) or "stem_act" (a stem ending in BN + activation). Pre-activation units read it: the
    #: first unit activates before the split into its two paths, or not at all when the stem already did.
    input_from: str = "block"


class BlockFamily(abc.ABC):
    """What a block type must say about itself. Subclasses register with `@register_block`."""

    name: ClassVar[str]
    #: Block parameters this family reads, with its defaults (others are ignored).
    defaults: ClassVar[dict] = {}
    #: Every BlockArgs field the family reads; the planner requires 'width' only where it is used.
    uses: ClassVar[frozenset[str]] = frozenset({"width"})
    #: Pre-activation designs end with BN + activation before the head.
    final_norm: ClassVar[bool] = False
    #: Whether the block adds a shortcut to a residual branch (plain nets and dense layers do not).
    residual: ClassVar[bool] = True
    #: Placed by another family's `expand_stage` (a DenseNet transition), never named by a spec.
    internal: ClassVar[bool] = False

    @abc.abstractmethod
    def out_chs(self, a: BlockArgs) -> int:
        """Channels the block outputs."""

    def check(self, a: BlockArgs) -> tuple[str, str] | None:
        """(field, message) when the parameters cannot make this block; None when they can."""
        return None

    def expand_stage(self, template: BlockArgs, depth: int, stage_index: int) -> list[BlockArgs]:
        """A stage of `depth` blocks: the first strides and maps in_chs, the rest keep the shape."""
        blocks = []
        in_chs = template.in_chs
        for i in range(depth):
            first = i == 0
            a = replace(template, in_chs=in_chs, stride=template.stride if first else 1,
                        first_dilation=template.first_dilation if first else template.dilation)
            blocks.append(a)
            in_chs = self.out_chs(a)
        return blocks

    @abc.abstractmethod
    def cost(self, a: BlockArgs, t: "Tally", h: int, w: int) -> tuple[int, int]:
        """Record every layer in `t`, mirroring `module`; return the output size."""

    @abc.abstractmethod
    def notation(self, a: BlockArgs) -> str:
        """The block as the papers bracket it, e.g. '1x1, 64; 3x3, 64; 1x1, 256'."""

    @abc.abstractmethod
    def module(self, a: BlockArgs) -> "nn.Module":
        """The block as a torch module, its parameters registered in torchvision's order."""


def replace(a: BlockArgs, **changes: object) -> BlockArgs:
    return dataclasses.replace(a, **changes)


_REGISTRY: dict[str, BlockFamily] = {}


def register_block(name: str) -> Callable[[type[BlockFamily]], type[BlockFamily]]:
    """Class decorator: make a block family available to specs as `block.type: name`."""

    def add(cls: type[BlockFamily]) -> type[BlockFamily]:
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return add


def get_block(name: str) -> BlockFamily:
    """Any registered family, internal ones included (the builder and counter walk plans with them)."""
    _load_families()
    if name not in _REGISTRY:
        raise KeyError(f"unknown block type '{name}'")
    return _REGISTRY[name]


def spec_block(name: str) -> BlockFamily:
    """A family a spec may name as `block.type`; KeyError with a suggestion otherwise."""
    names = block_names()
    if name not in names:
        raise KeyError(f"unknown block type '{name}'.{did_you_mean(name, names)} Registered: {', '.join(names)}")
    return _REGISTRY[name]


def block_names() -> list[str]:
    """The block types a spec may name."""
    _load_families()
    return sorted(name for name, family in _REGISTRY.items() if not family.internal)


def _load_families() -> None:
    # Importing the package registers every family module it lists.
    import archgen.blocks  # noqa: F401
