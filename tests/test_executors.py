"""Sweeps on other executors: a local Ray instance and one subprocess per device give the local executor's records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.executors import parse_devices, pinned
from yoloab.training import TrainSettings

runner = CliRunner()
TINY = ["--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet", "--epochs", "1"]
SWEEP = ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--module", "ADown", *TINY]

PLUGINS = '''
import os
from pathlib import Path

from torch import nn
from ultralytics.nn.modules import Conv
from yoloab import Placement, register_module

ATTEMPTS = Path(__file__).with_name("attempts.txt")


@register_module(role="downsample", channels="conv", paper="test", article=Placement("backbone", (8,)))
class GoodDown(nn.Module):
    def __init__(self, c1, c2, k=3, s=2):
        super().__init__()
        self.cv1 = Conv(c1, c2, k, s)

    def forward(self, x):
        return self.cv1(x)


@register_module(role="downsample", channels="conv", paper="test", article=Placement("backbone", (8,)))
class KillerDown(GoodDown):
    """Kills its own worker process on the first training step, as an out-of-memory kill would."""

    def forward(self, x):
        if self.training and x.requires_grad:
            with open(ATTEMPTS, "a") as fh:
                fh.write(f"{os.getpid()}\\n")
            os.kill(os.getpid(), 9)
        return self.cv1(x)
'''


def _records(results: Path) -> dict[str, dict]:
    records = (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))
    return {r["variant"]: r for r in records}


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    results = tmp_path_factory.mktemp("local") / "results"
    result = runner.invoke(app, [*SWEEP, "--results", str(results)])
    assert result.exit_code == 0, result.output
    return _records(results)


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# what each run was trained with and what it gave, as recorded by yoloab and as written by Ultralytics itself
RESULTS = ("map50", "map50_95", "precision", "recall", "best_epoch", "epochs_done", "params", "gflops_aten")
PLACES = {"model", "project", "save_dir", "device"}  # paths under each sweep's own results, and the pinned device


def _trainer_args(record: dict) -> dict:
    """The run directory's args.yaml, written by Ultralytics' trainer from the arguments it really used."""
    args = yaml.safe_load((Path(record["run_dir"]) / "args.yaml").read_text())
    return {k: v for k, v in args.items() if k not in PLACES}


def _epochs(record: dict) -> list[dict]:
    """Every row of the run's results.csv (losses, metrics, learning rates) but its wall time."""
    with open(Path(record["run_dir"]) / "results.csv", newline="") as fh:
        return [{k.strip(): v for k, v in row.items() if k.strip() != "time"} for row in csv.DictReader(fh)]


def _same_as_local(records: dict[str, dict], local: dict[str, dict]) -> None:
    assert sorted(records) == sorted(local) == ["yolov8n", "yolov8n-ADown-article"]
    for name, r in records.items():
        assert set(r) == set(local[name])
        assert (r["key"], r["status"]) == (local[name]["key"], "ok")
        # the settings reached the trainer: Ultralytics' own args.yaml says so, the same as the local run's
        args = _trainer_args(r)
        assert {k: args[k] for k in ("epochs", "imgsz", "batch", "seed", "workers")} == {
            "epochs": 1, "imgsz": 64, "batch": 8, "seed": 0, "workers": 0,
        }  # fmt: skip
        assert args == _trainer_args(local[name])
        # and the same training happened: per-epoch losses, metrics and learning rates, and the results recorded
        epochs = _epochs(r)
        assert len(epochs) == 1 and float(epochs[0]["train/box_loss"]) > 0
        assert epochs == _epochs(local[name])
        assert {k: r[k] for k in (*RESULTS, "epochs", "imgsz", "batch", "seed", "train_args")} == {
            k: local[name][k] for k in (*RESULTS, "epochs", "imgsz", "batch", "seed", "train_args")
        }


def test_ray_sweep_equals_local_and_rerun_trains_nothing(ray_instance, local_records, tmp_path):
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, "--executor", "ray", "--results", str(results)])
    assert result.exit_code == 0, result.output
    records = _records(results)
    _same_as_local(records, local_records)
    again = runner.invoke(app, [*SWEEP, "--executor", "ray", "--results", str(results)])
    assert again.exit_code == 0 and "Nothing to train: all 2 runs already have records" in again.output
    assert _records(results) == records


def test_ray_plugin_works_in_workers_and_a_killed_worker_is_retried_then_failed(ray_instance, tmp_path):
    plugin = tmp_path / "mods.py"
    plugin.write_text(PLUGINS)
    results = tmp_path / "results"
    args = ["sweep", "--dataset", "builtin", *TINY, "--module", "GoodDown", "--module", "KillerDown"]
    result = runner.invoke(
        app, [*args, "--executor", "ray", "--max-retries", "1", "--plugin", str(plugin), "--results", str(results)]
    )
    assert result.exit_code == 1, result.output
    records = _records(results)
    assert records["yolov8n"]["status"] == "ok"
    assert records["yolov8n-GoodDown-article"]["status"] == "ok"  # a plugin module inside a Ray worker
    killed = records["yolov8n-KillerDown-article"]
    assert killed["status"] == "failed" and "after 1 retry" in killed["error"], killed["error"]
    pids = (tmp_path / "attempts.txt").read_text().split()
    assert len(pids) == 2 and len(set(pids)) == 2  # first attempt plus one retry, each in a fresh worker


def test_devices_executor_runs_one_subprocess_per_slot_with_local_records(local_records, tmp_path):
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, "--devices", "cpu,cpu", "--results", str(results)])
    assert result.exit_code == 0, result.output
    _same_as_local(_records(results), local_records)
    logs = sorted(p.name for p in (results / "train").glob("*.log"))
    assert len(logs) == 2  # each run trained in its own worker process


def test_pinned_worker_sees_device_zero_of_its_visible_devices(tmp_path):
    from yoloab.datasets import builtin_dataset
    from yoloab.models import get_base_model
    from yoloab.training import plan_runs
    from yoloab.variants import baseline

    (spec,) = plan_runs(
        [baseline(get_base_model("yolov8n"))], builtin_dataset(16, 4), TrainSettings(device="3"), [0], tmp_path
    )
    assert pinned(spec, "3").settings.device == "0" and pinned(spec, "cpu").settings.device == "cpu"
    assert pinned(spec, "3").key == spec.key  # where it runs is not what it is


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--devices", "cpu,x"], "--devices entry 'x' is not a CUDA index"),
        (["--devices", "0,1"], "CUDA device 0 is not available"),
        (["--address", "auto"], "--address needs --executor ray"),
        (["--executor", "ray", "--devices", "0"], "--devices is for the local executor"),
        (["--device", "cpu", "--devices", "cpu"], "not both"),
    ],
    ids=["bad-entry", "missing-gpu", "address-without-ray", "devices-with-ray", "device-and-devices"],
)
def test_executor_options_that_do_not_fit(tmp_path, args, needle):
    if "0,1" in args:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.device_count() >= 2:
            pytest.skip("this machine has the GPUs")
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, *args, "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1
    assert not results.exists()


def test_parse_devices():
    assert parse_devices("cpu, cpu") == ["cpu", "cpu"]


def test_ray_executor_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as where it is missing
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, "--executor", "ray", "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert "pip install 'yoloab[ray]'" in result.output and len(result.output.strip().splitlines()) == 1
    assert not results.exists()
