"""Executors that train a sweep's runs in parallel: one subprocess per local device, or Ray tasks on a cluster.

Both only train and hand records back; the driver (`yoloab.sweep.run_sweep`) alone skips, locks and stores, so
resuming, skipping and failure records behave exactly as with the in-process executor.

Workers die with their driver: a subprocess is started with the kernel told to SIGKILL it when the driver dies
(Linux `PR_SET_PDEATHSIG`), and it inherits the driver's lock on its run, so even where that signal does not exist a
second sweep cannot take the run while an orphan lives. It imports only installed code: the working directory is
taken off its `sys.path` before anything is imported, so a `cv2.py` there cannot shadow a library. A local Ray instance
started by the driver listens on 127.0.0.1 only, with no dashboard, and Ray stops it with the driver.

A cluster named by `--address` is joined when the executor is made, before the results directory is touched, and
within `YOLOAB_RAY_TIMEOUT` seconds (default 30): `ray.init` has no timeout of its own and retries an address where
nothing answers for about ten minutes.

Device pinning: each run sees only its device (`CUDA_VISIBLE_DEVICES` set by yoloab for a subprocess, by Ray for a
task) and is given Ultralytics device `0`. Ultralytics 8.4's `select_device` reads CUDA indices relative to the
visible devices and leaves `CUDA_VISIBLE_DEVICES` alone, so the pinned run cannot drift to another GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import math
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SweepInputError

if TYPE_CHECKING:  # the training side imports torch: a driver joining Ray, or refused, does without it
    from .training import RunSpec

POLL_S = 0.5
RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
RAY_TIMEOUT_ENV = "YOLOAB_RAY_TIMEOUT"
RAY_TIMEOUT_S = 30.0
"""Seconds joining a cluster named by `--address` may take (`YOLOAB_RAY_TIMEOUT`); a healthy one takes a few."""
# joins a cluster as the driver is about to, in a process that can be stopped (see `_init_in_child`)
RAY_PROBE = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "import ray\n"
    "loopback = {'_node_ip_address': '127.0.0.1'} if sys.argv[2] == 'loopback' else {}\n"
    "ray.init(address=sys.argv[1], log_to_driver=False, include_dashboard=False, **loopback)\n"
    "ray.shutdown()\n"
)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# `python -c` rather than `-m`: -m puts the working directory first on sys.path (and -P, which would not, needs 3.11)
WORKER_BOOT = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "sys.path.append(sys.argv.pop(1))  # where the driver's yoloab lives, after every installed package\n"
    "from yoloab.worker import main\n"
    "sys.exit(main())\n"
)


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGKILL the child when its parent dies (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def parse_devices(text: str) -> list[str]:
    """`--devices 0,1` or `cpu,cpu`: one slot per entry, each a CUDA index or `cpu`.

    Raises:
        SweepInputError: malformed entry or a CUDA device this machine does not have.
    """
    import torch

    slots = [d.strip().removeprefix("cuda:") for d in text.split(",") if d.strip()]
    if not slots:
        raise SweepInputError("--devices is empty; expected CUDA indices such as 0,1 (or cpu,cpu)")
    n = torch.cuda.device_count()
    for d in slots:
        if d != "cpu" and not d.isdigit():
            raise SweepInputError(f"--devices entry '{d}' is not a CUDA index or 'cpu'; expected e.g. 0,1")
        if d.isdigit() and int(d) >= n:
            raise SweepInputError(f"--devices: CUDA device {d} is not available; this machine has {n} CUDA device(s)")
    return slots


def failed_record(spec: RunSpec, error: str) -> dict[str, Any]:
    """The record of a run whose worker died before it could report."""
    from .training import base_record, now

    record = base_record(spec)
    record.update(status="failed", error=error, started=None, finished=now(), resumed=False)
    return record


def pinned(spec: RunSpec, device: str) -> RunSpec:
    """The spec as a worker pinned to `device` runs it: CUDA index 0 of its visible devices, or the CPU."""
    settings = dataclasses.replace(spec.settings, device="cpu" if device == "cpu" else "0")
    return dataclasses.replace(spec, settings=settings)


class DevicesExecutor:
    """One subprocess per listed device, each taking the next run when it is free."""

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices

    def run(self, specs: list[RunSpec], events: Any, stop: Callable[[], bool]) -> Iterator[tuple[RunSpec, dict]]:
        """Train the runs over the device slots, yielding records as runs finish."""
        queue = list(specs)
        busy: dict[str, tuple[RunSpec, subprocess.Popen, Path, int]] = {}
        try:
            while queue or busy:
                for device in self.devices:
                    if device not in busy and queue and not stop():
                        spec = queue.pop(0)
                        events.started(spec)
                        busy[device] = (spec, *self._start(spec, device), 0)
                for device, (spec, proc, folder, seen) in list(busy.items()):
                    progress = _read_progress(folder / "progress.json")
                    epoch = (progress["epoch"], progress["epochs"]) if progress else None
                    if progress and progress.get("metrics") and hasattr(events, "metrics"):
                        events.metrics(spec, progress["metrics"])
                    if epoch and epoch[0] != seen:
                        events.epoch(spec, *epoch)
                        busy[device] = (spec, proc, folder, epoch[0])
                    if progress and progress.get("batch") and hasattr(events, "batch"):
                        events.batch(spec, *progress["batch"])
                    if proc.poll() is None:
                        continue
                    del busy[device]
                    record = _read_record(folder / "record.json")
                    shutil.rmtree(folder, ignore_errors=True)
                    if proc.returncode == 130:  # stopped after saving: no record, resumes next time
                        continue
                    if record is None:
                        log = spec.results_dir / "train" / f"{spec.run_name}.log"
                        record = failed_record(spec, f"worker exited with code {proc.returncode} (log: {log})")
                    yield spec, record
                if not busy and (stop() or not queue):
                    break
                time.sleep(POLL_S)
        finally:  # a second Ctrl-C (the workers, in our process group, got it too) or an error in the driver
            for _, proc, folder, _ in busy.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()  # the driver is giving up: the run resumes from its last saved epoch next time
                    proc.wait()
                shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _start(spec: RunSpec, device: str) -> tuple[subprocess.Popen, Path]:
        from .sweep import held_lock_fd, worker_dir

        folder = worker_dir(spec.results_dir, spec.key)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "spec.pkl").write_bytes(pickle.dumps(pinned(spec, device)))
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = "" if device == "cpu" else device
        log = spec.results_dir / "train" / f"{spec.run_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = held_lock_fd(spec.results_dir, spec.key)
        package_root = str(Path(__file__).resolve().parent.parent)
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-c", WORKER_BOOT, package_root]
                + [str(folder / "spec.pkl"), str(folder / "record.json"), str(folder / "progress.json")],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                pass_fds=() if lock_fd is None else (lock_fd,),
                preexec_fn=_die_with_parent_fn(),  # noqa: PLW1509 - the driver starts workers from its main thread
            )
        return proc, folder


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_progress(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
        return {**d, "epoch": int(d["epoch"]), "epochs": int(d["epochs"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------------------------------------------------
# Ray


def _ray_train(spec: RunSpec) -> dict[str, Any]:
    from yoloab.worker import run_in_worker

    return run_in_worker(spec)


@contextlib.contextmanager
def _loopback(ray: Any) -> Iterator[None]:
    """While a local instance starts, keep Ray from replacing node address 127.0.0.1 with a routable one.

    On Linux Ray treats every node as part of a possible cluster and resolves a loopback node address to the host's
    external one (`ray._private.ray_constants.ENABLE_RAY_CLUSTER`, from `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`); with
    that off, gcs_server, raylet and workers listen on 127.0.0.1. The processes it starts inherit the variable.
    """
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    previous = (os.environ.get(RAY_CLUSTER_ENV), getattr(constants, "ENABLE_RAY_CLUSTER", None))
    os.environ[RAY_CLUSTER_ENV] = "0"
    if previous[1] is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if previous[0] is None:
            os.environ.pop(RAY_CLUSTER_ENV, None)
        else:
            os.environ[RAY_CLUSTER_ENV] = previous[0]
        if previous[1] is not None:
            constants.ENABLE_RAY_CLUSTER = previous[1]


def ray_timeout() -> float:
    """How long joining a cluster may take: `YOLOAB_RAY_TIMEOUT` seconds, or `RAY_TIMEOUT_S`.

    Raises:
        SweepInputError: the variable is set to something other than a positive number.
    """
    text = os.environ.get(RAY_TIMEOUT_ENV, "").strip()
    if not text:
        return RAY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SweepInputError(
            f"{RAY_TIMEOUT_ENV}={text} must be a number of seconds above 0 (unset: {RAY_TIMEOUT_S:g})"
        )
    return value


def _host_port(address: str) -> tuple[str, int] | None:
    """`HOST:PORT` (an IPv6 host in brackets) as a pair, or None where it is not that."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    return (host, int(port)) if sep and host and port.isdigit() else None


