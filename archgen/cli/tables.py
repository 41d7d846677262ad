"""`archgen table` and `archgen profile`, registered by archgen/cli/app.py.

Imported when the CLI starts, so torch (and everything that builds a model) is
imported only inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archgen.cli.common import FORMAT_OPTION, OUTPUT_OPTION, TABLE_OPTION, Fmt, check_output_path, emit_tables, fail, \
    friendly


@friendly
def table_command(
    specs: Optional[List[str]] = typer.Argument(
        None, help="Spec names (short names resolve: resnext50 -> resnext50_32x4d) or YAML files."),
    compare: bool = typer.Option(False, "--compare", help="Side by side, with params and MACs stage by stage "
                                                         "(two specs or more), as in Table 1 of the ResNeXt paper."),
    paper: Optional[str] = typer.Option(None, "--paper", help="A paper's tables: resnet, resnext, wrn, densenet, "
                                                              "darknet, preact or tricks."),
    fmt: Fmt = FORMAT_OPTION,
    output: Optional[Path] = OUTPUT_OPTION,
    only: Optional[str] = TABLE_OPTION,
) -> None:
    """Print architecture tables in the papers' shape, each computed figure beside the printed one.

    With --paper, the tables of one paper (keys such as table1, table3); with
    --compare, the specs side by side (key specs) and stage by stage (key stages).
    """
    from archgen.tables import compare as tables
    from archgen.tables.layouts import PAPERS, layouts_for

    check_output_path(output)
    if paper is not None:
        if specs:
            fail("give either --paper or specs, not both")
        if paper not in PAPERS:
            fail(f"unknown paper '{paper}'; choose one of {', '.join(PAPERS)}")
        result = [tables.layout_table(layout) for layout in layouts_for(paper)]
    else:
        if not specs:
            fail("name specs to tabulate (e.g. 'archgen table --compare resnet50 resnext50') or a "
                 f"paper (--paper {'|'.join(PAPERS)})")
        if compare and len(specs) < 2:
            fail("--compare needs two specs or more")
        result = [tables.specs_table(specs)]
        if compare:
            result.append(tables.stages_table(specs))
    emit_tables(result, fmt, output, only)


@friendly
def profile_command(
    spec: str = typer.Argument(..., help="A spec name (short names resolve) or a YAML file."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, max=8192,
                                             help="Image side (default: the spec's)."),
    batch: int = typer.Option(1, "--batch", min=1, max=1_000_000, help="Batch size for the memory estimates."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16, bfloat16 or float64."),
    counters: str = typer.Option("archgen", "--counters",
                                 help="Comma-separated: archgen, fvcore, ptflops. With fvcore or ptflops, the "
                                      "model is built and run once, and the counts reconciled layer by layer."),
    layers: bool = typer.Option(False, "--layers", help="Every layer, not only the stages (and, with other "
                                                        "counters, every layer's reconciliation)."),
    fmt: Fmt = FORMAT_OPTION,
    output: Optional[Path] = OUTPUT_OPTION,
    only: Optional[str] = TABLE_OPTION,
    latency: Optional[Path] = typer.Option(None, "--latency", help="A latency model (archgen calibrate -o "
                                           "DEVICE.json): predict latency per stage at --batch, no model built "
                                           "(the file fixes backend, dtype and layout)."),
) -> None:
    """Count params, MACs, FLOPs, activations and memory per stage and layer.

    Tables: stages, memory, with --layers layers, with --counters fvcore or
    ptflops run on the same model and input, reconciled layer by layer
    (counters, counter-layers), and with --latency the predicted latency.
    """
    from archgen.cli import profile_view as view

    from archgen.third_party_counters import COUNTERS

    check_output_path(output)
    chosen = [c.strip() for c in counters.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in COUNTERS]
    if unknown or not chosen:
        fail(f"unknown counter '{', '.join(unknown) or counters}'; choose from {', '.join(COUNTERS)}, "
             "comma-separated")
    if dtype not in view.DTYPE_BYTES:
        fail(f"unknown dtype '{dtype}'; choose from {', '.join(view.DTYPE_BYTES)}")
    from archgen.complexity import profile
    from archgen.grammar.loader import load_spec

    loaded = load_spec(spec)
    p = profile(loaded, input_size)
    result = [view.stages_table(p, batch, dtype)]
    if layers:
        result.append(view.layers_table(p))
    result.append(view.memory_table(p, view.memory(p, batch, dtype, loaded.doc.input.channels)))
    if set(chosen) - {"archgen"}:
        from archgen.third_party_counters import reconcile
        from archgen.tables.compare import model_for

        r = reconcile(loaded, p.input_size, tuple(["archgen", *chosen]))
        printed = [(f"printed: {fig.name} ({m_cite})", fig.printed)
                   for m_cite, fig in _printed_ops(model_for(loaded), p.input_size)]
        result += view.reconciliation_tables(r, printed, layers)
    if latency is not None:
        from archgen.cli.latency_view import latency_table

        result.append(latency_table(loaded, input_size, latency, batch))
    emit_tables(result, fmt, output, only)


def _printed_ops(model: "object", size: int) -> list[tuple[str, "object"]]:
    """The paper's printed MACs / FLOPs for this model, when measured at this input size."""
    from archgen.tables.compare import _cite

    c = model.citation
    if c is None or (c.input_size or model.profile.input_size) != size:
        return []
    return [(_cite(c), model.figures[name]) for name in ("macs", "flops") if model.figures[name].printed]
