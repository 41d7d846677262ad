"""`archgen profile SPEC --latency DEVICE.json`: the latency a model predicts per stage and in total, with the
count of kernel units outside its calibrated ranges; a model file that cannot be used exits 2 in a paragraph,
one made elsewhere warns. The model is the synthetic one of conftest (its figures follow a known formula)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from archgen.bench.latency_model import load_model, write_model
from archgen.cli.app import app

runner = CliRunner()


def profile(*args: str):
    return runner.invoke(app, ["profile", *args])


def test_profile_latency_json_has_the_total_as_predicted_ms_and_it_sums_the_stages(latency_model_file):
    r = profile("resnet20_cifar", "--latency", str(latency_model_file), "--table", "latency", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert list(data["stages"]) == ["stem", "layer1", "layer2", "layer3", "head"]
    assert data["predicted_ms"] == pytest.approx(sum(data["stages"].values()), rel=1e-12)
    assert data["predicted_ms"] == pytest.approx(load_model(latency_model_file).predict("resnet20_cifar").total_ms)
    assert (data["backend"], data["batch"], data["extrapolated"]) == ("eager", 1, 0)


def test_profile_latency_counts_the_units_it_extrapolates(latency_model_file):
    """Calibrated at batches 1 and 2: at batch 16 every unit is outside the ranges, and the table says so."""
    r = profile("resnet20_cifar", "--latency", str(latency_model_file), "--batch", "16", "--table", "latency")
    assert r.exit_code == 0, r.output
    units = load_model(latency_model_file).predict("resnet20_cifar").units
    assert f"{units} kernel units, {units} outside the calibrated ranges (extrapolated)" in " ".join(r.stdout.split())


def test_a_tampered_model_exits_2_in_one_paragraph(latency_model_file, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(latency_model_file.read_text().replace('"backend": "eager"', '"backend": "fused"'))
    r = profile("resnet20_cifar", "--latency", str(bad))
    assert r.exit_code == 2
    assert "checksum does not match" in r.stderr and "Traceback" not in r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("error:") == 1


def test_a_model_from_another_machine_warns_on_stderr(latency_model_file, tmp_path):
    doc = json.loads(latency_model_file.read_text())
    doc["device"]["name"] = "Another CPU"
    other = tmp_path / "other.json"
    write_model(other, {k: v for k, v in doc.items() if k != "checksum"})
    r = profile("resnet20_cifar", "--latency", str(other), "--table", "latency")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("warning: latency model") == 1 and "made with name Another CPU" in r.stderr
