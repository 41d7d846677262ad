"""The ensemble view of residual networks (Veit et al. 2016, "Residual Networks
Behave Like Ensembles of Relatively Shallow Networks", arXiv 1605.06431).

Unraveled, a network of n residual blocks y = f(x) + s(x) is a sum of 2^n
paths, one per choice of branch or shortcut at every block; C(n, k) of them go
through k residual branches, so path lengths follow Binomial(n, 1/2), mean n/2.
`path_lengths` computes that distribution from the plan alone (no model
built). `lesion` deletes chosen blocks from a built model, the paper's lesion
study: a residual block whose shortcut is an identity becomes that shortcut,
and a block of a single-path network (VGG, a plain net), which Veit et al.
delete from VGG for contrast, is removed outright when its input and output
shapes match. `archgen.ensemble.lesion_sweep` deletes k random blocks at a time.
The CLI commands are in archgen/cli/ensemble.py.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Union

from archgen.errors import UserError


if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.grammar.loader import SpecLike


class LesionError(UserError):
    """A block that cannot be lesioned: its shortcut is not an identity, or deleting it would change a shape."""


@dataclass(frozen=True)
class PathLengths:
    """The distribution of path lengths, in residual branches taken, of an unraveled network."""

    name: str
    blocks: int  # residual blocks n
    counts: list[int]  # counts[k] = C(n, k) paths through k residual branches

    @property
    def paths(self) -> int:
        return 2 ** self.blocks

    @property
    def mean(self) -> float:
        return self.blocks / 2

    @property
    def std(self) -> float:
        return math.sqrt(self.blocks) / 2

    def fraction(self, k: int) -> float:
        """Share of all paths that are k branches long (exact ratio of integers, then rounded to a float)."""
        return self.counts[k] / self.paths

    def to_dict(self) -> dict:
        return {"name": self.name, "residual_blocks": self.blocks, "paths": self.paths, "mean_length": self.mean,
                "std_length": self.std,
                "histogram": [{"length": k, "paths": c, "fraction": self.fraction(k)}
                              for k, c in enumerate(self.counts)]}


def residual_block_names(spec: "SpecLike") -> list[str]:
    """Module names (`layer2.3`) of the blocks that add a residual branch to a shortcut, in forward order."""
    from archgen.planner import plan

    p = plan(spec)
    # A residual family may place non-residual helpers in its stages (DarkNet's downsampling `conv`, DenseNet's
    # transitions), so each block's own type decides; plain nets (shortcut: none) add no branch.
    return [f"{stage.name}.{i}" for stage in p.stages for i, b in enumerate(stage.blocks)
            if b.is_residual]


def path_lengths(spec: "SpecLike") -> PathLengths:
    """Binomial path-length distribution of the spec's unraveled network (Veit et al. 2016, Sec. 3)."""
    from archgen.grammar.loader import load_spec

    loaded = load_spec(spec)
    n = len(residual_block_names(loaded))
    return PathLengths(loaded.name, n, [math.comb(n, k) for k in range(n + 1)])


BlockRef = Union[str, int]


def lesion(model: "nn.Module", blocks: Iterable[BlockRef], input_size: int = 64) -> "nn.Module":
    """A copy of `model` with `blocks` deleted; the original is left as it was.

    Blocks are named by module path ('layer2.3') or by index (0-based, in forward order) among the residual
    blocks, or, in a network without residual blocks, among all its blocks. A residual block becomes its
    shortcut (followed by the block's activation after the add, if any), so only blocks whose shortcut is an
    identity can be lesioned. A single-path block (no shortcut) is removed outright, which only a block whose
    output has its input's shape allows; the shapes are measured on a probe of `input_size` pixels a side.
    LesionError names any block that cannot be deleted, and any name that is no block.
    """
    chosen = resolve_blocks(model, blocks)
    check_deletable(model, chosen, input_size)
    lesioned = copy.deepcopy(model)
    for name in chosen:
        replace_block(lesioned, name, deleted_block(lesioned.get_submodule(name)))
    return lesioned


