"""The ensemble view of residual networks (Veit et al. 2016, "Residual Networks
Behave Like Ensembles of Relatively Shallow Networks", arXiv 1605.06431).

Unraveled, a network of n residual blocks y = f(x) + s(x) is a sum of 2^n
paths, one per choice of branch or shortcut at every block; C(n, k) of them go
through k residual branches, so path lengths follow Binomial(n, 1/2), mean n/2.
`path_lengths` computes that distribution from the plan alone (no model
built). `lesion` deletes chosen residual branches from a built model, the
paper's lesion study: a block whose shortcut is an identity becomes that
shortcut. The CLI commands `archgen paths` and `archgen lesion` live here too.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional, Union

import typer

if TYPE_CHECKING:
    import torch.nn as nn

    from archgen.spec.loader import SpecLike


class LesionError(ValueError):
    """A block that cannot be lesioned: not a residual block, or its shortcut is not an identity."""


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
    from archgen.blocks.registry import get_block
    from archgen.planner import plan

    p = plan(spec)
    # A residual family may place non-residual helpers in its stages (DarkNet's downsampling `conv`, DenseNet's
    # transitions), so each block's own type decides; plain nets (shortcut: none) add no branch.
    return [f"{stage.name}.{i}" for stage in p.stages for i, b in enumerate(stage.blocks)
            if get_block(b.type).residual and b.shortcut != "none"]


def path_lengths(spec: "SpecLike") -> PathLengths:
    """Binomial path-length distribution of the spec's unraveled network (Veit et al. 2016, Sec. 3)."""
    from archgen.spec.loader import load_spec

    loaded = load_spec(spec)
    n = len(residual_block_names(loaded))
    return PathLengths(loaded.name, n, [math.comb(n, k) for k in range(n + 1)])


BlockRef = Union[str, int]


def lesion(model: "nn.Module", blocks: Iterable[BlockRef]) -> "nn.Module":
    """A copy of `model` with the residual branches of `blocks` deleted; the original is left as it was.

    Blocks are named by module path ('layer2.3') or by index among the residual blocks in forward order
    (0-based). A block becomes its shortcut (followed by the block's activation after the add, if any), so
    only blocks whose shortcut is an identity can be lesioned: LesionError names any other, and any name
    that is not a residual block.
    """
    candidates = residual_modules(model)
    names = list(candidates)
    chosen: list[str] = []
    for ref in blocks:
        if isinstance(ref, int) and not isinstance(ref, bool):
            if not 0 <= ref < len(names):
                raise LesionError(f"block index {ref} is out of range: the model has {len(names)} residual blocks "
                                  f"(0 to {len(names) - 1})")
            chosen.append(names[ref])
            continue
        name = str(ref)
        if name not in candidates:
            raise LesionError(f"'{name}' is not a residual block of the model; residual blocks are named like "
                              f"{', '.join(names[:3]) or '(none: the model has no residual blocks)'}"
                              f"{' ...' if len(names) > 3 else ''}")
        chosen.append(name)
    for name in chosen:
        if not candidates[name].shortcut_is_identity():
            raise LesionError(f"block '{name}' has a {shortcut_kind(candidates[name])} shortcut, not an identity: "
                              "deleting its residual branch would not leave the block's input, so it cannot be "
                              "lesioned (Veit et al. lesion only blocks with identity shortcuts)")
    lesioned = copy.deepcopy(model)
    for name in dict.fromkeys(chosen):
        parent_name, _, child = name.rpartition(".")
        parent = lesioned.get_submodule(parent_name)
        setattr(parent, child, parent.get_submodule(child).without_branch())
    return lesioned


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
    from archgen.blocks.common import ZeroPadShortcut

    down = getattr(block, "downsample", None)
    if down is None:
        return "identity" if block.shortcut_is_identity() else "pre-activated identity"
    return "zero-padding" if isinstance(down, ZeroPadShortcut) else "projection"


# ---- CLI commands (registered by archgen.cli) ----

