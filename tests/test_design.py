"""Design spaces, read like the papers they reproduce: ResNeXt's Table 2, Wide ResNet's k for a budget,
EfficientNet's and Dollar et al.'s scaling; then sampling, search and the errors a space file can make."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

import archgen
from archgen.cli.app import app
from archgen.design import Evaluator, Rejections, figures, load_space, sample, scale, search
from archgen.errors import SpecError
from archgen.grammar.loader import load_spec

runner = CliRunner()
RESNET50_MACS = 4_089_184_256


def answers(space_name: str) -> list[tuple]:
    space = load_space(space_name)
    return [v.values for v in search(space, space.objective, Evaluator(space, space.constraints)).answers]


# ---- acceptance, anchored in the papers ----

def test_resnext_table2_pairs_preserve_resnet50_params():
    """Xie et al. 2017, Table 2: at ResNet-50's complexity, C x d = 1x64d, 2x40d, 4x24d, 8x14d, 32x4d
    (resnext50_cxd.yaml says `preserve: params` per cardinality; nothing here knows the answer)."""
    assert answers("resnext50_cxd") == [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)]


def test_wrn_depth_28_at_36_5m_params_is_k_10():
    """Zagoruyko and Komodakis, Table 1 / 4: WRN-28-k closest to 36.5M params has k = 10."""
    assert answers("wrn28_width") == [(10,)]


@pytest.mark.parametrize("rule", ["compound", "dwr"])
def test_scale_resnet50_twice_lands_within_one_quantization_step(rule, tmp_path):
    out = tmp_path / f"r50_{rule}.yaml"
    result = runner.invoke(app, ["scale", "resnet50", "--factor", "2", "--rule", rule, "-o", str(out), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    scaled = scale(load_spec("resnet50"), 2 * RESNET50_MACS, rule)
    target = 2 * RESNET50_MACS
    assert scaled.below.figures.macs <= target <= scaled.above.figures.macs
    assert scaled.landing in (scaled.below, scaled.above)
    assert archgen.profile(str(out)).macs == scaled.landing.figures.macs  # the written spec is the landing
    assert "within one step" in result.stdout


def test_dwr_grows_mostly_in_width_and_compound_deepens():
    """Dollar et al. 2021: dWr puts most of the growth in width, so activations grow less than under
    EfficientNet's compound rule at the same MACs."""
    base = load_spec("resnet50")
    dwr, compound = scale(base, 2 * RESNET50_MACS, "dwr"), scale(base, 2 * RESNET50_MACS, "compound")
    assert dwr.landing.width > compound.landing.width and dwr.landing.depth < compound.landing.depth
    assert dwr.landing.figures.acts < compound.landing.figures.acts


# ---- sampling ----

