"""CSV: raw, unrounded numbers for scripts (named `csv_format` so that it never shadows the standard `csv`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from .metrics import DATASET, Metric
from .table import Report, ReportTable, Row, flagged_records

HEAD = (
    "table", "variant", "label", "base", "module", "placement", "baseline",
    "epochs", "imgsz", "batch", "seeds", "n_ok", "n_failed", "n_resumed",
)  # fmt: skip
TAIL = ("best", "errors")
EXTRAS: dict[str, Callable[[Row], Any]] = {
    "flops_flag": lambda row: row.flops_flag,
    "flops_note": lambda row: row.flops_note,
    "latency_imgsz": lambda row: _source(row, "imgsz"),
    "latency_nc": lambda row: _source(row, "nc"),
    "latency_device": lambda row: _source(row, "device_name"),
    "latency_threads": lambda row: _source(row, "threads"),
    # 'same': the profile matches the runs' model, image size and classes; else how it differs ('imgsz 320')
    "latency_match": lambda row: (row.latency_mismatch or "same") if row.latency_source else None,
}
"""Row facts a metric may list after its columns (`Metric.csv_extra`)."""


def _source(row: Row, key: str) -> Any:
    """A setting of the profile record a run row's latency comes from (profile rows: their own record)."""
    record = row.latency_source or (row.runs[0] if row.runs and "latency_ms" in row.runs[0] else None)
    return record.get(key) if record else None


def metric_fields(m: Metric) -> list[str]:
    """The CSV columns of one metric: value (mean and std for spread metrics), Δ and Δ%, interval, extras."""
    out = [f"{m.key}_mean", f"{m.key}_std"] if m.spread else [m.key]
    if m.timed:  # the IQR the median comes with, and whether it exceeds the stability limit
        out += [m.profile_spread or f"{m.key}_iqr", f"{m.key}_unstable"]
    if m.delta:
        out += [f"d_{m.key}", f"d_{m.key}_pct"] + ([f"d_{m.key}_unstable"] if m.timed else [])
        if m.delta_ci:
            out += [f"{m.delta_ci}_ci_low", f"{m.delta_ci}_ci_high", f"{m.delta_ci}_significant"]
            out += [f"{m.delta_ci}_seed_ci_low", f"{m.delta_ci}_seed_ci_high", f"{m.delta_ci}_limited_by"]
    return out + list(m.csv_extra)


def fields(report: Report) -> list[str]:
    """Every column of the report's CSV: the row's identity, each metric of any table, best marks and errors."""
    metrics = {m.key: m for t in report.tables for m in t.metrics}
    # the box loss after the variant, where the records carry one (records from before the loss axis do not)
    head = [*HEAD[:2], "loss", *HEAD[2:]] if any(r.loss for t in report.tables for r in t.rows) else list(HEAD)
    return [*head, *(f for m in metrics.values() for f in metric_fields(m)), *TAIL]


def _row(table: ReportTable, row: Row) -> dict[str, Any]:
    line: dict[str, Any] = {
        "table": table.name,
        "variant": row.variant,
        **({"loss": row.loss} if row.loss else {}),
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
        if m.timed:
            line[m.profile_spread or f"{m.key}_iqr"] = stat.std
            line[f"{m.key}_unstable"] = m.key in row.unstable if stat.mean is not None else None
        delta = row.deltas.get(m.key)
        if delta is not None:
            line[f"d_{m.key}"], line[f"d_{m.key}_pct"] = delta.abs, delta.pct
            if m.timed:
                line[f"d_{m.key}_unstable"] = delta.unstable
            if m.delta_ci:
                line[f"{m.delta_ci}_ci_low"], line[f"{m.delta_ci}_ci_high"] = delta.low, delta.high
                line[f"{m.delta_ci}_significant"] = delta.significant
                line[f"{m.delta_ci}_seed_ci_low"], line[f"{m.delta_ci}_seed_ci_high"] = delta.seed_low, delta.seed_high
                line[f"{m.delta_ci}_limited_by"] = delta.limited_by
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
    """`yoloab profile --format csv`: every key of every row's record and its stability flags, raw values."""
    records = flagged_records(table)
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()
