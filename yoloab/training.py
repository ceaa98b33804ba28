"""One training run of a sweep, through Ultralytics' own trainer, resumable and isolated.

A run is a variant trained on a dataset with given settings and seed. It is identified by its key, a hash over what
decides its result: the variant's model definition (comments and the yoloab header left out), the dataset identity,
the settings (epochs, imgsz, batch, passed-through trainer arguments) and the seed. The device, the worker count and
the sweep's name are left out: they decide where a run trains, not what it learns.

Resuming: Ultralytics writes `weights/last.pt` after every epoch (not atomically). After each save yoloab copies it
atomically to `weights/last.safe.pt`, so a run killed at any point restarts from the last whole epoch: from
`last.pt` when it loads, else from the safe copy. A run whose last saved epoch is its final one (killed after
Ultralytics' final step stripped `last.pt`, or between the final save and that step) is not trained again: its
`best.pt` is validated, as Ultralytics' final step would have. A `best.pt` that cannot be read then fails the run,
saying so, rather than validating another checkpoint in its place.

`train_run` never writes the results store: it returns the record, and the caller (the sweep driver, whatever the
executor) stores it. So local, multi-GPU and Ray sweeps skip, resume and record failures the same way.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import struct
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from ._ultralytics import (
    attach_box_loss,
    capture_val_stats,
    check_train_values,
    output_to,
    safe_loading,
    trainer_defaults,
    ultralytics_version,
)
from .callbacks import add_callbacks
from .datasets import Dataset
from .errors import SweepInputError, SweepInterrupted, YoloabError, YoloabWarning, did_you_mean, os_error_in_chain
from .hashing import model_hash
from .losses import DEFAULT_LOSS, get_loss
from .results import VAL_STATS_NAME, ValStats, read_epochs
from .safepaths import inside, tree_inside
from .transfer import Pretrained, seeded_model
from .variants import Variant, build, copy_atomic, to_yaml, write_atomic

FLOPS_IMGSZ = 640  # the input size papers quote GFLOPs at, whatever size a sweep trains at
KEY_FORMAT = 1  # bump when what the key hashes changes
# Arguments yoloab sets itself; each has its own option or is fixed by the results layout.
RESERVED = {
    "data": "--dataset",
    "epochs": "--epochs",
    "imgsz": "--imgsz",
    "batch": "--batch",
    "seed": "--seed",
    "device": "--device",
    "workers": "--workers",
    "project": "--results",
    "name": "--results",
    "exist_ok": "--results",
    "resume": "re-running the sweep",
    "model": "--model / YAML",
    "pretrained": "--pretrained",
    "mode": None,
    "task": None,
}
# Trainer arguments that change where or how visibly a run trains, not what it learns: left out of the run key.
UNKEYED = {"verbose", "plots", "save_period", "cache", "val", "amp"}
# Starts the error of a run that failed for want of disk space: nothing is wrong with what it saved, so the next
# sweep resumes it from its last intact checkpoint instead of training it from scratch (`yoloab.sweep`).
DISK_FULL = "disk full"


@dataclass(frozen=True)
class TrainSettings:
    """Settings shared by every run of a sweep.

    Attributes:
        epochs: training epochs.
        imgsz: training and validation image size.
        batch: batch size.
        workers: dataloader workers (None: Ultralytics' default).
        device: Ultralytics device string (`cpu`, `0`, `0,1`) or None to let Ultralytics choose.
        train_args: any other Ultralytics trainer arguments, passed through.
        verbose: Ultralytics' own lines (epoch tables, progress bars) on the terminal instead of the run's log file.
    """

    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    workers: int | None = None
    device: str | None = None
    train_args: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    def keyed(self) -> dict[str, Any]:
        """The settings that decide a run's result (and so enter its key)."""
        extra = {k: v for k, v in sorted(self.train_args.items()) if k not in UNKEYED}
        return {"epochs": self.epochs, "imgsz": self.imgsz, "batch": self.batch, "train_args": extra}


def parse_train_args(items: list[str] | None) -> dict[str, Any]:
    """Parse repeated `--train KEY=VALUE` options into trainer arguments (values read as yaml scalars).

    Raises:
        SweepInputError: malformed item, unknown trainer argument (with the nearest names), an argument that has
            its own option, or a value Ultralytics' own config checks refuse (`lr0=abc`, `optimizer=Foo`, `lr0=`).
    """
    known = trainer_defaults()
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepInputError(f"--train '{item}' is not KEY=VALUE (e.g. --train optimizer=SGD)")
        if key in RESERVED:
            instead = RESERVED[key]
            raise SweepInputError(
                f"--train {key}=... is set by yoloab" + (f"; use {instead} instead" if instead else "")
            )
        if key not in known:
            raise SweepInputError(f"--train: '{key}' is not an Ultralytics trainer argument{did_you_mean(key, known)}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise SweepInputError(f"--train {key}: cannot read value '{raw}'") from err
    check_train_values(out)
    return out


def run_key(
    yaml_sha256: str,
    dataset: Dataset,
    settings: TrainSettings,
    seed: int,
    pretrained: Pretrained | None = None,
    loss: str = DEFAULT_LOSS,
) -> str:
    """The identity of a run: a hash over model definition, dataset, settings, seed, seeding checkpoint and box loss.

    The default loss (Ultralytics' own CIoU) leaves the key as it always was; another loss adds its name, constants
    and source (`yoloab.losses.LossEntry.identity`).
    """
    payload = {
        "format": KEY_FORMAT,
        "model": yaml_sha256,
        "dataset": dataset.identity,
        "settings": settings.keyed(),
        "seed": seed,
    }
    if pretrained is not None:  # only then, so that runs from scratch keep the keys they always had
        payload["pretrained"] = pretrained.sha256
    if loss != DEFAULT_LOSS:  # likewise: runs with Ultralytics' own loss keep their keys
        payload["loss"] = get_loss(loss).identity()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class RunSpec:
    """Everything a worker needs to train one run (picklable, so Ray and subprocess workers can take it).

    Attributes:
        key: run key (see `run_key`).
        sweep: the sweep's name, recorded.
        variant: what to train.
        yaml_sha256: `model_hash` of the variant.
        dataset: the dataset.
        settings: shared settings.
        seed: this run's seed.
        results_dir: the results directory.
        plugins: plugin files a worker process loads before training (not part of the key).
        pretrained: checkpoint whose weights seed the run (its SHA-256 is part of the key), or None.
        loss: the box loss (`yoloab.losses`); `DEFAULT_LOSS` is Ultralytics' own, untouched.
    """

    key: str
    sweep: str
    variant: Variant
    yaml_sha256: str
    dataset: Dataset
    settings: TrainSettings
    seed: int
    results_dir: Path
    plugins: tuple[str, ...] = ()
    pretrained: Pretrained | None = None
    loss: str = DEFAULT_LOSS

    @property
    def name(self) -> str:
        """The variant's name, with `+LOSS` for a box loss other than the default (`yolov8n+SIoU`)."""
        return loss_variant_name(self.variant.name, self.loss)

    @property
    def label(self) -> str:
        """`variant seed N`, for progress lines."""
        return f"{self.name} seed {self.seed}"

    @property
    def run_name(self) -> str:
        """Ultralytics run name: readable, and unique through the key."""
        name = f"{self.name}-{self.dataset.name}-seed{self.seed}-{self.key[:8]}"
        # runs of yoloab <= 0.1.0 carried the data yaml's stem (`-data-`): an interrupted one resumes where it is
        old = f"{self.variant.name}-{self.dataset.yaml.stem}-seed{self.seed}-{self.key[:8]}"
        train = self.results_dir.resolve() / "train"
        if old != name and not (train / name).exists() and (train / old).is_dir():
            return old
        return name

    @property
    def run_dir(self) -> Path:
        """The Ultralytics run directory (only the results directory is resolved: a symlink below it is seen)."""
        return self.results_dir.resolve() / "train" / self.run_name

    @property
    def log_path(self) -> Path:
        """Where Ultralytics' own lines of this run go (unless `--verbose`)."""
        return self.results_dir.resolve() / "train" / f"{self.run_name}.log"

    @property
    def yaml_path(self) -> Path:
        """The exact model yaml this run trains (content-addressed, shared by seeds)."""
        return self.results_dir.resolve() / "variants" / f"{self.variant.name}-{self.yaml_sha256[:8]}.yaml"


def loss_variant_name(variant: str, loss: str) -> str:
    """`yolov8n+SIoU`: the name a run's record and rows carry; the variant's own name for the default loss."""
    return variant if loss == DEFAULT_LOSS else f"{variant}+{loss}"


def plan_runs(
    variants: list[Variant],
    dataset: Dataset,
    settings: TrainSettings,
    seeds: list[int],
    results_dir: str | Path,
    sweep: str = "sweep",
    plugins: tuple[str, ...] = (),
    pretrained: Pretrained | None = None,
    losses: list[str] | None = None,
) -> list[RunSpec]:
    """One run per variant, box loss and seed, seed-major (every variant's first seed finishes before any second).

    Identical runs (same key) are planned once. `losses` are loss names (`yoloab.losses`); none: the default loss.

    Raises:
        SweepInputError: a negative seed, or no epochs.
        UnknownLossError: a loss name not in the catalog.
    """
    if settings.epochs < 1:
        raise SweepInputError(f"--epochs {settings.epochs} must be at least 1")
    if settings.batch < 1 and settings.batch != -1:
        raise SweepInputError(f"--batch {settings.batch} must be at least 1 (or -1 for Ultralytics' auto batch)")
    if any(s < 0 for s in seeds):
        raise SweepInputError(f"--seed values must be non-negative; got {seeds}")
    specs: dict[str, RunSpec] = {}
    hashes = {v.name: model_hash(v) for v in variants}
    losses = [get_loss(name).name for name in losses or [DEFAULT_LOSS]]
    for seed in seeds:
        for v in variants:
            for loss in losses:
                key = run_key(hashes[v.name], dataset, settings, seed, pretrained, loss)
                spec = RunSpec(key, sweep, v, hashes[v.name], dataset, settings, seed, Path(results_dir), plugins)
                specs.setdefault(key, dataclasses.replace(spec, pretrained=pretrained, loss=loss))
    return list(specs.values())


# --------------------------------------------------------------------------------------------------------------------
# one run


@dataclass
class RunHooks:
    """Callbacks from inside a run (all optional).

    Attributes:
        epoch: called after each epoch with (epoch, epochs), 1-based.
        stop_requested: polled after each saved epoch; True stops the run there (`SweepInterrupted`).
        batch: called after each training batch with (epoch, epochs, batch, batches), 1-based.
        metrics: called after each epoch's validation with Ultralytics' metrics of that epoch (and losses).
        log: file that receives Ultralytics' own output (None: the current stdout, or wherever a worker's goes).
    """

    epoch: Callable[[int, int], None] | None = None
    stop_requested: Callable[[], bool] | None = None
    batch: Callable[[int, int, int, int], None] | None = None
    metrics: Callable[[dict[str, float]], None] | None = None
    log: Path | None = None


def now() -> str:
    """UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def costs(variant: Variant, nc: int) -> dict[str, Any]:
    """Params and both GFLOPs counts of a variant at `FLOPS_IMGSZ`, as trained and as deployed after `fuse()`.

    The build also checks the variant before training.
    """
    from .flops import deployed_counts, flop_counts, fuse_note
    from .registry import recorded_attributes
    from .variants import count_params

    model = build(variant, nc=nc)
    out = {"params": count_params(model), "flops_imgsz": FLOPS_IMGSZ, **flop_counts(model, FLOPS_IMGSZ)}
    out.update(recorded_attributes(model), fuse_note=fuse_note(model))
    out.update(deployed_counts(model.fuse(verbose=False), FLOPS_IMGSZ))  # in place: the model is built for this alone
    for key in ("gflops_error", "gflops_fused_error"):  # a run record keeps the count or None; profile keeps the reason
        out.pop(key)
    return out


def base_record(spec: RunSpec) -> dict[str, Any]:
    """The identity and settings part of a run's record."""
    v, s = spec.variant, spec.settings
    return {
        "kind": "run",
        "key": spec.key,
        "sweep": spec.sweep,
        "variant": spec.name,
        "architecture": v.name,
        "loss": spec.loss,
        "base": v.base,
        "module": v.module,
        "placement": v.placement,
        "yaml_sha256": spec.yaml_sha256,
        "yaml": str(spec.yaml_path),
        "dataset": spec.dataset.name,
        "dataset_id": spec.dataset.identity,
        "data_yaml": str(spec.dataset.yaml),
        "nc": len(spec.dataset.names),
        "epochs": s.epochs,
        "imgsz": s.imgsz,
        "batch": s.batch,
        "seed": spec.seed,
        "pretrained": spec.pretrained.record() if spec.pretrained else None,
        "train_args": dict(s.train_args),
        "device": s.device or "auto",
        "workers": s.workers,
        "run_dir": str(spec.run_dir),
        "plugins": list(spec.plugins),
        "torch": _torch_version(),
        "ultralytics": ultralytics_version(),
        "yoloab": __version__,
        "python": platform.python_version(),
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def error_text(err: BaseException) -> str:
    """`Type: first line of the message`, short enough for a table footnote."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 300 else text[:297] + "..."


def train_run(spec: RunSpec, hooks: RunHooks | None = None) -> dict[str, Any]:
    """Train (or resume, or re-validate) one run and return its record; never raises for a failing variant.

    A variant that fails to build, raises in training, runs out of memory or whose loss goes NaN gives a record with
    status 'failed' and the error.

    A run that fails for want of disk space says so first in its error (`DISK_FULL`). A checkpoint found cut short is
    moved to `damaged/` (see `_checkpoint`), with a warning once the run is over.

    Raises:
        SweepInterrupted: the user asked to stop; the last epoch is saved and the run resumes next time.
        KeyboardInterrupt: a second Ctrl-C, stopping at once.
        UnsafePathError: the run directory, its log or its model yaml is (or holds, or lies under) a symlink.
    """
    hooks = hooks or RunHooks()
    # refused before anything is written: yoloab would empty, write or train what a link points at
    tree_inside(spec.results_dir, spec.run_dir, "run directory")
    inside(spec.results_dir, spec.log_path, "run log")
    inside(spec.results_dir, spec.yaml_path, "model yaml")
    notes: list[str] = []
    record = base_record(spec)
    record.update(status="ok", error=None, started=now(), resumed=False, resumed_from_epoch=None, rng_restored=None)
    record["device_name"] = None
    try:
        record.update(costs(spec.variant, len(spec.dataset.names)))
        seeded = None
        if spec.pretrained is not None:
            seeded, moved = seeded_model(spec.variant, spec.pretrained, len(spec.dataset.names), spec.seed)
            record.update(moved.record())
        if not spec.yaml_path.is_file():
            write_atomic(spec.yaml_path, to_yaml(spec.variant))
        record.update(_train(spec, hooks, seeded, notes))
    except (SweepInterrupted, KeyboardInterrupt):
        raise
    except YoloabError as err:
        record.update(status="failed", error=str(err))
    except Exception as err:  # isolation: one variant's failure is its record, not the sweep's end
        full = _disk_full(err, spec.run_dir)
        record.update(status="failed", error=f"{DISK_FULL}: {error_text(err)}" if full else error_text(err))
    finally:
        for note in notes:  # here, not where found: Ultralytics' output (and so stderr) went to the run's log then
            warnings.warn(note, YoloabWarning, stacklevel=2)
    record["finished"] = now()
    return record


def _disk_full(err: BaseException, run_dir: Path) -> bool:
    """Whether a run failed for want of disk space.

    Python says so (ENOSPC, EDQUOT) somewhere in the error's chain; torch's checkpoint writer does not (`unexpected
    pos ...`), so a disk left with less room than the run's largest checkpoint counts too.
    """
    if os_error_in_chain(err, (errno.ENOSPC, errno.EDQUOT)) is not None:
        return True
    try:
        sizes = [p.stat().st_size for p in (run_dir / "weights").glob("*.pt")]
        return bool(sizes) and shutil.disk_usage(run_dir).free < max(sizes)
    except OSError:
        return False


def _load(path: Path) -> tuple[Any, str | None]:
    """The checkpoint loaded as a YOLO model, or None and why (missing, or cut short by a kill)."""
    from ultralytics import YOLO

    if not path.is_file():
        return None, "missing"
    try:
        return YOLO(str(path)), None
    except Exception as err:
        return None, error_text(err)


def _open(path: Path) -> Any:
    """The checkpoint loaded as a YOLO model, or None where it is missing or cut short by a kill."""
    return _load(path)[0]


def _checkpoint(spec: RunSpec, notes: list[str] | None = None) -> tuple[str, Any]:
    """What is on disk, each checkpoint loaded once: ('new', None), ('resume', last) or ('finished', best).

    A checkpoint cut short (Ultralytics writes `last.pt` and `best.pt` in place, so a full disk or a kill leaves them
    torn) is moved to `damaged/` first, kept; the run goes on from the last whole one: `last.pt`, else the atomic
    `last.safe.pt`, else a clean start. A torn `best.pt` is mended from `last.pt` when it was cut from the same save.

    Args:
        spec: the run.
        notes: receives a line per checkpoint moved aside (None: each is warned about at once).

    Raises:
        FileNotFoundError: training ended but `best.pt` cannot be read (the record says so).
    """
    weights = spec.run_dir / "weights"
    last, safe, best_pt = weights / "last.pt", weights / "last.safe.pt", weights / "best.pt"
    torn_best = _torn(best_pt)
    for path in (last, safe):
        if _torn(path):
            _set_aside(spec, path, notes)
    model = _open(last)
    if model is None and (model := _open(safe)) is not None:
        copy_atomic(safe, last)  # leave a whole last.pt behind, as Ultralytics would have
    if model is None:
        if spec.run_dir.exists():
            if torn_best:
                _set_aside(spec, best_pt, notes)
            # nothing usable: start clean rather than mix two runs' results.csv
            shutil.rmtree(inside(spec.run_dir.parent.parent, spec.run_dir, "run directory"))
        return "new", None
    epoch = (model.ckpt or {}).get("epoch", -1)
    best_why = None
    if torn_best:
        # Ultralytics writes best.pt right after last.pt from the same bytes: a torn best.pt cut from this last.pt
        # (its save time included) is that save's copy, and last.pt is what it was to hold
        mend = _cut_from(last, best_pt)
        best_why = f"cut short; moved to {_set_aside(spec, best_pt, notes, mended=mend)}"
        if mend:
            copy_atomic(last, best_pt)
        elif epoch != -1 and epoch + 1 < spec.settings.epochs:
            # training again beats finishing on metrics of another epoch than the best
            shutil.rmtree(inside(spec.run_dir.parent.parent, spec.run_dir, "run directory"))
            return "new", None
    # -1: stripped by Ultralytics' final step. The final epoch saved but not yet stripped (a kill or a full disk in
    # between) is just as finished: Ultralytics refuses to resume it ("nothing to resume").
    if epoch == -1 or epoch + 1 >= spec.settings.epochs:
        best, why = _load(weights / "best.pt")
        if best is None:
            why = best_why or why
            raise FileNotFoundError(f"training ended but {weights / 'best.pt'} cannot be read ({why}); not validated")
        return "finished", best
    return "resume", model


def _torn(path: Path) -> bool:
    """Whether a checkpoint is there but cut short: torch writes a zip file, whose directory comes last."""
    return path.is_file() and not zipfile.is_zipfile(path)


def _cut_from(whole: Path, part: Path) -> bool:
    """Whether torn checkpoint `part` is checkpoint `whole` cut short, so that both come from one save.

    It must hold `whole`'s first bytes up to the end of its pickle (`data.pkl`, first in the zip file), which records
    the save's time: a few bytes alone could begin any checkpoint.
    """
    try:
        with zipfile.ZipFile(whole) as z:
            entry = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
        with open(whole, "rb") as a, open(part, "rb") as b:
            a.seek(entry.header_offset + 26)  # a local file header's name and extra field lengths
            name, extra = struct.unpack("<HH", a.read(4))
            if part.stat().st_size < entry.header_offset + 30 + name + extra + entry.compress_size:
                return False
            a.seek(0)
            while chunk := b.read(1 << 20):
                if a.read(len(chunk)) != chunk:
                    return False
    except (OSError, StopIteration, struct.error, zipfile.BadZipFile):
        return False
    return True


def _set_aside(spec: RunSpec, path: Path, notes: list[str] | None, mended: bool = False) -> Path:
    """Move a torn checkpoint to `damaged/` beside `train/` (kept, never deleted); returns where it went.

    Raises:
        UnsafePathError: `damaged/` is a symlink.
    """
    results = spec.run_dir.parent.parent  # the layout: <results>/train/<run>
    folder = inside(results, results / "damaged", "damaged-files folder")
    folder.mkdir(exist_ok=True)
    target, n = folder / f"{spec.run_dir.name}-{path.name}", 0
    while target.exists():
        n += 1
        target = folder / f"{spec.run_dir.name}-{path.stem}-{n}{path.suffix}"
    os.replace(path, target)  # both in the results directory: a rename, never a copy that a full disk could cut
    then = "; best.pt restored from last.pt, written by the same save" if mended else ""
    note = f"{path} was cut short (a full disk or a kill while it was written); moved to {target}{then}"
    if notes is None:
        warnings.warn(note, YoloabWarning, stacklevel=3)
    else:
        notes.append(note)
    return target


def _save_seed(spec: RunSpec, seeded: Any) -> str:
    """Write the checkpoint-seeded model where Ultralytics' `pretrained=` reads it (DDP children read the file too)."""
    import torch

    path = spec.run_dir / "init.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".init.pt.", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"model": seeded, "train_args": {}}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def _train(spec: RunSpec, hooks: RunHooks, seeded: Any = None, notes: list[str] | None = None) -> dict[str, Any]:
    from ultralytics import YOLO

    s = spec.settings
    args: dict[str, Any] = {"workers": s.workers} if s.workers is not None else {}
    args |= {
        "data": str(spec.dataset.yaml),
        "imgsz": s.imgsz,
        "batch": s.batch,
        "device": s.device,
        "plots": False,  # plots need a font download and cost time; `--train plots=True` turns them on
        **s.train_args,
    }
    t0 = time.perf_counter()
    restored: dict[str, Any] = {}
    # every checkpoint this run loads (last.pt, best.pt, init.pt), by yoloab or by Ultralytics' trainer itself, goes
    # through the safe unpickler: a results directory's files never run code when read back
    with output_to(hooks.log), safe_loading():
        state, model = _checkpoint(spec, notes)
        capture = capture_val_stats(model) if model is not None else None
        if state == "finished":
            metrics = model.val(
                **{k: v for k, v in args.items() if k in ("data", "imgsz", "batch", "device", "workers")},
                plots=False,
                project=str(spec.run_dir),
                name="val",
                exist_ok=True,
            )
            resumed = True
            restored["from"] = s.epochs  # every epoch was trained before; only the final validation is redone
        else:
            restored["from"] = (model.ckpt or {}).get("epoch", -1) + 1 if state == "resume" else None
            model = model or YOLO(str(spec.yaml_path))
            capture = capture or capture_val_stats(model)
            add_callbacks(model, spec, hooks, restored)
            if spec.loss != DEFAULT_LOSS:  # the default is Ultralytics' criterion, untouched
                attach_box_loss(model, get_loss(spec.loss))
            if state == "resume":
                metrics = model.train(resume=True, **{k: v for k, v in args.items() if k != "plots"})
            else:
                if seeded is not None:
                    args["pretrained"] = _save_seed(spec, seeded)
                metrics = model.train(
                    epochs=s.epochs,
                    seed=spec.seed,
                    project=str(spec.run_dir.parent),
                    name=spec.run_dir.name,
                    exist_ok=True,
                    **args,
                )
            resumed = state == "resume"
    wall = time.perf_counter() - t0
    out = _outcome(spec, metrics, wall)
    _save_val_stats(spec, capture.result, out)
    out["resumed"] = resumed
    out["resumed_from_epoch"] = restored.get("from")  # epochs done before the resume (None: not resumed)
    out["rng_restored"] = restored.get("parts")
    out["device_name"] = _device_name(model)
    return out


def _save_val_stats(spec: RunSpec, captured: dict[str, Any] | None, out: dict[str, Any]) -> None:
    """Leave the final validation's per-image statistics in the run directory, for the driver to store.

    The record's AP by object size (`map50_95_small`, `_medium`, `_large`) is computed from them, so that it always
    agrees with what a report recomputes from the stored file; None without them.
    """
    from .datasets import file_sha256, in_training_set
    from .size_ap import size_maps

    path = spec.run_dir / VAL_STATS_NAME
    path.unlink(missing_ok=True)
    # only the pass that gave the recorded mAP: anything else would not reproduce the record
    if captured is None or (captured["map50"], captured["map50_95"]) != (out["map50"], out["map50_95"]):
        return
    try:
        hashes = [file_sha256(f) for f in captured["im_files"]]
        overlap = in_training_set(spec.dataset, hashes, captured["im_files"])
        stats = ValStats.from_capture(captured, hashes, overlap)
        stats.save(path)
    except (OSError, ValueError, yaml.YAMLError) as err:  # the run itself is fine; only its intervals will be missing
        logging.getLogger("yoloab").warning("%s: per-image validation statistics not stored: %s", spec.label, err)
        return
    out.update(size_maps(stats))


def _device_name(model: Any) -> str | None:
    import torch

    from .devices import device_name  # here: torch stays out of the sweep driver's imports until a run trains

    # the trainer's device, where it trained: after training Ultralytics reloads best.pt onto the CPU
    device = getattr(getattr(model, "trainer", None), "device", None)
    try:
        device = device if isinstance(device, torch.device) else next(model.model.parameters()).device
    except Exception:
        return None
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device_name(device)


def _train_time(rows: list[dict[str, float]]) -> float:
    """Seconds spent in epochs: `time` is cumulative since the trainer started, and restarts on resume."""
    total, prev = 0.0, 0.0
    for row in rows:
        t = row.get("time", 0.0)
        total += t - prev if t >= prev else t
        prev = t
    return total


def _outcome(spec: RunSpec, metrics: Any, wall: float) -> dict[str, Any]:
    rows = read_epochs(spec.run_dir / "results.csv")
    losses = [k for k in (rows[0] if rows else {}) if k.startswith("train/")]
    for row in rows:
        bad = [k for k in losses if not math.isfinite(row[k])]
        if bad:
            raise FloatingPointError(f"NaN/Inf training loss ({', '.join(bad)}) at epoch {int(row['epoch'])}")
    results = getattr(metrics, "results_dict", None) or {}
    out = {
        "map50": results.get("metrics/mAP50(B)"),
        "map50_95": results.get("metrics/mAP50-95(B)"),
        "precision": results.get("metrics/precision(B)"),
        "recall": results.get("metrics/recall(B)"),
    }
    if any(v is None or not math.isfinite(v) for v in out.values()):
        raise FloatingPointError(f"validation gave no finite metrics: {results}")
    key = "metrics/mAP50-95(B)"  # Ultralytics 8.4's fitness: best.pt is the first epoch with the highest value
    scored = [r for r in rows if key in r and math.isfinite(r[key])]
    out["best_epoch"] = int(max(scored, key=lambda r: (r[key], -r["epoch"]))["epoch"]) if scored else None
    out["epochs_done"] = len(rows)
    import torch  # loaded by the trainer already; its intra-op threads are what the CPU work of this run used

    out["torch_threads"] = torch.get_num_threads()
    out["train_time_s"] = _train_time(rows) if rows else wall
    out["images_per_s"] = (
        spec.dataset.n_train * len(rows) / out["train_time_s"] if rows and out["train_time_s"] > 0 else None
    )
    return out
