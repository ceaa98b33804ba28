"""Faults and hostile input (issue 11): each case ends cleanly, with nothing lost, trained twice or written outside.

Kills are real signals to real processes; the rest drives the command line or the library with bad input.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.errors import StorageError, VariantNameError, YoloabWarning
from yoloab.models import get_base_model
from yoloab.results import load_runs, store_run
from yoloab.sweep import run_sweep, worker_dir
from yoloab.training import TrainSettings, plan_runs
from yoloab.variants import FILE_MODE, baseline, safe_name

runner = CliRunner()
TINY = ["--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet"]
SWEEP = ["sweep", "--dataset", "builtin", *TINY]


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def _csv_epochs(run_dir: str | Path) -> list[int]:
    """Every row Ultralytics appended to results.csv, repeats included (read_epochs would merge them)."""
    with open(Path(run_dir) / "results.csv", newline="") as fh:
        return [int(float(row["epoch"])) for row in csv.DictReader(fh, skipinitialspace=True)]


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "yoloab", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"ended early:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def _one_line(result, code: int, needle: str) -> None:
    assert result.exit_code == code, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


class _Events:
    def __getattr__(self, name):
        return lambda *a, **k: None


class _FakeExecutor:
    """Trains nothing; hands back one record per run (status as given)."""

    def __init__(self, status: str = "ok", error: str | None = None) -> None:
        self.status, self.error, self.trained = status, error, []

    def run(self, specs, events, stop):
        for spec in specs:
            self.trained.append(spec.key)
            yield spec, {"key": spec.key, "variant": spec.variant.name, "seed": 0, "status": self.status,
                         "error": self.error}  # fmt: skip


@pytest.fixture(scope="module")
def data():
    from yoloab.datasets import builtin_dataset

    return builtin_dataset(16, 4)


# --------------------------------------------------------------------------------------------------------------------
# 1. workers die with their driver; 10. the resumable copy is removed once recorded, files have ordinary modes


@pytest.mark.slow
def test_devices_worker_dies_with_a_killed_driver_and_the_run_trains_once(tmp_path):
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}  # whatever a worker leaks in the temp folder shows up here
    args = [*SWEEP, "--model", "yolov8n", "--epochs", "4", "--devices", "cpu", "--results", str(results)]
    driver = _cli(*args, env=env)
    safe = []
    _wait_for(lambda: safe.extend(results.glob("train/*/weights/last.safe.pt")) or safe, driver)
    workers = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    try:
        assert workers, "no worker process"
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive, f"orphaned worker(s) still running: {alive}"
        run_dir = safe[0].parent.parent
        # gone because it was killed with the driver, not because it went on to finish the run alone
        assert len(_csv_epochs(run_dir)) <= 2 and (run_dir / "weights" / "last.safe.pt").is_file()
    finally:  # never leave an orphan training behind the test
        for proc in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
    assert safe[0].stat().st_mode & 0o777 == FILE_MODE  # an ordinary file, not mkstemp's private 0600

    again = _cli(*args, env=env)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    (record,) = _records(results)
    assert record["status"] == "ok" and record["epochs_done"] == 4
    epochs = _csv_epochs(record["run_dir"])
    # an orphan training beside the new sweep would append later epochs a second time; a resume repeats at most the
    # epoch in flight at the kill
    assert sorted(set(epochs)) == [1, 2, 3, 4] and len(epochs) <= 5, epochs
    assert not (Path(record["run_dir"]) / "weights" / "last.safe.pt").exists()  # recorded: copy no longer needed
    assert not worker_dir(results, record["key"]).exists()
    assert not list(tmp.glob("yoloab*")), list(tmp.iterdir())  # (torch may keep its own caches there)


# --------------------------------------------------------------------------------------------------------------------
# 2. the last-epoch window; 10. an unreadable best.pt is said in the record

KILL_AT_STRIP = """
import os, signal, sys
import ultralytics.engine.trainer as trainer
# SIGKILL between the final epoch's save and Ultralytics' final step (which strips last.pt and best.pt)
trainer.strip_optimizer = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from yoloab.cli.app import main
main()
"""


@pytest.mark.slow
def test_a_kill_after_the_final_save_is_finished_from_disk_not_retrained(tmp_path):
    results = tmp_path / "results"
    args = [*SWEEP, "--model", "yolov8n", "--epochs", "1", "--results", str(results)]
    killed = subprocess.run([sys.executable, "-c", KILL_AT_STRIP, *args], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert _records(results) == []
    (run_dir,) = [p for p in (results / "train").iterdir() if p.is_dir()]  # beside it: the run's log file
    rows_before = (run_dir / "results.csv").read_bytes()

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (record,) = _records(results)
    assert (
        record["status"] == "ok"
        and record["resumed"] is True
        and record["resumed_from_epoch"] == 1
        and record["epochs_done"] == 1
    )
    assert record["map50_95"] is not None
    assert (run_dir / "results.csv").read_bytes() == rows_before  # validated, not trained again
    assert not (run_dir / "weights" / "last.safe.pt").exists()

    # the same run finished again with best.pt damaged: the record says so instead of validating last.pt
    (results / "runs" / f"{record['key']}.json").unlink()
    best = run_dir / "weights" / "best.pt"
    best.write_bytes(best.read_bytes()[:500])
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    (record,) = _records(results)
    assert record["status"] == "failed" and "best.pt cannot be read" in record["error"], record["error"]


# --------------------------------------------------------------------------------------------------------------------
# 3. every variant and every --train value is checked before anything trains


def _bad_yaml(tmp_path: Path, how: str) -> Path:
    d = get_base_model("yolov8n").config()
    if how == "unknown-module":
        d["backbone"][1][2] = "NopeConv"
    else:
        d["backbone"][1][3] = ["abc", 3, 2]
    path = tmp_path / f"{how}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in d.items() if k != "yaml_file"}, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "args, needle",
    [
        (["YAML:unknown-module"], "row 1 (backbone) names unknown module 'NopeConv'"),
        (["YAML:abc"], "row 1 (backbone) Conv has output channels 'abc'; expected a number"),
        (["--model", "yolov8n", "--train", "lr0=abc"], "--train lr0=abc: 'lr0=abc' is of invalid type str"),
        (["--model", "yolov8n", "--train", "optimizer=Foo"], "--train optimizer=Foo: Optimizer 'Foo' not found"),
        (["--model", "yolov8n", "--train", "lr0="], "--train lr0=: 'lr0=None' is invalid"),
    ],
    ids=["unknown-module-row", "non-numeric-channels", "lr0-text", "unknown-optimizer", "lr0-empty"],
)
def test_bad_variants_and_train_values_are_refused_before_training(tmp_path, args, needle):
    args = [str(_bad_yaml(tmp_path, a[5:])) if a.startswith("YAML:") else a for a in args]
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, "--epochs", "1", "--results", str(results), *args])
    _one_line(result, 2, needle)
    assert not results.exists()


def test_profile_names_the_same_row(tmp_path):
    result = runner.invoke(app, ["profile", str(_bad_yaml(tmp_path, "abc")), "--no-latency", "--results", "r"])
    _one_line(result, 2, "row 1 (backbone) Conv has output channels 'abc'")


# --------------------------------------------------------------------------------------------------------------------
# 4. a damaged record is moved aside, never deleted, and never blocks the store


@pytest.mark.parametrize(
    "content", [b'{"kind": "run", "key": "abc', b"\0" * 64, b"[]"], ids=["truncated", "nul-filled", "empty-list"]
)
def test_a_damaged_record_is_moved_aside_and_its_run_trained_again(data, tmp_path, content):
    specs = plan_runs([baseline(get_base_model("yolov8n"))], data, TrainSettings(epochs=1), [0], tmp_path)
    damaged = tmp_path / "runs" / f"{specs[0].key}.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(content)
    ex = _FakeExecutor()
    with pytest.warns(YoloabWarning, match=r"damaged record .*\.json .*moved to") as caught:
        run_sweep(specs, _Events(), ex)
    assert len(caught) == 1
    assert ex.trained == [specs[0].key]  # counted as not done
    assert (tmp_path / "damaged" / damaged.name).read_bytes() == content  # kept as it was
    assert [r["status"] for r in load_runs(tmp_path)] == ["ok"]


def test_report_skips_a_damaged_record_with_one_warning(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "deadbeef.json").write_bytes(b"\0\0\0")
    result = runner.invoke(app, ["report", "--results", str(tmp_path)])
    assert "Traceback" not in result.output and result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("warning: damaged record") and "deadbeef.json" in lines[0], result.output
    assert (tmp_path / "damaged" / "deadbeef.json").read_bytes() == b"\0\0\0"


# --------------------------------------------------------------------------------------------------------------------
# 5. nothing escapes the results directory


def test_a_yaml_header_name_cannot_leave_the_results_directory(tmp_path):
    d = get_base_model("yolov8n").config()
    d = {"yoloab": {"name": "../../../x"}, **{k: v for k, v in d.items() if k != "yaml_file"}}
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    results = tmp_path / "a" / "b" / "c" / "results"
    result = runner.invoke(app, [*SWEEP, "--epochs", "1", "--results", str(results), str(path)])
    _one_line(result, 2, "variant name '../../../x' cannot be a file name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.yaml"]


@pytest.mark.parametrize(
    "name, safe",
    [("yolo v8 (mine)", "yolo_v8__mine_"), ("yolov8n-ADown-all", "yolov8n-ADown-all"), ("a:b*c", "a_b_c")],
    ids=["spaces", "generated", "reserved-chars"],
)
def test_names_become_safe_file_names(name, safe):
    assert safe_name(name, "x.yaml") == safe


@pytest.mark.parametrize(
    "name", ["a/b", "..", "a\\b", ".hidden", ""], ids=["slash", "dotdot", "backslash", "dot", "empty"]
)
def test_names_with_a_path_are_refused(name):
    with pytest.raises(VariantNameError):
        safe_name(name, "x.yaml")


# --------------------------------------------------------------------------------------------------------------------
# 6. workers import only installed code

SHADOW = """
from pathlib import Path
Path(__file__).with_name("shadow-ran").write_text("a cv2.py in the working directory was imported")
raise ImportError("shadowed cv2")
"""


@pytest.mark.slow
def test_a_module_in_the_working_directory_cannot_shadow_a_workers_imports(tmp_path, monkeypatch):
    import cv2  # noqa: F401 - the driver (this process) has its own; only the worker starts fresh

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "cv2.py").write_text(SHADOW)
    monkeypatch.chdir(cwd)
    results = tmp_path / "results"
    result = runner.invoke(app, [*SWEEP, "--model", "yolov8n", "--epochs", "1", "--devices", "cpu", "--results",
                                 str(results)])  # fmt: skip
    assert result.exit_code == 0, result.output + "".join(p.read_text() for p in results.glob("train/*.log"))
    assert not (cwd / "shadow-ran").exists()


# --------------------------------------------------------------------------------------------------------------------
# 7. a local Ray instance is on loopback, without a dashboard

RAY_PROBE = """
import json, time
import psutil, ray
from yoloab.executors import RayExecutor
RayExecutor(None)._connect()
ray.get(ray.remote(lambda: 1).remote())  # a worker process is up too
listening = []
for proc in psutil.Process().children(recursive=True):
    try:
        listening += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                      if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        pass
