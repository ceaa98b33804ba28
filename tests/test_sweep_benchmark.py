"""Sweep overhead against a plain Ultralytics training with the same settings, run on request:
`python -m pytest -m benchmark -s tests/test_sweep_benchmark.py` (about 6 minutes on 2 CPU cores).

Two figures are printed:
- A/B: wall time of `run_sweep` over one run against `YOLO(yaml).train(...)` with the same settings, alternated;
  on a shared 2-core VM one model's speed swings by 20% or more from second to second, so this ratio is noisy.
- accounted: the time yoloab itself adds, measured inside the sweep: its wall time minus the time spent in
  Ultralytics' `train()` call, plus yoloab's own work inside that call (the per-epoch checkpoint copy). This does not
  depend on how fast the machine happens to be, and is what the issue's 3% bound is checked against.
"""

from __future__ import annotations

import statistics
import time

import pytest

import yoloab.callbacks as callbacks
from yoloab.datasets import builtin_dataset
from yoloab.models import get_base_model
from yoloab.sweep import run_sweep
from yoloab.training import TrainSettings, plan_runs
from yoloab.variants import baseline, write_yaml

pytestmark = pytest.mark.benchmark


class _Quiet:
    def __getattr__(self, name):
        return lambda *a: None


def test_sweep_overhead_per_run_is_at_most_3_percent(tmp_path, monkeypatch):
    from ultralytics.engine.model import Model

    data = builtin_dataset()  # the README's sweep: 512 images, 5 epochs at imgsz 128, batch 8
    variant = baseline(get_base_model("yolov8n"))
    yaml_path = write_yaml(variant, tmp_path)
    common = {"epochs": 5, "imgsz": 128, "batch": 8, "workers": 0}

    spent = {"train": 0.0, "copy": 0.0}
    original_train, original_copy = Model.train, callbacks.copy_atomic

    def timed_train(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original_train(self, *args, **kwargs)
        finally:
            spent["train"] += time.perf_counter() - t0

    def timed_copy(src, dst):
        t0 = time.perf_counter()
        try:
            return original_copy(src, dst)
        finally:
            spent["copy"] += time.perf_counter() - t0

    monkeypatch.setattr(Model, "train", timed_train)
    monkeypatch.setattr(callbacks, "copy_atomic", timed_copy)  # the per-epoch checkpoint copy

    def plain(i: int) -> float:
        from ultralytics import YOLO

        t0 = time.perf_counter()
        YOLO(str(yaml_path)).train(
            data=str(data.yaml), seed=0, plots=False, project=str(tmp_path / "plain"), name=str(i), **common
        )
        return time.perf_counter() - t0

    def swept(i: int) -> tuple[float, float]:
        specs = plan_runs([variant], data, TrainSettings(**common), [0], tmp_path / f"sweep{i}")
        spent.update(train=0.0, copy=0.0)
        t0 = time.perf_counter()
        outcome = run_sweep(specs, _Quiet())
        wall = time.perf_counter() - t0
        assert outcome.records[0]["status"] == "ok"
        return wall, wall - spent["train"] + spent["copy"]

    plain_s, swept_s, added_s = [], [], []
    for i in range(2):  # alternated, so drift of the machine hits both alike
        plain_s.append(plain(i))
        wall, added = swept(i)
        swept_s.append(wall)
        added_s.append(added)
    base = statistics.median(plain_s)
    accounted = max(added_s) / base
    print(f"\nplain {[round(t, 1) for t in plain_s]} s, sweep {[round(t, 1) for t in swept_s]} s")
    print(f"A/B (median) {statistics.median(swept_s) / base - 1:+.1%}")
    print(f"accounted yoloab time per run {[round(t, 2) for t in added_s]} s = {accounted:.1%} of a plain run")
    assert accounted <= 0.03
