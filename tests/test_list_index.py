"""`archgen list` reads the bundled specs' summaries from archgen/catalog.json instead of counting 114 specs
per call; the file must equal what counting the specs gives, and is ignored once the specs change."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from archgen import catalog as catalog_module
from archgen.catalog import CATALOG_FILE, catalog, catalog_text, summarize, zoo_digest
from archgen.cli.app import app
from archgen.grammar.loader import bundled_names

runner = CliRunner()


def test_the_shipped_catalog_is_what_counting_the_specs_gives():
    assert CATALOG_FILE.read_text(encoding="utf-8") == catalog_text(), "regenerate: python -m archgen.catalog"


def test_the_catalog_holds_every_bundled_spec_with_its_counts():
    shipped = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    assert [row["name"] for row in shipped["specs"]] == bundled_names()
    resnet50 = next(row for row in shipped["specs"] if row["name"] == "resnet50")
    assert (resnet50["params"], resnet50["macs"], resnet50["input_size"]) == (25_557_032, 4_089_184_256, 224)
    darknet = next(row for row in shipped["specs"] if row["name"] == "darknet53")
    assert darknet["paper"]["arxiv"] == "1804.02767" and darknet["input_size"] == 256


def test_a_catalog_of_these_specs_is_read_without_counting_any(tmp_path, monkeypatch):
    data = summarize()
    data["specs"][0]["params"] = 7  # a value only the file holds
    fake = tmp_path / "catalog.json"
    fake.write_text(json.dumps(data))
    monkeypatch.setattr(catalog_module, "CATALOG_FILE", fake)
    monkeypatch.setattr(catalog_module, "summarize", lambda: (_ for _ in ()).throw(AssertionError("counted")))
    assert catalog()[0]["params"] == 7


def test_a_catalog_of_other_specs_is_not_trusted(tmp_path, monkeypatch):
    data = summarize()
    truth = data["specs"][0]["params"]
    data["specs"][0]["params"] = 7
    data["digest"] = "0" * 64  # made from files that are not these
    fake = tmp_path / "catalog.json"
    fake.write_text(json.dumps(data))
    monkeypatch.setattr(catalog_module, "CATALOG_FILE", fake)
    assert catalog()[0]["params"] == truth
    fake.write_text("{not json")
    assert catalog()[0]["params"] == truth


def test_the_digest_follows_a_spec_file(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("name: a\n")
    monkeypatch.setattr(catalog_module, "bundled_dir", lambda: tmp_path)
    before = zoo_digest()
    (tmp_path / "a.yaml").write_text("name: b\n")
    assert zoo_digest() != before


def test_archgen_list_prints_the_catalog():
    result = runner.invoke(app, ["list", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(bundled_names())
    resnext = next(row for row in rows if row["name"] == "resnext50_32x4d")
    assert (resnext["params"], resnext["macs"], resnext["flops"]) == (25_028_904, 4_230_479_872, 8_460_959_744)