print(json.dumps({"node": ray.nodes()[0]["NodeManagerAddress"], "listening": listening}))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_local_ray_instance_listens_on_loopback_only():
    pytest.importorskip("ray")
    probe = subprocess.run([sys.executable, "-c", RAY_PROBE], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["node"] == "127.0.0.1"
    names = {name for name, _, _ in seen["listening"]}
    assert {"gcs_server", "raylet"} <= names, seen
    outside = [x for x in seen["listening"] if x[1] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not outside, outside
    assert 8265 not in {port for _, _, port in seen["listening"]}  # no dashboard


RAY_KILLED = """
import os, signal
import psutil, ray
from yoloab.executors import RayExecutor
RayExecutor(None)._connect()
ray.get(ray.remote(lambda: 1).remote())
print(" ".join(f"{p.pid}:{p.name()}" for p in psutil.Process().children(recursive=True)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_local_ray_instance_dies_with_a_killed_driver():
    pytest.importorskip("ray")
    probe = subprocess.run([sys.executable, "-c", RAY_KILLED], capture_output=True, text=True, timeout=300)
    assert probe.returncode == -signal.SIGKILL, probe.stderr
    started = dict(item.split(":", 1) for item in probe.stdout.split())
    assert {"gcs_server", "raylet"} <= set(started.values()) and any("IDLE" in n for n in started.values()), started
    # gcs_server, raylet and the workers that train go at once (Ray shares their fate with the driver); its dashboard
    # and runtime-env agents notice the raylet is gone on their next poll (about a minute) and go too
    procs = []
    for pid, name in started.items():
        if "Agent" not in name:
            with contextlib.suppress(psutil.NoSuchProcess):  # already gone
                procs.append(psutil.Process(int(pid)))
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive


# --------------------------------------------------------------------------------------------------------------------
# 8. unwritable places and full disks


@pytest.mark.parametrize("where", ["results-is-a-file", "runs-is-a-file"])
@pytest.mark.parametrize("verb", ["sweep", "profile"])
def test_an_unwritable_results_place_is_one_line(tmp_path, where, verb):
    results = tmp_path / "results"
    if where == "results-is-a-file":
        results.write_text("not a folder")
    else:
        (results / "runs").parent.mkdir()
        (results / "runs").write_text("not a folder")
        (results / "profile").mkdir()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args = [*SWEEP, "--model", "yolov8n", "--epochs", "1"] if verb == "sweep" else ["profile", "--no-latency"]
    result = runner.invoke(app, [*args, "--results", str(results)])
    _one_line(result, 6, "is a file; expected a folder")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_results_directory_is_one_line(data, tmp_path):
    results = tmp_path / "results"
    store_run({"key": "k", "status": "ok", "variant": "v"}, results)
    before = (results / "runs" / "k.json").read_bytes()
    results.chmod(0o555)
    try:
        result = runner.invoke(app, [*SWEEP, "--model", "yolov8n", "--epochs", "1", "--results", str(results)])
    finally:
        results.chmod(0o755)
    _one_line(result, 6, "cannot be written")
    assert (results / "runs" / "k.json").read_bytes() == before


class _Proxy:
    """A module (`os`, `shutil`, `tempfile`) as one module of yoloab sees it: some functions replaced, the rest real."""

    def __init__(self, real, **replaced) -> None:
        self._real = real
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._real, name)


class _Fault:
    """Failure injection for one atomic writer; records the temporaries it made and the fault, so a test knows the
    fault really fired on a temporary.

    `replace`: `os.replace` fails, with the temporary complete. `fdopen`: the file's write puts down the first half
    of the data, flushes it, then fails as a full disk does. `copyfile`: the copy stops half-way, the same way.
    """

    def __init__(self) -> None:
        self.made: list[Path] = []  # temporaries, from mkstemp
        self.sizes: list[int] = []  # bytes in the temporary when the fault fired

    def _fire(self, size: int) -> None:
        self.sizes.append(size)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def mkstemp(self, *args, **kw):
        fd, path = tempfile.mkstemp(*args, **kw)
        self.made.append(Path(path))
        return fd, path

    def replace(self, src, dst, **kw) -> None:
        self._fire(Path(src).stat().st_size)

    def fdopen(self, fd, *args, **kw):
        fault, fh = self, os.fdopen(fd, *args, **kw)

        class Cut:
            def write(self, data):
                fh.write(data[: len(data) // 2])
                fh.flush()
                fault._fire(os.fstat(fd).st_size)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return fh.__exit__(*exc)

            def __getattr__(self, name):
                return getattr(fh, name)

        return Cut()

    def copyfile(self, src, dst, **kw):
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])
        self._fire(Path(dst).stat().st_size)

    def install(self, monkeypatch, module, fault: str) -> None:
        """Route `module`'s temporaries through `mkstemp` and its `fault` function through this object."""
        monkeypatch.setattr(module, "tempfile", _Proxy(tempfile, mkstemp=self.mkstemp))
        real = shutil if fault == "copyfile" else os
        monkeypatch.setattr(module, real.__name__, _Proxy(real, **{fault: getattr(self, fault)}))


OLD, NEW = "old content, intact\n", "new content " * 4096  # the new one is written in more than one block


def _write_atomic(folder: Path) -> None:
    from yoloab.atomic import write_atomic

    write_atomic(folder / "target.txt", NEW)


def _copy_atomic(folder: Path) -> None:
    from yoloab.atomic import copy_atomic

    src = folder.parent / "source.txt"
    src.write_text(NEW)
    copy_atomic(src, folder / "target.txt")


def _write_report(folder: Path) -> None:
    from yoloab.report.files import write_report

    write_report(folder, {"target.txt": NEW})


@pytest.mark.parametrize(
    "writer, module, fault",
    [
        (_write_atomic, "yoloab.atomic", "replace"),
        (_write_atomic, "yoloab.atomic", "fdopen"),
        (_copy_atomic, "yoloab.atomic", "replace"),
        (_copy_atomic, "yoloab.atomic", "copyfile"),
        (_write_report, "yoloab.results", "replace"),
        (_write_report, "yoloab.results", "fdopen"),
    ],
    ids=[
        "write_atomic-rename-fails",
        "write_atomic-write-fails-half-way",
        "copy_atomic-rename-fails",
        "copy_atomic-copy-fails-half-way",
        "report-rename-fails",
        "report-write-fails-half-way",
    ],
)
def test_an_atomic_write_that_fails_leaves_the_target_and_no_temporary(tmp_path, monkeypatch, writer, module, fault):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "target.txt").write_text(OLD)
    injected = _Fault()
    injected.install(monkeypatch, importlib.import_module(module), fault)
    with pytest.raises((OSError, StorageError)):  # the writers raise OSError; the report wraps it in StorageError
        writer(folder)
    # the fault fired once, on a temporary beside the target holding the data (all of it at the rename, half at the
    # write); the report's writer also makes (and removes) a probe file there first
    assert injected.sizes == [len(NEW) if fault == "replace" else len(NEW) // 2]
    assert injected.made and {t.parent for t in injected.made} == {folder}
    assert (folder / "target.txt").read_text() == OLD
    assert sorted(p.name for p in folder.iterdir()) == ["target.txt"]  # the temporary is gone


def test_a_full_disk_when_recording_is_one_clear_error_and_keeps_other_records(data, tmp_path, monkeypatch):
    import yoloab.atomic

    base = get_base_model("yolov8n")
    specs = plan_runs([baseline(base)], data, TrainSettings(epochs=1), [0, 1], tmp_path)
    store_run({"key": specs[0].key, "status": "failed", "variant": "yolov8n"}, tmp_path)
    first = (tmp_path / "runs" / f"{specs[0].key}.json").read_bytes()
    injected = _Fault()  # the real atomic writer runs, and the disk fills up half-way through the record
    injected.install(monkeypatch, yoloab.atomic, "fdopen")
    ex = _FakeExecutor("failed", "OSError: [Errno 28] No space left on device")
    with pytest.raises(StorageError, match=r"cannot write the record of yolov8n seed 0 \(failed.*no space left"):
        run_sweep(specs, _Events(), ex)
    (tmp,), (size,) = injected.made, injected.sizes
    assert tmp.parent == tmp_path / "runs" and size > 0  # a half-written temporary was beside the record
    assert (tmp_path / "runs" / f"{specs[0].key}.json").read_bytes() == first
    assert not list((tmp_path / "runs").glob(".*"))  # and is gone


# --------------------------------------------------------------------------------------------------------------------
# 9. values checked up front


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--imgsz", "320000"], "needs at least"),
        (["--threads", "0"], "--threads 0 must be at least 1"),
        (["--nc", "0"], "--nc 0 must be at least 1"),
    ],
    ids=["imgsz-beyond-memory", "threads", "nc"],
)
def test_profile_values_are_checked_up_front(tmp_path, args, needle):
    results = tmp_path / "results"
    result = runner.invoke(app, ["profile", "--device", "cpu", "--batch", "1", *args, "--results", str(results)])
    _one_line(result, 2, needle)
    assert not results.exists()


