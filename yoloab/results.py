"""The results store: JSON files under a results directory, written atomically, read back with pandas.

Layout of a results directory:

- `profile/<key>.json`: one flat profile record, named by its key (`yoloab.profiling.profile_key`: a hash over the
  variant yaml content, class count, image size, batch, device, threads, dtype, runtimes and versions); measuring
  the same thing again replaces it. Older stores hold `profile/<utc time>-<random>.json`, a list of records of one
  `yoloab profile` run without `kind`, `key` or `profiled`; they are still read (`profiled` from the file name).
- `runs/<key>.json`: one flat record per training run of `yoloab sweep`, named by the run key (a hash over the
  variant yaml content, the dataset, the settings and the seed), so a run can never be recorded twice.
- `runs/<key>.npz`: the per-image validation statistics of that run (`ValStats`, compressed), from the same
  validation pass as the record's mAP; written before the record, so an `ok` record with statistics has them whole.
- `train/<run name>/`: the Ultralytics run directories (`results.csv`, `weights/`).
- `variants/<variant>-<hash>.yaml`: the exact yaml each run trained.
- `locks/<key>.lock`: held while a run trains (by the driver and its worker), so two sweeps sharing the directory
  never train the same run; `locks/<key>.worker/` is a `--devices` worker's exchange folder while it runs.
- `slurm/`: `--executor slurm`'s submissions and each run's current job (see `yoloab.executors.slurm`).
- `damaged/`: files that could not be read, moved aside and kept (never deleted): records cut short, NUL-filled, not
  a record, or with a field of the wrong type (`record_problem`), the run's record with damaged per-image statistics,
  and damaged cached exports (`yoloab.deploy`). The run counts as not done and trains again (a report leaves it
  out); a profile record is measured again; an export is made again.

Every file appears whole or not at all (written to a temporary name, then renamed), so readers and concurrent
writers never see a partial record.

A profile record has `kind`='profile', `key`, `yaml_sha256` (the run records' hash of the same yaml), `nc`,
`imgsz`, `batch`, `threads`, `profiled` (UTC time measured) and the measurements of `yoloab.profiling`.

Keys of a run record (`RUN_KEYS`): identity (`kind`='run', `key`, `sweep`, `variant`, `base`, `module`, `placement`,
`architecture`: the variant without its box loss, `loss`: the box loss (`yoloab.losses`; `variant` is
`architecture+loss` for any but the default CIoU; None in records from before the loss axis), `yaml_sha256`, `yaml`),
data (`dataset`: its name, `dataset_id`, `data_yaml`: the yaml trained on, `nc`), settings
(`epochs`, `imgsz`, `batch`, `seed`, `train_args`, `device`, `workers`), outcome (`status` 'ok' | 'failed', `error`),
metrics of the best checkpoint (`map50`, `map50_95`, `precision`, `recall`, `best_epoch`, `epochs_done`;
`map50_95_small`, `_medium`, `_large`: COCO's AP by object size from the stored statistics, `yoloab.size_ap`), speed
(`train_time_s`, `images_per_s`), cost as trained (`params`, `gflops`, `gflops_aten`, `gmacs`, `flops_imgsz`,
`flops_flag`, `flops_note`) and as deployed after `fuse()` (`params_fused`, `gflops_fused`, `gflops_aten_fused`,
`gmacs_fused`, `gflops_published`: the published tables' convention, `attention_note`, `fuse_note`), module settings
(`save_memory`: RevCol's reversible training, None without RevCol), pretrained weights (`pretrained` {path, sha256},
`transferred_tensors`, `total_tensors`, `transferred_params`, `fresh_rows`, `partial_rows`; all None for runs from
scratch, see `yoloab.transfer`), provenance (`run_dir`, `plugins`: the `--plugin` files loaded, `resumed`: whether the
run was interrupted and resumed, `resumed_from_epoch`: epochs done before, `rng_restored`: the state a resume put back
(see `yoloab.callbacks`), `started`, `finished`, `job_id`: the SLURM job that stored it (`12_3`; None elsewhere),
`device_name`, `torch_threads`: the CPU threads torch trained with, `torch`, `ultralytics`, `yoloab`, `python`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import FILE_MODE, copy_atomic, write_atomic
from .errors import OutputPathError, StorageError, YoloabWarning, os_error_text
from .safepaths import inside

if TYPE_CHECKING:
    import pandas as pd

RUN_KEYS = (
    "kind", "key", "sweep", "variant", "base", "module", "placement", "architecture", "loss", "yaml_sha256", "yaml",
    "dataset", "dataset_id", "data_yaml", "nc",
    "epochs", "imgsz", "batch", "seed", "train_args", "device", "workers",
    "status", "error",
    "map50", "map50_95", "precision", "recall", "best_epoch", "epochs_done",
    "map50_95_small", "map50_95_medium", "map50_95_large",
    "train_time_s", "images_per_s",
    "params", "gflops", "gflops_aten", "gmacs", "flops_imgsz", "flops_flag", "flops_note",
    "params_fused", "gflops_fused", "gflops_aten_fused", "gmacs_fused", "gflops_published", "attention_note",
    "fuse_note", "save_memory",
    "pretrained", "transferred_tensors", "total_tensors", "transferred_params", "fresh_rows", "partial_rows",
    "run_dir", "plugins", "resumed", "resumed_from_epoch", "rng_restored",
    "started", "finished", "job_id", "device_name", "torch_threads", "torch", "ultralytics", "yoloab", "python",
)  # fmt: skip


def check_writable(results_dir: str | Path) -> None:
    """Make sure the results directory (and its `runs/` and `profile/` folders) can take files, before any work.

    An existing directory is probed with a file created and removed, since permission bits do not tell (root,
    read-only mounts); one still to be created is checked through its nearest existing parent, and not created here.

    Raises:
        StorageError: it, or a folder of the layout, is a file, or it cannot be written.
    """
    root = Path(results_dir)
    for path in (root, root / "runs", root / "profile"):
        inside(root, path, "results folder")  # a symlinked runs/ or profile/ would take every record elsewhere
        if path.exists() and not path.is_dir():
            raise StorageError(f"--results {root}: '{path}' is a file; expected a folder (or a path to create)")
    if not root.exists():
        parent = next((p for p in root.absolute().parents if p.exists()), Path("/"))
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise StorageError(f"--results {root} cannot be created: '{parent}' is not a writable folder")
        return
    try:
        _probe_write(root)
    except OSError as err:
        raise StorageError(f"--results {root} cannot be written: {os_error_text(err)}") from err


def _probe_write(folder: Path) -> None:
    """Create and remove a temporary file in `folder`: a read-only mount or a full disk raises here, before any work."""
    fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


def check_out_dir(out_dir: str | Path, option: str = "--out") -> None:
    """Make sure a folder for output files can be made and written, before any work (a full disk shows only later).

    Raises:
        OutputPathError: it, or a folder above it, is a file.
        StorageError: it, or the folder it would be made in, cannot be written (read-only, no permission).
    """
    out = Path(out_dir)
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())  # "/" exists
    if not existing.is_dir():
        what = "is a file" if existing == out else f"lies under a file, '{existing}'"
        raise OutputPathError(f"{option} {out} {what}; expected a folder (or a path to create)")
    if existing != out:  # permission bits do not bind root, but access() does see a read-only mount
        if not os.access(existing, os.W_OK | os.X_OK):
            why = "on a read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY else "not writable"
            raise StorageError(f"{option} {out} cannot be created: '{existing}' is {why}")
        return
    try:
        _probe_write(out)
    except OSError as err:
        raise StorageError(f"{option} {out} cannot be written: {os_error_text(err)}") from err


def write_files(out_dir: str | Path, files: dict[str, str | bytes], what: str, option: str = "--out") -> list[Path]:
    """Write a set of files into a folder, all or none: each to a temporary name first, then all renamed into place.

    A full disk or a read-only place leaves no new file behind (nor a folder this call created); files already there
    are replaced only once every new one is whole.

    Args:
        out_dir: the folder, created if missing.
        files: file name -> content (text is written as UTF-8).
        what: how to name the files in an error ("the report").
        option: the option that named the folder, for the error.

    Returns:
        The files written, in order.

    Raises:
        OutputPathError: the folder, or one above it, is a file.
        StorageError: the files cannot be written (read-only, full disk).
    """
    out = Path(out_dir)
    check_out_dir(out, option)
    created = [p for p in (out, *out.absolute().parents) if not p.exists()]
    staged: list[tuple[str, Path]] = []
    done: list[str] = []  # renamed into place: a rename failing after another has succeeded cannot be undone
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
            staged.append((name, Path(tmp)))
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would hide the files from a web server or a colleague
        for name, tmp in staged:
            os.replace(tmp, out / name)
            done.append(name)
    except BaseException as err:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        for folder in created:  # deepest first; only the folders this call made, and only if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(err, NotADirectoryError):
            raise OutputPathError(f"{option} {out} is not a folder: a folder above it is a file") from err
        if isinstance(err, OSError):
            written = f"only {', '.join(done)} replaced" if done else "nothing was written"
            raise StorageError(f"cannot write {what} to {out}: {os_error_text(err)}; {written}") from err
        raise
    return [out / name for name in files]


def _write(path: Path, text: str, what: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as err:
        why = os_error_text(err)
        raise StorageError(f"cannot write {what} to {path}: {why}; the stored records are unchanged") from err


def profile_path(results_dir: str | Path, key: str) -> Path:
    """Where the profile record with key `key` lives."""
    return Path(results_dir) / "profile" / f"{key}.json"


def store_profile(records: list[dict[str, Any]], results_dir: str | Path) -> list[Path]:
    """Write each measured record to `profile/<key>.json`, atomically, replacing an older one with the same key.

    Records marked `reused` came from the store and are left as they are there.

    Returns:
        The files written, in record order.

    Raises:
        StorageError: a file cannot be written (that record and the ones after it are not stored).
    """
    paths = []
    for record in records:
        if record.get("reused"):
            continue
        path = inside(results_dir, profile_path(results_dir, record["key"]), "profile record")
        _write(path, json.dumps(record, indent=1, default=str) + "\n", f"the profile record of {record.get('variant')}")
        paths.append(path)
    return paths


def _move_aside(path: Path) -> Path:
    """Move a file or folder to `damaged/` beside its folder, under a new name if one is there already.

    Raises:
        OSError: it cannot be moved (FileNotFoundError: another process moved it first).
    """
    target = inside(path.parent.parent, path.parent.parent / "damaged" / path.name, "damaged-files folder")
    target.parent.mkdir(exist_ok=True)
    if target.exists() or target.is_symlink():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = target.with_name(f"{path.stem}-{stamp}-{os.getpid()}{path.suffix}")
    os.replace(path, target)
    return target


def quarantine(
    path: Path, why: str, what: str = "record", redo: str | None = None, also: tuple[Path, ...] = ()
) -> Path | None:
    """Move a damaged results file to `damaged/` beside `runs/` (kept, never deleted) and warn once, naming it.

    Args:
        path: the damaged file or folder (`runs/<key>.json`, `runs/<key>.npz`, `profile/<key>.json`, an export).
        why: what is wrong with it.
        what: how the warning names it.
        redo: what happens next (default: the run counts as not done, or the profile as not measured).
        also: files that go with it (the record of damaged statistics), moved too and named in the same line.

    Returns:
        Where it went, or None when it could not be moved (it is then left in place and only warned about).
    """
    try:
        target = _move_aside(path)
        moved = [_move_aside(p) for p in also if p.exists()]
    except FileNotFoundError:  # another sweep moved it first
        return None
    except OSError as err:
        warnings.warn(f"damaged {what} {path} ({why}) ignored; it could not be moved aside: {os_error_text(err)}",
                      YoloabWarning, stacklevel=3)  # fmt: skip
        return None
    if redo is None:
        redo = "it counts as not measured" if path.parent.name == "profile" else "its run counts as not done"
    with_it = f", with {', '.join(map(str, moved))}" if moved else ""
    warnings.warn(f"damaged {what} {path} ({why}) moved to {target}{with_it}; {redo}",
                  YoloabWarning, stacklevel=3)  # fmt: skip
    return target


# Fields the report, the sweep's summary and the significance step compute with, by type; a record with another type
# there (hand-edited, written by other software) is damaged: it would stop them halfway with a TypeError.
_NUMBER_KEYS = frozenset({
    "nc", "epochs", "imgsz", "batch", "workers", "threads",
    "map50", "map50_95", "precision", "recall", "best_epoch", "epochs_done", "resumed_from_epoch",
    "map50_95_small", "map50_95_medium", "map50_95_large",
    "train_time_s", "images_per_s", "latency_ms", "latency_iqr_ms", "throughput_ips", "mem_infer_mb", "mem_train_mb",
    "params", "gflops", "gflops_aten", "gmacs", "flops_imgsz",
    "params_fused", "gflops_fused", "gflops_aten_fused", "gmacs_fused", "gflops_published",
    "transferred_tensors", "total_tensors", "transferred_params",
})  # fmt: skip
_NUMBER_PATTERN = re.compile(
    r"(?:latency_ms|latency_iqr_ms|throughput_ips|parity|parity_batch|export_mb|export_s)_[A-Za-z0-9]+"
)
_TEXT_KEYS = frozenset({
    "kind", "key", "status", "error", "sweep", "variant", "base", "module", "placement", "yaml_sha256", "yaml",
    "dataset", "dataset_id", "data_yaml", "run_dir", "started", "finished", "profiled", "device_name", "dtype",
    "torch", "ultralytics", "yoloab", "python", "job_id",
})  # fmt: skip
_TEXT_PATTERN = re.compile(r"export_[A-Za-z0-9]+")  # a runtime's export status
_MAPPING_KEYS = frozenset({"train_args", "pretrained"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(record: dict[str, Any]) -> str | None:
    """What makes a run or profile record unusable, or None: a missing key or a field of the wrong type.

    Counts, metrics and timings must be numbers, names, versions and statuses text, the seed an integer,
    `train_args` and `pretrained` mappings; any of them may be None. Other keys (a plugin's) are not checked.
    """
    for key, value in record.items():
        if value is None:
            continue
        if key in _NUMBER_KEYS or _NUMBER_PATTERN.fullmatch(key):
            ok, expected = _is_number(value), "a number"
        elif key == "seed":
            ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif key in _TEXT_KEYS or _TEXT_PATTERN.fullmatch(key):
            ok, expected = isinstance(value, str), "text"
        elif key in _MAPPING_KEYS:
            ok, expected = isinstance(value, dict), "a mapping"
        else:
            continue
        if not ok:
            shown = json.dumps(value, default=str)
            return f"{key} is {shown[:40] + '...' if len(shown) > 40 else shown}, not {expected}"
    return None


def _named(record: dict[str, Any]) -> bool:
    """Whether a record has a key to be found by (run and profile files are named by it)."""
    return isinstance(record.get("key"), str) and bool(record["key"])


def _shape_problem(value: Any, shape: str) -> str | None:
    """Why a parsed JSON value is not a results file of kind `shape`, or None."""
    expect, check, why = _SHAPES[shape]
    if not (isinstance(value, expect) and check(value)):
        return why
    records = value if isinstance(value, list) else [value]
    return next((p for r in records if isinstance(r, dict) and (p := record_problem(r))), None)


_SHAPES = {  # what each kind of results file must be, and how to say it is not
    "run": (dict, lambda v: _named(v) and isinstance(v.get("status"), str), "not a run record"),
    "profile": (dict, lambda v: v.get("kind") == "profile" and _named(v), "not a profile record"),
    "profile list": (list, lambda v: True, "not a list of records"),
}


def _read_json(path: Path, shape: str) -> Any:
    """A JSON file of the expected shape (a key of `_SHAPES`), or None after moving it aside (see `quarantine`)."""
    also = (path.with_suffix(".npz"),) if shape == "run" else ()  # statistics of the run that is trained again
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        quarantine(path, f"not JSON: {type(err).__name__}", also=also)
        return None
    except FileNotFoundError:  # moved aside or replaced by another process meanwhile
        return None
    problem = _shape_problem(value, shape)
    if problem:
        quarantine(path, problem, also=also)
        return None
    return value


def _legacy_time(path: Path) -> str:
    """The UTC time in an old profile file's name (`20261120T100000Z-<random>.json`), ISO 8601; '' if none."""
    try:
        stamp = datetime.strptime(path.name.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return ""
    return stamp.isoformat(timespec="seconds")


def load_profile(results_dir: str | Path, key: str) -> dict[str, Any] | None:
    """The stored profile record with key `key`, or None (also for a damaged one, moved aside with a warning)."""
    path = profile_path(results_dir, key)
    return _read_json(path, "profile") if path.is_file() else None


def load_profiles(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored profile record, oldest measured first; a damaged file is moved aside with a warning.

    Reads both layouts: one record per `<key>.json`, and the older lists of one run per `<stamp>-<random>.json`,
    whose records get `profiled` from the file name.
    """
    found: list[tuple[str, str, int, dict[str, Any]]] = []
    for path in sorted((Path(results_dir) / "profile").glob("*.json")):
        legacy = _legacy_time(path)
        if legacy:
            records = [r for r in _read_json(path, "profile list") or [] if isinstance(r, dict)]
            for r in records:
                r.setdefault("profiled", legacy)
        else:
            record = _read_json(path, "profile")
            records = [record] if record is not None else []
        found.extend((str(r.get("profiled") or ""), path.name, i, r) for i, r in enumerate(records))
    return [r for *_, r in sorted(found, key=lambda f: f[:3])]


def read_epochs(path: str | Path) -> list[dict[str, float]]:
    """An Ultralytics `results.csv` as one dict per epoch, sorted; column names stripped.

    A run resumed after a kill writes the epoch in flight again: the last row of an epoch wins. A missing, empty or
    malformed file gives [].
    """
    import csv

    rows: dict[int, dict[str, float]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for raw in csv.DictReader(fh):
                row = {k.strip(): float(v) for k, v in raw.items() if k and v not in (None, "")}
                if "epoch" in row:
                    rows[int(row["epoch"])] = row
    except (OSError, ValueError):
        return []
    return [rows[k] for k in sorted(rows)]


def run_path(results_dir: str | Path, key: str) -> Path:
    """Where the record of run `key` lives."""
    return Path(results_dir) / "runs" / f"{key}.json"


def store_run(record: dict[str, Any], results_dir: str | Path) -> Path:
    """Write (or replace) the record of one run, atomically, after its per-image statistics; returns the file.

    Raises:
        StorageError: the record cannot be written (full disk, read-only); any earlier record stays as it was.
    """
    path = inside(results_dir, run_path(results_dir, record["key"]), "run record")
    try:
        _store_val_stats(record, results_dir)
    except OSError as err:
        why = os_error_text(err)
        raise StorageError(f"cannot store the validation statistics of run {record['key']}: {why}") from err
    text = json.dumps({k: record.get(k) for k in RUN_KEYS}, indent=1, default=str) + "\n"
    status = record.get("status") if not record.get("error") else f"{record.get('status')}: {record.get('error')}"
    _write(path, text, f"the record of {record.get('variant')} seed {record.get('seed')} ({status})")
    return path


def load_run(results_dir: str | Path, key: str) -> dict[str, Any] | None:
    """The stored record of run `key`, or None (also for a damaged record, which is moved aside with a warning)."""
    path = run_path(results_dir, key)
    return _read_run(path) if path.is_file() else None


def load_runs(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored run record, in the order the runs finished; damaged records are moved aside with a warning."""
    paths = sorted((Path(results_dir) / "runs").glob("*.json"))
    records = [r for r in (_read_run(p) for p in paths) if r is not None]
    return sorted(records, key=lambda r: (r.get("finished") or "", r["key"]))


def _read_run(path: Path) -> dict[str, Any] | None:
    """A run record whose per-image statistics, where stored, are whole; else None, the damaged files moved aside."""
    record = _read_json(path, "run")
    stats = path.with_suffix(".npz")
    if record is None or not stats.is_file():
        return record
    problem = _val_stats_problem(stats)
    if problem:
        _set_stats_aside(stats, problem)
        return None
    return record


def runs_frame(results_dir: str | Path) -> pd.DataFrame:
    """The run records as a pandas DataFrame, one row per run, columns `RUN_KEYS`."""
    import pandas as pd

    return pd.DataFrame(load_runs(results_dir), columns=list(RUN_KEYS))


# --------------------------------------------------------------------------------------------------------------------
# per-image validation statistics

VAL_STATS_NAME = "val_stats.npz"  # where a worker leaves them in the run directory, for the driver to store
VAL_STATS_FORMAT = 1


@dataclass(frozen=True)
class ValStats:
    """Per-image validation statistics of one run: enough to recompute mAP50 and mAP50-95 on any image subset.

    Predictions and labels are in Ultralytics' validation order (image by image); `pred_image` and `target_image`
    say which validation image each belongs to.

    Attributes:
        tp: (P, 10) bool, whether each prediction matches a label at IoU 0.50, 0.55, ..., 0.95.
        conf: (P,) confidences.
        pred_cls: (P,) predicted classes.
        target_cls: (G,) label classes.
        pred_image: (P,) validation image index of each prediction.
        target_image: (G,) validation image index of each label.
        images: (N,) validation image paths.
        image_sha256: (N,) SHA-256 of each image file's content ('' where unreadable).
        in_train: (N,) whether an image's content is also in the training set.
        map50: mAP50 of the validation pass the statistics come from.
        map50_95: mAP50-95 of that pass.
        coco_match: (P, 4, 10) uint8 COCO-style match of each prediction per area range (all, small, medium,
            large) and IoU threshold (`yoloab.size_ap`: TP, FP, IGNORED); None in statistics stored before it was.
        pred_area: (P,) area of each predicted box in original-image px² (None likewise).
        target_area: (G,) area of each label box in original-image px² (None likewise).
    """

    tp: np.ndarray
    conf: np.ndarray
    pred_cls: np.ndarray
    target_cls: np.ndarray
    pred_image: np.ndarray
    target_image: np.ndarray
    images: np.ndarray
    image_sha256: np.ndarray
    in_train: np.ndarray
    map50: float
    map50_95: float
    coco_match: np.ndarray | None = None
    pred_area: np.ndarray | None = None
    target_area: np.ndarray | None = None

    @property
    def n_images(self) -> int:
        """Number of validation images."""
        return len(self.images)

    @classmethod
    def from_capture(cls, captured: dict, image_sha256: list[str], in_train: list[bool]) -> ValStats:
        """Build from what `yoloab._ultralytics.ValStatsCapture` collected, with the images' hashes."""
        n = len(captured["im_files"])
        return cls(
            tp=np.asarray(captured["tp"], dtype=bool),
            conf=np.asarray(captured["conf"]),
            pred_cls=np.asarray(captured["pred_cls"]),
            target_cls=np.asarray(captured["target_cls"]),
            pred_image=np.repeat(np.arange(n), captured["pred_count"]),
            target_image=np.repeat(np.arange(n), captured["target_count"]),
            images=np.array([str(f) for f in captured["im_files"]], dtype=str),
            image_sha256=np.array(image_sha256, dtype=str),
            in_train=np.array(in_train, dtype=bool),
            map50=float(captured["map50"]),
            map50_95=float(captured["map50_95"]),
            **{k: np.asarray(captured[k]) for k in _SIZE_ARRAYS if captured.get(k) is not None},
        )

    def save(self, path: str | Path) -> Path:
        """Write compressed (`.npz`), atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = self.n_images
        arrays = {
            "format": np.array(VAL_STATS_FORMAT),
            "tp": self.tp,
            "conf": self.conf,
            "pred_cls": self.pred_cls,
            "target_cls": self.target_cls,
            "pred_count": np.bincount(self.pred_image, minlength=n),
            "target_count": np.bincount(self.target_image, minlength=n),
            "images": self.images,
            "image_sha256": self.image_sha256,
            "in_train": self.in_train,
            "map50": np.array(self.map50),
            "map50_95": np.array(self.map50_95),
            **{k: getattr(self, k) for k in _SIZE_ARRAYS if getattr(self, k) is not None},
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; as readable as the record beside it
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> ValStats:
        """Read what `save` wrote.

        Raises:
            ValueError: the arrays do not fit together (and whatever a damaged file makes numpy or zipfile raise).
        """
        with np.load(path, allow_pickle=False) as z:
            n = len(z["images"])
            if not len(z["pred_count"]) == len(z["target_count"]) == len(z["image_sha256"]) == len(z["in_train"]) == n:
                raise ValueError(f"per-image arrays of different lengths for {n} images")
            if not int(z["pred_count"].sum()) == len(z["tp"]) == len(z["conf"]) == len(z["pred_cls"]):
                raise ValueError("prediction arrays of different lengths")
            if int(z["target_count"].sum()) != len(z["target_cls"]):
                raise ValueError("label arrays of different lengths")
            sizes = {k: z[k] for k in _SIZE_ARRAYS if k in z.files}  # absent from statistics stored before them
            if sizes and (
                set(sizes) != set(_SIZE_ARRAYS)
                or not len(sizes["coco_match"]) == len(sizes["pred_area"]) == len(z["tp"])
                or len(sizes["target_area"]) != len(z["target_cls"])
            ):
                raise ValueError("object-size arrays missing or of different lengths")
            return cls(
                tp=z["tp"],
                conf=z["conf"],
                pred_cls=z["pred_cls"],
                target_cls=z["target_cls"],
                pred_image=np.repeat(np.arange(n), z["pred_count"]),
                target_image=np.repeat(np.arange(n), z["target_count"]),
                images=z["images"],
                image_sha256=z["image_sha256"],
                in_train=z["in_train"],
                map50=float(z["map50"]),
                map50_95=float(z["map50_95"]),
                **sizes,
            )


_SIZE_ARRAYS = ("coco_match", "pred_area", "target_area")  # optional: the AP by object size (`yoloab.size_ap`)


def val_stats_path(results_dir: str | Path, key: str) -> Path:
    """Where the per-image validation statistics of run `key` live."""
    return Path(results_dir) / "runs" / f"{key}.npz"


def load_val_stats(results_dir: str | Path, key: str) -> ValStats | None:
    """The per-image validation statistics of run `key` as arrays (see `ValStats`), or None where not stored.

    Damaged statistics (cut short, not a zip, a failed checksum, arrays that do not fit) give None; they are moved
    to `damaged/` with their record, with one warning: the run counts as not done.
    """
    path = val_stats_path(results_dir, key)
    if not path.is_file():
        return None
    try:
        return ValStats.load(path)
    except FileNotFoundError:  # moved aside by another process meanwhile
        return None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError) as err:
        _set_stats_aside(path, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}")
        return None


_VAL_STATS_ARRAYS = ("tp", "conf", "pred_cls", "target_cls", "pred_count", "target_count", "images", "image_sha256",
                     "in_train", "map50", "map50_95")  # fmt: skip


def _val_stats_problem(path: Path) -> str | None:
    """Why a statistics file cannot be what `ValStats.save` wrote, from the zip's directory alone, or None.

    Cheap enough for every record read (the sweep reads each run's record twice): it catches a file cut short or
    not a zip; a corrupt member is caught where the arrays are read (`load_val_stats`).
    """
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as z:
            infos = {i.filename: i for i in z.infolist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        return f"{type(err).__name__}: {str(err) or 'unreadable'}"
    missing = [a for a in _VAL_STATS_ARRAYS if f"{a}.npy" not in infos]
    if missing:
        return f"no array {missing[0]!r}"
    if any(i.header_offset + i.compress_size > size for i in infos.values()):
        return f"cut short at {size} bytes"
    return None


def _set_stats_aside(path: Path, why: str) -> None:
    """Move damaged statistics to `damaged/` with their record: an `ok` record promises whole statistics."""
    quarantine(path, why, "per-image statistics", "the run counts as not done", also=(path.with_suffix(".json"),))


def _store_val_stats(record: dict[str, Any], results_dir: str | Path) -> None:
    """Copy a run's statistics from its run directory next to its record (atomically); a failed run's are dropped."""
    dst = inside(results_dir, val_stats_path(results_dir, record["key"]), "validation statistics")
    src = Path(record["run_dir"]) / VAL_STATS_NAME if record.get("run_dir") else None
    if record.get("status") != "ok":
        dst.unlink(missing_ok=True)  # a failed run has no validation pass to speak for
        return
    if src is None or not src.is_file():
        return  # readers check the statistics' mAP against the record's before using them
    dst.parent.mkdir(parents=True, exist_ok=True)
    copy_atomic(src, dst)