FORMAT_HELP = "Output format: rich, json, csv, markdown or latex."


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _check_format(fmt: str) -> str:
    from archgen.render import FORMATS

    if fmt not in FORMATS:
        raise _fail(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    return fmt


def paths_command(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    fmt: str = typer.Option("rich", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """Path lengths of the unraveled network (Veit et al. 2016): n residual blocks give 2^n paths, C(n, k) of
    them k blocks long; prints the histogram and its mean."""
    from archgen.errors import SpecError
    from archgen.render import Table, render

    fmt = _check_format(fmt)
    try:
        dist = path_lengths(spec)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    table = Table(f"Path lengths of {dist.name} unraveled", ["length (residual blocks)", "paths", "fraction"],
                  data=dist.to_dict())
    for k, count in enumerate(dist.counts):
        table.add(k, count, f"{dist.fraction(k):.3g}")
    table.notes.append(f"{dist.blocks} residual blocks, 2^{dist.blocks} = {dist.paths:,} paths; mean length "
                       f"{dist.mean:g} blocks (std {dist.std:.3g}); lengths follow Binomial({dist.blocks}, 1/2)")
    typer.echo(render(table, fmt), nl=False)


def lesion_command(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    blocks: Optional[str] = typer.Option(None, "--blocks", "-b",
                                         help="Comma-separated blocks to delete: names (layer2.3) or indices "
                                              "among the residual blocks. Without it, list the blocks."),
    weights: Optional[str] = typer.Option(None, "--weights", help="A state dict saved by 'archgen build -o'."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Image side of the random probe batch (default: the spec's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights (without --weights) and of the probe batch."),
    fmt: str = typer.Option("rich", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """Delete residual branches (Veit et al. 2016's lesion study) and report how far the output moves on a
    random probe batch; without --blocks, list the residual blocks and which can be lesioned."""
    from archgen.errors import SpecError
    from archgen.render import render

    fmt = _check_format(fmt)
    refs = [] if blocks is None else [_block_ref(b) for b in blocks.split(",") if b.strip()]
    try:
        table = _lesion_table(spec, refs, weights, input_size, seed)
    except (SpecError, LesionError) as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{exc.filename or weights}: {exc.strerror or exc}") from None
    typer.echo(render(table, fmt), nl=False)


def _block_ref(text: str) -> BlockRef:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _lesion_table(spec: str, refs: list[BlockRef], weights: Optional[str], input_size: Optional[int], seed: int):
    import torch

    from archgen.builder import build
    from archgen.render import Table
    from archgen.spec.loader import load_spec

    loaded = load_spec(spec)
    torch.manual_seed(seed)
    model = build(loaded)
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise LesionError(f"{weights} is not a state dict of {loaded.name}: {str(exc).splitlines()[0]}") from None
    model.eval()
    candidates = residual_modules(model)
    if not refs:
        table = Table(f"Residual blocks of {loaded.name}", ["index", "block", "shortcut", "lesionable", "params"])
        for i, (name, block) in enumerate(candidates.items()):
            table.add(i, name, shortcut_kind(block), "yes" if block.shortcut_is_identity() else "no",
                      _branch_params(block))
        table.data = {"name": loaded.name, "blocks": [dict(zip(table.columns, row)) for row in table.rows]}
        return table
    lesioned = lesion(model, refs)
    size = input_size or loaded.doc.input.size
    x = torch.randn(2, loaded.doc.input.channels, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        full, cut = model(x), lesioned(x)
    change = (torch.linalg.vector_norm(cut - full) / torch.linalg.vector_norm(full).clamp_min(1e-12)).item()
    agree = (cut.argmax(1) == full.argmax(1)).float().mean().item() if full.dim() == 2 else float("nan")
    deleted = [name for name in candidates if name not in residual_modules(lesioned)]
    removed = sum(_branch_params(candidates[name]) for name in deleted)
    table = Table(f"Lesion of {loaded.name}", ["deleted blocks", "params removed", "relative output change",
                                                 "top-1 agreement"])
    table.add(", ".join(deleted), removed, change, agree)
    table.notes.append(f"random probe batch of 2 at {size}x{size} (seed {seed}); "
                       f"{'weights from ' + weights if weights else 'freshly initialised weights'}")
    table.data = {"name": loaded.name, "deleted": deleted, "params_removed": removed,
                  "relative_output_change": change, "top1_agreement": agree}
    return table


def _branch_params(block: "nn.Module") -> int:
    """Parameters a lesion deletes: the block's, less its shortcut's."""
    down = getattr(block, "downsample", None)
    shortcut = sum(p.numel() for p in down.parameters()) if down is not None else 0
    return sum(p.numel() for p in block.parameters()) - shortcut
