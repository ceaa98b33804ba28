"""Sweeps on a real one-node SLURM cluster (munged, slurmctld, slurmd on 127.0.0.1), started by the tests.

Jobs are real `sbatch` jobs; nothing is mocked. What SLURM did is read from SLURM itself (`squeue --states=all` keeps
a finished job's end state for MinJobAge seconds), what yoloab did from the store. Where the cluster cannot be
started (not root, slurm-wlm not installed) every test here is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app

pytestmark = pytest.mark.slurm

runner = CliRunner()
START = Path(__file__).with_name("slurm") / "start_cluster.sh"
TINY = ["--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet"]

# Two modules whose runs hang in their second epoch, after the first is saved, but only in the first SLURM
# submission: that job ends by SIGTERM (a time limit, or scancel), and the resubmitted one resumes and finishes.
HANGING = '''
import os
import time
from pathlib import Path

from torch import nn
from ultralytics.nn.modules import Conv
from yoloab import Placement, register_module

HERE = Path(__file__).parent
TRAIN = HERE / "results" / "train"


def first_submission():
    """Whether this job belongs to the first array job that trained any run here."""
    me = os.environ.get("SLURM_ARRAY_JOB_ID", "")
    try:
        fd = os.open(HERE / "first-array.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.write(fd, me.encode())
        os.close(fd)
    except FileExistsError:
        pass
    return (HERE / "first-array.txt").read_text() == me


class _Hang(nn.Module):
    stem = ""

    def __init__(self, c1, c2, k=3, s=2):
        super().__init__()
        self.cv1 = Conv(c1, c2, k, s)

    def forward(self, x):
        saved = list(TRAIN.glob(f"{self.stem}-*/weights/last.safe.pt"))
        if self.training and saved and first_submission():
            (HERE / f"{self.stem}-hanging").write_text(str(os.getpid()))
            time.sleep(3600)
        return self.cv1(x)


@register_module(role="downsample", channels="conv", paper="test", article=Placement("backbone", (1,)))
class HangA(_Hang):
    stem = "hang-a"


@register_module(role="downsample", channels="conv", paper="test", article=Placement("backbone", (1,)))
class HangB(_Hang):
    stem = "hang-b"
'''
MODEL = """nc: 80
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, {module}, [128]]
  - [-1, 3, C2f, [128, True]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [-1, 6, C2f, [256, True]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [-1, 6, C2f, [512, True]]
  - [-1, 1, Conv, [1024, 3, 2]]
  - [-1, 3, C2f, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]]
head:
  - [-1, 1, nn.Upsample, [None, 2, nearest]]
  - [[-1, 6], 1, Concat, [1]]
  - [-1, 3, C2f, [512]]
  - [-1, 1, nn.Upsample, [None, 2, nearest]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 3, C2f, [256]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 12], 1, Concat, [1]]
  - [-1, 3, C2f, [512]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 9], 1, Concat, [1]]
  - [-1, 3, C2f, [1024]]
  - [[15, 18, 21], 1, Detect, [nc]]
