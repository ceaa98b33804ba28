"""The results store: JSON files under a results directory, written atomically, read back with pandas.

Layout of a results directory:

- `profile/<utc time>-<random>.json`: one list of flat records per `yoloab profile` run.
- `runs/<key>.json`: one flat record per training run of `yoloab sweep`, named by the run key (a hash over the
  variant yaml content, the dataset, the settings and the seed), so a run can never be recorded twice.
- `train/<run name>/`: the Ultralytics run directories (`results.csv`, `weights/`).
- `variants/<variant>-<hash>.yaml`: the exact yaml each run trained.
- `locks/<key>.lock`: held while a run trains, so two sweeps sharing the directory never train the same run.

Every file appears whole or not at all (written to a temporary name, then renamed), so readers and concurrent
writers never see a partial record.

Keys of a run record (`RUN_KEYS`): identity (`kind`='run', `key`, `sweep`, `variant`, `base`, `module`,
`placement`, `yaml_sha256`, `yaml`), data (`dataset`, `dataset_id`, `nc`), settings (`epochs`, `imgsz`, `batch`,
`seed`, `train_args`, `device`, `workers`), outcome (`status` 'ok' | 'failed', `error`), metrics of the best
checkpoint (`map50`, `map50_95`, `precision`, `recall`, `best_epoch`, `epochs_done`), speed (`train_time_s`,
`images_per_s`), cost (`params`, `gflops`, `gflops_aten`, `flops_imgsz`, `flops_flag`, `flops_note`), provenance
(`run_dir`, `resumed`, `started`, `finished`, `device_name`, `torch`, `ultralytics`, `yoloab`, `python`).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    "run_dir", "resumed", "started", "finished", "device_name", "torch", "ultralytics", "yoloab", "python",
)  # fmt: skip


def store_profile(records: list[dict[str, Any]], results_dir: str | Path) -> Path:
    """Write the records of one profile run; returns the file."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(results_dir) / "profile" / f"{stamp}-{secrets.token_hex(4)}.json"
    write_atomic(path, json.dumps(records, indent=1, default=str) + "\n")
    return path


def load_profiles(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored profile record, oldest run first."""
    records: list[dict[str, Any]] = []
    for path in sorted((Path(results_dir) / "profile").glob("*.json")):
        records.extend(json.loads(path.read_text()))
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
    """Write (or replace) the record of one run, atomically; returns the file."""
    path = run_path(results_dir, record["key"])
    write_atomic(path, json.dumps({k: record.get(k) for k in RUN_KEYS}, indent=1, default=str) + "\n")
    return path


def load_run(results_dir: str | Path, key: str) -> dict[str, Any] | None:
    """The stored record of run `key`, or None."""
    path = run_path(results_dir, key)
    return json.loads(path.read_text()) if path.is_file() else None


def load_runs(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored run record, in the order the runs finished."""
    records = [json.loads(p.read_text()) for p in (Path(results_dir) / "runs").glob("*.json")]
    return sorted(records, key=lambda r: (r.get("finished") or "", r["key"]))


def runs_frame(results_dir: str | Path) -> pd.DataFrame:
    """The run records as a pandas DataFrame, one row per run, columns `RUN_KEYS`."""
    import pandas as pd

    return pd.DataFrame(load_runs(results_dir), columns=list(RUN_KEYS))
