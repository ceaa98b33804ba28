"""Sweeps on other executors: a local Ray instance and one subprocess per device give the local executor's records."""

from __future__ import annotations

import csv
import json
import subprocess
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
        (["--partition", "gpu"], "--partition needs --executor slurm"),
        (["--executor", "slurm", "--sbatch-arg", "--array=0-3"], "--array is set by yoloab"),
    ],
    ids=[
        "bad-entry", "missing-gpu", "address-without-ray", "devices-with-ray", "device-and-devices",
        "partition-without-slurm", "slurm-own-sbatch-arg",
    ],
)  # fmt: skip
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


@pytest.mark.parametrize(
    "kind, devices, address, gpus, device, flags, needle",
    [
        ("local", None, None, None, "auto", {"--detach": True}, "--detach needs --executor slurm"),
        ("ray", None, None, None, "auto", {"--time": "10"}, "--time needs --executor slurm"),
        ("slurm", None, None, None, "auto", {"--time": "abc"}, "--time 'abc' is not a SLURM time limit"),
        ("slurm", None, None, None, "auto", {"--time": "1:2:3:4"}, "--time '1:2:3:4' is not a SLURM time limit"),
        ("slurm", None, None, None, "auto", {"--mem-per-run": "lots"}, "--mem-per-run 'lots' is not a SLURM memory"),
        ("slurm", None, None, None, "auto", {"--sbatch-arg": ["-p=gpu"]}, "-p is set by yoloab; use --partition"),
        ("slurm", None, None, None, "auto", {"--sbatch-arg": ["qos=high"]}, "'qos=high' is not an sbatch option"),
        ("slurm", None, None, 0.5, "auto", {}, "--gpus-per-run 0.5: SLURM gives whole GPUs"),
        ("slurm", None, None, None, "auto", {"--cpus-per-run": 0}, "--cpus-per-run 0 must be at least 1"),
        ("slurm", "cpu", None, None, "auto", {}, "--devices is for the local executor"),
        ("slurm", None, None, None, "cpu", {}, "--device is for the local executor; with SLURM use --gpus-per-run"),
        ("slurm", None, "auto", None, "auto", {}, "--address needs --executor ray"),
        ("slurm", None, None, None, "auto", {"--python-env": "/nonexistent/env"}, "no bin/activate or bin/python"),
    ],
    ids=[
        "detach-local", "time-ray", "time-word", "time-too-many-fields", "mem", "partition-as-sbatch-arg",
        "sbatch-arg-not-an-option", "fractional-gpu", "no-cpus", "devices", "device", "address", "python-env",
    ],
)  # fmt: skip
def test_slurm_options_that_do_not_fit(kind, devices, address, gpus, device, flags, needle):
    from yoloab.errors import SweepInputError
    from yoloab.executors import make_executor

    with pytest.raises(SweepInputError) as err:
        make_executor(kind, devices, address, gpus, 1, device, slurm=flags)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("limit", ["90", "30:00", "1:30:00", "2-00", "2-12:00", "2-12:00:00"])
def test_slurm_time_limits_in_each_of_sbatch_formats_are_taken(limit):
    from yoloab.executors.slurm import SlurmOptions

    SlurmOptions(time=limit).check()


def test_slurm_executor_without_sbatch_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # neither sbatch nor squeue
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, "--executor", "slurm", "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert "--executor slurm needs SLURM's sbatch and squeue on PATH" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not results.exists()


def test_sbatch_command_carries_each_option_once(tmp_path):
    from yoloab.executors.slurm import SlurmOptions

    options = SlurmOptions(
        partition="gpu", account="lab", time="1:00:00", gpus=2, cpus=8, mem="32G", sbatch_args=("--qos=high",)
    )
    folder = tmp_path / "sub"
    assert options.sbatch("yoloab-abl", 33, folder) == [
        "sbatch", "--parsable", "--job-name=yoloab-abl", "--array=0-32", f"--output={folder}/%A_%a.out",
        "--open-mode=append", "--requeue", "--partition=gpu", "--account=lab", "--time=1:00:00", "--cpus-per-task=8",
        "--mem=32G", "--gres=gpu:2", "--qos=high", f"{folder}/job.sh",
    ]  # fmt: skip
    assert options.device() == "0,1" and SlurmOptions().device() == "cpu"  # SLURM's CUDA_VISIBLE_DEVICES, renumbered


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "1"}, "40_1"),
        ({"SLURM_JOB_ID": "41"}, "41"),
        ({}, None),
    ],
    ids=["array-task", "plain-job", "outside-slurm"],
)
def test_job_id_as_squeue_names_it(env, expected):
    from yoloab.executors.slurm import job_id_from_env

    assert job_id_from_env(env) == expected


@pytest.mark.parametrize("kind", ["venv", "bin-only"])
def test_job_script_activates_the_python_environment(tmp_path, kind):
    from yoloab.executors.slurm import SlurmOptions, job_script

    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / ("activate" if kind == "venv" else "python")).write_text("")
    options = SlurmOptions(python_env=env)
    options.check()
    script = job_script(options, tmp_path / "sub", "abl", [])
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # bash reads it
    setup = f"source {env}/bin/activate" if kind == "venv" else f'export PATH={env}/bin:"$PATH"'
    assert f"\n{setup}\nexec python -c " in script  # the environment's python, once it is set up


MOUNTS = """sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /shared nfs4 rw,vers=4.2,hard,proto=tcp 0 0
server:/old /shared/old nfs rw,vers=3,nolock,hard 0 0
mds@tcp:/lfs /lustre lustre rw,localflock 0 0
"""


@pytest.mark.parametrize(
    "path, mount, problem",
    [
        ("/shared/results", ("/shared", "nfs4", "rw,vers=4.2,hard,proto=tcp"), None),
        ("/shared/old/results", ("/shared/old", "nfs", "rw,vers=3,nolock,hard"), "'nolock'"),
        ("/shared-not/results", ("/", "ext4", "rw,relatime"), None),
        ("/lustre/x", ("/lustre", "lustre", "rw,localflock"), "'localflock'"),
    ],
    ids=["nfs4", "nfs3-nolock", "prefix-is-not-a-parent", "lustre-localflock"],
)
def test_the_mount_of_a_results_directory_and_whether_its_locks_reach_other_nodes(path, mount, problem):
    from yoloab.executors.slurm import lock_problem, mount_of

    assert mount_of(Path(path), MOUNTS) == mount
    assert lock_problem(*mount[1:]) == problem


@pytest.mark.parametrize(
    "fstype, options, problem",
    [
        ("nfs", "rw,vers=3,hard", None),
        ("nfs4", "rw,local_lock=flock", "'local_lock=flock'"),
        ("nfs4", "rw,local_lock=none", None),
        ("lustre", "rw,flock", None),
        ("lustre", "rw", "no 'flock' option"),
        ("xfs", "rw", None),
    ],
    ids=["nfs3-lockd", "nfs-local-flock", "nfs-local-none", "lustre-flock", "lustre-default", "local-disk"],
)
def test_lock_problem_by_mount_options(fstype, options, problem):
    from yoloab.executors.slurm import lock_problem

    assert lock_problem(fstype, options) == problem
