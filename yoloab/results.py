"""The results store: JSON files under a results directory, written atomically, read back with pandas.

Layout of a results directory:

- `profile/<utc time>-<random>.json`: one list of flat records per `yoloab profile` run.
- `runs/<key>.json`: one flat record per training run of `yoloab sweep`, named by the run key (a hash over the
  variant yaml content, the dataset, the settings and the seed), so a run can never be recorded twice.
- `train/<run name>/`: the Ultralytics run directories (`results.csv`, `weights/`).
- `variants/<variant>-<hash>.yaml`: the exact yaml each run trained.
- `locks/<key>.lock`: held while a run trains (by the driver and its worker), so two sweeps sharing the directory
  never train the same run; `locks/<key>.worker/` is a `--devices` worker's exchange folder while it runs.
- `damaged/`: records that could not be read (cut short, NUL-filled, not a record), moved aside and kept: the run
  counts as not done and trains again.

Every file appears whole or not at all (written to a temporary name, then renamed), so readers and concurrent
writers never see a partial record.

Keys of a run record (`RUN_KEYS`): identity (`kind`='run', `key`, `sweep`, `variant`, `base`, `module`,
`placement`, `yaml_sha256`, `yaml`), data (`dataset`, `dataset_id`, `nc`), settings (`epochs`, `imgsz`, `batch`,
`seed`, `train_args`, `device`, `workers`), outcome (`status` 'ok' | 'failed', `error`), metrics of the best
checkpoint (`map50`, `map50_95`, `precision`, `recall`, `best_epoch`, `epochs_done`), speed (`train_time_s`,
`images_per_s`), cost (`params`, `gflops`, `gflops_aten`, `flops_imgsz`, `flops_flag`, `flops_note`), pretrained
weights (`pretrained` {path, sha256}, `transferred_tensors`, `total_tensors`, `transferred_params`, `fresh_rows`,
`partial_rows`; all None for runs from scratch, see `yoloab.transfer`), provenance (`run_dir`, `resumed`,
`started`, `finished`, `device_name`, `torch`, `ultralytics`, `yoloab`, `python`).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StorageError, YoloabWarning
from .variants import write_atomic

if TYPE_CHECKING:
    import pandas as pd

RUN_KEYS = (
    "kind", "key", "sweep", "variant", "base", "module", "placement", "yaml_sha256", "yaml",
    "dataset", "dataset_id", "nc",
    "epochs", "imgsz", "batch", "seed", "train_args", "device", "workers",
    "status", "error",
    "map50", "map50_95", "precision", "recall", "best_epoch", "epochs_done",
    "train_time_s", "images_per_s",
    "params", "gflops", "gflops_aten", "flops_imgsz", "flops_flag", "flops_note",
    "pretrained", "transferred_tensors", "total_tensors", "transferred_params", "fresh_rows", "partial_rows",
    "run_dir", "resumed", "started", "finished", "device_name", "torch", "ultralytics", "yoloab", "python",
)  # fmt: skip


def _why(err: OSError) -> str:
    return "no space left on the device" if err.errno == errno.ENOSPC else (err.strerror or str(err))


def check_writable(results_dir: str | Path) -> None:
    """Make sure the results directory (and its `runs/` and `profile/` folders) can take files, before any work.

    An existing directory is probed with a file created and removed, since permission bits do not tell (root,
    read-only mounts); one still to be created is checked through its nearest existing parent, and not created here.

    Raises:
        StorageError: it, or a folder of the layout, is a file, or it cannot be written.
    """
    root = Path(results_dir)
    for path in (root, root / "runs", root / "profile"):
        if path.exists() and not path.is_dir():
            raise StorageError(f"--results {root}: '{path}' is a file; expected a folder (or a path to create)")
    if not root.exists():
        parent = next((p for p in root.absolute().parents if p.exists()), Path("/"))
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise StorageError(f"--results {root} cannot be created: '{parent}' is not a writable folder")
        return
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise StorageError(f"--results {root} cannot be written: {_why(err)}") from err


def _write(path: Path, text: str, what: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as err:
        raise StorageError(f"cannot write {what} to {path}: {_why(err)}; the stored records are unchanged") from err


def store_profile(records: list[dict[str, Any]], results_dir: str | Path) -> Path:
    """Write the records of one profile run; returns the file.

    Raises:
        StorageError: the file cannot be written (the records are not stored).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(results_dir) / "profile" / f"{stamp}-{secrets.token_hex(4)}.json"
    _write(path, json.dumps(records, indent=1, default=str) + "\n", "the profile records")
    return path


def quarantine(path: Path, why: str) -> Path | None:
    """Move a damaged results file to `damaged/` beside `runs/` (kept, never deleted) and warn once, naming it.

    Returns:
        Where it went, or None when it could not be moved (it is then left in place and only warned about).
    """
    target = path.parent.parent / "damaged" / path.name
    try:
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            target = target.with_name(f"{path.stem}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}{path.suffix}")
        os.replace(path, target)
    except FileNotFoundError:  # another sweep moved it first
        return None
    except OSError as err:
        warnings.warn(f"damaged record {path} ({why}) ignored; it could not be moved aside: {_why(err)}",
                      YoloabWarning, stacklevel=3)  # fmt: skip
        return None
    warnings.warn(f"damaged record {path} ({why}) moved to {target}; its run counts as not done",
                  YoloabWarning, stacklevel=3)  # fmt: skip
    return target


def _read_json(path: Path, expect: type) -> Any:
    """A JSON file of the expected shape, or None after moving it aside (see `quarantine`)."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        quarantine(path, f"not JSON: {type(err).__name__}")
        return None
    except FileNotFoundError:  # moved aside or replaced by another process meanwhile
        return None
    ok = isinstance(value, expect) and (expect is not dict or {"key", "status"} <= value.keys())
    if not ok:
        quarantine(path, "not a run record" if expect is dict else "not a list of records")
        return None
    return value


def load_profiles(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored profile record, oldest run first; a damaged file is moved aside with a warning."""
    records: list[dict[str, Any]] = []
    for path in sorted((Path(results_dir) / "profile").glob("*.json")):
        records.extend(r for r in _read_json(path, list) or [] if isinstance(r, dict))
    return records


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
    """Write (or replace) the record of one run, atomically; returns the file.

    Raises:
        StorageError: the record cannot be written (full disk, read-only); any earlier record stays as it was.
    """
    path = run_path(results_dir, record["key"])
    text = json.dumps({k: record.get(k) for k in RUN_KEYS}, indent=1, default=str) + "\n"
    status = record.get("status") if not record.get("error") else f"{record.get('status')}: {record.get('error')}"
    _write(path, text, f"the record of {record.get('variant')} seed {record.get('seed')} ({status})")
    return path


def load_run(results_dir: str | Path, key: str) -> dict[str, Any] | None:
    """The stored record of run `key`, or None (also for a damaged record, which is moved aside with a warning)."""
    path = run_path(results_dir, key)
    return _read_json(path, dict) if path.is_file() else None


def load_runs(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored run record, in the order the runs finished; damaged records are moved aside with a warning."""
    paths = sorted((Path(results_dir) / "runs").glob("*.json"))
    records = [r for r in (_read_json(p, dict) for p in paths) if r is not None]
    return sorted(records, key=lambda r: (r.get("finished") or "", r["key"]))


def runs_frame(results_dir: str | Path) -> pd.DataFrame:
    """The run records as a pandas DataFrame, one row per run, columns `RUN_KEYS`."""
    import pandas as pd

    return pd.DataFrame(load_runs(results_dir), columns=list(RUN_KEYS))
