"""`archgen paths` and `archgen lesion`, registered by archgen/cli/app.py; torch is imported inside the commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from archgen.cli.common import FORMAT_OPTION, Fmt, fail, friendly
from archgen.ensemble import (BlockRef, LesionError, block_modules, deletable_blocks, lesion, path_lengths,
                              residual_modules, shortcut_kind)

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
    specs: list[str] = typer.Argument(..., help="Bundled spec names (see 'archgen list') or YAML files; several "
                                                "only with --sweep, side by side."),
    blocks: Optional[str] = typer.Option(None, "--blocks", "-b",
                                         help="Comma-separated blocks to delete: names (layer2.3) or indices "
                                              "among the residual blocks (among all blocks of a single-path "
                                              "network). Without it or --sweep, list the blocks."),
    sweep: Optional[int] = typer.Option(None, "--sweep", min=1, max=10_000,
                                        help="Delete 0, 1, ..., K random deletable blocks, --sets sets per K, "
                                             "and report the output's change against K."),
    sets: int = typer.Option(10, "--sets", min=1, max=10_000, help="Random sets of blocks per K in a sweep."),
    weights: Optional[list[str]] = typer.Option(None, "--weights",
                                                help="A state dict saved by 'archgen build -o'; with several "
                                                     "specs, once per spec in their order."),
    data: Optional[str] = typer.Option(None, "--data", help="A directory of your own images (DIR/<class>/<image>, "
                                                            "as ImageFolder reads it) to sweep on, reporting "
                                                            "top-1 agreement with the whole network."),
    batch: int = typer.Option(8, "--batch", min=1, max=4096, help="Random probe images, without --data."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Draw the sweep's curves to FILE.png or FILE.svg "
                                                            "(the plot extra)."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Image side of the probe batch (default: the spec's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights (without --weights), the probe batch and "
                                               "the sweep's random sets."),
    fmt: Fmt = FORMAT_OPTION,
) -> None:
    """Delete blocks (Veit et al. 2016's lesion study) and report how far the output moves.

    Residual blocks with an identity shortcut become that shortcut; a block of a
    single-path network (VGG, a plain net) is removed when its input and output
    shapes match. Without --blocks or --sweep, list the blocks and which can be
    deleted.
    """
    from archgen.render import render

    if plot is not None:
        from archgen.plots import figure_format

        figure_format(plot)  # refuse a bad suffix before any work
    if sweep is None:
        for option, value in (("--plot", plot), ("--data", data)):
            if value is not None:
                fail(f"{option} belongs to a sweep; add --sweep K")
        if len(specs) > 1:
            fail(f"{len(specs)} specs given; several specs are compared side by side only with --sweep K")
        if weights and len(weights) > 1:
            fail("one spec takes one --weights file")
        refs = [] if blocks is None else [_block_ref(b) for b in blocks.split(",") if b.strip()]
        table = _lesion_table(specs[0], refs, weights[0] if weights else None, input_size, seed)
    else:
        if blocks is not None:
            fail("--blocks deletes chosen blocks and --sweep random ones; give one of them")
        if weights and len(weights) != len(specs):
            fail(f"{len(weights)} --weights files for {len(specs)} specs; give one per spec, in the specs' order, "
                 "or none")
        table = _sweep_table(specs, weights, data, sweep, sets, batch, input_size, seed, plot)
    typer.echo(render(table, fmt.value), nl=False)


def _block_ref(text: str) -> BlockRef:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _built(spec: str, weights: Optional[str], input_size: Optional[int], seed: int):
    """(spec, model, probe side): the model built with the seed's weights or loaded ones, in eval mode."""
    import torch

    from archgen.builder import build
    from archgen.complexity import profile
    from archgen.grammar.loader import load_spec
    from archgen.weights import load_weights

    loaded = load_spec(spec)
    profile(loaded, input_size)  # refuses an input too small for the network, at the spec's line
    torch.manual_seed(seed)
    model = build(loaded)
    if weights is not None:
        load_weights(model, weights, layout="auto")  # archgen's, torchvision's or timm's names
    return loaded, model.eval(), input_size or loaded.doc.input.size


def _lesion_table(spec: str, refs: list[BlockRef], weights: Optional[str], input_size: Optional[int], seed: int):
    import torch

    from archgen.render import Table, rounded

    loaded, model, size = _built(spec, weights, input_size, seed)
    every = block_modules(model)
    residual = residual_modules(model)
    if not refs:
        return _listing(loaded.name, model, every, residual, size)
    lesioned = lesion(model, refs, input_size=size)
    x = torch.randn(2, loaded.doc.input.channels, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        full, cut = model(x), lesioned(x)
    change = (torch.linalg.vector_norm(cut - full) / torch.linalg.vector_norm(full).clamp_min(1e-12)).item()
    agree = (cut.argmax(1) == full.argmax(1)).float().mean().item() if full.dim() == 2 else float("nan")
    remaining = block_modules(lesioned)
    deleted = [name for name in every if remaining[name] is not every[name] and _was_deleted(remaining[name])]
    removed = sum(_branch_params(every[name]) for name in deleted)
    table = Table(f"Lesion of {loaded.name}", ["deleted blocks", "params removed", "relative output change",
                                                 "top-1 agreement"])
    table.add(", ".join(deleted), rounded(removed), change, agree)
    table.notes.append(f"random probe batch of 2 at {size}x{size} (seed {seed}); "
                       f"{'weights from ' + weights if weights else 'freshly initialised weights'}")
    table.data = {"name": loaded.name, "deleted": deleted, "params_removed": removed,
                  "relative_output_change": change, "top1_agreement": agree}
    return table


def _was_deleted(block: "nn.Module") -> bool:
    import torch.nn as nn

    from archgen.modules import ShortcutOnly

    return isinstance(block, (ShortcutOnly, nn.Identity))


def _listing(name: str, model: "nn.Module", every: dict, residual: dict, size: int):
    """Every block, its shortcut, whether it can be deleted, and the parameters deleting it removes."""
    from archgen.render import Table, rounded

    deletable = set(deletable_blocks(model, size))
    if residual:
        title, rows = f"Residual blocks of {name}", residual
    else:
        title, rows = f"Blocks of {name} (a single-path network: no shortcuts)", every
    table = Table(title, ["index", "block", "shortcut", "lesionable", "params"])
    for i, (block_name, block) in enumerate(rows.items()):
        table.add(i, block_name, shortcut_kind(block) if block_name in residual else "none",
                  "yes" if block_name in deletable else "no", rounded(_branch_params(block)))
    table.data = {"name": name, "blocks": [dict(zip(table.columns, row)) for row in table.rows]}
    return table


def _sweep_table(specs: list[str], weights: Optional[list[str]], data: Optional[str], max_deleted: int, sets: int,
                 batch: int, input_size: Optional[int], seed: int, plot: Optional[str]):
    import torch

    from archgen.ensemble.lesion_sweep import calibrate_bn, lesion_sweep, load_images
    from archgen.render import Number, Table, quantity

    sweeps = []
    for i, spec in enumerate(specs):
        loaded, model, size = _built(spec, weights[i] if weights else None, input_size, seed)
        channels = loaded.doc.input.channels
        x = load_images(data, size, channels) if data is not None else \
            torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))
        if not weights:
            calibrate_bn(model, x)
        sweeps.append(lesion_sweep(model, loaded.name, x, max_deleted, sets, seed, size, agreement=data is not None))
    columns = ["blocks deleted"] + [f"{s.name} change" for s in sweeps]
    if data is not None:
        columns += [f"{s.name} top-1 agreement" for s in sweeps]
    table = Table("Lesion sweep: relative change of the output against blocks deleted at random", columns,
                  key="sweep")
    for k in range(max(len(s.points) for s in sweeps)):
        points = [s.points[k] if k < len(s.points) else None for s in sweeps]
        row = [k] + [Number(p.mean_change, f"{p.mean_change:.3g} ± {p.std_change:.2g}") if p else "" for p in points]
        if data is not None:
            row += [Number(p.agreement, f"{p.agreement:.3f}") if p else "" for p in points]
        table.add(*row)
    probe = f"the {len(x)} images of {data}" if data is not None else f"a random batch of {batch}"
    table.notes.append(f"mean (± std) over {sets} random sets of deleted blocks per row (seed {seed}) of "
                       "||f_k(x) - f(x)|| / ||f(x)||, the logits' relative change, on "
                       f"{probe}; " + ("weights from " + ", ".join(weights) if weights else
                                        "freshly initialised weights, BN statistics set from that batch"))
    table.notes += [f"{s.name}: {quantity(s.candidates, 'deletable block')}" for s in sweeps]
    table.data = {"sweeps": [s.to_dict() for s in sweeps], "sets": sets, "seed": seed}
    if plot is not None:
        from archgen.ensemble.lesion_sweep import sweep_figure
        from archgen.plots import save_figure

        _matplotlib_or_fail()
        save_figure(sweep_figure(sweeps, data is not None), plot)
        typer.echo(f"wrote the sweep's curves to {plot}", err=True)
    return table


def _matplotlib_or_fail() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LesionError("--plot needs matplotlib, which is not installed: pip install 'archgen[plot]'") from None


def _branch_params(block: "nn.Module") -> int:
    """Parameters a lesion deletes: the block's, less its shortcut's (all of a single-path block's)."""
    down = getattr(block, "downsample", None)
    shortcut = sum(p.numel() for p in down.parameters()) if down is not None else 0
    return sum(p.numel() for p in block.parameters()) - shortcut
