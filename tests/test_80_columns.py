"""Output people can read at 80 columns, the width a pipe gets: every command's tables drawn 80 wide with no
figure or spec name split across lines, the activation and norm stated where they are not ReLU and batch
norm, summaries said once, and one number format per column.

The oracle of "nothing split" is the same command's markdown, which prints every cell whole on one line:
each word the markdown shows (title, headers, cells, notes) must appear as often, whole, among the rich
output's words, and each figure ('25.56M', '9.95 MiB', '0.138 ± 0.021') on one line. A column the
80-column table left out is named in its note; its cells are not looked for.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from archgen.cli.app import app
from archgen.render import Number, Table, human, one_format, quantity, render
from archgen.tables.layouts import PAPERS
from conftest import TINY_SPEC, tiny_resnet

runner = CliRunner()
WIDTH = 80
#: A cell that is one figure: a count with its suffix, a ratio, bytes with their unit, a mean and its spread,
#: a feature map's size and channels ('14x14, 1024').
FIGURE = re.compile(r"[-+]?\d[\d,.]*[KMGTx]?(?: (?:[KMG]i)?B| ± \d[\d.]*)?|\d+x\d+, \d+")
#: A figure of several words inside a title, a header, a note or a cell: 'batch 1', '14x14, 1024' (but in a
#: bracket of blocks, which wraps between its layers' words), '9.95 MiB'.
PHRASE = re.compile(r"\bbatch \d+|\b\d+x\d+, \d+|\d[\d,.]* (?:[KMGT]i)?B\b")
#: What separates words in rich's output: spaces and the box's vertical rules.
RULES = re.compile(r"[\s│┃]+")


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, str]:
    """A tiny two-stage net and ResNet-18's layout at a tenth of the width, as files."""
    where = tmp_path_factory.mktemp("specs")
    files = {"tiny": TINY_SPEC, "tiny_resnet18": tiny_resnet("tiny_resnet18", "for the 80-column tests")}
    for name, text in files.items():
        (where / f"{name}.yaml").write_text(text)
    return {name: str(where / f"{name}.yaml") for name in files}


