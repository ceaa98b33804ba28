"""How far a sweep is and how long it has left, counted in epochs, for its progress bar and its `--quiet` lines.

The sweep's total is known before anything trains: the epochs of every planned run. Stored runs (skipped) and the
epochs an interrupted run had saved count as done but took no time now, so the rate comes only from what this sweep
trained: the epochs (batch by batch, where the executor reports batches) trained since the first run started, over
the time since then. The estimate exists from the first reported step: a batch with the local executor and
`--devices`, a finished run with Ray. Setup and validation time are in it, spread over the epochs, as they recur.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class SweepClock:
    """Epochs done and left over a sweep's runs, and the time left at the rate of what was trained now.

    Args:
        epochs: run key -> its planned epochs.
        clock: seconds (monotonic); a test passes its own.
    """

    def __init__(self, epochs: dict[str, int], clock: Callable[[], float] = time.monotonic) -> None:
        self.epochs, self.clock = dict(epochs), clock
        self.total = float(sum(self.epochs.values()))
        self.runs = len(self.epochs)
        self.runs_done = 0
        self._done = 0.0  # epochs of finished or skipped runs
        self._trained = 0.0  # of which trained by this sweep
        self._live: dict[str, float] = {}  # run in flight -> epochs it has done (saved ones of a resume included)
        self._from: dict[str, float] = {}  # run in flight -> epochs it had when it started training now
        self._began: dict[str, float] = {}  # run in flight -> when it started
        self._t0: float | None = None

    @property
    def completed(self) -> float:
        """Epochs done, whole and in flight."""
        return self._done + sum(self._live.values())

    @property
    def trained(self) -> float:
        """Epochs trained by this sweep so far."""
        return self._trained + sum(v - self._from.get(k, v) for k, v in self._live.items())

    def skipped(self, key: str) -> None:
        """A run already stored: done, in no time."""
        self._done += self.epochs.get(key, 0)
        self.runs_done += 1

    def started(self, key: str) -> None:
        """A run starts training (or resuming)."""
        now = self.clock()
        self._t0 = now if self._t0 is None else self._t0
        self._live[key], self._began[key] = 0.0, now
        self._from.pop(key, None)

    def step(self, key: str, epoch: int, fraction: float) -> None:
        """A run reported epoch `epoch` (1-based) done to `fraction` (0..1): a batch, or 1 at the epoch's end.

        The first report of a run sets where its training began: a resumed run's first is in the epoch after its
        last saved one.
        """
        self._from.setdefault(key, float(epoch - 1))
        self._live[key] = max(self._live.get(key, 0.0), epoch - 1 + fraction)

    def finished(self, key: str, record: dict[str, Any]) -> float | None:
        """A run's record arrived; returns the seconds since it started (None if it was never seen starting)."""
        planned = self.epochs.get(key, 0)
        reached = self._live.pop(key, None)
        began_at = self._from.pop(key, None)
        if began_at is not None and reached is not None:
            self._trained += max(reached - began_at, 0.0)
        else:  # no step reported (Ray): what the record says it trained now
            done = record.get("epochs_done") or (planned if record.get("status") == "ok" else 0)
            self._trained += max(float(done) - float(record.get("resumed_from_epoch") or 0), 0.0)
        self._done += planned
        self.runs_done += 1
        began = self._began.pop(key, None)
        return None if began is None else self.clock() - began

    def eta(self) -> float | None:
        """Seconds left at the rate trained so far; None before the first step."""
        trained = self.trained
        if self._t0 is None or trained <= 0:
            return None
        elapsed = self.clock() - self._t0
        if elapsed <= 0:
            return None
        return max(self.total - self.completed, 0.0) * elapsed / trained


def duration(seconds: float | None) -> str:
    """`45s`, `2m05s`, `1h02m`: short enough for a one-line log entry; '-' when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
