"""Measurements of built variants: parameters, FLOP counts (`yoloab.flops`), latency, throughput and memory.

- FLOPs: `gflops` (Ultralytics' thop), `gflops_aten` (FlopCounterMode), `gmacs`, each as trained and after `fuse()`
  (`*_fused`), and `gflops_published` (the fused model as published tables count it: no attention matmuls) with
  `attention_note` where those matmuls are over 1% of the fused count; see `yoloab.flops`.
- Latency: eval mode, fused, inference mode, fixed input, warm-up by time, median and IQR over interleaved rounds
  (CUDA events and `cudnn.benchmark` on GPU); throughput at batch N (at batch 1: from the latency pass); peak CUDA
  memory for inference and one training step.
- CPU defaults: one thread and batch 1, since on a shared machine more threads time the scheduler, not the model.
- Identity: each record has a `key` (`profile_key`) over everything that changes the measurement; a stored record
  with the same key is reused instead of measured again (`profile_variants`' `stored`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import platform
import statistics
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
from .errors import ProfileInputError
from .flops import DEPLOYED_KEYS, deployed_counts, flop_counts, fuse_note, model_stride
from .registry import recorded_attributes
from .training import model_hash
from .transfer import Pretrained, transfer_all
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
    nc: int | None = None
    threads: int | None = None
    warmup_s: float = 0.5
    rounds: int = 5
    round_s: float = 0.4
    pretrained: Pretrained | None = None
    runtimes: tuple[str, ...] = ("torch",)
    exports: Path = Path("results/exports")


def resolve_device(spec: str) -> torch.device:
    """Turn `auto|cpu|cuda|cuda:N` into a device, checking that it exists.

    Raises:
        ProfileInputError: unknown spec or a CUDA device that is not present.
    """
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ProfileInputError(f"unknown device '{spec}'; expected auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if n == 0 or (device.index or 0) >= n:
            raise ProfileInputError(f"device '{spec}' is not available; this machine has {n} CUDA device(s)")
    elif device.type != "cpu":
        raise ProfileInputError(f"unsupported device '{spec}'; expected auto, cpu, cuda or cuda:N")
    return device


def check_imgsz(imgsz: int, stride: int, name: str) -> None:
    """Reject an image size that is not a positive multiple of the model stride.

    Raises:
        ProfileInputError: with the nearest valid sizes.
    """
    if imgsz <= 0 or imgsz % stride:
        lo, hi = max(imgsz // stride * stride, stride), (imgsz // stride + 1) * stride
        near = f"{lo}, {hi}" if lo != hi else f"{hi}"
        raise ProfileInputError(f"imgsz {imgsz} is not a multiple of {name}'s stride {stride}; nearest: {near}")


# --------------------------------------------------------------------------------------------------------------------
# timing


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


def _quantiles(samples: list[float]) -> tuple[float, float]:
    q1, med, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return med, q3 - q1


def interleaved_latency(
    runners: dict[Hashable, Callable[[], Any]],
    device: torch.device,
    settings: ProfileSettings,
    on_step: Callable[[Hashable], None] | None = None,
) -> dict[Hashable, tuple[float, float]]:
    """Time every runner in interleaved rounds after a timed warm-up; `on_step(name)` after each warm-up and slot.

    Returns:
        Median and IQR in seconds per runner.
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
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(settings.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate: no variant always runs first
        for name in order:
            k = max(3, int(settings.round_s / per_iter[name]))
            samples[name].extend(timer(runners[name]) for _ in range(k))
            if on_step is not None:
                on_step(name)
    return {name: _quantiles(s) for name, s in samples.items()}


def profile_steps(n_variants: int, settings: ProfileSettings, measured: int | None = None) -> int:
    """How many times `profile_variants` calls its `on_step` with the torch runtime alone.

    A count step per variant (measured or reused), then a warm-up and `rounds` slots per measured variant in the
    batch-1 pass and, when the batch is over 1, as many in the batch-N pass. `settings` must be resolved
    (`resolve_settings`); `measured` defaults to every variant.
    """
    measured = n_variants if measured is None else measured
    passes = 2 if (settings.batch or 1) > 1 else 1
    timing = passes * measured * (1 + settings.rounds) if settings.latency else 0
    return n_variants + timing


PROFILE_KEY_FORMAT = 1  # bump when what the key hashes changes


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


def reuse_note(records: list[dict[str, Any]]) -> str | None:
    """The line that says which records were reused rather than measured, and how to measure them again."""
    reused = [r for r in records if r.get("reused")]
    if not reused:
        return None
    times = sorted({str(r.get("profiled") or "?").replace("T", " ").replace("+00:00", " UTC") for r in reused})
    when = times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"
    n = len(reused)
    them = "them" if n > 1 else "it"
    return f"reused {n} stored record{'s' * (n > 1)} (measured {when}); --reprofile to measure {them} again"


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


def device_name(device: torch.device) -> str:
    """A readable name of the device."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------------------------------------------------
# the profile run


def profile_variants(
    variants: list[Variant],
    settings: ProfileSettings,
    on_step: Callable[[str, dict[str, Any] | None], None] | None = None,
    stored: Callable[[str], dict[str, Any] | None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Build and measure every variant, or reuse its stored record; returns one flat record per variant, in order.

    Everything that can be rejected (device, image size, builds) is checked before any timing starts. Each variant's
    key (`profile_key`) is computed from the built model; where `stored(key)` gives a record that is `reusable`, that
    record is returned (a copy named as requested, with `reused: True`) and the variant is not measured; the others
    are measured, their latency interleaved among themselves. `on_plan(total)` is told how many times `on_step` will
    be called, once that is known (again if it changes: a runtime whose batch-N artifact failed parity is not timed
    at batch N); `on_step` gets a description and, once a variant is counted or reused, its record so far (latency
    comes after every count).

    Raises:
        YoloabError: a bad device, image size or variant.
    """
    settings = resolve_settings(settings)
    device = resolve_device(settings.device)
    if settings.nc is not None and settings.nc < 1:
        raise ProfileInputError(f"--nc {settings.nc} must be at least 1 (or left out: the yaml's nc)")
    if settings.half and device.type != "cuda":
        raise ProfileInputError("--half needs a CUDA device; fp16 convolutions on CPU are not what papers report")
    runtimes, skipped = check_runtimes(settings.runtimes, device)
    models = {v.name: build_seeded(v, nc=settings.nc) for v in variants}  # exports are cached by their weights
    for name, model in models.items():
        check_imgsz(settings.imgsz, model_stride(model), name)

    env = {
        "device": str(device),
        "device_name": device_name(device),
        "dtype": "float16" if settings.half else "float32",
        "threads": settings.threads if device.type == "cpu" else None,
        "torch": torch.__version__,
        "ultralytics": ultralytics_version(),
        "yoloab": __version__,
    }
    batch = settings.batch if settings.latency else None
    hashes = {v.name: model_hash(v) for v in variants}
    keys = {
        v.name: profile_key(
            yaml_sha256=hashes[v.name],
            nc=models[v.name].yaml.get("nc"),
            imgsz=settings.imgsz,
            batch=batch,
            device_name=env["device_name"],
            threads=env["threads"],
            dtype=env["dtype"],
            latency=settings.latency,
            runtimes=settings.runtimes,
            pretrained_sha256=settings.pretrained.sha256 if settings.pretrained else None,
            torch_version=env["torch"],
            ultralytics_version=env["ultralytics"],
        )
        for v in variants
    }
    reused: dict[str, dict[str, Any]] = {}
    for v in variants if stored is not None else []:
        record = stored(keys[v.name])
        if reusable(record, keys[v.name], settings.latency, runtimes):  # a skipped runtime has no latency here
            reused[v.name] = record
    todo = [v for v in variants if v.name not in reused]
    measured = {v.name: models[v.name] for v in todo}
    if on_plan is not None:
        on_plan(profile_steps(len(variants), settings, len(measured)))
    if settings.latency:
        from .memory import check_memory

        check_memory(measured, device, settings)

    transfers: dict[str, dict[str, Any]] = {}
    if settings.pretrained is not None:
        transfers = transfer_all(measured, todo, settings.pretrained)
    elif runtimes != ["torch"]:  # parity needs outputs that depend on the input; see calibrate_batchnorm
        for model in measured.values():
            calibrate_batchnorm(model, settings.imgsz)

    if device.type != "cpu":
        torch.backends.cudnn.benchmark = True
    records, deployed = [], {}
    for v in variants:
        if v.name in reused:
            record = {**reused[v.name], "variant": v.name, "base": v.base, "module": v.module}
            record.update(placement=v.placement, reused=True)  # named as asked; the stored file is left as it is
            records.append(record)
            if on_step is not None:
                on_step(f"reused {v.name}", record)
            continue
        model = models[v.name]
        record: dict[str, Any] = {
            "kind": "profile",
            "key": keys[v.name],
            "variant": v.name,
            "base": v.base,
            "module": v.module,
            "placement": v.placement,
            "yaml_sha256": hashes[v.name],
            "nc": model.yaml.get("nc"),
            "imgsz": settings.imgsz,
            "params": count_params(model),
            **flop_counts(model, settings.imgsz),
            **recorded_attributes(model),
        }
        record.update(transfers.get(v.name, {}))
        record.update(dict.fromkeys(DEPLOYED_KEYS))  # counted below, once nothing needs the unfused model
        record["fuse_note"] = fuse_note(model)
        others = [r for r in runtimes if r != "torch"]
        rt_threads = settings.threads or os.cpu_count() or 1
        fields, deployed[v.name] = deploy_variant(
            model, v.name, others, settings.exports, settings.imgsz, batch, device, rt_threads, settings.half
        )
        record.update(fields, runtimes=runtimes, **{f"export_{rt}": why for rt, why in skipped.items()})
        records.append(record)
        if on_step is not None:
            on_step(f"counted {v.name}", record)

    fresh = [r for r in records if not r.get("reused")]
    if settings.latency and fresh:
        before = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(settings.threads)
        try:
            _measure_timing(measured, fresh, device, settings, deployed, on_step, on_plan, len(records))
        finally:
            torch.set_num_threads(before)  # process-wide: the caller's later work keeps its own count
    else:
        # nothing needs the unfused models any more: fuse them in place rather than copies (same count, no deepcopy);
        # after the loop, since a variant listed twice shares one model, and fuse() skips a model already fused
        for record in fresh:
            model = models[record["variant"]]
            record.update(
                deployed_counts(model.fuse(verbose=False) if hasattr(model, "fuse") else model, settings.imgsz)
            )
    profiled = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for record in fresh:
        record.update(env, batch=batch, profiled=profiled)
    return records


def _measure_timing(
    models: dict[str, nn.Module],
    records: list[dict[str, Any]],
    device: torch.device,
    settings: ProfileSettings,
    deployed: dict[str, dict[str, Deployed]],
    on_step: Callable[[str, dict[str, Any] | None], None] | None,
    on_plan: Callable[[int], None] | None,
    n_counted: int,
) -> None:
    dtype = torch.float16 if settings.half else torch.float32
    prepared = {name: _prepare(m, device, half=False) for name, m in models.items()}
    for record in records:  # in float: the counts must not depend on the timed dtype
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
    steps = n_counted + (len(singles) + len(batches)) * (1 + settings.rounds)
    if on_plan is not None and steps != profile_steps(n_counted, settings, len(models)):
        on_plan(steps)

    def step(what: str) -> Callable[[Hashable], None] | None:
        if on_step is None:
            return None
        # runners are keyed (variant, runtime): the bar reads `latency yolov8n-ADown-article (torch)`
        return lambda key: on_step(f"{what} {key[0]} ({key[1]})" if isinstance(key, tuple) else f"{what} {key}", None)

    latency = interleaved_latency(singles, device, settings, step("latency"))
    batched = interleaved_latency(batches, device, settings, step(f"batch {settings.batch}"))
    if settings.batch == 1:
        batched = latency
    for record in records:
        name = record["variant"]
        for rt in dict.fromkeys(["torch", *record["runtimes"]]):  # torch's keys stay, None when not timed
            suffix = "" if rt == "torch" else f"_{rt}"
            med, iqr = (t * 1e3 for t in latency[(name, rt)]) if (name, rt) in latency else (None, None)
            record[f"latency_ms{suffix}"], record[f"latency_iqr_ms{suffix}"] = med, iqr
            per_batch = batched.get((name, rt), (None,))[0]
            record[f"throughput_ips{suffix}"] = settings.batch / per_batch if per_batch else None
        if device.type == "cuda" and torch_on:
            record["mem_infer_mb"], record["mem_train_mb"] = peak_memory_mb(
                prepared[name], models[name], device, settings.imgsz, settings.batch, settings.half
            )
        else:
            record["mem_infer_mb"] = record["mem_train_mb"] = None
