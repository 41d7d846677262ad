"""`archgen paths` and `archgen lesion`, registered by archgen/cli/app.py; torch is imported inside the commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from archgen.cli.common import FORMAT_OPTION, Fmt, fail, friendly
from archgen.ensemble import BlockRef, LesionError, lesion, path_lengths, residual_modules, shortcut_kind

if TYPE_CHECKING:
    import torch.nn as nn


@friendly
def paths_command(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    fmt: Fmt = FORMAT_OPTION,
) -> None:
    """Print the path lengths of the unraveled network (Veit et al. 2016), a histogram and its mean.

    n residual blocks give 2^n paths, C(n, k) of them k blocks long.
    """
    from archgen.render import Number, Table, render

    dist = path_lengths(spec)
    if dist.blocks == 0:
        fail(f"{dist.name} has no residual blocks, so it unravels into a single path; the ensemble view needs "
             "shortcuts (a ResNet-family spec)")
    table = Table(f"Path lengths of {dist.name} unraveled", ["length (residual blocks)", "paths", "fraction"],
                  data=dist.to_dict(), key="paths")
    for k, count in enumerate(dist.counts):
        table.add(k, count, Number(dist.fraction(k), f"{dist.fraction(k):.3g}"))
    table.notes.append(f"{dist.blocks} residual blocks, 2^{dist.blocks} = {dist.paths:,} paths; mean length "
                       f"{dist.mean:g} blocks (std {dist.std:.3g}); lengths follow Binomial({dist.blocks}, 1/2)")
    typer.echo(render(table, fmt.value), nl=False)


@friendly
def lesion_command(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    blocks: Optional[str] = typer.Option(None, "--blocks", "-b",
                                         help="Comma-separated blocks to delete: names (layer2.3) or indices "
                                              "among the residual blocks. Without it, list the blocks."),
    weights: Optional[str] = typer.Option(None, "--weights", help="A state dict saved by 'archgen build -o'."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Image side of the random probe batch (default: the spec's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights (without --weights) and of the probe batch."),
    fmt: Fmt = FORMAT_OPTION,
) -> None:
    """Delete residual branches (Veit et al. 2016's lesion study) and report how far the output moves.

    The output is compared on a random probe batch. Without --blocks, list the
    residual blocks and which can be lesioned.
    """
    from archgen.render import render

    refs = [] if blocks is None else [_block_ref(b) for b in blocks.split(",") if b.strip()]
    typer.echo(render(_lesion_table(spec, refs, weights, input_size, seed), fmt.value), nl=False)


def _block_ref(text: str) -> BlockRef:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _lesion_table(spec: str, refs: list[BlockRef], weights: Optional[str], input_size: Optional[int], seed: int):
    import torch

    from archgen.builder import build
    from archgen.complexity import profile
    from archgen.render import Table
    from archgen.grammar.loader import load_spec

    loaded = load_spec(spec)
    profile(loaded, input_size)  # refuses an input too small for the network, at the spec's line
    torch.manual_seed(seed)
    model = build(loaded)
    if weights is not None:
        _load_weights(model, weights, loaded.name)
    model.eval()
    candidates = residual_modules(model)
    if not candidates:
        raise LesionError(f"{loaded.name} has no residual blocks to lesion (its layers have no shortcuts)")
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


def _load_weights(model: "nn.Module", weights: str, name: str) -> None:
    """A state dict saved by 'archgen build -o', with the mismatch spelled out when it is another network's."""
    import pickle

    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise LesionError(f"{weights} is not a file saved by torch.save (archgen build -o): "
                          f"{type(exc).__name__}") from None
    if not isinstance(state, dict):
        raise LesionError(f"{weights} holds a {type(state).__name__}, not a state dict")
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in ours.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (first: {missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (first: {unexpected[0]})" if unexpected else "",
                 f"{len(shapes)} of other shapes (first: {shapes[0]})" if shapes else ""]
        raise LesionError(f"{weights} is not a state dict of {name}: "
                          + "; ".join(p for p in parts if p))
    model.load_state_dict(state)


def _branch_params(block: "nn.Module") -> int:
    """Parameters a lesion deletes: the block's, less its shortcut's."""
    down = getattr(block, "downsample", None)
    shortcut = sum(p.numel() for p in down.parameters()) if down is not None else 0
    return sum(p.numel() for p in block.parameters()) - shortcut
