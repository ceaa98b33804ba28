"""What a sweep shows and what a resumed run restores: one live display, Ultralytics' lines in the run's log, and
an interrupted-and-resumed run that ends where the uninterrupted one does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from yoloab.datasets import load_dataset
from yoloab.models import get_base_model
from yoloab.results import read_epochs
from yoloab.training import RunHooks, SweepInterrupted, TrainSettings, plan_runs, train_run
from yoloab.variants import baseline

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # YOLO_VERBOSE as a user has it (conftest turns it off): Ultralytics then prints its epoch lines and bars
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "YOLO_VERBOSE": "True"}
    env.pop("YOLOAB_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "yoloab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_sweep_output_is_one_display_and_ultralytics_lines_go_to_the_log(tmp_path):
    # 32 images at batch 4: 8 batches an epoch, 16 in the run; Ultralytics' bars would print a line (or a \r frame)
    # for each of them
    result = _cli(
        "sweep", "--dataset", "builtin", "--builtin-images", "32", "--imgsz", "64", "--batch", "4", "--workers", "0",
        "--epochs", "2", "--model", "yolov8n", "--results", str(tmp_path / "results"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    shown = result.stdout + result.stderr
    for fragment in ("\x1b[K", "\r", "[K", "[34m", "[0m", "[1m"):
        assert fragment not in shown, (fragment, shown)
    assert "Epoch" not in shown and "GPU_mem" not in shown  # Ultralytics' epoch table header
    lines = [line for line in shown.splitlines() if line.strip()]
    assert len(lines) < 16, shown  # fewer lines than batches: nothing is printed per batch
    logs = list((tmp_path / "results" / "train").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in shown.replace("\n", "")
    log = logs[0].read_text()
    assert "Ultralytics" in log and "Epoch" in log and "GPU_mem" in log
    assert log.count("2/2") >= 1 and "\x1b[K" in log  # its own progress bars, frames and all


def test_sweep_quiet_prints_one_line_as_each_run_starts_and_ends_and_no_display(tmp_path):
    result = _cli(
        "sweep", "--dataset", "builtin", "--builtin-images", "8", "--imgsz", "64", "--batch", "8", "--workers", "0",
        "--epochs", "1", "--model", "yolov8n", "--seeds", "2", "--results", str(tmp_path / "results"), "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    before_summary = result.stdout.split("yoloab sweep")[0]
    assert "━" not in before_summary and "ETA -:--:--" not in before_summary  # no live display
    lines = [line for line in before_summary.splitlines() if line.strip()]
    # HH:MM:SS, then the run: started, then ended with its status and time
    clock, took, m = r"\d\d:\d\d:\d\d ", r"[\dhms]+", r"0\.\d{4}"  # 12:03:05; 45s, 2m05s, 1h02m; mAP
    assert len(lines) == 4, lines
    assert re.fullmatch(clock + r"▶ yolov8n seed 0: started, run 1 of 2", lines[0])
    assert re.fullmatch(clock + rf"✓ yolov8n seed 0: ok in {took}, mAP50-95 {m} · 1/2 runs done, ETA {took}", lines[1])
    assert re.fullmatch(clock + r"▶ yolov8n seed 1: started, run 2 of 2", lines[2])
    assert re.fullmatch(clock + rf"✓ yolov8n seed 1: ok in {took}, mAP50-95 {m} · 2/2 runs done", lines[3])


def _spec(results: Path):
    data = load_dataset("builtin", 32)
    # nbs=batch: one optimizer step per batch. With gradient accumulation (batch < nbs) the window that spans the epoch
    # boundary lives in local variables of Ultralytics' training loop, which a resume restarts (README, Resume)
    settings = TrainSettings(epochs=2, imgsz=64, batch=8, workers=0, device="cpu", train_args={"nbs": 8})
    return plan_runs([baseline(get_base_model("yolov8n"))], data, settings, [0], results)[0]


def _last_losses(record: dict) -> dict[str, float]:
    row = read_epochs(Path(record["run_dir"]) / "results.csv")[-1]
    return {k: v for k, v in row.items() if k.startswith(("train/", "val/", "metrics/"))}


@pytest.mark.slow
def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(tmp_path):
    whole = train_run(_spec(tmp_path / "whole"))
    assert whole["status"] == "ok" and whole["resumed"] is False and whole["resumed_from_epoch"] is None

    spec = _spec(tmp_path / "cut")
    with pytest.raises(SweepInterrupted):  # stop after epoch 1 is saved, as a first Ctrl-C does
        train_run(spec, RunHooks(stop_requested=lambda: True))
    assert (spec.run_dir / "weights" / "rng.pt").is_file()
    resumed = train_run(spec)
    assert resumed["status"] == "ok", resumed["error"]
    assert resumed["resumed"] is True and resumed["resumed_from_epoch"] == 1
    assert {"model", "ema", "python", "numpy", "torch", "sampler"} <= set(resumed["rng_restored"])
    # epoch 2's losses depend on the shuffle, the augmentations, the optimizer and the EMA of epoch 1: equal only
    # if all of them were carried over
    assert _last_losses(resumed) == pytest.approx(_last_losses(whole), rel=1e-6, abs=1e-9)
    for key in ("map50", "map50_95", "precision", "recall"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9), key
    json.dumps(resumed)  # the record stays JSON


@pytest.mark.slow
def test_resume_without_the_saved_generators_differs_and_says_so(tmp_path):
    """The control for the test above: the same resume without `rng.pt` (Ultralytics alone) ends elsewhere."""
    whole = train_run(_spec(tmp_path / "whole"))
    spec = _spec(tmp_path / "cut")
    with pytest.raises(SweepInterrupted):
        train_run(spec, RunHooks(stop_requested=lambda: True))
    (spec.run_dir / "weights" / "rng.pt").unlink()
    resumed = train_run(spec)
    assert resumed["resumed"] is True and resumed["rng_restored"] == []
    assert _last_losses(resumed) != pytest.approx(_last_losses(whole), rel=1e-6, abs=1e-9)
