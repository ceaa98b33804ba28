"""JSON: `yoloab profile --format json`, the records of the table's rows as a list."""

from __future__ import annotations

import json

from .table import ReportTable, flagged_records


def profile_json(table: ReportTable) -> str:
    """The records of every row, in table order, with their stability flags (`<latency key>_unstable`), as JSON."""
    return json.dumps(flagged_records(table), indent=1, default=str) + "\n"
