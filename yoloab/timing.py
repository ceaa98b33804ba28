"""Interleaved timing: a timed warm-up, then rounds in which every runner is timed in turn, and its summaries.

Used by `yoloab.profiling` (latency on every runtime) and `yoloab.train_step` (training steps); the timing session id
and the thread count a measurement runs at are set here too (docs/timing.md).
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Protocol

import torch


class TimingSettings(Protocol):
    """What the interleaved timing reads of a measurement's settings (`yoloab.profiling.ProfileSettings` has it)."""

    warmup_s: float
    rounds: int
    round_s: float


def _timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    if device.type == "cuda":

        def cuda_time(fn: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return cuda_time

    def cpu_time(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return cpu_time


def median_iqr(samples: list[float]) -> tuple[float, float]:
    """Median and interquartile range of the samples (the quartiles `inclusive`, like numpy's `linear`)."""
    q1, med, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return med, q3 - q1


def p95_p99(samples: list[float]) -> tuple[float, float]:
    """P95 and P99 of the samples, interpolated between order statistics like the quartiles (numpy's `linear`)."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[94], cuts[98]


def interleaved_samples(
    runners: dict[Hashable, Callable[[], Any]],
    device: torch.device,
    settings: TimingSettings,
    on_step: Callable[[Hashable], None] | None = None,
) -> dict[Hashable, list[float]]:
    """Time every runner in interleaved rounds after a timed warm-up; `on_step(name)` after each warm-up and slot.

    Returns:
        Every timed call's seconds, per runner (at least 3 per round).
    """
    if not runners:
        return {}
    timer = _timer(device)
    per_iter = {}
    for name, fn in runners.items():
        start, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - start < settings.warmup_s:
            fn()
            n += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        per_iter[name] = max((time.perf_counter() - start) / n, 1e-6)
        if on_step is not None:
            on_step(name)
    samples: dict[Hashable, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(settings.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate: no variant always runs first
        for name in order:
            k = max(3, int(settings.round_s / per_iter[name]))
            samples[name].extend(timer(runners[name]) for _ in range(k))
            if on_step is not None:
                on_step(name)
    return samples


def interleaved_latency(
    runners: dict[Hashable, Callable[[], Any]],
    device: torch.device,
    settings: TimingSettings,
    on_step: Callable[[Hashable], None] | None = None,
) -> dict[Hashable, tuple[float, float]]:
    """`interleaved_samples` summarised: median and IQR in seconds per runner."""
    return {name: median_iqr(s) for name, s in interleaved_samples(runners, device, settings, on_step).items()}


def timing_session_id() -> str:
    """A new timing session id: `<UTC time>-<8 random hex digits>`, unique across processes and machines."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on `n` intra-op torch threads (None: as they are), and put the caller's count back after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)  # process-wide: the caller's later work keeps its own count