def test_sampled_specs_round_trip_to_the_figures_sample_reported(tmp_path):
    result = runner.invoke(app, ["sample", "resnet_budget", "--n", "4", "--seed", "3", "-o", str(tmp_path),
                                 "-f", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) == 4 and "acceptance rate" in result.stderr
    for row in rows:
        p = archgen.profile(str(tmp_path / f"{row['name']}.yaml"))
        assert (p.params, p.macs, p.acts) == (row["params"], row["macs"], row["acts"])
        assert p.macs <= 4.1e9 and p.params <= 25.6e6


def test_a_seed_names_a_sample():
    def draw(seed):
        space = load_space("resnet_budget")
        return [v.values for v in sample(space, 5, seed, Evaluator(space, space.constraints), Rejections())]

    assert draw(7) == draw(7) != draw(8)


def test_sampling_streams_so_a_million_asked_costs_what_is_taken():
    space = load_space("resnet_budget")
    taken = list(itertools.islice(sample(space, 1_000_000, 0, Evaluator(space, space.constraints), Rejections()), 3))
    assert len(taken) == 3


def test_an_unsatisfiable_space_says_how_many_were_drawn_and_what_rejected_them():
    result = runner.invoke(app, ["sample", "resnet_budget", "--n", "2", "-c", "macs <= 1M", "--max-draws", "300"])
    assert result.exit_code == 2
    assert "drew 300 candidates and none met the constraints" in result.stderr
    assert "macs <= 1M rejected 300 (100.0%)" in result.stderr
    assert "Traceback" not in result.stderr


def test_continuous_and_log_uniform_axes_draw_inside_their_ranges(tmp_path):
    space_file = write(tmp_path, """\
        name: wrn_free
        extends: wrn_16_8_cifar
        block: {width_factor: {range: [1.0, 2.5]}}
        stem: {width: {log_uniform: [8, 64], step: 8}}
        """)
    space = load_space(space_file)
    drawn = [v.values for v in sample(space, 20, 0, Evaluator(space, []), Rejections())]
    assert all(1.0 <= k <= 2.5 and 8 <= w <= 64 and w % 8 == 0 for k, w in drawn)
    assert len({k for k, _ in drawn}) == 20 and space.size() is None


def test_edf_plot_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "edf.png"
    result = runner.invoke(app, ["sample", "resnet_budget", "--n", "5", "--plot", str(plot), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    assert plot.read_bytes()[:4] == b"\x89PNG" and len(result.stdout.splitlines()) == 6


# ---- search ----

def test_pareto_front_holds_no_dominated_spec_and_writes_each(tmp_path):
    result = runner.invoke(app, ["search", "resnet_budget", "--minimize", "macs", "--maximize", "params",
                                 "--strategy", "evolve", "--budget", "300", "--seed", "1", "-o", str(tmp_path),
                                 "-f", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    keys = [(r["macs"], -r["params"]) for r in rows]
    assert rows and not any(a != b and a[0] <= b[0] and a[1] <= b[1] for a in keys for b in keys)
    for row in rows:
        assert archgen.profile(str(tmp_path / f"{row['name']}.yaml")).macs == row["macs"] <= 4.1e9


# ---- a space is validated as strictly as a spec ----

def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text, line, field, words", [
    ("name: s\nextends: resnet18\nblock:\n  base_width: {choice: [4, 8]}\n",
     4, "block.base_width", "unknown field 'base_width' for block type 'basic'"),
    ("name: s\nextends: resnet50\nblock: {cardinality: {range: [8, 2]}}\n",
     3, "block.cardinality.range", "lo 8 is above hi 2"),
    ("name: s\nextends: resnet50\nblock: {cardinality: {choice: []}}\n",
     3, "block.cardinality.choice", "empty list"),
    ("name: s\nextends: resnet50\nblock:\n  base_width: {range: [4, 64], step: 7}\n",
     4, "block.base_width.step", "does not divide the range"),
    ("name: s\nextends: resnet50\nblock: {cardinality: {choice: [1, 0]}}\n",
     3, "block.cardinality", "a value the distribution draws"),
    ("name: s\nextends: resnet50\nblock:\n  cardinality: {range: [1, 4], step: 0.5}\n",
     4, "block.cardinality", "found the number 1.5; expected an integer"),
    ("name: s\nextends: resnet50\nshortcut: {range: [1, 2]}\n", 3, "shortcut", None),
    ("name: s\nextends: resnet50\nblock: {cardinality: {choice: [1, 2]}}\nspace:\n  constraints:\n"
     "    - macs <= 4G\n    - flips < 2G\n", 7, "space.constraints[1]", "'flips' in 'flips < 2G' is not a figure"),
    ("name: s\nextends: resnet50\nblock: {cardinality: {choice: [1, 2]}}\nspace:\n  minimise: [macs]\n",
     5, "space.minimise", "Did you mean 'minimize'?"),
    ("name: s\nextends: resnet50\nblock: {cardinality: {choice: [1, 2]}}\nspace:\n  preserve: params\n"
     "  per: [block.base_width]\n", 6, "space.per[0]", "is not a field this space draws"),
    ("name: s\nextends: resnet50\nblock: {cardinality: {choice: [1, 2], step: 2}}\n",
     3, "block.cardinality.step", "unknown key 'step' in a choice distribution"),
])
def test_space_errors_point_at_their_line(tmp_path, text, line, field, words):
    with pytest.raises(SpecError) as caught:
        load_space(write(tmp_path, text))
    assert (caught.value.line, caught.value.field) == (line, field)
    if words:
        assert words in caught.value.message


def test_the_cli_prints_a_bad_space_as_one_paragraph(tmp_path):
    space = write(tmp_path, "name: s\nextends: resnet18\nblock:\n  base_width: {choice: [4, 8]}\n")
    result = runner.invoke(app, ["sample", str(space)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {space}:4:")


def test_a_constraint_on_the_command_line_is_checked_too():
    result = runner.invoke(app, ["search", "wrn28_width", "-c", "parms < 3M"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --constraint: 'parms' in 'parms < 3M' is not a figure archgen computes. "
                                    "Did you mean 'params'?")


def test_a_negative_bound_says_figures_are_never_below_zero():
    result = runner.invoke(app, ["search", "wrn28_width", "-c", "params <= -5"])
    assert result.exit_code == 2
    assert "'-5' in 'params <= -5' is below 0, and every figure is 0 or more" in result.stderr


def test_a_choice_of_block_types_validates_every_candidate(tmp_path):
    """A choice over `type` changes which fields are valid, so each candidate is validated in full."""
    space = load_space(write(tmp_path, "name: s\nextends: resnet18\nblock: {type: {choice: [basic, bottleneck]}}\n"))
    assert space.template is None
    found = search(space, space.objective, Evaluator(space, [])).answers
    assert {v.values for v in found} <= {("basic",), ("bottleneck",)}


def test_a_regnet_space_draws_the_rule_fields_and_round_trips(tmp_path):
    """Radosavovic et al. 2020: d, w0, wa, wm and g are fields of the `stages: {regnet: ...}` rule."""
    result = runner.invoke(app, ["sample", "regnetx_400mf", "--n", "3", "--seed", "2", "-o", str(tmp_path),
                                 "-f", "json"])
    assert result.exit_code == 0, result.stderr
    for row in json.loads(result.stdout)["rows"]:
        p = archgen.profile(str(tmp_path / f"{row['name']}.yaml"))
        assert (p.params, p.macs) == (row["params"], row["macs"]) and 360e6 <= p.macs <= 440e6
        assert row["w0"] % 8 == 0 and 2.0 <= row["wm"] <= 3.0


def test_a_distribution_over_a_field_the_rule_does_not_take_is_an_error_at_its_line(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_space(write(tmp_path, "name: s\nextends: regnetx_004\nstages: {regnet: {slope: {range: [1, 4]}}}\n"))
    assert (caught.value.line, caught.value.field) == (3, "stages.regnet.slope")


def test_the_design_commands_import_no_torch():
    code = "import sys, archgen.cli.design, archgen.design; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_candidates_equal_their_written_specs():
    """The fast path (values put into the validated document) and the written YAML make the same network."""
    space = load_space("resnet_budget")
    for verdict in sample(space, 5, 11, Evaluator(space, space.constraints), Rejections()):
        written = space.written(verdict.values, "x", "")
        assert figures(load_spec(yaml.safe_load(yaml.safe_dump(written)))) == verdict.figures


def test_the_mobile_space_samples_and_searches_inverted_residuals_of_every_kernel_and_se_choice(tmp_path):
    """mobile_mbconv: EfficientNet-B0's stages with expansion, kernel 3/5/7, SE on/off, width and depth free;
    what sample and search report is what the written specs count, within B0's budget."""
    result = runner.invoke(app, ["sample", "mobile_mbconv", "--n", "6", "--seed", "0", "-o", str(tmp_path),
                                 "-f", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) == 6
    for row in rows:
        p = archgen.profile(str(tmp_path / f"{row['name']}.yaml"))
        assert (p.params, p.macs, p.acts) == (row["params"], row["macs"], row["acts"])
        assert p.macs <= 0.39e9 and p.params <= 5.3e6
    kernels = {row[f"kernel{i}"] for row in rows for i in range(1, 8)}
    se = {row[f"se_ratio{i}"] for row in rows for i in range(1, 8)}
    assert kernels == {3, 5, 7} and se == {0, 0.25}
    found = runner.invoke(app, ["search", "mobile_mbconv", "--minimize", "macs", "--minimize", "params",
                                "--strategy", "random", "--budget", "100", "--seed", "0", "-f", "json"])
    assert found.exit_code == 0, found.stderr
    front = json.loads(found.stdout)["rows"]
    assert front and all(r["macs"] <= 0.39e9 and r["params"] <= 5.3e6 for r in front)
    # A Pareto front: no row is beaten on both figures by another.
    assert not any(a["macs"] <= b["macs"] and a["params"] <= b["params"] and a != b for a in front for b in front)


@pytest.mark.parametrize("name", ["regnetx_400mf", "regnety_400mf", "mobile_mbconv", "resnet_budget"])
def test_axis_headings_are_distinct_from_each_other_and_from_the_figures(name):
    from archgen.design.figures import FIGURES

    labels = load_space(name).labels()
    assert len(set(labels)) == len(labels)
    assert not set(labels) & set(FIGURES)
    if name.startswith("regnet"):
        assert labels[0] == "regnet_depth"  # RegNet's block count, not the counted layers (`depth`)
