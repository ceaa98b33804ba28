"""One grammar of options in every verb, `--version` and `-h`, and help text that reads as written."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

import yoloab
import yoloab.variants
from yoloab.cli.app import app
from yoloab.errors import YoloabError
from yoloab.registry import MODULES
from yoloab.variants import select_request

runner = CliRunner()
VERBS = ("list", "variants", "profile", "sweep", "report")
SELECTING = {"variants": [], "profile": ["--no-latency"], "sweep": ["--dataset", "builtin"]}


class _Stop(YoloabError):
    """Raised by the spy once the verb has chosen its variants, so that nothing is built, profiled or trained."""


def _chosen(monkeypatch, verb: str, args: list[str]) -> list[str]:
    """The variant names a verb selects for `args`, seen where it asks `select_request`."""
    seen: list[str] = []

    def spy(*a, **k):
        seen.extend(v.name for v in select_request(*a, **k))
        raise _Stop("stop")

    monkeypatch.setattr(yoloab.variants, "select_request", spy)
    result = runner.invoke(app, [verb, *args, *SELECTING[verb]])
    assert result.exit_code == 1 and "stop" in result.stderr, result.output
    return seen


@pytest.mark.parametrize("verb", list(SELECTING))
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["yolov8n"]),
        (["--model", "yolo11n"], ["yolo11n"]),
        (["--model", "yolo11n.pt"], ["yolo11n"]),
        (["--model", "yolo11n.yaml"], ["yolo11n"]),
        (["yolo11n.yaml"], ["yolo11n"]),
        (["--model", "yolo11n", "--module", "ADown"], ["yolo11n", "yolo11n-ADown-article"]),
    ],
    ids=["nothing", "model", "model-pt", "model-yaml", "bare-yaml", "module"],
)
def test_every_verb_selects_the_same_variants(monkeypatch, tmp_path, verb, args, expected):
    monkeypatch.chdir(tmp_path)  # a stray yolo11n.yaml in the working folder would be a file, not a base model
    assert _chosen(monkeypatch, verb, args) == expected


@pytest.mark.parametrize("verb", list(SELECTING))
def test_module_all_is_the_catalog_in_every_verb(monkeypatch, tmp_path, verb):
    monkeypatch.chdir(tmp_path)
    names = _chosen(monkeypatch, verb, ["--module", "all"])
    modules = MODULES.catalog_names()  # timm's models are named one by one (timm-<model>), never all
    assert "timm" in MODULES.names() and "timm" not in modules
    assert names[0] == "yolov8n" and len(names) == 1 + len(modules)
    assert all(name.startswith(f"yolov8n-{m}-") for name, m in zip(names[1:], modules, strict=True))


def test_a_yaml_file_on_disk_wins_over_the_base_model_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolo11n.yaml").write_text(
        "nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\nhead:\n  - [[0], 1, Detect, [nc]]\n"
    )
    # the file's own header-less variant is named after its stem; no baseline yolov8n comes with a yaml file
    assert _chosen(monkeypatch, "variants", ["yolo11n.yaml"]) == ["yolo11n"]
    variant = select_request(None, None, yamls=["yolo11n.yaml"])[0]
    assert variant.path is not None and variant.config["nc"] == 2


def test_variants_without_module_lists_only_the_baseline():
    result = runner.invoke(app, ["variants", "--no-build", "--model", "yolo11n.pt"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "yolo11n" in result.output and "-ADown-" not in result.output


def test_version_and_short_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"yoloab {yoloab.__version__}"
    assert runner.invoke(app, ["-h"]).output == runner.invoke(app, ["--help"]).output
    for verb in VERBS:
        short = runner.invoke(app, [verb, "-h"])
        assert short.exit_code == 0 and short.output == runner.invoke(app, [verb, "--help"]).output


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("verb", VERBS)
def test_help_reads_as_written(verb):
    command = typer.main.get_command(app).commands[verb]
    output = runner.invoke(app, [verb, "--help"], env={"COLUMNS": "100"}).output
    assert "<list[" not in output and "<bool>" not in output and "<str>" not in output
    bracketed = [m for p in command.params for m in re.findall(r"\[[^\]]*\]", p.help or "")]
    for text in bracketed:
        assert _flat(text) in _flat(output), f"{verb} --help lost {text!r}"
    for param in command.params:  # every help string appears whole (wrapping aside)
        assert _flat(param.help or "") in _flat(output), f"{verb} --help changed {param.help!r}"


def test_help_keeps_the_brackets_of_sweep_workers():
    # the case from issue 15: "Dataloader workers ." lost its "[default: Ultralytics']"
    output = _flat(runner.invoke(app, ["sweep", "--help"], env={"COLUMNS": "100"}).output)
    assert "Dataloader workers [default: Ultralytics']." in output
