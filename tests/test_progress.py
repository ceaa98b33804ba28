"""Progress where long work happens: `profile` steps and early rows, and defaults sized for the built-in dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.datasets import BUILTIN_TRAINING, TRAINING_DEFAULTS, training_defaults
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, profile_steps, profile_variants
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