def _refused(address: str, timeout: float) -> str | None:
    """Why no TCP connection to `HOST:PORT` opens within `timeout` seconds, or None when one does."""
    where = _host_port(address)
    if where is None:
        return "not HOST:PORT"
    try:
        with socket.create_connection(where, timeout=max(timeout, 0.1)):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as err:
        return (err.strerror or type(err).__name__).lower()


def _gcs_addresses(ray: Any, address: str) -> tuple[str, str | None]:
    """The `HOST:PORT` Ray dials for `address`, and the loopback one where Ray replaces a loopback host.

    Ray resolves `auto` and `RAY_ADDRESS`, and on Linux replaces 127.0.0.1 or localhost with this node's routable
    address; a head listening on 127.0.0.1 only is then unreachable unless it is joined on loopback (`_loopback`).

    Raises:
        SweepInputError: `auto` finds no running cluster, or the address is malformed.
    """
    if address.startswith("ray://"):  # Ray Client: dialled as given
        return address.removeprefix("ray://"), None
    services = getattr(getattr(ray, "_private", None), "services", None)
    canonical = getattr(services, "canonicalize_bootstrap_address_or_die", None)
    if canonical is None:  # a Ray without this internal: probe the address as given
        return address, None
    try:
        target = canonical(address)
        with _loopback(ray):
            loopback = canonical(address)
    except ConnectionError as err:
        raise SweepInputError(f"cannot reach the Ray cluster at '{address}': {err}") from err
    except ValueError as err:
        raise SweepInputError(f"--address '{address}' is not auto or HOST:PORT ({err})") from err
    return target, (loopback if loopback != target else None)


