"""The sweep driver: decides which runs to train, hands them to an executor, and alone writes the results store.

- Skipping: a run whose stored record is `ok` is not trained again; a `failed` one is retried from scratch, unless it
  failed for want of disk space: then it resumes from its last intact checkpoint.
- Symlinks: no path of a run under the results directory (run directory, log, model yaml, record, lock) may be or lie
  under a symlink; the sweep refuses before anything is written (`yoloab.safepaths`).
- Concurrency: while a run trains, the driver holds an exclusive lock on `locks/<key>.lock` (released by the OS if
  the process dies, even by SIGKILL); a worker process inherits it, so an orphaned worker still holds its run. A
  second sweep on the same results directory skips a locked run at first, comes back to it at the end, waits for
  the lock, and trains it only if no record appeared meanwhile.
- Ctrl-C: the first one lets the run in flight finish its epoch and save, then stops the sweep (nothing recorded
  for that run; it resumes next time); a second one stops at once.
- Records are stored as they arrive, atomically, one file per run key: never half-written, never duplicated. A
  damaged record is moved to `damaged/` (see `yoloab.results.quarantine`) and its run trained again. Once a run's
  `ok` record is stored, its `weights/last.safe.pt` (the resumable copy of the last epoch) and `weights/rng.pt` (its
  resume state) are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import SweepInterrupted
from .results import load_run, run_path, store_run, val_stats_path
from .safepaths import inside, tree_inside
from .training import DISK_FULL, RunHooks, RunSpec, train_run


class SweepEvents(Protocol):
    """What a sweep reports as it goes (the CLI renders these; tests record them)."""

    def skipped(self, spec: RunSpec, record: dict[str, Any]) -> None:
        """A run already has an `ok` record."""

    def started(self, spec: RunSpec) -> None:
        """A run starts training (or resuming)."""

    def epoch(self, spec: RunSpec, epoch: int, epochs: int) -> None:
        """A run finished an epoch."""

    def finished(self, spec: RunSpec, record: dict[str, Any]) -> None:
        """A run's record was stored."""

    def batch(self, spec: RunSpec, epoch: int, epochs: int, batch: int, batches: int) -> None:
        """A run finished a training batch (optional: executors call it where the receiver has it)."""

    def metrics(self, spec: RunSpec, values: dict[str, float]) -> None:
        """A run validated an epoch: Ultralytics' metrics and mean losses (optional, as `batch`)."""

    def waiting(self, spec: RunSpec) -> None:
        """A run is being trained by another sweep; waiting for it."""

    def stopping(self) -> None:
        """Ctrl-C was pressed once: the sweep stops after the current epoch is saved."""


class Executor(Protocol):
    """Trains runs and hands back their records; never touches the results store."""

    def run(
        self, specs: list[RunSpec], events: SweepEvents, stop: Callable[[], bool]
    ) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Train `specs`, yielding each run's record as it finishes."""


class LocalExecutor:
    """Runs in this process, one after another (device chosen by the settings)."""

    def run(
        self, specs: list[RunSpec], events: SweepEvents, stop: Callable[[], bool]
    ) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Train each run in turn."""
        for spec in specs:
            if stop():
                return
            events.started(spec)
            yield spec, train_run(spec, run_hooks(spec, events, stop))


def run_hooks(spec: RunSpec, events: SweepEvents, stop: Callable[[], bool]) -> RunHooks:
    """Hooks that forward a run's progress to `events`; Ultralytics' own lines go to the run's log unless verbose."""
    batch, metrics = getattr(events, "batch", None), getattr(events, "metrics", None)
    return RunHooks(
        epoch=lambda e, n: events.epoch(spec, e, n),
        stop_requested=stop,
        batch=(lambda e, n, b, nb: batch(spec, e, n, b, nb)) if batch else None,
        metrics=(lambda values: metrics(spec, values)) if metrics else None,
        log=None if spec.settings.verbose else spec.log_path,
    )


@dataclass
class SweepOutcome:
    """What a sweep did.

    Attributes:
        records: records of the runs trained now, in order.
        skipped: records that were already stored `ok`.
        interrupted: the user stopped the sweep.
        pending: runs not trained because of the stop.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    pending: list[RunSpec] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Records of runs that failed now."""
        return [r for r in self.records if r["status"] != "ok"]


_HELD: dict[Path, RunLock] = {}


def held_lock_fd(results_dir: Path, key: str) -> int | None:
    """The file descriptor of the lock this process holds on run `key` (for a worker to inherit), or None."""
    lock = _HELD.get(RunLock(results_dir, key).path)
    return lock.fileno() if lock is not None else None


def worker_dir(results_dir: Path, key: str) -> Path:
    """Where a worker process of run `key` exchanges files with the driver (cleared by whoever takes the lock)."""
    return results_dir / "locks" / f"{key}.worker"