"""


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node SLURM cluster (started here, if need be), or a skip saying why there is none."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("a SLURM cluster needs root to start (munged, slurmctld, slurmd)")
    if shutil.which("sbatch") is None:
        pytest.skip("SLURM is not installed (apt-get install slurm-wlm munge)")
    done = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.skip(f"the SLURM cluster did not start: {done.stderr.strip().splitlines()[-1:]}")


def _squeue(name: str) -> dict[str, str]:
    """Every job of this name SLURM knows, finished ones too (for MinJobAge), as {job id: state}."""
    out = subprocess.run(
        ["squeue", "--noheader", "--array", "--states=all", f"--name={name}", "--format=%i|%T"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("|") for line in out.split())


def _records(results: Path) -> dict[tuple[str, int], dict]:
    records = (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))
    return {(r["variant"], r["seed"]): r for r in records}


def _job_outputs(results: Path) -> str:
    """SLURM's output of every job of a sweep, for an assertion's message."""
    return "\n".join(f"== {p.name}\n{p.read_text()}" for p in sorted(results.glob("slurm/jobs/*/*.out")))


def _wait(what, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s")


def test_four_runs_train_as_slurm_jobs_each_record_names_its_job_and_a_rerun_submits_nothing(slurm_cluster, tmp_path):
    name = f"t{uuid.uuid4().hex[:8]}"
    job_name = f"yoloab-{name}"
    args = ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--module", "ADown", "--seed", "0", "--seed", "1"]
    args += [*TINY, "--epochs", "1", "--executor", "slurm", "--name", name, "--results", str(tmp_path / "results")]
    seen: dict[str, set[str]] = {}  # job id -> the states squeue showed while the driver waited
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for job, state in _squeue(job_name).items():
                seen.setdefault(job, set()).add(state)
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = runner.invoke(app, args)
    finally:
        done.set()
        watcher.join()
    assert result.exit_code == 0, result.output
    records = _records(tmp_path / "results")
    assert sorted(records) == [(v, s) for v in ("yolov8n", "yolov8n-ADown-article") for s in (0, 1)]
    assert all(r["status"] == "ok" and r["epochs_done"] == 1 and not r["resumed"] for r in records.values())
    jobs = {r["job_id"] for r in records.values()}
    assert len(jobs) == 4 and all(re.fullmatch(r"\d+_[0-3]", j) for j in jobs), jobs  # one array task per run
    assert jobs <= set(seen), (jobs, seen)  # squeue listed every job while it was queued or ran
    assert all(seen[j] & {"PENDING", "RUNNING"} for j in jobs), seen
    _wait(lambda: set(_squeue(job_name).values()) == {"COMPLETED"}, 60)  # each job, then, exited 0
    assert "Submitted 4 run(s) as SLURM array job" in result.output

    before = {p.name: p.read_bytes() for p in (tmp_path / "results" / "runs").glob("*.json")}
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "Nothing submitted" in again.output and "Nothing to train: all 4 runs" in again.output
    assert set(_squeue(job_name)) == jobs  # no new job
    assert {p.name: p.read_bytes() for p in (tmp_path / "results" / "runs").glob("*.json")} == before


def test_detached_runs_cancelled_or_timed_out_are_resubmitted_and_resume_from_their_checkpoint(slurm_cluster, tmp_path):
    (tmp_path / "hang.py").write_text(HANGING)
    for stem, module in (("hang-a", "HangA"), ("hang-b", "HangB")):
        (tmp_path / f"{stem}.yaml").write_text(MODEL.format(module=module))
    name = f"t{uuid.uuid4().hex[:8]}"
    job_name = f"yoloab-{name}"
    results = tmp_path / "results"
    args = ["sweep", "hang-a.yaml", "hang-b.yaml", "--dataset", "builtin", *TINY, "--epochs", "2", "--name", name]
    args += ["--plugin", "hang.py", "--executor", "slurm", "--time", "1", "--results", str(results)]
    os.chdir(tmp_path)  # the yaml and plugin files are named relative to here; pytest restores the directory

    detached = runner.invoke(app, [*args, "--detach"])
    assert detached.exit_code == 0, detached.output
    first = _squeue(job_name)  # the baseline, yolov8n, comes with the yaml files
    assert len(first) == 3 and "Submitted 3 run(s) as SLURM array job" in detached.output, (first, detached.output)
    for job in first:
        assert job in detached.output

    # the same command while they queue or run: nothing submitted twice, every run listed with its job
    again = runner.invoke(app, [*args, "--detach"])
    assert again.exit_code == 0, again.output
    assert "Nothing submitted" in again.output and set(_squeue(job_name)) == set(first)
    for job in first:
        assert re.search(rf"(queued|running) +│ {job} ", again.output), again.output

    # hang-b's job is cancelled once its first epoch is saved; hang-a's runs on into its one-minute time limit
    files = [p for p in results.glob("slurm/runs/*.json") if not p.name.endswith(".progress.json")]
    jobs = {s["label"]: s["job_id"] for s in (json.loads(p.read_text()) for p in files)}
    job_a, job_b = jobs["hang-a seed 0"], jobs["hang-b seed 0"]
    _wait(lambda: (tmp_path / "hang-b-hanging").exists(), 120)
    subprocess.run(["scancel", job_b], check=True)
    _wait(lambda: _squeue(job_name).get(job_b) == "CANCELLED", 60)
    status = runner.invoke(app, ["sweep", "--status", "--results", str(results)])
    assert status.exit_code == 0, status.output
    assert re.search(rf"ended +│ {job_b} +│ job ended without a record: CANCELLED", status.output), status.output
    assert sorted(_records(results)) == [("yolov8n", 0)]  # the cancelled run left no record

    # the same command again: hang-b is resubmitted now; hang-a once its time limit ends it: by this command as it
    # starts, or (most often) by it while it waits
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output + _job_outputs(results)
    timed_out = f"hang-a seed 0: job {job_a} ended without a record (TIMEOUT); resubmitted as "
    if "Submitted 2 run(s)" not in resumed.output:
        assert "Submitted 1 run(s)" in resumed.output and timed_out in resumed.output, resumed.output
    assert _squeue(job_name)[job_a] == "TIMEOUT"  # SLURM's own word
    records = _records(results)
    assert sorted(records) == [("hang-a", 0), ("hang-b", 0), ("yolov8n", 0)]
    assert len(list((results / "runs").glob("*.json"))) == 3
    baseline = records.pop(("yolov8n", 0))
    assert baseline["job_id"] in first and not baseline["resumed"] and baseline["epochs_done"] == 2
    for r in records.values():
        assert r["status"] == "ok" and r["epochs_done"] == 2, r
        assert r["resumed"] is True and r["resumed_from_epoch"] == 1, r
        assert r["job_id"] not in first
        _wait(lambda r=r: _squeue(job_name).get(r["job_id"]) == "COMPLETED", 60)
        with open(Path(r["run_dir"]) / "results.csv") as fh:  # Ultralytics' own epoch log: epoch 1 not trained again
            assert [line.split(",")[0].strip() for line in fh.readlines()[1:]] == ["1", "2"]


def test_a_partition_sbatch_refuses_is_one_line_and_leaves_no_submission(slurm_cluster, tmp_path):
    results = tmp_path / "results"
    args = ["sweep", "--dataset", "builtin", *TINY, "--epochs", "1", "--executor", "slurm", "--detach"]
    result = runner.invoke(app, [*args, "--partition", "nope", "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: sbatch refused the job: ") and "invalid partition" in result.output.lower()
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not list(results.glob("slurm/jobs/*")) and not list(results.glob("slurm/runs/*"))
