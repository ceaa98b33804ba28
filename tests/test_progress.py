"""Progress where long work happens: `profile` steps and early rows, and defaults sized for the built-in dataset."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import yoloab.profiling as profiling
from yoloab.cli.app import app
from yoloab.cli.profile import _eta_column
from yoloab.datasets import BUILTIN_TRAINING, TRAINING_DEFAULTS, training_defaults
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, StepClock, plan_profile, profile_steps, profile_variants
from yoloab.variants import baseline, make_variant

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("latency", [True, False], ids=["latency", "counts-only"])
def test_profile_calls_on_step_as_often_as_it_announces(latency):
    base = get_base_model("yolov8n")
    variants = [baseline(base), make_variant(base, "ADown", "article")]
    settings = ProfileSettings(imgsz=64, batch=2, device="cpu", latency=latency, warmup_s=0.01, rounds=2, round_s=0.01)
    steps: list[tuple[str, dict | None]] = []
    records = profile_variants(variants, settings, lambda what, record: steps.append((what, record)))
    # closed form: one count per variant, then per pass (batch 1, batch N) one warm-up and `rounds` slots per variant
    assert len(steps) == profile_steps(2, settings) == 2 + (2 * 2 * (1 + 2) if latency else 0)
    counted = [record for _, record in steps if record is not None]
    assert [r["variant"] for r in counted] == [r["variant"] for r in records]  # each row as soon as it is counted
    assert all(r is None for _, r in steps[2:])


def test_the_total_is_known_before_any_model_is_built_and_every_build_is_reported(monkeypatch):
    base = get_base_model("yolov8n")
    variants = [baseline(base), make_variant(base, "ADown", "article")]
    settings = ProfileSettings(imgsz=32, device="cpu", warmup_s=0.0, rounds=2, round_s=0.0)
    plans: list[int] = []
    built_after: list[list[int]] = []
    build = profiling.build_seeded

    def build_seen(*args, **kwargs):
        built_after.append(list(plans))
        return build(*args, **kwargs)

    monkeypatch.setattr(profiling, "build_seeded", build_seen)
    steps: list[str] = []
    builds: list[str] = []
    profile_variants(
        variants, settings, lambda what, _: steps.append(what), on_plan=plans.append, on_build=builds.append
    )
    assert built_after == [[len(steps)], [len(steps)]] and plans == [len(steps)]  # the final total, before a build
    assert builds == [v.name for v in variants]


def test_step_clock_gives_an_eta_from_the_first_measured_build():
    # closed form: 2 builds, 3 rows (1 reused: free), then 6 timing steps priced (0.3 + 2 x 0.3) / 3 = 0.3 s each
    # until one is timed; a count step not yet seen is priced like a build
    base = get_base_model("yolov8n")
    settings = ProfileSettings(imgsz=32, device="cpu", warmup_s=0.3, rounds=2, round_s=0.3)
    plan = plan_profile([baseline(base), make_variant(base, "ADown"), make_variant(base, "SCDown")], settings)
    plan = dataclasses.replace(plan, reused_rows=1, builds=2, steps=3 + 2 * 3)
    now = [0.0]
    clock = StepClock(plan, clock=lambda: now[0])
    column = _eta_column(clock)
    assert clock.remaining() is None and str(column.render(None)) == "-:--:--"
    now[0] = 1.0
    clock.built()  # the first measured build: 1 s
    assert clock.remaining() == pytest.approx(1 * 1.0 + 2 * 1.0 + 6 * 0.3)
    now[0] = 2.0  # counted down between steps
    assert clock.remaining() == pytest.approx(3.8) and str(column.render(None)) == "0:00:04"
    clock.built()
    clock.step()  # the reused row: costs nothing, measures nothing
    assert clock.remaining() == pytest.approx(2 * 1.0 + 6 * 0.3)
    now[0] = 4.0
    clock.step()  # a count step of 2 s: counts are priced by it now
    assert clock.remaining() == pytest.approx(1 * 2.0 + 6 * 0.3)
    now[0] = 6.0
    clock.step()
    assert clock.remaining() == pytest.approx(6 * 0.3)
    now[0] = 7.0
    clock.step()  # the first timing step took 1 s: the rest are priced by it
    assert clock.remaining() == pytest.approx(5 * 1.0)
    clock.set_total(7)  # a batch-N artifact dropped: fewer timing steps
    assert clock.remaining() == pytest.approx(3 * 1.0)


def test_profile_keeps_stdout_for_the_format_and_prints_rows_as_counted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "yoloab", "profile", "--model", "yolov8n", "--module", "ADown", "--no-latency"]
    cmd += ["--imgsz", "64", "--results", str(tmp_path / "r")]
    as_json = subprocess.run([*cmd, "--format", "json"], env=env, capture_output=True, text=True, timeout=300)
    assert as_json.returncode == 0, as_json.stderr
    assert [r["variant"] for r in json.loads(as_json.stdout)] == ["yolov8n", "yolov8n-ADown-article"]  # only JSON
    table = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    assert "yolov8n-ADown-article: 2,741,200 params" in table.stderr  # the early line, outside the table on stdout
    assert "2,741,200 params" not in table.stdout


def test_builtin_dataset_gets_its_own_defaults_and_help_says_them():
    assert training_defaults("builtin") == BUILTIN_TRAINING == {"epochs": 5, "imgsz": 128, "batch": 8}
    assert training_defaults("data/coco.yaml") == TRAINING_DEFAULTS == {"epochs": 100, "imgsz": 640, "batch": 16}
    help_text = " ".join(CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"}).output.split())
    for text in ("100; 5 with --dataset builtin", "640; 128 with --dataset builtin", "16; 8 with --dataset builtin"):
        assert text in help_text
