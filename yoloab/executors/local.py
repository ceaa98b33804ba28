"""The local executor: one subprocess per listed device (`--devices 0,1` or `cpu,cpu`), each taking the next run.

It only trains and hands records back; the driver (`yoloab.sweep.run_sweep`) alone skips, locks and stores, so
resuming, skipping and failure records behave exactly as with the in-process executor.

Workers die with their driver: a subprocess is started with the kernel told to SIGKILL it when the driver dies
(Linux `PR_SET_PDEATHSIG`), and it inherits the driver's lock on its run, so even where that signal does not exist a
second sweep cannot take the run while an orphan lives. It imports only installed code: the working directory is
taken off its `sys.path` before anything is imported, so a `cv2.py` there cannot shadow a library.

Device pinning: each run sees only its device (`CUDA_VISIBLE_DEVICES`) and is given Ultralytics device `0`.
Ultralytics 8.4's `select_device` reads CUDA indices relative to the visible devices and leaves
`CUDA_VISIBLE_DEVICES` alone, so the pinned run cannot drift to another GPU.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SweepInputError
from .common import POLL_S, WORKER_BOOT, die_with_parent_fn, failed_record, pinned, read_progress, read_record

if TYPE_CHECKING:
    from ..training import RunSpec

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the `yoloab` package a worker imports (appended to its `sys.path`)."""


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
                    progress = read_progress(folder / "progress.json")
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
                    record = read_record(folder / "record.json")
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
        from ..sweep import held_lock_fd, worker_dir

        folder = worker_dir(spec.results_dir, spec.key)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "spec.pkl").write_bytes(pickle.dumps(pinned(spec, device)))
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = "" if device == "cpu" else device
        log = spec.results_dir / "train" / f"{spec.run_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = held_lock_fd(spec.results_dir, spec.key)
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-c", WORKER_BOOT, str(PACKAGE_ROOT)]
                + [str(folder / "spec.pkl"), str(folder / "record.json"), str(folder / "progress.json")],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                pass_fds=() if lock_fd is None else (lock_fd,),
                preexec_fn=die_with_parent_fn(),  # noqa: PLW1509 - the driver starts workers from its main thread
            )
        return proc, folder
