"""Ray: a cluster that cannot be reached is refused in bounded time, a loopback-only head is joined, and Ray's own
messages about dead workers stay off stdout.

Every connection is tried in a child process with its own timeout: a hang fails the test instead of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

YOLOAB = [sys.executable, "-m", "yoloab"]
SWEEP = ["sweep", "--dataset", "builtin", "--builtin-images", "16", "--model", "yolov8n", "--epochs", "1", "--quiet"]
RAY_CLI = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    """A TCP port nothing listens on (the kernel's pick, closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "YOLOAB_RAY_TIMEOUT")}
    return {**env, **extra}


def test_a_port_nothing_listens_on_stops_the_sweep_in_one_line_before_anything_is_written(tmp_path):
    results = tmp_path / "results"
    address = f"127.0.0.1:{_free_port()}"
    done = subprocess.run(
        [*YOLOAB, *SWEEP, "--executor", "ray", "--address", address, "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=60,  # it hung for ten minutes: anything near a minute is a failure
        env=_env(),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"error: cannot reach the Ray cluster at '{address}'"), done.stderr
    assert "connection refused" in done.stderr and "Traceback" not in done.stderr
    assert not results.exists()  # nothing written: no locks, no records


CONNECT = """
import json, sys, time
from yoloab.executors import make_executor
for address in sys.argv[1:]:
    start, error = time.monotonic(), None
    try:
        make_executor("ray", None, address, None, 1, "auto")
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    print(json.dumps({"address": address, "error": error, "took": time.monotonic() - start}), flush=True)
"""
TIMEOUT_S = 3


@pytest.fixture(scope="module")
def joined() -> dict[str, dict]:
    """`make_executor` for each kind of address, in one fresh process (Ray imports once): error and seconds taken."""
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addresses = {
            "refused-loopback": f"127.0.0.1:{_free_port()}",
            "refused-localhost": f"localhost:{_free_port()}",
            "answers-but-not-ray": f"127.0.0.1:{silent.getsockname()[1]}",
        }
        done = subprocess.run(
            [sys.executable, "-c", CONNECT, *addresses.values()],
            capture_output=True,
            text=True,
            timeout=90,
            env=_env(YOLOAB_RAY_TIMEOUT=str(TIMEOUT_S)),
        )
    assert done.returncode == 0, done.stderr
    seen = {d["address"]: d for d in map(json.loads, done.stdout.splitlines())}
    return {name: seen[address] for name, address in addresses.items()}


@pytest.mark.parametrize("case", ["refused-loopback", "refused-localhost"])
def test_a_port_nothing_listens_on_is_refused_at_once(joined, case):
    error, took = joined[case]["error"], joined[case]["took"]
    assert error and error.startswith(f"SweepInputError: cannot reach the Ray cluster at '{joined[case]['address']}'")
    assert "connection refused" in error, error
    assert took < 5, f"took {took:.1f} s"  # a refused connection needs no waiting


def test_a_port_that_answers_but_is_not_ray_gives_up_after_the_timeout(joined):
    error, took = joined["answers-but-not-ray"]["error"], joined["answers-but-not-ray"]["took"]
    assert error and error.startswith("SweepInputError: cannot reach the Ray cluster at"), error
    assert f"within {TIMEOUT_S} s" in error and "YOLOAB_RAY_TIMEOUT" in error, error
    assert TIMEOUT_S - 0.5 < took < TIMEOUT_S + 10, f"took {took:.1f} s"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan"])
def test_a_bad_timeout_setting_is_refused(monkeypatch, value):
    from yoloab.errors import SweepInputError
    from yoloab.executors import make_executor

    monkeypatch.setenv("YOLOAB_RAY_TIMEOUT", value)
    with pytest.raises(SweepInputError, match=f"YOLOAB_RAY_TIMEOUT={value} must be a number of seconds above 0"):
        make_executor("ray", None, f"127.0.0.1:{_free_port()}", None, 1, "auto")


# --------------------------------------------------------------------------------------------------------------------
# a head that listens on 127.0.0.1 only

JOIN = """
import sys
import ray
from yoloab.executors import make_executor
make_executor("ray", None, sys.argv[1], None, 1, "auto")
assert ray.is_initialized(), "not connected"
print(ray.get_runtime_context().gcs_address, ray.nodes()[0]["NodeManagerAddress"])
"""


@contextlib.contextmanager
def _loopback_head(port: int):
    """`ray start --head` on 127.0.0.1 only, in a process group of its own, ended with it."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = _env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    args = ["start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1"]
    args += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    head = subprocess.Popen(
        [RAY_CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert head.poll() is None, "ray start --head failed"
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # a throwaway head: its gcs_server and raylet share the group
            os.killpg(head.pid, signal.SIGKILL)  # SIGTERM takes `ray start` about 15 s
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_head_on_loopback_only_is_joined_through_loopback():
    port = _free_port()
    with _loopback_head(port):
        done = subprocess.run(
            [sys.executable, "-c", JOIN, f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=90,
            env=_env(RAY_AUTH_MODE="disabled"),  # the driver alone does not have Ray's loopback setting
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"127.0.0.1:{port}", "127.0.0.1"], done.stdout + done.stderr


# --------------------------------------------------------------------------------------------------------------------
# Ray's messages about dead workers

KILLED = """
import io, os, sys, time
import ray
from yoloab.executors import RayExecutor

class Tee(io.TextIOBase):  # stderr as it was, and a copy to look for Ray's line in
    def __init__(self, out):
        self.out, self.seen = out, []
    def write(self, text):
        self.seen.append(text)
        return self.out.write(text)
    def flush(self):
        self.out.flush()

sys.stderr = Tee(sys.stderr)
RayExecutor(None)._connect()  # a local instance, as a sweep starts it
try:
    ray.get(ray.remote(max_retries=0)(lambda: os.kill(os.getpid(), 9)).remote())  # as an OOM kill would
except ray.exceptions.RayError as err:
    print("task failed:", type(err).__name__, flush=True)
deadline = time.monotonic() + 20  # Ray pushes its line about the dead worker on its own schedule
while time.monotonic() < deadline and "A worker died" not in "".join(sys.stderr.seen):
    time.sleep(0.2)
"""


def test_rays_worker_died_line_goes_to_stderr_not_stdout():
    done = subprocess.run([sys.executable, "-c", KILLED], capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["task failed: WorkerCrashedError"], done.stdout  # stdout is the program's
    assert "(raylet) A worker died or was killed" in done.stderr, done.stderr
