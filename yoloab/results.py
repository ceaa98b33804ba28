"""The results store: JSON files under a results directory, written atomically, read back with pandas.

Layout: `<results>/profile/<utc time>-<random>.json`, one list of flat records per `yoloab profile` run. A file
appears whole or not at all (written to a temporary name, then renamed), so readers and concurrent writers never see
a partial record.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from .variants import write_atomic


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