class RunLock:
    """An exclusive, non-blocking-by-default lock on one run key, held by this process until released or exit.

    The lock belongs to the open file: a child process that inherits the descriptor keeps the run locked after this
    process dies, until the child exits too.
    """

    def __init__(self, results_dir: Path, key: str) -> None:
        self.results_dir = results_dir
        self.path = results_dir / "locks" / f"{key}.lock"
        self._fh: Any = None

    def fileno(self) -> int | None:
        """The descriptor of the held lock, or None."""
        return self._fh.fileno() if self._fh is not None else None

    def acquire(self, block: bool = False) -> bool:
        """Take the lock; returns False if another process holds it (only when not blocking)."""
        inside(self.results_dir, self.path, "run lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        _HELD[self.path] = self
        return True

    def release(self) -> None:
        """Let the lock go (the lock file stays: removing it would race with a waiting process)."""
        if self._fh is not None:
            _HELD.pop(self.path, None)
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


@contextlib.contextmanager
def graceful_interrupt(on_first: Callable[[], None]) -> Iterator[Callable[[], bool]]:
    """First Ctrl-C asks to stop after the current save (and calls `on_first`); the second raises KeyboardInterrupt.

    Yields:
        A function telling whether a stop was asked for.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        on_first()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def check_paths(spec: RunSpec) -> None:
    """Refuse a run any of whose paths under the results directory is, holds or lies under a symlink.

    Raises:
        UnsafePathError: naming the path; nothing was deleted or written.
    """
    root = spec.results_dir
    tree_inside(root, spec.run_dir, "run directory")
    for path, what in (
        (spec.log_path, "run log"),
        (spec.yaml_path, "model yaml"),
        (run_path(root, spec.key), "run record"),
        (val_stats_path(root, spec.key), "validation statistics"),
        (RunLock(root, spec.key).path, "run lock"),
        (worker_dir(root, spec.key), "worker folder"),
        (root / "damaged", "damaged-files folder"),
    ):
        inside(root, path, what)


def run_sweep(specs: list[RunSpec], events: SweepEvents, executor: Executor | None = None) -> SweepOutcome:
    """Train every run of `specs` that has no `ok` record yet, storing each record as it arrives.

    Args:
        specs: the planned runs (see `yoloab.training.plan_runs`).
        events: progress receiver.
        executor: where runs train (default: this process, one at a time).

    Returns:
        What was trained, skipped, and whether the user stopped the sweep.

    Raises:
        UnsafePathError: a run's path under the results directory is a symlink (before anything is written).
    """
    for spec in specs:  # every run before any: a refusal leaves the results directory as it was
        check_paths(spec)
    executor = executor or LocalExecutor()
    outcome = SweepOutcome()
    todo: list[RunSpec] = []
    for spec in specs:
        done = load_run(spec.results_dir, spec.key)
        if done is not None and done.get("status") == "ok":
            outcome.skipped.append(done)
            events.skipped(spec, done)
        else:
            todo.append(spec)
    with graceful_interrupt(events.stopping) as stop:
        deferred = _train_claimed(todo, events, executor, stop, outcome)
        for spec in deferred:  # runs another sweep was training: wait, then train only what it did not finish
            if stop():
                outcome.pending.append(spec)
                continue
            events.waiting(spec)
            lock = RunLock(spec.results_dir, spec.key)
            lock.acquire(block=True)
            lock.release()
            # skipped if the other sweep recorded it ok; a third sweep taking it meanwhile leaves it pending
            outcome.pending.extend(_train_claimed([spec], events, executor, stop, outcome))
    outcome.interrupted = outcome.interrupted or stop()
    return outcome


def record_run(spec: RunSpec, record: dict[str, Any]) -> None:
    """Store a run's record (atomically; the caller holds the run's lock); once `ok`, drop its resumable copies.

    Raises:
        StorageError: the record cannot be written.
    """
    store_run(record, spec.results_dir)
    if record.get("status") == "ok":  # recorded: the resumable copy and resume state are no longer needed
        for name in ("last.safe.pt", "rng.pt"):
            inside(spec.results_dir, spec.run_dir / "weights" / name, "checkpoint").unlink(missing_ok=True)


def _train_claimed(
    specs: list[RunSpec], events: SweepEvents, executor: Executor, stop: Callable[[], bool], outcome: SweepOutcome
) -> list[RunSpec]:
    """Lock what can be locked, train it, store records; returns the runs locked by someone else."""
    locks: dict[str, RunLock] = {}
    deferred = []
    for spec in specs:
        lock = RunLock(spec.results_dir, spec.key)
        if not lock.acquire():
            deferred.append(spec)
            continue
        done = load_run(spec.results_dir, spec.key)  # read again under the lock: another sweep may have just finished
        if done is not None and done.get("status") == "ok":
            lock.release()
            outcome.skipped.append(done)
            events.skipped(spec, done)
            continue
        # a failed run is retried from scratch, not resumed from the state that failed; a full disk did not spoil
        # that state, so such a run resumes from its last intact checkpoint (torn ones are set aside on resuming)
        if done is not None and not str(done.get("error") or "").startswith(DISK_FULL):
            shutil.rmtree(tree_inside(spec.results_dir, spec.run_dir, "run directory"), ignore_errors=True)
        folder = inside(spec.results_dir, worker_dir(spec.results_dir, spec.key), "worker folder")
        shutil.rmtree(folder, ignore_errors=True)  # left by a killed sweep
        locks[spec.key] = lock
    claimed = [s for s in specs if s.key in locks]
    seen: set[str] = set()
    try:
        for spec, record in executor.run(claimed, events, stop):
            seen.add(spec.key)
            record_run(spec, record)
            locks.pop(spec.key).release()
            outcome.records.append(record)
            events.finished(spec, record)
    except SweepInterrupted:
        outcome.interrupted = True
    finally:
        for lock in locks.values():
            lock.release()
    outcome.pending.extend(s for s in claimed if s.key not in seen)
    return deferred
