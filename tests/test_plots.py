"""`archgen plot` draws params against MACs for the zoo and per-stage bars, as valid PNG and SVG files
written whole; a suffix it cannot write is refused before any work."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from archgen.cli.app import app

pytest.importorskip("matplotlib")
runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_svg(path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_zoo_scatter_as_png_and_svg(tmp_path):
    png, svg = tmp_path / "zoo.png", tmp_path / "some.svg"
    assert runner.invoke(app, ["plot", "-o", str(png)]).exit_code == 0
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    result = runner.invoke(app, ["plot", "resnet18", "resnet50", "densenet121", "-o", str(svg)])
    assert result.exit_code == 0, result.output
    assert_svg(svg)
    text = svg.read_text()
    assert "resnet50" in text and "densenet121" in text  # labelled points
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some.svg", "zoo.png"]  # no temporary files left


def test_stage_bars_for_several_specs(tmp_path):
    path = tmp_path / "stages.svg"
    result = runner.invoke(app, ["plot", "--stages", "resnet50", "resnext50_32x4d", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert_svg(path)
    text = path.read_text()
    assert all(word in text for word in ("layer4", "activations", "resnext50_32x4d"))


def test_bad_plot_requests_exit_2_before_any_work(tmp_path):
    for args, message in [(["-o", str(tmp_path / "zoo.jpg")], "*.png or *.svg"),
                          (["--stages", "-o", str(tmp_path / "s.png")], "name at least one"),
                          (["no_such_net", "-o", str(tmp_path / "s.png")], "no_such_net")]:
        result = runner.invoke(app, ["plot", *args])
        assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