def _init_in_child(address: str, local: bool, timeout: float) -> str | None:
    """Why `ray.init(address)` fails in a child process (its last line on stderr), or None once it has joined.

    `ray.init` has no overall timeout (Ray's maintainers suggest bounding it from outside, ray-project/ray#46863),
    and a thread left inside it can crash the driver as it exits: a child process is what can be stopped.

    Raises:
        TimeoutError: it had not returned after `timeout` seconds (the child is killed).
    """
    env = {**os.environ, RAY_CLUSTER_ENV: "0"} if local else dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-c", RAY_PROBE, address, "loopback" if local else "as-given"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: stopped with whatever Ray started in it
        preexec_fn=_die_with_parent_fn(),  # noqa: PLW1509 - it only calls prctl, looked up before the fork
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"Ray did not connect within {timeout:g} s") from None
    finally:
        if proc.poll() is None:  # timed out, or the user pressed Ctrl-C
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    if proc.returncode == 0:
        return None
    said = [line.strip() for line in err.splitlines() if line.strip()]
    return said[-1] if said else f"Ray's connection check exited with code {proc.returncode}"


def _print_to_stderr(data: dict[str, Any], ignore_prefix: bool = False) -> None:
    """Ray's `print_to_stdstream` for what Ray pushes to the driver, written to stderr as plain lines."""
    source = data.get("pid")
    for line in data.get("lines") or []:
        sys.stderr.write(f"({source}) {line}\n" if source in ("raylet", "autoscaler") else f"{line}\n")
    sys.stderr.flush()


def _ray_messages_to_stderr(ray: Any) -> None:
    """From now on, send what Ray pushes to this driver (a worker died, a node was lost) to stderr: stdout is yoloab's.

    Ray prints those messages to stdout from a thread of its own, whatever `log_to_driver` says and with no setting
    to move them, sometimes after the task's failure has reached yoloab; yoloab records each failed run itself, so
    Ray's line stays as diagnostics on stderr.
    """
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    if getattr(worker, "print_to_stdstream", None) is not None:  # a Ray without it prints as it likes
        worker.print_to_stdstream = _print_to_stderr


