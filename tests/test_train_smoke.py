"""A fast end-to-end run: one real training through the path the CLI takes, with yoloab's Ultralytics callbacks.

Anything that breaks every run (an import in `yoloab.callbacks`, say, which a run reports as a failed record rather
than raising) fails here within seconds. A tiny built-in dataset: 4 training images (1 for validation) at 32 px,
batch 2, so that an epoch has two batches for the progress callback to count.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.datasets import load_dataset
from yoloab.models import get_base_model
from yoloab.results import RUN_KEYS, load_val_stats
from yoloab.sweep import run_sweep
from yoloab.training import TrainSettings, plan_runs
from yoloab.variants import baseline

IMAGES, IMGSZ, BATCH = 4, 32, 2
SETTINGS = TrainSettings(epochs=1, imgsz=IMGSZ, batch=BATCH, workers=0)


class _Recorder:
    """Every event of the sweep; at each epoch, what the save callback has left in the run's weights folder."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.at_epoch: list[dict] = []

    def started(self, spec):
        self.log.append(("started", spec.key))

    def batch(self, spec, epoch, epochs, batch, batches):
        self.log.append(("batch", epoch, epochs, batch, batches))

    def metrics(self, spec, values):
        self.log.append(("metrics", dict(values)))

    def epoch(self, spec, epoch, epochs):
        # Ultralytics calls on_fit_epoch_end after on_model_save: the copies of this epoch are on disk now
        weights = spec.run_dir / "weights"
        rng = torch.load(weights / "rng.pt", weights_only=False) if (weights / "rng.pt").is_file() else None
        safe, last = weights / "last.safe.pt", weights / "last.pt"
        self.at_epoch.append({"rng": rng, "safe_is_last": safe.is_file() and safe.read_bytes() == last.read_bytes()})
        self.log.append(("epoch", epoch, epochs))

    def finished(self, spec, record):
        self.log.append(("finished", record["status"]))

    def skipped(self, spec, record):
        self.log.append(("skipped", spec.key))

    def waiting(self, spec):
        self.log.append(("waiting", spec.key))

    def stopping(self):
        self.log.append(("stopping",))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, skipinitialspace=True))


def _check_ok_record(record: dict, results: Path) -> None:
    """What a finished, never-interrupted run's record holds, read against the files beside it."""
    assert record["status"] == "ok" and record["error"] is None, record["error"]
    run_dir = Path(record["run_dir"])
    rows = _csv_rows(run_dir / "results.csv")
    assert [int(float(r["epoch"])) for r in rows] == [1]  # Ultralytics' own log of the epochs trained
    assert record["epochs_done"] == 1 and record["best_epoch"] == 1
    for key in ("map50", "map50_95", "precision", "recall"):
        assert record[key] is not None and 0.0 <= record[key] <= 1.0, (key, record[key])
    assert math.isfinite(record["train_time_s"]) and record["train_time_s"] > 0
    assert (run_dir / "weights" / "best.pt").is_file()
    assert record["resumed"] is False and record["resumed_from_epoch"] is None and record["rng_restored"] is None
    # recorded: the resumable copy and resume state are gone, the per-image statistics stored beside the record
    assert not (run_dir / "weights" / "last.safe.pt").exists() and not (run_dir / "weights" / "rng.pt").exists()
    assert (results / "runs" / f"{record['key']}.npz").is_file()
    stats = load_val_stats(results, record["key"])
    val_images = sorted((load_dataset("builtin", IMAGES).yaml.parent / "images" / "val").glob("*.png"))
    assert sorted(Path(p).name for p in stats.images) == [p.name for p in val_images]
    assert (stats.map50, stats.map50_95) == (record["map50"], record["map50_95"])


def test_one_run_trains_through_the_callbacks(tmp_path):
    data = load_dataset("builtin", IMAGES)
    results = tmp_path / "results"
    (spec,) = plan_runs([baseline(get_base_model("yolov8n"))], data, SETTINGS, [0], results)
    events = _Recorder()
    t0 = time.perf_counter()
    outcome = run_sweep(specs=[spec], events=events)  # no executor: this process, as the CLI's default
    wall = time.perf_counter() - t0

    (record,) = outcome.records
    assert record["status"] == "ok", record["error"]  # a run that cannot train is a failed record, not an exception
    assert not outcome.interrupted and not outcome.skipped
    stored = json.loads((results / "runs" / f"{spec.key}.json").read_text())
    assert set(stored) == set(RUN_KEYS) and {k: stored[k] for k in record} == record  # the store adds empty columns
    _check_ok_record(record, results)
    assert record["train_time_s"] < wall

    # the callbacks ran: one event per batch (ceil(4 / 2) batches), one per epoch, the epoch's metrics
    batches = math.ceil(IMAGES / BATCH)
    kinds = [e[0] for e in events.log]
    assert kinds[0] == "started" and kinds[-1] == "finished" and events.log[-1] == ("finished", "ok")
    assert [e for e in events.log if e[0] == "batch"] == [("batch", 1, 1, b, batches) for b in range(1, batches + 1)]
    assert [e for e in events.log if e[0] == "epoch"] == [("epoch", 1, 1)]
    assert any("metrics/mAP50(B)" in e[1] for e in events.log if e[0] == "metrics")
    # ... and right after the save, the epoch's resume state (Ultralytics' epoch 0) and the copy of last.pt were there
    (saved,) = events.at_epoch
    assert saved["rng"] is not None and saved["rng"]["epoch"] == 0 and saved["rng"]["model"], "no weights/rng.pt"
    assert saved["safe_is_last"], "weights/last.safe.pt missing or not a copy of last.pt"


def test_cli_sweep_trains_and_stores_the_record(tmp_path):
    results = tmp_path / "results"
    args = ["sweep", "--dataset", "builtin", "--builtin-images", str(IMAGES), "--imgsz", str(IMGSZ)]
    args += ["--batch", str(BATCH), "--epochs", "1", "--workers", "0", "--quiet", "--results", str(results)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = (results / "runs").glob("*.json")
    record = json.loads(path.read_text())
    # the run the library plans for these settings (no --model: yolov8n)
    (spec,) = plan_runs([baseline(get_base_model("yolov8n"))], load_dataset("builtin", IMAGES), SETTINGS, [0], results)
    assert record["key"] == spec.key and path.name == f"{spec.key}.json"
    _check_ok_record(record, results)
    assert "yolov8n seed 0" in result.output