def resolve_blocks(model: "nn.Module", blocks: Iterable[BlockRef]) -> list[str]:
    """Module names of the blocks `blocks` refers to, each once, in the order given."""
    residual = residual_modules(model)
    every = block_modules(model)
    indexed = list(residual) if residual else list(every)
    kind = "residual blocks" if residual else "blocks (none is residual)"
    chosen: list[str] = []
    for ref in blocks:
        if isinstance(ref, int) and not isinstance(ref, bool):
            if not 0 <= ref < len(indexed):
                raise LesionError(f"block index {ref} is out of range: the model has {len(indexed)} {kind} "
                                  f"(0 to {len(indexed) - 1})")
            chosen.append(indexed[ref])
            continue
        name = str(ref)
        if name not in every:
            names = list(residual) or list(every)
            raise LesionError(f"'{name}' is not a residual block (or any block) of the model; its blocks are named "
                              f"like {', '.join(names[:3]) or '(none)'}{' ...' if len(names) > 3 else ''}")
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def check_deletable(model: "nn.Module", names: list[str], input_size: int) -> None:
    """LesionError for the first block that cannot be deleted: a residual block without an identity
    shortcut, or a single-path block whose output shape differs from its input's."""
    residual = residual_modules(model)
    for name in names:
        if name in residual and not residual[name].shortcut_is_identity():
            raise LesionError(f"block '{name}' has a {shortcut_kind(residual[name])} shortcut, not an identity: "
                              "deleting its residual branch would not leave the block's input, so it cannot be "
                              "lesioned (Veit et al. lesion only blocks with identity shortcuts)")
    single = [name for name in names if name not in residual]
    if not single:
        return
    shapes = block_shapes(model, single, input_size)
    for name in single:
        shape_in, shape_out = shapes[name]
        if shape_in != shape_out:
            raise LesionError(f"'{name}' is not a residual block, and deleting it would change the shape: it "
                              f"maps {_shape_text(shape_in)} to {_shape_text(shape_out)} (at a {input_size}x"
                              f"{input_size} input), so the next block could not take its input; only layers "
                              "whose input and output shapes match can be deleted from a single-path network")


def deletable_blocks(model: "nn.Module", input_size: int) -> list[str]:
    """Every block a lesion may delete, in forward order: residual blocks with an identity shortcut and
    single-path blocks that keep their input's shape."""
    residual = residual_modules(model)
    single = [name for name in block_modules(model) if name not in residual]
    shapes = block_shapes(model, single, input_size) if single else {}
    return [name for name in block_modules(model)
            if (name in residual and residual[name].shortcut_is_identity())
            or (name in shapes and shapes[name][0] == shapes[name][1])]


def block_shapes(model: "nn.Module", names: list[str], input_size: int) -> dict[str, tuple[tuple, tuple]]:
    """name -> (input shape, output shape) without the batch axis, from one forward pass of a zero probe
    (on the model's own device, so a model on the meta device costs nothing)."""
    import torch

    shapes: dict[str, tuple[tuple, tuple]] = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda m, args, out, name=name: shapes.__setitem__(name, (tuple(args[0].shape[1:]), tuple(out.shape[1:]))))
        for name in names]
    param = next(model.parameters())
    probe = torch.zeros(1, input_channels(model), input_size, input_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(probe)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def input_channels(model: "nn.Module") -> int:
    """The channels the network reads: its first conv's input channels."""
    import torch.nn as nn

    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def deleted_block(block: "nn.Module") -> "nn.Module":
    """What a lesion leaves of a block: its shortcut (a residual block) or nothing at all (a single-path one)."""
    import torch.nn as nn

    return block.without_branch() if getattr(block, "residual", False) else nn.Identity()


def replace_block(model: "nn.Module", name: str, new: "nn.Module") -> "nn.Module":
    """Put `new` in place of the block `name`; returns the block it replaced."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = parent.get_submodule(child)
    setattr(parent, child, new)
    return old


def _shape_text(shape: tuple) -> str:
    return "x".join(str(d) for d in shape)


def block_modules(model: "nn.Module") -> dict[str, "nn.Module"]:
    """name -> block for every block of an archgen model's stages, in forward order."""
    return {f"{stage_name}.{index}": block for stage_name in getattr(model, "stage_names", [])
            for index, block in getattr(model, stage_name).named_children()}


def residual_modules(model: "nn.Module") -> dict[str, "nn.Module"]:
    """name -> block for every residual block of an archgen model, in forward order."""
    out = {}
    for stage_name in getattr(model, "stage_names", []):
        for index, block in getattr(model, stage_name).named_children():
            if getattr(block, "residual", False) and hasattr(block, "shortcut_is_identity"):
                out[f"{stage_name}.{index}"] = block
    return out


def shortcut_kind(block: "nn.Module") -> str:
    """'identity', 'projection', 'zero-padding' or 'pre-activated identity', as the lesion table prints it."""
    from archgen.modules import ZeroPadShortcut

    if block.merge.shortcut_text:
        return block.merge.shortcut_text
    down = getattr(block, "downsample", None)
    if down is None:
        return "identity" if block.shortcut_is_identity() else "pre-activated identity"
    return "zero-padding" if isinstance(down, ZeroPadShortcut) else "projection"
