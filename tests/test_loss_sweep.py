"""The box loss as a sweep axis: three losses on the baseline, skipped on re-run, compared in the report; a resumed
Wise-IoU v3 run that ends where the uninterrupted one does; a checkpoint that loads without yoloab; a bad name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from yoloab._ultralytics import read_state
from yoloab.cli.app import app
from yoloab.datasets import load_dataset
from yoloab.models import get_base_model
from yoloab.report.build import build_report
from yoloab.report.csv_format import report_csv
from yoloab.report.markdown import report_markdown
from yoloab.results import read_epochs
from yoloab.training import RunHooks, SweepInterrupted, TrainSettings, plan_runs, run_key, train_run
from yoloab.variants import baseline

runner = CliRunner()
TINY = ["--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet"]
LOSSES = ["--loss", "CIoU", "--loss", "SIoU", "--loss", "WIoUv3"]


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


@pytest.fixture(scope="module")
def loss_sweep(tmp_path_factory):
    """The issue's acceptance sweep (at a smaller dataset), run once for the tests that read it."""
    results = tmp_path_factory.mktemp("losses") / "results"
    args = ["sweep", "--dataset", "builtin", "--model", "yolov8n", *LOSSES, "--epochs", "1", "--results", str(results)]
    return results, runner.invoke(app, [*args, *TINY]), args


def test_three_losses_train_three_runs_with_distinct_keys(loss_sweep):
    results, result, _ = loss_sweep
    assert result.exit_code == 0, result.output
    records = {r["variant"]: r for r in _records(results)}
    assert set(records) == {"yolov8n", "yolov8n+SIoU", "yolov8n+WIoUv3"}
    assert {r["loss"] for r in records.values()} == {"CIoU", "SIoU", "WIoUv3"}
    assert {r["architecture"] for r in records.values()} == {"yolov8n"}
    assert len({r["key"] for r in records.values()}) == 3
    assert all(r["status"] == "ok" for r in records.values())
    assert len({r["yaml_sha256"] for r in records.values()}) == 1  # one model, three losses
    for r in records.values():  # run names carry the loss too
        assert Path(r["run_dir"]).name.startswith(r["variant"] + "-builtin-seed0-")
    # each loss trained its own box term: the first epoch's box losses differ
    box = {v: read_epochs(Path(r["run_dir"]) / "results.csv")[0]["train/box_loss"] for v, r in records.items()}
    assert len(set(box.values())) == 3, box
    assert "loss" in result.output and "yolov8n+WIoUv3" in result.output  # the summary's loss column


def test_the_default_loss_keeps_the_key_runs_always_had(loss_sweep):
    results, _, _ = loss_sweep
    ciou = next(r for r in _records(results) if r["loss"] == "CIoU")
    data = load_dataset("builtin", 16)
    settings = TrainSettings(epochs=1, imgsz=64, batch=8, workers=0)
    spec = plan_runs([baseline(get_base_model("yolov8n"))], data, settings, [0], results)[0]
    assert ciou["key"] == spec.key == run_key(spec.yaml_sha256, data, settings, 0)


def test_a_rerun_trains_nothing(loss_sweep):
    results, _, args = loss_sweep
    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    again = runner.invoke(app, [*args, *TINY])
    assert again.exit_code == 0, again.output
    assert "Nothing to train: all 3 runs" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")} == before


