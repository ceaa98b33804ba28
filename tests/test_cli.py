"""The command line through Typer's runner: exact arguments, outputs and exit codes."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.registry import MODULES

runner = CliRunner()


def test_help_lists_the_verbs():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for verb in ("list", "variants"):
        assert verb in result.output


def test_list_shows_modules_and_base_models():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in MODULES.names():
        assert name in result.output
    for model in ("yolov8n", "yolo11n", "yolov10s", "yolov9t", "yolov5nu", "yolo12n", "yolo26n"):
        assert model in result.output


def test_variants_writes_and_builds(tmp_path):
    out = tmp_path / "variants"
    result = runner.invoke(
        app,
        ["variants", "--model", "yolov8n", "--module", "ADown", "--placement", "all", "--out", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "yolov8n-ADown-all" in result.output and "2,741,200" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["yolov8n-ADown-all.yaml"]


def test_variants_nc_is_written_so_every_file_builds_the_printed_model(tmp_path):
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from yoloab.models import get_base_model
    from yoloab.registry import recorded_attributes
    from yoloab.variants import count_params, make_variant, write_yaml

    out = tmp_path / "variants"
    modules = ["ADown", "AKConv", "DynamicConv", "RevCol-tiny-rev"]
    args = ["variants", "--model", "yolov8n", *(x for m in modules for x in ("--module", m)), "--nc", "3"]
    result = runner.invoke(app, [*args, "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = {
        cells[0]: int(cells[2].replace(",", ""))
        for line in result.output.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 4 and cells[2].replace(",", "").isdigit()
    }
    assert printed.pop("yolov8n") == 3_011_433  # the baseline is listed, as in profile and sweep, but not written
    assert sorted(printed) == sorted(p.stem for p in out.iterdir()) and len(printed) == len(modules)
    for path in out.iterdir():
        model = YOLO(str(path)).model
        assert count_params(model) == printed[path.stem], path.name
        assert model.yaml["nc"] == model.model[-1].nc == 3
        regenerate = next(x for x in path.read_text().splitlines() if x.startswith("# Regenerate:"))
        assert "--nc 3 --out" in regenerate  # the regeneration command keeps the class count
    # Ultralytics' own class override of the 80-class file builds the same model as the written 3-class file
    at_80 = write_yaml(make_variant(get_base_model("yolov8n"), "ADown", "article"), tmp_path / "nc80")
    assert "nc: 80" in at_80.read_text().splitlines()
    assert count_params(DetectionModel(str(at_80), nc=3, verbose=False)) == printed["yolov8n-ADown-article"]
    assert recorded_attributes(YOLO(str(out / "yolov8n-RevCol-tiny-rev.yaml")).model) == {"save_memory": True}


def _bad_yaml(tmp_path):
    path = tmp_path / "article.yaml"
    path.write_text(
        textwrap.dedent(
            """
            nc: 3
            backbone:
              - [-1, 1, Conv, [16, 3, 2]]
              - [-1, 1, Conv, [32, 3, 2]]
              - [-1, 1, ADonw, [64]]
            head:
              - [[1, 2], 1, Detect, [nc]]
            """
        )
    )
    return path


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["--model", "yolov8q"], 2, ["unknown base model 'yolov8q'", "nearest: yolov8"]),
        (["--module", "ADwn"], 2, ["unknown module 'ADwn'", "nearest: ADown"]),
        (["--module", "ADown", "--placement", "middle"], 2, ["unknown placement 'middle'", "article, all"]),
        (["--module", "ADown", "--placement", "2,4"], 2, ["not downsampling Conv rows", "candidates: 1 (backbone P2)"]),
        (["--model", "yolov9t", "--module", "ADown", "--placement", "head"], 2, ["selects no row of yolov9t"]),
        (["--module", "RevCol-huge"], 2, ["RevCol has no size 'huge'", "sizes: tiny"]),
    ],
    ids=["model", "module", "placement-name", "placement-rows", "placement-empty", "backbone-size"],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, code, needles):
    out = tmp_path / "out"
    result = runner.invoke(app, ["variants", *args, "--out", str(out)])
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_unknown_module_in_yaml_names_row_and_nearest(tmp_path):
    result = runner.invoke(app, ["variants", str(_bad_yaml(tmp_path))])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "row 2 (backbone)" in result.stderr and "'ADonw'" in result.stderr and "nearest: ADown" in result.stderr


def test_yaml_that_does_not_parse(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("backbone: [[-1, 1, Conv\n")
    result = runner.invoke(app, ["variants", str(path)])
    assert result.exit_code == 3 and "not valid yaml" in result.stderr and result.stderr.count("\n") == 1


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOAB_DEBUG", "1")
    result = runner.invoke(app, ["variants", "--model", "yolov8q"])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "UnknownModelError"
