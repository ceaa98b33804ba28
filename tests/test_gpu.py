"""CUDA checks, run with `python -m pytest -m gpu`; tests/conftest.py skips them, with a reason, where no CUDA device
is present. Quick and small (64 px, a few timing rounds, one 1-epoch run); timing repeatability is a benchmark, in
test_benchmarks.py.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, profile_variants
from yoloab.variants import baseline, build_seeded, count_params

pytestmark = pytest.mark.gpu

runner = CliRunner()


@pytest.fixture(scope="module")
def cuda_profile():
    """One yolov8n profile on CUDA at batch 1, with every elapsed time the CUDA events reported (ms)."""
    elapsed: list[float] = []

    class Event(torch.cuda.Event):
        def elapsed_time(self, end_event):
            ms = super().elapsed_time(end_event)
            elapsed.append(ms)
            return ms

    settings = ProfileSettings(imgsz=64, batch=1, device="cuda", warmup_s=0.1, rounds=3, round_s=0.05)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "Event", Event)
        (record,) = profile_variants([baseline(get_base_model("yolov8n"))], settings)
    return record, elapsed


def test_cuda_latency_comes_from_cuda_events(cuda_profile):
    record, elapsed = cuda_profile
    assert record["device"].startswith("cuda") and record["device_name"] == torch.cuda.get_device_name(0)
    # batch 1: one timed pass (3 rounds of at least 3 samples), every sample a CUDA event pair
    assert len(elapsed) >= 9 and min(elapsed) > 0
    q1, median, q3 = statistics.quantiles(elapsed, n=4, method="inclusive")
    assert record["latency_ms"] == pytest.approx(median, rel=1e-9)
    assert record["latency_iqr_ms"] == pytest.approx(q3 - q1, rel=1e-9, abs=1e-12)
    assert record["throughput_ips"] == pytest.approx(1e3 / median, rel=1e-9)  # batch 1: from the same median


def test_cuda_peak_memory_is_recorded(cuda_profile):
    record, _ = cuda_profile
    weights_mb = count_params(build_seeded(baseline(get_base_model("yolov8n")))) * 4 / 2**20
    # the peaks include the float32 weights on the device; training adds gradients and the activations kept for them
    assert record["mem_infer_mb"] >= weights_mb > 0
    assert record["mem_train_mb"] > record["mem_infer_mb"]


PEEK = """
import os
from pathlib import Path

import torch

# loaded by the sweep's driver and by each worker; each process leaves what it sees
seen = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "count": torch.cuda.device_count()}
Path(__file__).with_name(f"seen-{os.getpid()}.json").write_text(__import__("json").dumps(seen))
"""


def test_devices_pins_a_sweep_run_to_the_listed_gpu(tmp_path):
    last = torch.cuda.device_count() - 1  # with several GPUs, not the one a run would get anyway
    (tmp_path / "peek.py").write_text(PEEK)
    results = tmp_path / "results"
    args = ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--builtin-images", "16", "--imgsz", "64"]
    args += ["--batch", "8", "--workers", "0", "--quiet", "--epochs", "1", "--devices", str(last)]
    result = runner.invoke(app, [*args, "--plugin", str(tmp_path / "peek.py"), "--results", str(results)])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    assert record["status"] == "ok" and record["epochs_done"] == 1
    # the worker saw only that GPU, as its device 0, and trained there
    workers = [json.loads(p.read_text()) for p in tmp_path.glob("seen-*.json") if p.stem != f"seen-{os.getpid()}"]
    assert workers == [{"visible": str(last), "count": 1}]
    assert record["device"] == "0"
    assert yaml.safe_load((Path(record["run_dir"]) / "args.yaml").read_text())["device"] in ("0", 0)
    # the record names the GPU it trained on (not the CPU that Ultralytics reloads best.pt onto after training)
    assert record["device_name"] == torch.cuda.get_device_name(last), record["device_name"]