def invoke(args: list[str], columns: int = WIDTH):
    result = runner.invoke(app, args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result


def markdown_words(markdown: str, left_out: set[str]) -> tuple[collections.Counter, list[str]]:
    """(every word the markdown shows, the figures it shows: the cells that are one figure and the PHRASEs in
    titles, headers, cells and notes), leaving out the cells and headers of the columns in `left_out`."""
    words: collections.Counter = collections.Counter()
    figures: list[str] = []
    header: list[str] | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            text = (line[2:] if line.startswith("- ") else line.strip("*")).replace("\\|", "|")
            words.update(text.split())
            figures += PHRASE.findall(text)
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if set("".join(cells)) <= {"-", " "}:
            continue  # the rule under the header
        if header is None:
            header = cells
        for column, text in zip(header, cells):
            if column not in left_out:
                words.update(text.split())
                if cells is not header and FIGURE.fullmatch(text):
                    figures.append(text)
                else:
                    figures += PHRASE.findall(text)
    return words, figures


def left_out_columns(rich: str) -> set[str]:
    """The columns the rich tables say they left out to fit."""
    said = re.findall(r"Left out to fit \d+ columns: (.*?); a wider", " ".join(rich.split()))
    return {a or b for names in said for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", names)}


def assert_reads_at_80(rich: str, markdown: str) -> None:
    """Every line fits 80 columns, but for a word wider than that (a long path), which has a line of its own
    and overflows rather than being cut; every word and figure of the markdown is whole on one line."""
    lines = rich.splitlines()
    too_wide = [line for line in lines if cell_len(line) > WIDTH and len(line.split()) > 1]
    assert not too_wide, f"{len(too_wide)} lines over {WIDTH} columns, first: {too_wide[0]!r}"
    shown = collections.Counter(word for line in lines for word in RULES.split(line) if word)
    expected, figures = markdown_words(markdown, left_out_columns(rich))
    split = {word: n for word, n in expected.items() if shown[word] < n}
    assert not split, f"words split across lines (or missing) in the rich output: {split}"
    for figure in figures:
        assert any(figure in line for line in lines), f"the figure {figure!r} is split across lines"


PAPER_TABLES = [["table", "--paper", paper] for paper in PAPERS]
COMMANDS = [
    ["build", "resnet50"],
    ["build", "{tiny}"],
    ["list"],
    ["table", "--compare", "resnet50", "resnext50"],
    ["table", "--compare", "resnet18", "resnet34", "resnet50", "densenet121"],  # 9 columns by stage
    *PAPER_TABLES,
    ["profile", "resnet50"],
    ["profile", "resnet101"],  # '14x14, 1024' in a column 10 wide
    ["profile", "{tiny}", "--layers", "--counters", "archgen,fvcore,ptflops"],
    ["paths", "resnet110_cifar"],
    ["lesion", "{tiny_resnet18}"],
    ["lesion", "{tiny_resnet18}", "--blocks", "0,layer2.1"],
    ["lesion", "{tiny}", "{tiny_resnet18}", "--sweep", "2", "--sets", "2", "--batch", "2"],
    ["sample", "resnext50_cxd", "--n", "3"],
    ["search", "resnext50_cxd"],
    ["search", "wrn28_width", "--minimize", "params", "--minimize", "acts"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_table_reads_at_80_columns(args, specs):
    args = [a.format(**specs) for a in args]
    assert_reads_at_80(invoke(args).stdout, invoke([*args, "--format", "markdown"]).stdout)


def test_scale_prints_its_table_to_stderr_at_80_columns():
    args = ["scale", "resnet50", "--factor", "2", "--rule", "dwr"]
    assert_reads_at_80(invoke(args).stderr, invoke([*args, "--format", "markdown"]).stderr)


def test_bench_reads_at_80_columns(specs, tmp_path):
    """Bench's figures vary from run to run, so its markdown is drawn from the rows the run saved."""
    from archgen.bench.results import read_results
    from archgen.cli.bench import results_table

    out = tmp_path / "bench.json"
    run = invoke(["bench", specs["tiny_resnet18"], "--cpu", "--batch-sizes", "1,2", "--backends", "eager,fused",
                  "--warmup", "0", "--reps", "2", "-o", str(out)])
    rows, env, _ = read_results(out)
    assert_reads_at_80(run.stdout, render(results_table(rows, env, []), "markdown"))


def test_the_latency_views_read_at_80_columns(specs, latency_model_file, tmp_path, monkeypatch):
    """profile --latency, search --latency and its --verify table (measured figures fixed here: they vary from
    run to run, and only the layout is under test)."""
    monkeypatch.setattr("archgen.bench.kernel_timing.time_networks",
                        lambda specs, *a, **k: [1.25 + i for i in range(len(specs))])
    space = tmp_path / "space.yaml"
    space.write_text(f"name: tiny_widths\ndescription: widths\nextends: {specs['tiny_resnet18']}\nstages:\n"
                     "  - {depth: 2, width: 8}\n  - {depth: 2, width: {choice: [16, 24, 32]}, stride: 2}\n")
    model = str(latency_model_file)
    for args in (["profile", specs["tiny_resnet18"], "--latency", model, "--table", "latency"],
                 ["search", str(space), "--latency", model, "--minimize", "latency", "--minimize", "params",
                  "--verify", "1"]):
        assert_reads_at_80(invoke(args).stdout, invoke([*args, "--format", "markdown"]).stdout)


def test_a_latency_model_at_a_path_longer_than_80_columns_is_named_whole(latency_model_file, tmp_path):
    """The path has a line of its own and runs past the 80th column, rather than being cut in two."""
    long = tmp_path / "models" / "calibrations" / "onnxruntime-cpu" / \
        "latency-model-onnxruntime-amd-epyc-2026-12-03.json"
    long.parent.mkdir(parents=True)
    long.write_bytes(latency_model_file.read_bytes())
    assert len(str(long)) > WIDTH
    args = ["profile", "resnet18", "--latency", str(long)]
    rich = invoke(args).stdout
    assert_reads_at_80(rich, invoke([*args, "--format", "markdown"]).stdout)
    assert f"{long};" in rich.splitlines()


def test_a_pipe_gets_80_columns():
    """No COLUMNS and no terminal on stdin, stdout or stderr: rich's default, 80, as COLUMNS=80 draws it."""
    args = ["table", "--compare", "resnet50", "resnext50"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    piped = subprocess.run([sys.executable, "-m", "archgen.cli.app", *args], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, env=env, check=True)
    assert piped.stdout == invoke(args).stdout
    assert max(map(cell_len, piped.stdout.splitlines())) == WIDTH


# ---- the renderer's rules, on tables made to order ----

def _figures_table(droppable: tuple[str, ...] = ()) -> Table:
    t = Table("Figures", ["name", "params", "MACs", "FLOPs", "training memory"], droppable=droppable)
    for i in range(3):
        t.add(f"a_rather_long_model_name_{i}", Number(25_557_032, "25.56M"), Number(4_089_184_256, "4.09G"),
              Number(8_178_368_512, "8.18G"), Number(150_000_000, "143.05 MiB"))
    return t


def test_a_table_too_wide_leaves_out_its_droppable_columns_least_needed_first():
    """Boxed, the table takes 68 columns and compact 60; without FLOPs, compact, 53."""
    assert "8.18G" in render(_figures_table(droppable=("FLOPs", "training memory")), "rich", width=60)
    text = render(_figures_table(droppable=("FLOPs", "training memory")), "rich", width=55)
    assert "8.18G" not in text and "FLOPs" not in text.split("\n")[1]
    assert "Left out to fit 55 columns: 'FLOPs';" in " ".join(text.split())
    assert all(cell_len(line) <= 55 for line in text.splitlines())
    assert text.count("143.05 MiB") == 3  # what was not dropped is whole


def test_a_table_that_cannot_fit_prints_records_with_every_column():
    text = render(_figures_table(), "rich", width=46)
    record = text.split("\n\n")[0].splitlines()
    assert record == ["Figures", "  name             a_rather_long_model_name_0", "  params           25.56M",
                      "  MACs             4.09G", "  FLOPs            8.18G", "  training memory  143.05 MiB"]


def test_a_figure_keeps_its_unit_and_a_bracket_its_multiplicity_on_one_line():
    t = Table("t", ["what", "how much"])
    t.add("[1x1, 64; 3x3, 64; 1x1, 256] x 3", Number(1, "0.138 ± 0.021 MiB"))
    lines = render(t, "rich", width=30).splitlines()
    assert any("256] x 3" in line for line in lines) and any("0.138 ± 0.021" in line for line in lines)


def test_a_size_and_its_channels_stay_on_one_line():
    """Boxed, the table has 15 columns of text and wrapped after the comma; compact, it has 20, room for it whole."""
    t = Table("t", ["stage", "output"])
    t.add("layer3", "14x14, 1024")
    assert render(t, "rich", width=22).splitlines()[-1] == "layer3  14x14, 1024"


NOTE = "predicted by the latency model /models/calibrations/onnxruntime-cpu/latency-model-amd-epyc.json; no model"


@pytest.mark.parametrize("where", ["title", "note"])
def test_a_word_wider_than_the_terminal_has_a_line_of_its_own_and_is_not_cut(where):
    t = Table(NOTE if where == "title" else "t", ["a"], [["1"]], notes=[NOTE] if where == "note" else [])
    lines = render(t, "rich", width=40).splitlines()
    assert "/models/calibrations/onnxruntime-cpu/latency-model-amd-epyc.json;" in lines
    assert "predicted by the latency model" in lines and all(cell_len(line) <= 40 for line in lines
                                                              if len(line.split()) > 1)


def test_a_notes_batch_and_units_stay_with_their_figures():
    """Wrapped at 'batch' / '1' and '9.95' / 'MiB' before: each break fell right after the first word."""
    t = Table("predicted latency of resnet18 at batch 1", ["a"], [["1"]],
              notes=["the training activations at batch 1 take 9.95 MiB"])
    for width in range(12, 50):
        lines = render(t, "rich", width=width).splitlines()
        assert sum(line.count("batch 1") for line in lines) == 2 and any("9.95 MiB" in line for line in lines), width


def test_records_keep_a_value_wider_than_the_terminal_whole():
    t = Table("t", ["name", "model"])
    t.add("resnet18", "/models/calibrations/onnxruntime-cpu/latency-model-amd-epyc.json")
    lines = render(t, "rich", width=40).splitlines()
    assert "  model  /models/calibrations/onnxruntime-cpu/latency-model-amd-epyc.json" in lines


def test_a_wide_terminal_draws_the_table_at_its_natural_width():
    text = render(_figures_table(), "rich", width=200)
    assert max(map(cell_len, text.splitlines())) < 100 and "┃ FLOPs" in text


def test_one_column_one_number_of_decimals():
    """Three significant digits of the smallest figure: '54.0, 74.7', never '54, 74.71'."""
    assert [n.text for n in one_format([54.0, 74.71])] == ["54.0", "74.7"]
    assert [n.text for n in one_format([0.7898, 621.9])] == ["0.790", "621.900"]
    assert [n.text for n in one_format([1266.0, 1607.9])] == ["1266", "1608"]
    assert one_format([None, 2.5])[0] is None and one_format([2.5])[0].value == 2.5


def test_counts_take_their_nouns_number():
    assert [quantity(n, "spec") for n in (0, 1, 2, 10_000)] == ["0 specs", "1 spec", "2 specs", "10,000 specs"]


# ---- what the tables say ----

SILU_GROUP = "name: silu18\nextends: resnet18\nblock: {type: basic, act: silu}\nnorm: {type: group, groups: 32}\n"


def test_build_and_compare_say_when_the_activation_or_norm_is_not_relu_and_batch_norm(tmp_path):
    spec = tmp_path / "silu18.yaml"
    spec.write_text(SILU_GROUP)
    assert invoke(["build", str(spec), "--input-size", "64"]).stdout.splitlines()[0] == \
        "silu18 at 64x64; act: silu; norm: group norm (32 groups)"
    assert invoke(["build", "resnet18"]).stdout.splitlines()[0] == "resnet18 at 224x224"
    assert invoke(["build", "vgg16"]).stdout.splitlines()[0] == "vgg16 at 224x224; no norm"
    assert invoke(["build", "darknet53"]).stdout.splitlines()[0] == \
        "darknet53 at 256x256; act: leaky_relu (slope 0.1)"

    rows = {line.split(" | ")[0]: line for line in
            invoke(["table", "--compare", "resnet18", str(spec), "-f", "markdown"]).stdout.splitlines()}
    assert rows["| act; norm"] == "| act; norm |  | relu; batch norm | silu; group norm (32 groups) |"
    same = invoke(["table", "--compare", "resnet18", "resnet34", "-f", "markdown"]).stdout
    assert "act; norm" not in same


def test_lesion_formats_the_parameters_it_removes_like_every_count(specs):
    args = ["lesion", specs["tiny_resnet18"], "--blocks", "0"]
    removed = json.loads(invoke([*args, "-f", "json"]).stdout)["params_removed"]
    row = invoke([*args, "-f", "markdown"]).stdout.splitlines()[4]
    assert removed == 1_184 and row.startswith(f"| layer1.0 | {human(removed)} | ") and human(removed) == "1.18K"


def test_sample_and_search_say_their_summary_once_in_words_that_agree_with_the_count(tmp_path):
    """A table for people holds the summary as a note; csv, which programs read, leaves it to stderr."""
    sample = invoke(["sample", "resnext50_cxd", "--n", "1", "-o", str(tmp_path)])
    said = " ".join(sample.stdout.split())
    assert "drew 1 candidate, 1 met the constraints" in said and "drew" not in sample.stderr
    assert sample.stderr == f"wrote 1 spec to {tmp_path}\n"
    search = invoke(["search", "wrn28_width", "--minimize", "params"])
    said = " ".join(search.stdout.split())
    assert "1 spec on the front" in said and said.count("exhaustive search: drew 16 candidates, 16 met") == 1
    assert "drew" not in search.stderr
    programs = invoke(["search", "wrn28_width", "-f", "csv"])
    assert programs.stderr.count("drew 16 candidates") == 1 and "drew" not in programs.stdout


def test_bench_says_why_peak_memory_is_empty_on_the_cpu_and_names_one_device(specs):
    result = invoke(["bench", specs["tiny_resnet18"], "--cpu", "--batch-sizes", "1", "--backends", "eager",
                     "--warmup", "0", "--reps", "1", "--format", "markdown"])
    device = re.match(r"\*\*archgen bench on (.*) \(float32\)\*\*", result.stdout).group(1)
    assert re.search(rf"^\[1/1\] .* on {re.escape(device)}: eager ", result.stderr, re.M)
    assert "| n/a |" in result.stdout and "- peak MB: n/a on the CPU" in result.stdout


def test_torch_compile_says_it_is_compiling(capsys):
    """The step the runner names before a compile backend's first call, and the line a log gets for it."""
    from archgen.bench.runner import BenchConfig, _time_batch
    from archgen.cli.bench import JobProgress
    from archgen.complexity import profile
    from archgen.grammar.loader import load_spec

    spec = load_spec("resnet20_cifar")
    steps: list[str] = []
    cfg = BenchConfig(specs=["resnet20_cifar"], device="cpu", batch_sizes=[1], backends=["eager", "compile"],
                      warmup=0, reps=1)
    _time_batch(cfg, spec, profile(spec), {"eager": lambda x: x, "compile": lambda x: x}, 1, steps.append, None)
    assert steps == ["resnet20_cifar eager batch 1",
                     "compiling resnet20_cifar with torch.compile (batch 1), then timing"]
    progress = JobProgress(total=1)
    assert progress.lines  # pytest's captured stderr is no terminal
    progress.step(steps[0])
    progress.step(steps[1])
    assert capsys.readouterr().err == "compiling resnet20_cifar with torch.compile (batch 1), then timing...\n"


@pytest.mark.parametrize("command", sorted(c.name or c.callback.__name__ for c in app.registered_commands))
def test_help_paragraphs_fill_80_columns(command):
    """A command's description reads as prose at 80 columns: within a paragraph every line but the last is
    filled (rich wrapped it), none broken short where the docstring's source line ended."""
    lines = invoke([command, "--help"]).output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("Usage:")) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    paragraphs = [p.splitlines() for p in "\n".join(lines[start:end]).split("\n" + " " * WIDTH + "\n")]
    for paragraph in paragraphs:
        text = [line.rstrip() for line in paragraph if line.strip()]
        assert all(len(line) > WIDTH - 20 for line in text[:-1]), "\n".join(text)
