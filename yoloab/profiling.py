"""Measurements of built variants: parameters, FLOP counts (`yoloab.flops`), latency, throughput and memory.

- FLOPs: `gflops` (Ultralytics' thop), `gflops_aten` (FlopCounterMode), `gmacs`, each as trained and after `fuse()`
  (`*_fused`), and `gflops_published` (the fused model as published tables count it: no attention matmuls) with
  `attention_note` where those matmuls are over 1% of the fused count; see `yoloab.flops`.
- Latency: eval mode, fused, inference mode, fixed input, warm-up by time, median, IQR, P95 and P99 of the same
  samples over interleaved rounds (CUDA events and `cudnn.benchmark` on GPU); throughput at batch N (at batch 1: from
  the latency pass); peak CUDA memory for inference and one training step.
- Threads, chosen and recorded, never left to import order: builds and counts run on `count_threads` torch threads
  (`--threads`, default 1), CPU latency on `threads` (default 1), the deployed runtimes on `threads` (CUDA: all
  cores); the caller's thread count is put back after. (Ultralytics sets `OMP_NUM_THREADS=1` only when it is imported
  before torch, which yoloab does not promise.) CPU defaults: one thread and batch 1, since on a shared machine more
  threads time the scheduler, not the model.
- Identity: each record has a `key` (`profile_key`) over everything that changes the measurement; a stored record
  with the same key is reused instead of measured again (`profile_variants`' `stored`). Keys are computed from the
  yaml (`yoloab.training.model_hash`, nc from the yaml or `--nc`), so a fully reused profile builds no model
  (`plan_profile`).
- Timing sessions: all rows timed in one interleaved pass share a `timing_session` id (`<UTC time>-<random hex>`).
  RULE: a comparison group is the rows of one profile command with the same base model, imgsz, nc, batch, device,
  threads, dtype and runtimes (in one command only the base model and nc can differ). When latency is asked and a
  group's rows do not all come from one stored timing session (some measured now, reused records from different
  sessions, or old records without a session), every row of the group is timed again together in this command: its
  stored counts are reused, only the timing is redone, and its stored record is rewritten with the new session. So a
  profile never mixes timing sessions within a group, and a latency difference between two rows of a group is
  measured in the same rounds.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from ._ultralytics import ultralytics_version
from .deploy import Deployed, calibrate_batchnorm, check_runtimes, deploy_variant, runtime_runners
from .devices import device_name, resolve_device
from .errors import ProfileInputError
from .flops import DEPLOYED_KEYS, deployed_counts, flop_counts, fuse_note, model_stride
from .hashing import model_hash
from .registry import build_environment, recorded_attributes
from .timing import interleaved_samples, median_iqr, p95_p99, timing_session_id, torch_threads
from .transfer import Pretrained
from .variants import Variant, build_seeded, count_params


@dataclass
class ProfileSettings:
    """What to measure and how.

    Attributes:
        imgsz: square input size; must be a multiple of the model stride.
        batch: batch size of the throughput measurement (latency is always batch 1); None: 1 on CPU, 8 on CUDA.
        device: `auto`, `cpu`, `cuda` or `cuda:N`.
        half: fp16 latency on CUDA.
        latency: measure latency, throughput and memory (params and FLOPs are always measured).
        train_step: also time one training step per variant at `batch` (`yoloab.train_step`), interleaved.
        nc: number of classes (None: the yaml's).
        threads: CPU threads for latency and the deployed runtimes (None: 1 on CPU, all cores for runtimes on CUDA).
        warmup_s: warm-up time per variant.
        rounds: interleaved rounds; each round times every variant.
        round_s: target time per variant and round.
        pretrained: a checkpoint of the base model carried into every variant (`yoloab.transfer`), or None.
        runtimes: `torch` and deployment runtimes (`yoloab.deploy.RUNTIMES`); the others are exported and checked.
        exports: folder of the exported artifacts (their cache).
    """

    imgsz: int = 640
    batch: int | None = None
    device: str = "auto"
    half: bool = False
    latency: bool = True
    train_step: bool = False
    nc: int | None = None
    threads: int | None = None
    warmup_s: float = 0.5
    rounds: int = 5
    round_s: float = 0.4
    pretrained: Pretrained | None = None
    runtimes: tuple[str, ...] = ("torch",)
    exports: Path = Path("results/exports")


def check_imgsz(imgsz: int, stride: int, name: str) -> None:
    """Reject an image size that is not a positive multiple of the model stride.

    Raises:
        ProfileInputError: with the nearest valid sizes.
    """
    if imgsz <= 0 or imgsz % stride:
        lo, hi = max(imgsz // stride * stride, stride), (imgsz // stride + 1) * stride
        near = f"{lo}, {hi}" if lo != hi else f"{hi}"
        raise ProfileInputError(f"imgsz {imgsz} is not a multiple of {name}'s stride {stride}; nearest: {near}")


def profile_steps(
    n_variants: int, settings: ProfileSettings, measured: int | None = None, runtimes: int | None = None
) -> int:
    """How many times `profile_variants` calls its `on_step`.

    A step per variant (its build and count, or its stored record), then a warm-up and `rounds` slots per timed
    variant and runtime in the batch-1 pass and, when the batch is over 1, as many in the batch-N pass. `settings`
    must be resolved (`resolve_settings`); `measured` (the variants timed) defaults to every variant, `runtimes` (the
    runtimes timed) to those of `settings`.
    """
    measured = n_variants if measured is None else measured
    runtimes = len(dict.fromkeys(settings.runtimes)) if runtimes is None else runtimes
    passes = 2 if (settings.batch or 1) > 1 else 1
    timing = passes * measured * runtimes * (1 + settings.rounds) if settings.latency else 0
    from .train_step import train_step_steps

    return n_variants + timing + train_step_steps(measured, settings)


PROFILE_KEY_FORMAT = 2  # bump when what the key hashes, or what a stored count means, changes (2: gflops_published
# gained thop's nn.Upsample term)


def profile_key(
    *,
    yaml_sha256: str,
    nc: int | None,
    imgsz: int,
    batch: int | None,
    device_name: str,
    threads: int | None,
    dtype: str,
    latency: bool,
    runtimes: Sequence[str],
    pretrained_sha256: str | None,
    torch_version: str,
    ultralytics_version: str,
    train_step: bool = False,
    build_env: dict[str, str] | None = None,
) -> str:
    """The identity of a profile record: 20 hex characters of a SHA-256, like `yoloab.training.run_key`.

    It hashes everything that changes the measurement: the model definition (`yoloab.training.model_hash`, the hash
    a run record stores, so latency joins runs of the same yaml), class count, input size, batch, device, CPU
    threads, dtype, whether latency was measured, the runtimes (their order does not matter), the seeding
    checkpoint and the torch and Ultralytics versions. The variant's name is not part of it: the same yaml under
    another name is the same measurement.
    """
    payload = {
        "format": PROFILE_KEY_FORMAT,
        "model": yaml_sha256,
        "nc": nc,
        "imgsz": imgsz,
        "batch": batch,
        "device_name": device_name,
        "threads": threads,
        "dtype": dtype,
        "latency": latency,
        "runtimes": sorted(set(runtimes)),
        "pretrained": pretrained_sha256,
        "torch": torch_version,
        "ultralytics": ultralytics_version,
    }
    if train_step:  # only then: the keys of records measured without it stay what they were
        payload["train_step"] = True
    if build_env:  # likewise; `yoloab.registry.BUILD_ENV`
        payload["build_env"] = build_env
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def reusable(record: dict[str, Any] | None, key: str, latency: bool, runtimes: Sequence[str]) -> bool:
    """Whether a stored record stands for a new measurement: same key and, when latency is asked, every latency."""
    if not record or record.get("kind") != "profile" or record.get("key") != key:
        return False
    suffixes = ["" if rt == "torch" else f"_{rt}" for rt in runtimes]
    return not latency or all(record.get(f"latency_ms{s}") is not None for s in suffixes)


def resolve_settings(settings: ProfileSettings) -> ProfileSettings:
    """A copy with the device-dependent defaults filled in: batch (1 on CPU, 8 on CUDA) and threads (1 on CPU).

    On CUDA `threads` stays as given: it only sets the deployed runtimes' CPU threads there.

    Raises:
        ProfileInputError: a bad device, or a batch or thread count below 1.
    """
    device = resolve_device(settings.device)
    if settings.batch is not None and settings.batch < 1:
        raise ProfileInputError(f"--batch {settings.batch} must be at least 1 (or left out: 1 on CPU, 8 on CUDA)")
    if settings.threads is not None and settings.threads < 1:
        raise ProfileInputError(f"--threads {settings.threads} must be at least 1 (or left out: 1 on CPU)")
    cpu = device.type == "cpu"
    batch = settings.batch if settings.batch is not None else (1 if cpu else 8)
    threads = settings.threads if settings.threads is not None else (1 if cpu else None)
    return dataclasses.replace(settings, batch=batch, threads=threads)


def _when(records: list[dict[str, Any]], field: str) -> str:
    times = sorted({str(r.get(field) or "?").replace("T", " ").replace("+00:00", " UTC") for r in records})
    return times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"


def reuse_note(records: list[dict[str, Any]]) -> str | None:
    """The lines that say which records were reused or timed again rather than measured, and how to redo them."""
    reused = [r for r in records if r.get("reused")]
    retimed = [r for r in records if not r.get("reused") and r.get("retimed")]
    lines = []
    if reused:
        n = len(reused)
        them = "them" if n > 1 else "it"
        lines.append(
            f"reused {n} stored record{'s' * (n > 1)} (measured {_when(reused, 'profiled')}); "
            f"--reprofile to measure {them} again"
        )
    if retimed:
        n = len(retimed)
        lines.append(
            f"timed {n} stored record{'s' * (n > 1)} again (counted {_when(retimed, 'counted')}) with the rows "
            "measured now: a comparison group is timed in one session"
        )
    return "\n".join(lines) or None


def _prepare(model: nn.Module, device: torch.device, half: bool) -> nn.Module:
    model = copy.deepcopy(model).to(device).eval()
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    return model.half() if half else model.float()


def peak_memory_mb(
    model: nn.Module, unfused: nn.Module, device: torch.device, imgsz: int, batch: int, half: bool
) -> tuple[float, float]:
    """Peak CUDA memory (MiB) of one inference forward (fused model) and one training step (unfused model)."""
    dtype = torch.float16 if half else torch.float32
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        model(torch.zeros(1, 3, imgsz, imgsz, device=device, dtype=dtype))
    infer = torch.cuda.max_memory_allocated(device) / 2**20
    trainable = copy.deepcopy(unfused).to(device).float().train()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    with torch.autocast("cuda", enabled=half):
        out = trainable(torch.zeros(batch, 3, imgsz, imgsz, device=device))
    # the sum of the raw head outputs stands in for the loss: same activations kept, same backward graph
    loss = sum(t.float().mean() for t in (out.values() if isinstance(out, dict) else out) if torch.is_tensor(t))
    loss.backward()
    train = torch.cuda.max_memory_allocated(device) / 2**20
    del trainable, out, loss
    return infer, train


# --------------------------------------------------------------------------------------------------------------------
# the profile run

MIN_STRIDE = 32
"""The smallest stride `model_stride` reports: an image size that is not a multiple of it is refused before a build."""


@dataclass
class ProfilePlan:
    """What a profile command will do, decided from the yaml files and the store before any model is built.

    Attributes:
        settings: the resolved settings.
        device: the profile device.
        env: the environment fields every measured record gets (device, dtype, threads, versions).
        runtimes: the runtimes to time, in order (`yoloab.deploy.check_runtimes`).
        skipped: runtimes asked for but skipped here, with the reason.
        keys: variant name -> profile key.
        hashes: variant name -> `model_hash`.
        ncs: variant name -> class count the model is built with.
        reused: variant name -> stored record reused whole: counts and, when asked, its timing.
        retimed: variant name -> stored record whose counts are reused and whose timing is redone with its group.
        rows: the variants asked for (a name listed twice is two rows).
        reused_rows: how many of those rows are reused whole.
        builds: how many models are built (one per variant name not reused whole).
        steps: how many times `profile_variants` calls `on_step` (`profile_steps`).
    """

    settings: ProfileSettings
    device: torch.device
    env: dict[str, Any]
    runtimes: list[str]
    skipped: dict[str, str]
    keys: dict[str, str]
    hashes: dict[str, str]
    ncs: dict[str, int | None]
    reused: dict[str, dict[str, Any]]
    retimed: dict[str, dict[str, Any]]
    rows: int
    reused_rows: int
    builds: int
    steps: int

    @property
    def timing_step_s(self) -> float:
        """A first guess of one timing step's seconds, before any is measured: warm-ups and slots alike."""
        s = self.settings
        return (s.warmup_s + s.rounds * s.round_s) / (1 + s.rounds)


def comparison_group(variant: Variant, nc: int | None) -> tuple[str, int | None]:
    """What tells comparison groups apart within one profile command (the other settings are the command's own)."""
    return variant.base, nc


def plan_profile(
    variants: list[Variant],
    settings: ProfileSettings,
    stored: Callable[[str], dict[str, Any] | None] | None = None,
) -> ProfilePlan:
    """Keys, store look-ups and the timing-session rule (module docstring), without building a model.

    Raises:
        YoloabError: a bad device, class count, runtime or `--half` off CUDA.
    """
    settings = resolve_settings(settings)
    device = resolve_device(settings.device)
    if settings.nc is not None and settings.nc < 1:
        raise ProfileInputError(f"--nc {settings.nc} must be at least 1 (or left out: the yaml's nc)")
    if settings.half and device.type != "cuda":
        raise ProfileInputError("--half needs a CUDA device; fp16 convolutions on CPU are not what papers report")
    runtimes, skipped = check_runtimes(settings.runtimes, device)
    env = {
        "device": str(device),
        "device_name": device_name(device),
        "dtype": "float16" if settings.half else "float32",
        "threads": settings.threads if device.type == "cpu" else None,
        "count_threads": settings.threads or 1,
        "torch": torch.__version__,
        "ultralytics": ultralytics_version(),
        "yoloab": __version__,
    }
    hashes = {v.name: model_hash(v) for v in variants}
    ncs = {v.name: settings.nc if settings.nc is not None else v.config.get("nc") for v in variants}
    keys = {
        v.name: profile_key(
            yaml_sha256=hashes[v.name],
            nc=ncs[v.name],
            imgsz=settings.imgsz,
            batch=settings.batch if settings.latency or settings.train_step else None,
            device_name=env["device_name"],
            threads=env["threads"],
            dtype=env["dtype"],
            latency=settings.latency,
            runtimes=settings.runtimes,
            pretrained_sha256=settings.pretrained.sha256 if settings.pretrained else None,
            torch_version=env["torch"],
            ultralytics_version=env["ultralytics"],
            train_step=settings.train_step,
            build_env=build_environment(),
        )
        for v in variants
    }
    found: dict[str, dict[str, Any]] = {}
    for v in variants if stored is not None else []:
        record = stored(keys[v.name])
        if reusable(record, keys[v.name], settings.latency, runtimes):  # a skipped runtime has no latency here
            found[v.name] = record
    reused, retimed = dict(found), {}
    if settings.latency or settings.train_step:
        groups: dict[tuple[str, int | None], list[str]] = {}
        for v in variants:
            groups.setdefault(comparison_group(v, ncs[v.name]), []).append(v.name)
        for names in groups.values():
            sessions = {found[n].get("timing_session") if n in found else None for n in names}
            if len(sessions) > 1 or None in sessions:  # timed now, in several sessions, or before sessions existed
                for n in names:
                    if n in reused:
                        retimed[n] = reused.pop(n)
    timed = {v.name for v in variants if v.name not in reused}
    steps = profile_steps(len(variants), settings, len(timed), len(runtimes))
    n_reused = sum(v.name in reused for v in variants)
    return ProfilePlan(
        settings, device, env, runtimes, skipped, keys, hashes, ncs, reused, retimed, len(variants), n_reused,
        len(timed), steps,
    )  # fmt: skip


class StepClock:
    """The time a profile has left, from its first measured step on (Rich's own estimate waits for more samples).

    The work comes in order: the builds (`built`), then the rows' steps (`step`): reused rows (free), one count step
    per other row, then timing steps (warm-ups and interleaved slots). Each kind is priced by the mean of its own so
    far; a count step not yet seen costs a build, a timing step not yet seen what the settings say
    (`ProfilePlan.timing_step_s`).

    Args:
        plan: the profile's plan.
        clock: seconds, monotonic.
    """

    def __init__(self, plan: ProfilePlan, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = plan.steps
        self.builds = plan.builds
        self.free = plan.reused_rows
        self.counts = plan.rows
        self.prior = plan.timing_step_s
        self.done = 0
        self._clock = clock
        self._last = clock()
        self._spent = {"build": [0.0, 0], "count": [0.0, 0], "timing": [0.0, 0]}

    def _add(self, kind: str | None) -> None:
        now = self._clock()
        if kind is not None:
            self._spent[kind][0] += now - self._last
            self._spent[kind][1] += 1
        self._last = now

    def set_total(self, total: int) -> None:
        """The plan changed (a runtime's batch-N artifact failed parity and is not timed at batch N)."""
        self.total = total

    def built(self) -> None:
        """One model is built."""
        self._add("build")

    def step(self) -> None:
        """One step (`profile_variants`' `on_step`) is done."""
        self._add(None if self.done < self.free else "count" if self.done < self.counts else "timing")
        self.done += 1

    def remaining(self) -> float | None:
        """Seconds left, counted down since the last step; None until something that costs time is measured."""
        (b_s, b_n), (c_s, c_n), (t_s, t_n) = (self._spent[k] for k in ("build", "count", "timing"))
        builds_left = max(self.builds - b_n, 0)
        count_left = max(self.counts - max(self.done, self.free), 0)
        timing_left = max(self.total - max(self.done, self.counts), 0)
        per_build = b_s / b_n if b_n else None
        per_count = c_s / c_n if c_n else per_build
        if (builds_left and per_build is None) or (count_left and per_count is None):
            return None
        per_timing = t_s / t_n if t_n else self.prior
        left = builds_left * (per_build or 0.0) + count_left * (per_count or 0.0) + timing_left * per_timing
        return max(left - (self._clock() - self._last), 0.0)


def profile_variants(
    variants: list[Variant],
    settings: ProfileSettings,
    on_step: Callable[[str, dict[str, Any] | None], None] | None = None,
    stored: Callable[[str], dict[str, Any] | None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    plan: ProfilePlan | None = None,
    on_build: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Build and measure every variant, or reuse its stored record; returns one flat record per variant, in order.

    The plan (`plan_profile`, or `plan` as given) comes first, from the yaml files and the store alone: a stored
    record that is `reusable` is returned (a copy named as requested, with `reused: True`) and its model is never
    built; a comparison group that would mix timing sessions is timed again whole (module docstring). `on_plan(total)`
    is told how many times `on_step` will be called before any model is built (again if it changes: a runtime whose
    batch-N artifact failed parity is not timed at batch N). `on_step` gets a description and, once a variant is
    counted or reused, its record so far (latency comes after every count); reused rows come first. Every model is
    built (`on_build(name)` after each) before the first step, so that a variant that cannot be built, or an image
    size or memory that does not fit it, is refused before anything is counted or printed.

    Raises:
        YoloabError: a bad device, image size or variant.
    """
    for v in variants:  # every model's stride is at least 32: the common mistake costs no build
        check_imgsz(settings.imgsz, MIN_STRIDE, v.name)
    plan = plan or plan_profile(variants, settings, stored)
    settings, device, env = plan.settings, plan.device, plan.env
    for v in variants:
        stride = plan.reused.get(v.name, {}).get("stride")
        if stride:
            check_imgsz(settings.imgsz, stride, v.name)
    if on_plan is not None:
        on_plan(plan.steps)
    batch = settings.batch if settings.latency or settings.train_step else None
    with torch_threads(env["count_threads"]):
        models, transfers = _build_all(variants, plan, on_build)
        rows, deployed = _count_rows(variants, plan, models, transfers, on_step)
    records = [rows[i] for i in range(len(variants))]
    measured = [r for r in records if not r.get("reused")]
    for record in measured:
        record.update({f"export_{rt}": why for rt, why in plan.skipped.items()})
    session = timing_session_id() if (settings.latency or settings.train_step) and measured else None
    if settings.train_step and measured:  # before the unfused models are fused in place below
        from .train_step import measure_train_steps

        with torch_threads(env["threads"]):
            measure_train_steps(models, measured, device, settings, on_step)
    if settings.latency and measured:
        if device.type != "cpu":
            torch.backends.cudnn.benchmark = True
        with torch_threads(env["threads"]):  # CUDA: None, the host threads only launch kernels
            _measure_timing(models, measured, plan, deployed, on_step, on_plan)
    else:
        # nothing needs the unfused models any more: fuse them in place rather than copies (same count, no deepcopy);
        # after the loop, since a variant listed twice shares one model, and fuse() skips a model already fused
        with torch_threads(env["count_threads"]):
            for record in measured:
                model = models[record["variant"]]
                record.update(
                    deployed_counts(model.fuse(verbose=False) if hasattr(model, "fuse") else model, settings.imgsz)
                )
    profiled = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for record in measured:
        retimed = record["variant"] in plan.retimed  # said outright: `counted` and `profiled` may fall in one second
        counted = record["counted"] if retimed else profiled
        record.update(env, batch=batch, profiled=profiled, counted=counted, timing_session=session, retimed=retimed)
    return records


def _build_all(
    variants: list[Variant], plan: ProfilePlan, on_build: Callable[[str], None] | None
) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """Build every model the plan measures or times again (once per name), checked and seeded.

    Returns:
        The models and their seeding-checkpoint record fields, by variant name.
    """
    todo = list(dict.fromkeys(v.name for v in variants if v.name not in plan.reused))
    source = None
    if plan.settings.pretrained is not None and todo:
        from .transfer import load_source

        source = load_source(plan.settings.pretrained)
    by_name = {v.name: v for v in variants}
    models: dict[str, nn.Module] = {}
    transfers: dict[str, dict[str, Any]] = {}
    for name in todo:
        models[name], transfers[name] = _build_checked(by_name[name], plan, source)
        if on_build is not None:
            on_build(name)
    return models, transfers


def _count_rows(
    variants: list[Variant],
    plan: ProfilePlan,
    models: dict[str, nn.Module],
    transfers: dict[str, dict[str, Any]],
    on_step: Callable[[str, dict[str, Any] | None], None] | None,
) -> tuple[dict[int, dict[str, Any]], dict[str, dict[str, Deployed]]]:
    """Reused rows first, then each other row counted (or its counts taken from the store) and exported.

    Returns:
        Records by variant index, and the opened runtime artifacts by variant name.
    """
    settings, device = plan.settings, plan.device
    rows: dict[int, dict[str, Any]] = {}
    for i, v in enumerate(variants):
        if v.name in plan.reused:
            record = {**plan.reused[v.name], "variant": v.name, "base": v.base, "module": v.module}
            record.update(placement=v.placement, reused=True)  # named as asked; the stored file is left as it is
            rows[i] = record
            if on_step is not None:
                on_step(f"reused {v.name}", record)
    deployed: dict[str, dict[str, Deployed]] = {}
    others = [r for r in plan.runtimes if r != "torch"]
    rt_threads = settings.threads or os.cpu_count() or 1
    for i, v in enumerate(variants):
        if i in rows:
            continue
        model = models[v.name]
        if v.name in plan.retimed:  # counts stored; timed again with its group
            record = {**plan.retimed[v.name], "variant": v.name, "base": v.base, "module": v.module}
            record.update(placement=v.placement, stride=model_stride(model))
            record["counted"] = record.get("counted") or record.get("profiled")
        else:
            record = {
                "kind": "profile",
                "key": plan.keys[v.name],
                "variant": v.name,
                "base": v.base,
                "module": v.module,
                "placement": v.placement,
                "yaml_sha256": plan.hashes[v.name],
                "nc": model.yaml.get("nc"),
                "imgsz": settings.imgsz,
                "stride": model_stride(model),
                "params": count_params(model),
                **flop_counts(model, settings.imgsz),
                **recorded_attributes(model),
            }
            record.update(transfers[v.name])
            record.update(dict.fromkeys(DEPLOYED_KEYS))  # counted later, once nothing needs the unfused model
            record["fuse_note"] = fuse_note(model)
        batch = settings.batch if settings.latency else None
        fields, deployed[v.name] = deploy_variant(
            model, v.name, others, settings.exports, settings.imgsz, batch, device, rt_threads, settings.half
        )
        record.update(fields, runtimes=plan.runtimes)
        rows[i] = record
        if on_step is not None:
            on_step(f"{'timing again' if v.name in plan.retimed else 'counted'} {v.name}", record)
    return rows, deployed


def _build_checked(variant: Variant, plan: ProfilePlan, source: nn.Module | None) -> tuple[nn.Module, dict[str, Any]]:
    """Build a variant, check the image size against its stride and its memory, and seed or calibrate it.

    Returns:
        The model and its record fields of the seeding checkpoint (`yoloab.transfer`; empty without one).

    Raises:
        YoloabError: the variant cannot be built, or the image size or memory does not fit it.
    """
    settings = plan.settings
    model = build_seeded(variant, nc=settings.nc)
    check_imgsz(settings.imgsz, model_stride(model), variant.name)
    if settings.latency:
        from .memory import check_memory

        check_memory({variant.name: model}, plan.device, settings)
    if source is not None:
        from .transfer import transfer_into

        done = transfer_into(model, source, variant, Path(settings.pretrained.path).name)
        return model, {"pretrained": settings.pretrained.record(), **done.record()}
    if plan.runtimes != ["torch"]:  # parity needs outputs that depend on the input; see calibrate_batchnorm
        calibrate_batchnorm(model, settings.imgsz)
    return model, {}


def _measure_timing(
    models: dict[str, nn.Module],
    records: list[dict[str, Any]],
    plan: ProfilePlan,
    deployed: dict[str, dict[str, Deployed]],
    on_step: Callable[[str, dict[str, Any] | None], None] | None,
    on_plan: Callable[[int], None] | None,
) -> None:
    """Time every row of `records` in one interleaved pass per batch size, and fill in their timing fields."""
    settings, device, n_counted = plan.settings, plan.device, plan.rows
    dtype = torch.float16 if settings.half else torch.float32
    prepared = {name: _prepare(m, device, half=False) for name, m in models.items()}
    for record in records:  # in float: the counts must not depend on the timed dtype
        if record["variant"] not in plan.retimed:  # a retimed row's counts are the stored ones
            record.update(deployed_counts(prepared[record["variant"]], settings.imgsz))
    if settings.half:
        prepared = {name: m.half() for name, m in prepared.items()}
    one = torch.zeros(1, 3, settings.imgsz, settings.imgsz, device=device, dtype=dtype)
    many = torch.zeros(settings.batch, 3, settings.imgsz, settings.imgsz, device=device, dtype=dtype)

    def runner(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode():
                return model(x)

        return run

    torch_on = "torch" in settings.runtimes
    singles = {(n, "torch"): runner(m, one) for n, m in prepared.items() if torch_on}
    batches = {(n, "torch"): runner(m, many) for n, m in prepared.items() if torch_on}
    runtime_runners(deployed, one.float().cpu().numpy(), many.float().cpu().numpy(), singles, batches)
    if settings.batch == 1:
        batches = {}  # the batch-1 pass already timed exactly this; throughput comes from it
    from .train_step import train_step_steps

    steps = n_counted + (len(singles) + len(batches)) * (1 + settings.rounds) + train_step_steps(len(models), settings)
    if on_plan is not None and steps != plan.steps:
        on_plan(steps)

    def step(what: str) -> Callable[[Hashable], None] | None:
        if on_step is None:
            return None
        # runners are keyed (variant, runtime): the bar reads `latency yolov8n-ADown-article (torch)`
        return lambda key: on_step(f"{what} {key[0]} ({key[1]})" if isinstance(key, tuple) else f"{what} {key}", None)

    # one interleaved pass per batch size holds every row timed now: they share the machine's state and the session
    single = interleaved_samples(singles, device, settings, step("latency"))
    batched = interleaved_samples(batches, device, settings, step(f"batch {settings.batch}"))
    if settings.batch == 1:
        batched = single
    for record in records:
        name = record["variant"]
        for rt in dict.fromkeys(["torch", *record["runtimes"]]):  # torch's keys stay, None when not timed
            suffix = "" if rt == "torch" else f"_{rt}"
            samples = single.get((name, rt))
            med = iqr = p95 = p99 = None
            if samples:
                med, iqr = (t * 1e3 for t in median_iqr(samples))
                p95, p99 = (t * 1e3 for t in p95_p99(samples))
            record[f"latency_ms{suffix}"], record[f"latency_iqr_ms{suffix}"] = med, iqr
            record[f"latency_p95_ms{suffix}"], record[f"latency_p99_ms{suffix}"] = p95, p99
            many_samples = batched.get((name, rt))
            per_batch = median_iqr(many_samples)[0] if many_samples else None
            record[f"throughput_ips{suffix}"] = settings.batch / per_batch if per_batch else None
        if device.type == "cuda" and torch_on:
            record["mem_infer_mb"], record["mem_train_mb"] = peak_memory_mb(
                prepared[name], models[name], device, settings.imgsz, settings.batch, settings.half
            )
        else:
            record["mem_infer_mb"] = record["mem_train_mb"] = None
