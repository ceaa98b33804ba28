"""JSON: `yoloab profile --format json`, the records of the table's rows as a list."""

from __future__ import annotations

import json

from .table import ReportTable


def profile_json(table: ReportTable) -> str:
    """The records of every row, in table order, as an indented JSON list."""
    return json.dumps([r for row in table.rows for r in row.runs], indent=1, default=str) + "\n"
