"""What a sweep tells a user: the ETA from the first step, one line per run start and end with `--quiet`, `--seeds N`,
datasets named after their folder, and a first `profile --format json` whose stdout is JSON alone."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

import yoloab.sweep
from yoloab.cli.app import app
from yoloab.cli.sweep import _EtaColumn, _ProgressEvents
from yoloab.datasets import load_dataset
from yoloab.models import get_base_model
from yoloab.report import build_report
from yoloab.sweep_progress import SweepClock, duration
from yoloab.training import TrainSettings, plan_runs
from yoloab.variants import baseline

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---- the ETA ------------------------------------------------------------------------------------------------------


def test_eta_from_the_first_batch_at_the_rate_trained_now():
    t = FakeClock()
    clock = SweepClock({"a": 2, "b": 2}, t)  # 4 epochs in all, known before anything starts
    assert clock.total == 4 and clock.eta() is None
    clock.started("a")
    t.now = 10.0
    assert clock.eta() is None  # nothing trained yet: no rate
    clock.step("a", 1, 0.5)  # half an epoch in 10 s: 3.5 epochs left at 0.05 epoch/s
    assert clock.eta() == pytest.approx(70.0)
    t.now = 20.0
    clock.step("a", 1, 1.0)
    assert clock.eta() == pytest.approx(3 * 20 / 1)


def test_stored_runs_and_saved_epochs_are_done_but_not_in_the_rate():
    t = FakeClock()
    clock = SweepClock({"stored": 4, "resumed": 4, "new": 4}, t)
    clock.skipped("stored")  # 4 epochs done in no time
    t.now = 100.0
    clock.started("resumed")  # 3 epochs were saved by an earlier sweep: its first batch is in epoch 4
    t.now = 110.0
    clock.step("resumed", 4, 0.25)
    assert clock.completed == pytest.approx(4 + 3.25) and clock.trained == pytest.approx(0.25)
    # 12 - 7.25 = 4.75 epochs left at 0.25 epoch per 10 s
    assert clock.eta() == pytest.approx(4.75 * 10 / 0.25)
    t.now = 130.0
    clock.step("resumed", 4, 1.0)
    assert clock.finished("resumed", {"status": "ok", "epochs_done": 4, "resumed_from_epoch": 3}) == 30.0
    assert clock.runs_done == 2 and clock.trained == pytest.approx(1.0)
    assert clock.eta() == pytest.approx(4 * 30 / 1)


def test_a_run_without_steps_counts_from_its_record():
    t = FakeClock()
    clock = SweepClock({"a": 3, "b": 3}, t)  # Ray reports no batch: the first estimate comes with the first record
    clock.started("a")
    t.now = 60.0
    assert clock.eta() is None
    clock.finished("a", {"status": "ok", "epochs_done": 3, "resumed_from_epoch": None})
    assert clock.eta() == pytest.approx(3 * 60 / 3)


def _specs(n: int, epochs: int = 2):
    return [
        SimpleNamespace(
            key=f"k{i}",
            settings=SimpleNamespace(epochs=epochs),
            label=f"yolov8n seed {i}",
            log_path=Path(f"/r/train/{i}.log"),
        )
        for i in range(n)
    ]


def _display(quiet: bool, n: int = 2, width: int = 160):
    t = FakeClock()
    out = io.StringIO()
    specs = _specs(n)
    clock = SweepClock({s.key: s.settings.epochs for s in specs}, t)
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    progress = Progress(_EtaColumn(clock), console=console, get_time=t, disable=quiet, auto_refresh=False)
    return _ProgressEvents(progress, specs, quiet, clock), progress, specs, t, out


def _rendered(progress: Progress) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(progress.get_renderable())
    return buf.getvalue()


def test_the_bar_knows_its_total_and_shows_an_eta_after_the_first_batch():
    events, progress, specs, t, _ = _display(quiet=False)
    sweep_task = progress.tasks[events.task]
    assert sweep_task.total == 4 and sweep_task.fields["run"] == "0/2 runs"
    events.started(specs[0])
    assert "ETA -:--:--" in _rendered(progress).splitlines()[0]
    t.now = 7.0
    events.batch(specs[0], 1, 2, 1, 4)  # a quarter epoch in 7 s: 3.75 epochs left, 105 s
    assert "ETA 0:01:45" in _rendered(progress).splitlines()[0]


def test_quiet_prints_one_line_as_each_run_starts_and_one_as_it_ends():
    events, _, specs, t, out = _display(quiet=True, width=60)  # narrow: a long line must still be one line
    events.started(specs[0])
    t.now = 5.0
    events.batch(specs[0], 1, 2, 1, 4)
    t.now = 125.0
    events.batch(specs[0], 2, 2, 4, 4)  # 2 epochs in 125 s: 2 left, 125 s
    events.finished(specs[0], {"status": "ok", "map50_95": 0.12345, "resumed_from_epoch": None})
    events.started(specs[1])
    t.now = 137.0
    error = "RuntimeError: CUDA out of memory.\nTried to allocate 2 GiB (a very long message that goes on and on)"
    events.finished(specs[1], {"status": "failed", "error": error})
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].endswith("▶ yolov8n seed 0: started, run 1 of 2")
    assert lines[1].endswith("✓ yolov8n seed 0: ok in 2m05s, mAP50-95 0.1235 · 1/2 runs done, ETA 2m05s")
    assert lines[2].endswith("▶ yolov8n seed 1: started, run 2 of 2")
    assert "✗ yolov8n seed 1: failed in 12s: RuntimeError: CUDA out of memory. Tried to allocate 2 GiB" in lines[3]
    assert lines[3].endswith("· 2/2 runs done")
    for line in lines:  # each starts with the wall-clock time
        assert line[2] == ":" and line[5] == ":" and line[8] == " ", line


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (4.4, "4s"), (125, "2m05s"), (3725, "1h02m")])
def test_duration(seconds, text):
    assert duration(seconds) == text


# ---- --seeds ------------------------------------------------------------------------------------------------------

TINY = ["sweep", "--dataset", "builtin", "--builtin-images", "8", "--imgsz", "64", "--epochs", "1", "--quiet"]


@pytest.fixture
def planned(monkeypatch):
    """The runs a sweep command plans, the training stubbed out."""
    seen: list = []

    def fake_run_sweep(specs, events, executor=None):
        seen.extend(specs)
        return yoloab.sweep.SweepOutcome()

    monkeypatch.setattr(yoloab.sweep, "run_sweep", fake_run_sweep)
    return seen


def test_seeds_n_is_seed_0_to_n_minus_1(tmp_path, planned):
    result = runner.invoke(app, [*TINY, "--seeds", "3", "--results", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    by_seeds = [(s.seed, s.key) for s in planned]
    planned.clear()
    args = [*TINY, "--seed", "0", "--seed", "1", "--seed", "2", "--results", str(tmp_path / "a")]
    assert runner.invoke(app, args).exit_code == 0
    assert by_seeds == [(s.seed, s.key) for s in planned] and [s for s, _ in by_seeds] == [0, 1, 2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "2", "--seed", "5"], "--seeds 2 (seeds 0..1) and --seed 5 together; give one of them"),
        (["--seeds", "0"], "Invalid value for '--seeds'"),
    ],
    ids=["with-seed", "zero"],
)
def test_seeds_refused_in_one_line_before_anything_is_written(tmp_path, planned, extra, message):
    results = tmp_path / "r"
    result = runner.invoke(app, [*TINY, *extra, "--results", str(results)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not results.exists() and not planned


# ---- dataset names ------------------------------------------------------------------------------------------------


def _data_yaml(folder: Path, path_key: str | None = None, name: str = "data.yaml") -> Path:
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
    head = f"path: {path_key}\n" if path_key is not None else ""
    yaml_path = folder / name
    yaml_path.write_text(head + "train: images/train\nval: images/val\nnames:\n  0: a\n")
    return yaml_path


@pytest.mark.parametrize(
    ("path_key", "expected"),
    [(None, "coco8"), ("absolute", "VOC"), ("datasets/VOC", "VOC")],
    ids=["yaml-folder", "path-absolute", "path-relative-to-cwd"],
)
def test_a_dataset_is_named_after_its_folder_and_keeps_its_identity(tmp_path, monkeypatch, path_key, expected):
    monkeypatch.chdir(tmp_path)  # Ultralytics reads a relative `path` from the working directory first
    if path_key is None:
        yaml_path = _data_yaml(tmp_path / "coco8")
        root = tmp_path / "coco8"
    else:  # a yaml in a configs folder pointing at the data
        root = tmp_path / "datasets" / "VOC"
        _data_yaml(root)
        yaml_path = tmp_path / "configs" / "data.yaml"
        yaml_path.parent.mkdir()
        key = root if path_key == "absolute" else path_key
        yaml_path.write_text(f"path: {key}\ntrain: images/train\nval: images/val\nnames: [a]\n")
    data = load_dataset(str(yaml_path))
    assert data.name == expected
    root = root.resolve()
    # the identity, and so every run key, is what yoloab 0.1.0 hashed: the yaml's stem and its text and root
    digest = hashlib.sha256((yaml_path.read_text() + "\0" + str(root)).encode()).hexdigest()[:12]
    assert data.identity == f"data-{digest}"


def test_builtin_stays_builtin():
    assert load_dataset("builtin", 8).name == "builtin"


def test_a_run_interrupted_under_the_old_name_resumes_in_its_folder(tmp_path):
    data = load_dataset(str(_data_yaml(tmp_path / "shapes")))
    settings = TrainSettings(epochs=1, imgsz=64, batch=4)
    (spec,) = plan_runs([baseline(get_base_model("yolov8n"))], data, settings, [0], tmp_path / "results")
    assert spec.run_name == f"yolov8n-shapes-seed0-{spec.key[:8]}"
    old = tmp_path / "results" / "train" / f"yolov8n-data-seed0-{spec.key[:8]}"
    old.mkdir(parents=True)
    assert spec.run_dir == old.resolve() and spec.log_path.name == f"{old.name}.log"


def test_records_under_the_old_and_new_name_share_one_table():
    def run(name: str, seed: int, finished: str) -> dict:
        return {
            "kind": "run", "key": f"k{seed}", "variant": "yolov8n", "base": "yolov8n", "module": None,
            "dataset": name, "dataset_id": "data-0123456789ab", "seed": seed, "status": "ok", "map50": 0.5,
            "map50_95": 0.3, "epochs": 1, "imgsz": 64, "batch": 4, "train_args": {}, "finished": finished,
        }  # fmt: skip

    report = build_report([run("shapes", 1, "2026-02-01T00:00:00"), run("data", 0, "2026-01-01T00:00:00")], [])
    (table,) = report.tables
    assert table.name == "shapes" and len(table.rows) == 1 and len(table.rows[0].runs) == 2


# ---- stdout of a machine format on a fresh machine ---------------------------------------------------------------


def test_first_profile_json_on_a_fresh_config_dir_is_pure_json(tmp_path):
    # a fresh YOLO_CONFIG_DIR: Ultralytics creates its settings file on import and logs that it did
    env = {**os.environ, "PYTHONPATH": str(ROOT), "YOLO_CONFIG_DIR": str(tmp_path / "fresh"), "YOLO_VERBOSE": "True"}
    cmd = [sys.executable, "-m", "yoloab", "profile", "--model", "yolov8n", "--no-latency", "--imgsz", "64"]
    result = subprocess.run(
        [*cmd, "--results", str(tmp_path / "r"), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert [r["variant"] for r in json.loads(result.stdout)] == ["yolov8n"]
    assert "Creating new Ultralytics Settings" in result.stderr  # said, on stderr
