"""Rendering records as tables: Rich for the terminal, Markdown and CSV for papers and scripts."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.table import Table

COLUMNS = [  # key, header, format
    ("variant", "variant", "{}"),
    ("params", "params", "{:,}"),
    ("gflops", "GFLOPs (Ultralytics)", "{:.2f}"),
    ("gflops_aten", "GFLOPs (aten)", "{:.2f}"),
    ("latency_ms", "latency ms", "{:.2f}"),
    ("throughput_ips", "img/s", "{:.1f}"),
    ("mem_infer_mb", "mem infer MiB", "{:.0f}"),
    ("mem_train_mb", "mem train MiB", "{:.0f}"),
]


def baseline_of(record: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The baseline record of the same base model and input size, if profiled."""
    return next(
        (
            r
            for r in records
            if r.get("module") is None and r.get("base") == record.get("base") and r.get("imgsz") == record.get("imgsz")
        ),
        None,
    )


def delta(record: dict[str, Any], base: dict[str, Any] | None, key: str) -> str:
    """`+1.2 (+3.4%)`-style change of one value against the baseline, '' where not comparable."""
    if base is None or base is record or record.get(key) is None or not base.get(key):
        return ""
    d = record[key] - base[key]
    pct = 100 * d / base[key]
    absolute = f"{d:+,}" if isinstance(d, int) else f"{d:+.2f}"
    return f"{absolute} ({pct:+.1f}%)"


def _cell(record: dict[str, Any], key: str, fmt: str) -> str:
    value = record.get(key)
    if value is None:
        return "error" if key == "gflops" and record.get("gflops_error") else "-"
    text = fmt.format(value)
    if key == "latency_ms" and record.get("latency_iqr_ms") is not None:
        text += f" ± {record['latency_iqr_ms']:.2f}"
    return text


def _present(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(r.get(c[0]) is not None for r in records) or c[0] in ("gflops", "gflops_aten")]


def notes(records: list[dict[str, Any]]) -> list[str]:
    """Footnotes: flagged FLOP counts with their reason, failed counts with their error."""
    out = []
    for r in records:
        if r.get("flops_flag"):
            out.append(f"{r['variant']}: Ultralytics and aten GFLOPs differ by more than 5%: {r['flops_note']}")
        if r.get("gflops_error"):
            out.append(f"{r['variant']}: Ultralytics GFLOPs not available: {r['gflops_error']}")
    return out


def rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows, with deltas of params and both GFLOPs against each row's baseline."""
    cols = _present(records)
    header = []
    for key, title, _ in cols:
        header.append(title)
        if key in ("params", "gflops", "gflops_aten", "latency_ms"):
            header.append(f"Δ {title.split(' ')[0]}" + (" (aten)" if key == "gflops_aten" else ""))
    out = []
    for r in records:
        base = baseline_of(r, records)
        line = []
        for key, _, fmt in cols:
            cell = _cell(r, key, fmt)
            line.append(cell + (" †" if key == "variant" and r.get("flops_flag") else ""))
            if key in ("params", "gflops", "gflops_aten", "latency_ms"):
                line.append(delta(r, base, key))
        out.append(line)
    return header, out


def rich_table(records: list[dict[str, Any]], title: str) -> Table:
    """A Rich table of profile records."""
    header, body = rows(records)
    table = Table(title=title, title_justify="left", caption_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
    for line in body:
        table.add_row(*line)
    foot = notes(records)
    if foot:
        table.caption = "\n".join(f"† {n}" for n in foot)
    return table


def markdown(records: list[dict[str, Any]]) -> str:
    """A Markdown table with footnotes."""
    header, body = rows(records)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    lines += [""] + [f"† {n}" for n in notes(records)] if notes(records) else []
    return "\n".join(lines) + "\n"


def csv_text(records: list[dict[str, Any]]) -> str:
    """Every key of every record as CSV (raw values, no formatting)."""
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def json_text(records: list[dict[str, Any]]) -> str:
    """The records as a JSON list."""
    return json.dumps(records, indent=1, default=str) + "\n"