# --------------------------------------------------------------------------------------------------------------------
# 10. leftovers


def test_a_killed_dataset_generation_is_cleaned_by_the_next_use(tmp_path):
    from yoloab.datasets import make_shapes_dataset
    from yoloab.variants import DIR_MODE

    stale = tmp_path / ".shapes.k1ll3d"  # what a generator killed half-way leaves beside the target
    (stale / "images" / "train").mkdir(parents=True)
    (stale / "images" / "train" / "00000.png").write_bytes(b"half")
    data_yaml = make_shapes_dataset(tmp_path / "shapes", n_train=2, n_val=1, imgsz=32)
    assert data_yaml.is_file() and not stale.exists()
    assert data_yaml.parent.stat().st_mode & 0o777 == DIR_MODE  # not mkdtemp's private 0700


def _maps(pid: int, library: str) -> bool:
    """Whether process `pid` has a shared library whose path contains `library` loaded."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # gone, or not readable yet
        return False


def _sigint_as_a_terminal_gives_it() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as an interactive shell starts a command.

    Both the ignored disposition and the blocked mask survive exec, and a Python that starts with SIGINT ignored never
    raises KeyboardInterrupt; whatever an earlier test in this process left (Ray, a sweep's handler) must not decide
    this one.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_state(pid: int) -> str:
    """The SigBlk/SigIgn/SigCgt lines of a process (why a SIGINT went unheard, if it did)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return " ".join(line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/<pid>/maps to see torch loading")
def test_ctrl_c_while_starting_prints_no_traceback(tmp_path):
    proc = _cli(
        "profile", "--no-latency", "--results", str(tmp_path / "results"), preexec_fn=_sigint_as_a_terminal_gives_it
    )
    # The stage meant: the command's own imports of torch and Ultralytics (seconds), which start once the options are
    # parsed (`--help` loads no torch). Its libraries appearing in the process shows that stage began, however slow a
    # loaded machine is to get there; a fixed sleep could land in interpreter start-up instead.
    _wait_for(lambda: _maps(proc.pid, "libtorch"), proc, timeout=120)
    assert proc.poll() is None, "started too fast to interrupt"
    state = _sigint_state(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out and "stopped (Ctrl-C)" in out and proc.returncode == 130, f"{state}\n{out}"
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------------------------------------
# 11. the trust boundary is in the docs, and the README links it


def test_the_docs_say_a_results_directory_must_be_trusted():
    root = Path(__file__).parents[1]
    assert "(docs/reliability.md)" in (root / "README.md").read_text()
    page = (root / "docs" / "reliability.md").read_text()
    sweeps = page.split("## Sweeps", 1)[1].split("\n## ", 1)[0]
    # checkpoints are read with the safe unpickler; what it cannot cover (DDP's own processes) must be trusted
    assert "weights_only" in sweeps and "must be trusted" in sweeps and "--device 0,1" in sweeps


def test_a_report_whose_second_rename_fails_says_which_file_was_already_replaced(tmp_path, monkeypatch):
    import yoloab.results
    from yoloab.errors import StorageError

    (tmp_path / "a.txt").write_text(OLD)
    (tmp_path / "b.txt").write_text(OLD)
    calls = []

    def replace(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 2:  # the first file is in place, the second rename fails
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.replace(src, dst)

    monkeypatch.setattr(yoloab.results, "os", _Proxy(os, replace=replace))
    with pytest.raises(StorageError, match="; only a.txt replaced$"):
        yoloab.results.write_files(tmp_path, {"a.txt": NEW, "b.txt": NEW}, "the report")
    assert (tmp_path / "a.txt").read_text() == NEW and (tmp_path / "b.txt").read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temporary left
