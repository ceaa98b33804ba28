"""CSV: raw, unrounded numbers for scripts (named `csv_format` so that it never shadows the standard `csv`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from .metrics import DATASET, Metric
from .table import Report, ReportTable, Row

HEAD = (
    "table", "variant", "label", "base", "module", "placement", "baseline",
    "epochs", "imgsz", "batch", "seeds", "n_ok", "n_failed", "n_resumed",
)  # fmt: skip
TAIL = ("best", "errors")
EXTRAS: dict[str, Callable[[Row], Any]] = {
    "flops_flag": lambda row: row.flops_flag,
    "flops_note": lambda row: row.flops_note,
    "latency_imgsz": lambda row: row.latency_source.get("imgsz") if row.latency_source else None,
    "latency_device": lambda row: row.latency_source.get("device_name") if row.latency_source else None,
}
"""Row facts a metric may list after its columns (`Metric.csv_extra`)."""


def metric_fields(m: Metric) -> list[str]:
    """The CSV columns of one metric: value (mean and std for spread metrics), Δ and Δ%, interval, extras."""
    out = [f"{m.key}_mean", f"{m.key}_std"] if m.spread else [m.key]
    if m.delta:
        out += [f"d_{m.key}", f"d_{m.key}_pct"]
        if m.delta_ci:
            out += [f"{m.delta_ci}_ci_low", f"{m.delta_ci}_ci_high", f"{m.delta_ci}_significant"]
    return out + list(m.csv_extra)


def fields(report: Report) -> list[str]:
    """Every column of the report's CSV: the row's identity, each metric of any table, best marks and errors."""
    metrics = {m.key: m for t in report.tables for m in t.metrics}
    return [*HEAD, *(f for m in metrics.values() for f in metric_fields(m)), *TAIL]


def _row(table: ReportTable, row: Row) -> dict[str, Any]:
    line: dict[str, Any] = {
        "table": table.name,
        "variant": row.variant,
        "label": row.label,
        "base": row.base,
        "module": row.module,
        "placement": row.placement,
        "baseline": row.baseline or (row.label if row.is_baseline else None),
        "epochs": row.settings.get("epochs"),
        "imgsz": row.settings.get("imgsz"),
        "batch": row.settings.get("batch"),
        "seeds": " ".join(str(s) for s in row.seeds) if table.kind == DATASET else None,
        "n_ok": len(row.runs),
        "n_failed": len(row.failed),
        "n_resumed": len(row.resumed),
        "best": " ".join(m.key for m in table.metrics if m.key in row.best),
        "errors": " | ".join(" ".join(str(r.get("error")).split()) for r in row.failed) or None,
    }
    for m in table.metrics:
        stat = row.values[m.key]
        if m.spread:
            line[f"{m.key}_mean"], line[f"{m.key}_std"] = stat.mean, stat.std
        else:
            line[m.key] = stat.mean
        delta = row.deltas.get(m.key)
        if delta is not None:
            line[f"d_{m.key}"], line[f"d_{m.key}_pct"] = delta.abs, delta.pct
            if m.delta_ci:
                line[f"{m.delta_ci}_ci_low"], line[f"{m.delta_ci}_ci_high"] = delta.low, delta.high
                line[f"{m.delta_ci}_significant"] = delta.significant
        for extra in m.csv_extra:
            line[extra] = EXTRAS[extra](row)
    return line


def report_csv(report: Report) -> str:
    """Raw numbers for scripts: one row per variant and settings of every table (rows whose runs all failed too).

    Means, sample standard deviations (`*_std`, empty for one seed) and deltas are unrounded; `params` is a count.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields(report), lineterminator="\n")
    writer.writeheader()
    for table in report.tables:
        writer.writerows(_row(table, row) for row in table.rows)
    return buf.getvalue()


def profile_csv(table: ReportTable) -> str:
    """`yoloab profile --format csv`: every key of every row's record, raw values, no formatting."""
    records = [r for row in table.rows for r in row.runs]
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()