class RayExecutor:
    """One Ray task per run; a task whose worker dies is retried `max_retries` times, then recorded failed.

    Workers import yoloab (it must be installed on every node) and load the sweep's plugin files by path; the
    results directory, where Ultralytics writes run directories and checkpoints, must be on storage every node sees.
    """

    def __init__(self, address: str | None = None, gpus_per_run: float | None = None, max_retries: int = 1) -> None:
        try:
            import ray
        except ImportError as err:
            raise SweepInputError(
                "--executor ray needs Ray: pip install 'yoloab[ray]' (or pip install 'ray[default]')"
            ) from err
        if max_retries < 0:
            raise SweepInputError(f"--max-retries {max_retries} must be at least 0")
        self.ray = ray
        self.address = address
        self.gpus_per_run = gpus_per_run
        self.max_retries = max_retries

    def _connect(self) -> float:
        """Start a local instance or join `--address` (once), returning the GPUs each task asks for.

        Raises:
            SweepInputError: the cluster cannot be reached in time, or has fewer GPUs than `--gpus-per-run`.
        """
        ray = self.ray
        if not ray.is_initialized():
            if self.address is None:  # an instance we start is ours alone: loopback only, no dashboard
                with _loopback(ray):
                    # "local", not None: None joins whatever RAY_ADDRESS or the last `ray start` names, even a
                    # cluster long gone, where ray.init then waits for minutes
                    ray.init("local", log_to_driver=False, include_dashboard=False, _node_ip_address="127.0.0.1")
            else:  # a cluster named by --address is the user's, configured by them
                self._join()
        _ray_messages_to_stderr(ray)
        gpus = ray.cluster_resources().get("GPU", 0)
        if self.gpus_per_run is None:
            return 1.0 if gpus else 0.0
        if self.gpus_per_run > gpus:
            raise SweepInputError(f"--gpus-per-run {self.gpus_per_run} but the Ray cluster has {gpus:g} GPU(s)")
        return self.gpus_per_run

    def _join(self) -> None:
        """`ray.init(address)` within `ray_timeout()` seconds, or a one-line error saying what did not answer."""
        ray, address = self.ray, str(self.address)
        timeout = ray_timeout()
        deadline = time.monotonic() + timeout
        target, loopback = _gcs_addresses(ray, address)
        why = _refused(target, timeout)
        # a head listening on 127.0.0.1 only (as a local instance of yoloab's does): join it on loopback too
        local = why is not None and loopback is not None and _refused(loopback, deadline - time.monotonic()) is None
        if why is not None and not local:
            where = f"{target} (Ray's address for it on this node) or {loopback}" if loopback else target
            raise SweepInputError(f"cannot reach the Ray cluster at '{address}': {why} at {where}")
        # the port answers; whether Ray gets through (a Ray head, the same version, the same token) is tried where
        # a wait can be cut short, and this process joins only once that has worked
        try:
            why = _init_in_child(address, local, max(deadline - time.monotonic(), 1.0))
        except TimeoutError:
            raise SweepInputError(
                f"cannot reach the Ray cluster at '{address}': {loopback if local else target} accepts connections, "
                f"but Ray did not connect within {timeout:g} s (is it the port of a Ray head, `ray start --head "
                f"--port`, of the same Ray version?); {RAY_TIMEOUT_ENV}=SECONDS waits longer"
            ) from None
        if why is not None:
            raise SweepInputError(f"cannot reach the Ray cluster at '{address}': {why}")
        options: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if local else {}
        try:
            with _loopback(ray) if local else contextlib.nullcontext():
                ray.init(address=address, log_to_driver=False, include_dashboard=False, **options)
        except ConnectionError as err:
            raise SweepInputError(f"cannot reach the Ray cluster at '{address}': {err}") from err

    def run(self, specs: list[RunSpec], events: Any, stop: Callable[[], bool]) -> Iterator[tuple[RunSpec, dict]]:
        """Submit every run, yielding records as tasks finish."""
        ray = self.ray
        gpus = self._connect()
        task = ray.remote(num_gpus=gpus, max_retries=self.max_retries, retry_exceptions=False)(_ray_train)
        device = "0" if gpus else "cpu"
        pending = {}
        for spec in specs:
            events.started(spec)
            pending[task.remote(pinned(spec, device))] = spec
        while pending:
            if stop():
                for ref in pending:
                    ray.cancel(ref)  # a run in flight resumes from its last saved epoch next time
                return
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                spec = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as err:
                    retries = f"{self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}"
                    record = failed_record(spec, f"Ray worker failed ({type(err).__name__}) after {retries}")
                yield spec, record


def make_executor(
    kind: str, devices: str | None, address: str | None, gpus_per_run: float | None, max_retries: int, device: str
) -> Any:
    """The executor `--executor`/`--devices` ask for (None: this process), rejecting options that do not go together.

    A Ray cluster named by `address` is joined here, so that one that cannot be reached is refused before anything
    is written; a local Ray instance starts when the sweep does.

    Raises:
        SweepInputError: an option of the other executor, a device conflict, or a Ray cluster that cannot be reached.
    """
    if kind == "ray":
        if devices is not None:
            raise SweepInputError("--devices is for the local executor; Ray places runs on the cluster's GPUs itself")
        if device != "auto":
            raise SweepInputError("--device is for the local executor; with Ray use --gpus-per-run")
        executor = RayExecutor(address, gpus_per_run, max_retries)
        if address is not None:  # a cluster that cannot be reached is refused before the results directory is touched
            executor._connect()
        return executor
    for flag, value in (("--address", address), ("--gpus-per-run", gpus_per_run)):
        if value is not None:
            raise SweepInputError(f"{flag} needs --executor ray")
    if devices is None:
        return None
    if device != "auto":
        raise SweepInputError("give either --device (one run at a time) or --devices (one run per device), not both")
    return DevicesExecutor(parse_devices(devices))
