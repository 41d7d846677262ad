"""`archgen sample`, `archgen scale` and `archgen search` (design spaces), registered by archgen/cli/app.py,
and the views they print. Nothing here imports torch: the counts are archgen's analytic ones."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional

import typer

from archgen.cli import latency_view
from archgen.cli.common import FORMAT_OPTION, Fmt, check_output_path, emit, fail, friendly

if TYPE_CHECKING:
    from archgen.bench.latency_model import LatencyModel

#: Rows a table for people (rich, markdown, latex) holds; csv and json stream any number.
MAX_TABLE_ROWS = 10_000
FIGURE_COLUMNS = ("params", "macs", "flops", "acts", "depth")
#: The figures a narrow terminal leaves out first: FLOPs are twice the MACs, and depth rarely varies.
FIGURES_DROPPED = ("flops", "depth", "acts")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
#: Most candidates --verify builds and times besides the front: each takes seconds, and a few dozen already
#: show how well the model ranks.
MAX_VERIFY = 1_000

SPACE_ARGUMENT = typer.Argument(..., help="A design-space YAML file, or a bundled space's name "
                                          "(resnext50_cxd, wrn28_width, resnet_budget, regnetx_400mf, "
                                          "mobile_mbconv).")
CONSTRAINT_OPTION = typer.Option(None, "--constraint", "-c", help="Another constraint, e.g. 'params <= 25.6M' "
                                                                 "(repeatable; added to the space's own).")


@friendly
def sample_command(
    space: str = SPACE_ARGUMENT,
    n: int = typer.Option(10, "--n", min=1, help="How many specs to draw that meet the constraints."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed draws the same specs."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Write each spec to DIR/NAME.yaml "
                                                                             "(made if missing)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the EDFs of params, MACs and activations "
                                                             "(.png, .pdf or .svg; needs the plot extra)."),
    constraints: Optional[List[str]] = CONSTRAINT_OPTION,
    max_draws: Optional[int] = typer.Option(None, "--max-draws", min=1, help="Give up after this many draws "
                                            "(default: 1000 per spec asked for, at least 10,000)."),
    fmt: Fmt = FORMAT_OPTION,
) -> None:
    """Draw N specs from SPACE under its constraints (rejection sampling) and print their figures.

    csv and json stream, so N may be large; the acceptance rate goes to stderr.
    """
    from archgen.design.sample import Unsatisfiable, sample
    from archgen.design.evaluate import Evaluator, Rejections
    from archgen.design.write import prepare_dir, write_spec

    if fmt not in (Fmt.csv, Fmt.json) and n > MAX_TABLE_ROWS:
        fail(f"a {fmt.value} table of {n:,} rows is more than people read; use --format csv or json, which "
             "stream any number of rows")
    if plot is not None:
        check_plot(plot)
    if output_dir is not None:
        prepare_dir(output_dir)
    loaded, all_constraints = load_with_constraints(space, constraints)
    tally = Rejections()
    evaluator = Evaluator(loaded, all_constraints)
    digits = len(str(n - 1))
    plotted = {name: array("d") for name in ("params", "macs", "acts")}
    sink = RowSink(fmt, f"Samples of {loaded.name} (seed {seed})", sample_columns(loaded))
    failure = None
    with progress_bar(f"sampling {loaded.name}", n) as advance:
        try:
            for k, verdict in enumerate(sample(loaded, n, seed, evaluator, tally, max_draws)):
                name = f"{loaded.name}_{k:0{digits}d}"
                if output_dir is not None:
                    write_spec(output_dir / f"{name}.yaml", loaded.written(verdict.values, name,
                                                                           sample_description(loaded, verdict, seed)),
                               f"drawn by archgen sample {loaded.file} --seed {seed} (draw {tally.drawn})")
                sink.add(sample_row(name, verdict))
                for figure, column in plotted.items():
                    column.append(verdict.figures.get(figure))
                advance(k + 1)
        except Unsatisfiable as exc:
            failure = str(exc)
    sink.close({"space": loaded.file, "seed": seed, "drawn": tally.drawn, "accepted": tally.accepted,
                "acceptance_rate": tally.rate, "rejected_by": dict(tally.by)},
               [acceptance_note(tally), *constraint_notes(all_constraints)])
    summary_once(fmt, acceptance_note(tally), tally.accepted, output_dir)
    if plot is not None and tally.accepted:
        from archgen.design.plot import edf_plot

        edf_plot(plotted, plot, f"{loaded.name}, seed {seed}")
        typer.echo(f"drew the EDFs to {plot}", err=True)
    if failure is not None:
        fail(failure)


@friendly
def search_command(
    space: str = SPACE_ARGUMENT,
    minimize: Optional[List[str]] = typer.Option(None, "--minimize", help="A figure the front minimises "
                                                 "(repeatable; replaces the space's objective)."),
    maximize: Optional[List[str]] = typer.Option(None, "--maximize", help="A figure the front maximises "
                                                 "(repeatable)."),
    constraints: Optional[List[str]] = CONSTRAINT_OPTION,
    strategy: str = typer.Option("auto", "--strategy", help="auto (exhaustive up to 20,000 candidates, else "
                                                           "random), exhaustive, random or evolve."),
    budget: int = typer.Option(10_000, "--budget", min=1, help="Candidates a random or evolutionary search "
                                                               "evaluates."),
    seed: int = typer.Option(0, "--seed", help="Random seed of random and evolutionary search."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Write each answer to "
                                                                             "DIR/NAME.yaml (made if missing)."),
    latency: Optional[Path] = typer.Option(None, "--latency", help="A latency model (archgen calibrate -o "
                                           "DEVICE.json): the figure 'latency' (predicted ms) becomes one to "
                                           "constrain or optimise."),
    batch: int = typer.Option(1, "--batch", min=1, help="The batch size the latency is predicted at."),
    verify: int = typer.Option(0, "--verify", min=0, help="Build and measure the front's members and this many "
                               f"other candidates (at most {MAX_VERIFY:,}) inside the constraints, on the model's "
                               "backend (needs --latency)."),
    fmt: Fmt = FORMAT_OPTION,
) -> None:
    """Search SPACE for the specs nearest its target, or for its Pareto front.

    Per group the spec nearest the target of closest:/preserve:, or the front of the figures to minimise or
    maximise (default: params, MACs and activations). With --latency, each candidate that meets the counted
    constraints has its latency predicted by the model (e.g. --minimize latency -c 'latency <= 5').
    """
    from archgen.design.evaluate import Evaluator
    from archgen.design.search import chosen_objective, resolve_strategy, search

    if verify and latency is None:
        fail("--verify measures the predicted latency, and no latency model was given: add --latency DEVICE.json "
             "(made by archgen calibrate)")
    check_verify(verify, fmt)
    loaded, all_constraints = load_with_constraints(space, constraints)
    strategy = resolve_strategy(loaded, strategy)
    objective = chosen_objective(loaded, minimize or (), maximize or (), predicts_latency=latency is not None)
    model = None if latency is None else latency_view.load(latency)  # refused before any directory is made
    measure = measurer(model, batch) if verify else None
    if output_dir is not None:
        from archgen.design.write import prepare_dir

        prepare_dir(output_dir)
    evaluator = Evaluator(loaded, all_constraints, None if model is None else lambda s: model.predict(s, batch))
    with progress_bar(f"searching {loaded.name}", loaded.size() if strategy == "exhaustive" else budget) as advance:
        result = search(loaded, objective, evaluator, strategy, budget, seed, advance)
    digits = len(str(len(result.answers) - 1))
    names = [f"{loaded.name}_{k:0{digits}d}" for k in range(len(result.answers))]
    if output_dir is not None:
        write_answers(output_dir, loaded, names, result, seed)
    tables = [search_table(loaded, objective, result, names, all_constraints,
                           None if model is None else f"{latency} ({model.describe}), batch {batch}")]
    if verify:
        checked = verified(loaded, objective, evaluator, result, names, verify, seed, model, batch, measure)
        tables.append(latency_view.verify_table(checked))
    emit_table(tables if len(tables) > 1 else tables[0], fmt)
    summary_once(fmt, search_note(result), len(names), output_dir)


def check_verify(verify: int, fmt: Fmt) -> None:
    """Refuse, before the search, a --verify whose table CSV cannot hold or that asks for too much."""
    if verify and fmt is Fmt.csv:
        fail("--verify prints a second table (measured against predicted), and CSV holds one: use --format json, "
             "which holds both, or a table format")
    if verify > MAX_VERIFY:
        fail(f"--verify {verify:,} asks to build and time {verify:,} networks, seconds each; give at most "
             f"{MAX_VERIFY:,} (a few dozen already show how well the model ranks)")


def measurer(model: "LatencyModel", batch: int) -> Callable[[list[dict]], list[float]]:
    """How --verify measures networks: time_networks on the model's device, backend, dtype and layout, after
    time_networks' own checks (a CUDA GPU this machine lacks, a runtime not installed), run now: a run that
    cannot measure is refused before the search, not after it."""
    from archgen.bench.kernel_timing import check_network_timing, time_networks

    check_network_timing(model.backend, model.device, model.dtype, model.layout)

    def measure(specs: list[dict]) -> list[float]:
        return time_networks(specs, model.backend, batch, model.device, dtype=model.dtype, layout=model.layout)

    return measure


def verified(space, objective, evaluator, result, names: list[str], k: int, seed: int, model, batch: int,
             measure: Callable[[list[dict]], list[float]]):
    """The search checked on this device: its front and k other candidates built and measured by `measure`
    (measurer's; progress on stderr)."""
    from archgen.design.verify import verify

    def announced(specs: list[dict]) -> list[float]:
        typer.echo(f"measuring {len(specs)} networks on {model.backend}, batch {batch} ...", err=True)
        return measure(specs)

    return verify(space, objective, evaluator, result.answers, names, k, seed + 1, announced,
                  f"{model.backend}, batch {batch}, {model.describe.split(' on ', 1)[1]}")


def write_answers(output_dir: Path, space, names: list[str], result, seed: int) -> None:
    """Each answer of a search as DIR/NAME.yaml, saying how it was found."""
    from archgen.design.write import write_spec

    for name, verdict in zip(names, result.answers):
        description = f"found by archgen search ({result.strategy}): {space.describe(verdict.values)}"
        write_spec(output_dir / f"{name}.yaml", space.written(verdict.values, name, description),
                   f"found by archgen search {space.file} ({result.strategy}, seed {seed})")


@friendly
def scale_command(
    spec: str = typer.Argument(..., help="A bundled spec name (see 'archgen list') or a YAML file."),
    to_macs: Optional[str] = typer.Option(None, "--to-macs", help="Target MACs, e.g. 8.2G."),
    factor: Optional[float] = typer.Option(None, "--factor", help="Target MACs as a multiple of SPEC's."),
    rule: str = typer.Option("compound", "--rule", help="width, depth, resolution, compound (EfficientNet) or "
                                                        "dwr (Dollar et al. 2021's fast scaling)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the scaled spec here (atomically); "
                                                                       "without it, the spec goes to stdout and "
                                                                       "the table to stderr."),
    fmt: Fmt = FORMAT_OPTION,
) -> None:
    """Scale SPEC to a MACs target along a rule, and say how.

    Quantized to the grammar (integer depths, widths in multiples of 8, the input in steps of the network's
    output stride); the scaled spec lands within one quantization step of the target, and is written with
    the depths and widths it builds.
    """
    from archgen.design.fast_count import figures
    from archgen.design.scale import RULES, scale
    from archgen.errors import UserError
    from archgen.grammar.loader import load_spec
    from archgen.printed import parse_printed

    if (to_macs is None) == (factor is None):
        raise UserError("give the target as --to-macs X (e.g. 8.2G) or --factor S (e.g. 2), one of them")
    if rule not in RULES:
        raise UserError(f"unknown rule '{rule}'; rules: {', '.join(RULES)}")
    if factor is not None and factor <= 0:
        raise UserError(f"--factor must be positive, not {factor:g}")
    check_output_path(output)
    loaded = load_spec(spec)
    if to_macs is not None:
        try:
            target = parse_printed(to_macs).value
        except ValueError as exc:
            raise UserError(f"--to-macs: {exc}") from None
    else:
        target = factor * figures(loaded).macs
    result = scale(loaded, target, rule)
    how = f"{factor:g}x" if factor is not None else to_macs
    text = scaled_text(spec, loaded, result, how)
    table = scale_table(loaded.name, result)
    if output is None:
        from archgen.render import render

        typer.echo(render(table, "rich" if fmt is Fmt.rich else fmt.value), err=True, nl=False)
        emit(text)
    else:
        emit(text, output)
        emit_table(table, fmt)
        typer.echo(f"wrote the scaled spec to {output}", err=True)


# ---- shared helpers ----

def load_with_constraints(space: str, extra: Optional[List[str]]):
    """The space, and its constraints with those given on the command line."""
    from archgen.design.constraints import parse_constraint
    from archgen.design.space import load_space

    loaded = load_space(space)
    return loaded, loaded.constraints + [parse_constraint(text) for text in extra or []]


def check_plot(plot: Path) -> None:
    from archgen.design.plot import require_matplotlib

    check_output_path(plot)
    if plot.suffix not in PLOT_SUFFIXES:
        fail(f"cannot draw '{plot}': give a file ending in {', '.join(PLOT_SUFFIXES)}")
    require_matplotlib()


@contextlib.contextmanager
def progress_bar(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; otherwise silence (the summary line follows)."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def emit_table(table, fmt: Fmt) -> None:
    from archgen.render import render

    text = render(table, fmt.value)
    emit(text if text.endswith("\n") else text + "\n")


def summary_once(fmt: Fmt, summary: str, written: int, output_dir: Optional[Path]) -> None:
    """The run's summary on stderr where the output does not already carry it: a table for people holds it
    as a note, and csv and json, which programs read, do not. Written specs are named either way."""
    from archgen.render import quantity

    if fmt in (Fmt.csv, Fmt.json):
        typer.echo(summary, err=True)
    if output_dir is not None:
        typer.echo(f"wrote {quantity(written, 'spec')} to {output_dir}", err=True)


def search_note(result) -> str:
    return "; ".join([f"{result.strategy} search: {acceptance_note(result.tally)}",
                      *latency_view.extrapolated_note(result.tally)])


def acceptance_note(tally) -> str:
    from archgen.render import quantity

    return (f"drew {quantity(tally.drawn, 'candidate')}, {tally.accepted:,} met the constraints "
            f"(acceptance rate {tally.rate:.1%})")


def constraint_notes(constraints) -> list[str]:
    if not constraints:
        return ["no constraints"]
    return ["constraints: " + "; ".join(c.text for c in constraints)]


# ---- sample's view ----

def sample_columns(space) -> list[str]:
    return ["name", *space.labels(), *FIGURE_COLUMNS]


def sample_row(name: str, verdict) -> list[Any]:
    from archgen.render import rounded

    f = verdict.figures
    return [name, *verdict.values, rounded(f.params), rounded(f.macs), rounded(f.flops), rounded(f.acts), f.depth]


def sample_description(space, verdict, seed: int) -> str:
    return f"drawn from {space.name} (seed {seed}): {space.describe(verdict.values)}"


class RowSink:
    """Rows to stdout: csv and json as they come (memory flat in the number of rows), tables for people
    at the end."""

    def __init__(self, fmt: Fmt, title: str, columns: list[str]) -> None:
        self.fmt, self.title, self.columns = fmt, title, columns
        self.rows: list[list[Any]] = []
        self.count = 0
        if fmt is Fmt.csv:
            self.writer = csv.writer(sys.stdout, lineterminator="\n")
            self.writer.writerow(columns)
        elif fmt is Fmt.json:
            sys.stdout.write('{"title": ' + json.dumps(title) + ', "rows": [')

    def add(self, row: list[Any]) -> None:
        from archgen.render import exact_cell, json_value

        if self.fmt is Fmt.csv:
            self.writer.writerow([exact_cell(c) for c in row])
        elif self.fmt is Fmt.json:
            record = json.dumps(dict(zip(self.columns, row)), default=json_value)
            sys.stdout.write(("\n  " if self.count == 0 else ",\n  ") + record)
        else:
            self.rows.append(row)
        self.count += 1

    def close(self, summary: dict, notes: list[str]) -> None:
        """Finish the stream; a table for people is printed only when it has rows (the error says why not)."""
        if self.fmt is Fmt.csv:
            sys.stdout.flush()
            return
        if self.fmt is Fmt.json:
            sys.stdout.write("\n], " + json.dumps(summary)[1:] + "\n")
            return
        if not self.rows:
            return
        from archgen.render import Table

        table = Table(self.title, self.columns, self.rows, notes=notes, key="samples", droppable=FIGURES_DROPPED)
        emit_table(table, self.fmt)


# ---- search's view ----

def search_table(space, objective, result, names: list[str], constraints, latency: Optional[str] = None):
    from archgen.design.objectives import Closest
    from archgen.render import Table, one_format, quantity, rounded

    columns = ["name", *space.labels(), *FIGURE_COLUMNS, *(["latency (ms)", "extrapolated"] if latency else [])]
    if isinstance(objective, Closest):
        columns.append(f"{objective.figure} - target")
        title = f"{space.name}: per {' x '.join(p[-1] for p in objective.per) or 'space'}, the {objective.figure} " \
                f"closest to {objective.source}"
        notes = [f"target: {objective.source} = {objective.target:,.0f}"]
    else:
        senses = [f"min {f}" for f in objective.minimize] + [f"max {f}" for f in objective.maximize]
        title = f"{space.name}: Pareto front ({', '.join(senses)})"
        notes = [f"{quantity(len(result.answers), 'spec')} on the front"]
    latency_note = [f"latency predicted from {latency}"] if latency else []
    table = Table(title, columns, key="front", notes=notes + [search_note(result),
                                                              *constraint_notes(constraints), *latency_note],
                  droppable=FIGURES_DROPPED)
    # the latencies at one number of decimals to people, exact to programs (as profile --latency's ms)
    ms = one_format([v.figures.latency for v in result.answers]) if latency else []
    for i, (name, verdict) in enumerate(zip(names, result.answers)):
        f = verdict.figures
        row = [name, *verdict.values, rounded(f.params), rounded(f.macs), rounded(f.flops), rounded(f.acts), f.depth,
               *([ms[i], verdict.extrapolated] if latency else [])]
        if isinstance(objective, Closest):
            row.append(rounded(f.get(objective.figure) - objective.target))
        table.add(*row)
    return table


# ---- scale's view ----

def scale_table(name: str, result):
    from archgen.render import Table, rounded

    e_d, e_w, e_r = result.exponents
    land = result.landing
    table = Table(f"{name} scaled along '{result.rule}' to {rounded(result.target)} MACs",
                  ["", "base", "scaled", "step below", "step above"], key="scale")
    steps = [result.below, result.above]

    def row(label: str, base: Any, get: Callable[[Any], Any]) -> None:
        table.add(label, base, get(land), *(get(s) if s is not None else "none on the path" for s in steps))

    rows = [("depth multiplier", lambda s: s.depth), ("width multiplier", lambda s: s.width),
            ("input size", lambda s: s.size), ("stage depths", lambda s: " ".join(map(str, s.stage_depths))),
            ("widths (stem, stages)", lambda s: " ".join(map(str, s.widths))),
            ("params", lambda s: rounded(s.figures.params)), ("MACs", lambda s: rounded(s.figures.macs)),
            ("acts", lambda s: rounded(s.figures.acts))]
    for label, get in rows:
        row(label, get(result.base), get)
    table.notes += [
        f"rule '{result.rule}': MACs x s scales depth by s^{e_d:.3f}, width by s^{e_w:.3f}, resolution by "
        f"s^{e_r:.3f}; quantized by the grammar (depths rounded per stage, widths to multiples of 8, the input "
        f"in steps of {result.size_step} px, the network's output stride)",
        f"landed {result.error:+.2%} from the target; the quantized steps on either side of it are "
        f"{' and '.join(str(rounded(s.figures.macs)) for s in steps if s is not None)} MACs, so the landing is "
        "within one step",
    ]
    return table


def scaled_text(ref: str, spec, result, how: str) -> str:
    """The scaled spec as YAML, with the depths and widths it builds written out (archgen.design.scale.written)."""
    from archgen.design.scale import written
    from archgen.design.write import spec_text
    from archgen.grammar.loader import load_raw

    raw, _ = load_raw(ref)
    land = result.landing
    name = f"{spec.name}_{result.rule}_{land.figures.macs / result.base.figures.macs:.2f}x".replace(".", "p")
    mapping = {"name": name,
               "description": f"{spec.name} scaled along '{result.rule}' to {how} its MACs (archgen scale)",
               **{k: v for k, v in written(raw.doc, spec, land).items() if k not in ("name", "description")}}
    return spec_text(mapping, f"archgen scale {ref} ({result.rule}, {how}): {result.error:+.2%} from the target")