def test_report_shows_the_loss_and_the_deltas_against_ciou_with_intervals(loss_sweep):
    results, _, _ = loss_sweep
    result = runner.invoke(app, ["report", "--results", str(results), "--format", "md"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("| variant"))
    assert header.startswith("| variant | loss | seeds |")
    for name, loss in (("yolov8n+SIoU", "SIoU"), ("yolov8n+WIoUv3", "WIoUv3")):
        row = next(line for line in lines if line.startswith(f"| {name} "))
        assert f"| {loss} |" in row and row.count("[") >= 2, row  # mAP50 and mAP50-95 Δ, each with its interval
    assert "compared with the same architecture trained with CIoU" in result.output
    csv = runner.invoke(app, ["report", "--results", str(results), "--format", "csv"])
    assert csv.output.splitlines()[0].startswith("table,variant,loss,")


def test_a_checkpoint_trained_with_a_catalog_loss_loads_and_predicts_without_yoloab(loss_sweep, tmp_path):
    results, _, _ = loss_sweep
    run = next(r for r in _records(results) if r["loss"] == "WIoUv3")
    best = Path(run["run_dir"], "weights", "best.pt")
    image = _an_image()
    # yoloab cannot even be imported: the pickle names no class of it (Ultralytics strips the criterion on saving)
    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'yoloab': raise ImportError('yoloab is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from ultralytics import YOLO\n"
        f"r = YOLO({str(best)!r}).predict({str(image)!r}, imgsz=64, verbose=False)\n"
        "print('boxes', len(r[0].boxes), 'yoloab' in sys.modules)\n"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("boxes") and out.stdout.strip().endswith("False")


def _an_image() -> Path:
    data = load_dataset("builtin", 16)
    return next(Path(data.yaml).parent.rglob("*.jpg"), None) or next(Path(data.yaml).parent.rglob("*.png"))


def test_an_unknown_loss_is_one_line_with_the_nearest_names_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    args = ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--loss", "WIoU3", "--results", str(results)]
    result = runner.invoke(app, [*args, *TINY])
    assert result.exit_code == 2, result.output
    assert "unknown loss 'WIoU3'" in result.output and "WIoUv3" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not results.exists()


# ---- the report's baseline for a loss row, on records alone -------------------------------------------------------


def _record(variant: str, architecture: str, loss: str | None, module: str | None, map50_95: float) -> dict:
    return {
        "kind": "run", "key": variant, "variant": variant, "architecture": architecture, "loss": loss,
        "base": "yolov8n", "module": module, "placement": "all" if module else None, "yaml_sha256": architecture,
        "dataset": "d", "dataset_id": "d1", "epochs": 1, "imgsz": 64, "batch": 8, "train_args": {}, "device": "cpu",
        "workers": 0, "seed": 0, "status": "ok", "map50": map50_95 + 0.1, "map50_95": map50_95, "params": 3e6,
    }  # fmt: skip


def test_a_loss_row_is_compared_with_its_architecture_trained_with_ciou():
    records = [
        _record("yolov8n", "yolov8n", None, None, 0.30),  # a record from before the loss axis: CIoU
        _record("yolov8n+SIoU", "yolov8n", "SIoU", None, 0.32),
        _record("yolov8n-ADown-all", "yolov8n-ADown-all", "CIoU", "ADown", 0.20),
        _record("yolov8n-ADown-all+SIoU", "yolov8n-ADown-all", "SIoU", "ADown", 0.25),
    ]
    report = build_report(records, [])
    rows = {row.variant: row for row in report.tables[0].shown}
    assert rows["yolov8n"].is_baseline
    assert rows["yolov8n+SIoU"].baseline == "yolov8n"
    assert rows["yolov8n+SIoU"].deltas["map50_95"].abs == pytest.approx(0.02)
    assert rows["yolov8n-ADown-all"].baseline == "yolov8n"
    assert rows["yolov8n-ADown-all+SIoU"].baseline == "yolov8n-ADown-all"
    assert rows["yolov8n-ADown-all+SIoU"].deltas["map50_95"].abs == pytest.approx(0.05)
    md = report_markdown(report)
    assert "| yolov8n-ADown-all+SIoU | SIoU |" in md and "| yolov8n | CIoU |" in md
    head, *lines = report_csv(report).splitlines()
    assert head.startswith("table,variant,loss,") and any(",yolov8n+SIoU,SIoU," in line for line in lines)


def test_a_report_without_loss_rows_has_no_loss_column():
    report = build_report([_record("yolov8n", "yolov8n", "CIoU", None, 0.3)], [])
    assert "| loss |" not in report_markdown(report)


# ---- resume ---------------------------------------------------------------------------------------------------------


def _spec(results: Path):
    data = load_dataset("builtin", 32)
    # the conditions under which a resumed run is exact today (tests/test_sweep_output.py): nbs=batch, CPU, workers 0
    settings = TrainSettings(epochs=2, imgsz=64, batch=8, workers=0, device="cpu", train_args={"nbs": 8})
    return plan_runs([baseline(get_base_model("yolov8n"))], data, settings, [0], results, losses=["WIoUv3"])[0]


def _last(record: dict) -> dict[str, float]:
    row = read_epochs(Path(record["run_dir"]) / "results.csv")[-1]
    return {k: v for k, v in row.items() if k.startswith(("train/", "val/", "metrics/"))}


def _cut(results: Path):
    spec = _spec(results)
    with pytest.raises(SweepInterrupted):  # stop after epoch 1 is saved, as a first Ctrl-C does
        train_run(spec, RunHooks(stop_requested=lambda: True))
    return spec


@pytest.mark.slow
def test_a_killed_and_resumed_wiou_v3_run_equals_the_uninterrupted_one(tmp_path):
    whole = train_run(_spec(tmp_path / "whole"))
    assert whole["status"] == "ok", whole["error"]

    spec = _cut(tmp_path / "cut")
    saved = read_state(spec.run_dir / "weights" / "rng.pt")
    assert saved["loss"]["main"]["updates"] == 4 and saved["loss"]["main"]["value"] < 1  # 32 images / 8: 4 batches
    resumed = train_run(spec)
    assert resumed["status"] == "ok", resumed["error"]
    assert resumed["resumed_from_epoch"] == 1 and "loss" in resumed["rng_restored"]
    assert _last(resumed) == pytest.approx(_last(whole), rel=1e-6, abs=1e-9)
    for key in ("map50", "map50_95", "precision", "recall"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9), key

    # the control: the same resume with the running mean back at its starting value ends elsewhere
    spec = _cut(tmp_path / "reset")
    path = spec.run_dir / "weights" / "rng.pt"
    state = read_state(path)
    state["loss"] = None
    torch.save(state, path)
    reset = train_run(spec)
    assert "loss" not in reset["rng_restored"]
    assert _last(reset)["train/box_loss"] != pytest.approx(_last(whole)["train/box_loss"], rel=1e-6)
