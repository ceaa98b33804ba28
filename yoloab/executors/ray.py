"""The Ray executor: one Ray task per run, on a local instance or a cluster named by `--address`.

It only trains and hands records back; the driver (`yoloab.sweep.run_sweep`) alone skips, locks and stores.

A local Ray instance started by the driver listens on 127.0.0.1 only, with no dashboard, and Ray stops it with the
driver. A cluster named by `--address` is joined when the executor is made, before the results directory is touched,
and within `YOLOAB_RAY_TIMEOUT` seconds (default 30): `ray.init` has no timeout of its own and retries an address
where nothing answers for about ten minutes.

Device pinning: Ray sets `CUDA_VISIBLE_DEVICES` for a task, which is given Ultralytics device `0`.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import SweepInputError
from .common import POLL_S, die_with_parent_fn, failed_record, pinned

if TYPE_CHECKING:
    from ..training import RunSpec

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
        preexec_fn=die_with_parent_fn(),  # noqa: PLW1509 - it only calls prctl, looked up before the fork
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
