"""What the executors share.

Worker processes that die with their driver, pinning a run to a device, and the small JSON files a worker hands
back (its record, its progress).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the training side imports torch: a driver joining Ray, or refused, does without it
    from ..training import RunSpec

POLL_S = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# `python -c` rather than `-m`: -m puts the working directory first on sys.path (and -P, which would not, needs 3.11)
WORKER_BOOT = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "sys.path.append(sys.argv.pop(1))  # where the driver's yoloab lives, after every installed package\n"
    "from yoloab.worker import main\n"
    "sys.exit(main())\n"
)


def die_with_parent_fn() -> Callable[[], None] | None:
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


def failed_record(spec: RunSpec, error: str) -> dict[str, Any]:
    """The record of a run whose worker died before it could report."""
    from ..training import base_record, now

    record = base_record(spec)
    record.update(status="failed", error=error, started=None, finished=now(), resumed=False)
    return record


def pinned(spec: RunSpec, device: str) -> RunSpec:
    """The spec as a worker pinned to `device` runs it: CUDA index 0 of its visible devices, or the CPU."""
    settings = dataclasses.replace(spec.settings, device="cpu" if device == "cpu" else "0")
    return dataclasses.replace(spec, settings=settings)


def read_record(path: Path) -> dict[str, Any] | None:
    """A record a worker wrote as JSON, or None where it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_progress(path: Path) -> dict[str, Any] | None:
    """A worker's progress file (`epoch`, `epochs`, and `batch`, `metrics` where written), or None."""
    try:
        d = json.loads(path.read_text())
        return {**d, "epoch": int(d["epoch"]), "epochs": int(d["epochs"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
