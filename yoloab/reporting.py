"""Rendering records as tables: Rich for the terminal; Markdown, CSV, LaTeX and HTML for papers and scripts.

Two users: `yoloab profile` renders its fresh records with `rich_table`, `markdown`, `csv_text` and `json_text`;
`yoloab report` reads the results store with `load_report`, which groups run records into one row per variant and
settings (seeds averaged), takes deltas against each base model's baseline, marks the best value per column, and
renders the tables with `render_report` (plots: `yoloab.plots`).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from .errors import ResultsError, did_you_mean
from .results import load_profiles, load_runs
from .variants import write_atomic

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


# --------------------------------------------------------------------------------------------------------------------
# `yoloab report`: article-style comparison tables from the results store
# --------------------------------------------------------------------------------------------------------------------

GROUP_KEYS = ("yaml_sha256", "dataset_id", "epochs", "imgsz", "batch", "train_args", "device", "workers")
"""Run-record keys that must match for runs to be seeds of one row (besides the variant name)."""

RUN_SETTING_KEYS = ("dataset_id", "epochs", "imgsz", "batch", "train_args")
"""Training settings stated under a run table (with the seeds)."""
RUN_MEASURE_KEYS = ("flops_imgsz", "device_name")
"""How the cost was counted and where the runs trained, stated with the versions."""
PROFILE_SETTING_KEYS = ("imgsz", "batch", "device_name", "dtype", "threads")
VERSION_KEYS = ("torch", "ultralytics", "yoloab", "python")
_SETTING_NAMES = {
    "dataset_id": "dataset id",
    "train_args": "train args",
    "flops_imgsz": "GFLOPs at imgsz",
    "device_name": "device",
    "yaml_sha256": "yaml",
}
FORMATS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}
"""Report formats and the extension of their file."""


@dataclass(frozen=True)
class Metric:
    """One value column of a report table.

    Attributes:
        key: Record key (`params`, `map50_95`, ...).
        title: Header for Markdown, HTML, CSV readers and the terminal.
        latex: Header for LaTeX, already in LaTeX markup.
        digits: Decimals shown.
        scale: Factor applied before display (params are shown in millions).
        higher_is_better: Direction of the best mark (mAP) as opposed to lower (cost).
        spread: Whether the spread over seeds is shown (metrics that change with the seed).
    """

    key: str
    title: str
    latex: str
    digits: int
    scale: float = 1.0
    higher_is_better: bool = False
    spread: bool = False


METRICS = {
    m.key: m
    for m in (
        Metric("params", "params (M)", "Params (M)", 3, scale=1e-6),
        Metric("gflops", "GFLOPs (Ultralytics)", "GFLOPs (Ultralytics)", 2),
        Metric("gflops_aten", "GFLOPs (aten)", "GFLOPs (aten)", 2),
        Metric("latency_ms", "latency (ms)", "Latency (ms)", 2),
        Metric("map50", "mAP50", r"mAP$_{50}$", 3, higher_is_better=True, spread=True),
        Metric("map50_95", "mAP50-95", r"mAP$_{50:95}$", 3, higher_is_better=True, spread=True),
    )
}
RUN_METRICS = ("params", "gflops", "gflops_aten", "latency_ms", "map50", "map50_95")
PROFILE_METRICS = ("params", "gflops", "gflops_aten", "latency_ms")


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of one value over the runs of a row.

    Attributes:
        mean: Mean, None when no run has the value.
        std: Sample standard deviation (n - 1), None for fewer than two values.
        n: Number of values.
    """

    mean: float | None
    std: float | None = None
    n: int = 0


def mean_std(values: Iterable[float | int | None]) -> Stat:
    """Mean and sample standard deviation of the values that are present (None and NaN are skipped)."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return Stat(None)
    std = statistics.stdev(present) if len(present) > 1 else None
    return Stat(statistics.mean(present), std, len(present))


@dataclass
class Row:
    """One variant (with its settings) of a report table.

    Attributes:
        variant: Variant name.
        label: Name shown in the table: the variant, plus the settings that tell apart rows of the same variant.
        base: Base model.
        module: Swapped module, None for a baseline.
        placement: Placement of the swap.
        settings: The settings that define the row (`GROUP_KEYS` for runs, `imgsz` for profile rows).
        values: Mean and spread of every metric over the finished runs.
        runs: Finished run records (status 'ok'), or the one profile record.
        failed: Run records that did not finish.
        latency_source: The profile record the latency comes from (run tables).
        baseline: Label of the row the deltas are taken against; None without one (or for the baseline itself).
        deltas: Metric key -> (absolute change, relative change in % or None when the baseline value is 0).
        best: Keys of the metrics in which this row is the best.
        is_baseline: Whether the other rows are compared against this one.
    """

    variant: str
    label: str
    base: str | None
    module: str | None
    placement: str | None
    settings: dict[str, Any]
    values: dict[str, Stat]
    runs: list[dict[str, Any]]
    failed: list[dict[str, Any]] = field(default_factory=list)
    latency_source: dict[str, Any] | None = None
    baseline: str | None = None
    deltas: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    best: set[str] = field(default_factory=set)
    is_baseline: bool = False

    @property
    def ok(self) -> bool:
        """Whether at least one run finished (profile rows always have)."""
        return bool(self.runs)

    @property
    def seeds(self) -> list[Any]:
        """Seeds of the finished runs."""
        return [r.get("seed") for r in self.runs]

    @property
    def flops_flag(self) -> bool:
        """Whether Ultralytics' and the aten GFLOPs disagree (more than 5%)."""
        return any(r.get("flops_flag") for r in self.runs)

    @property
    def flops_note(self) -> str | None:
        """Why the FLOP counts disagree, from the first flagged record."""
        return next((r.get("flops_note") for r in self.runs if r.get("flops_flag")), None)

    @property
    def gflops_error(self) -> str | None:
        """Why Ultralytics' GFLOPs could not be counted (profile records)."""
        return next((r["gflops_error"] for r in self.runs if r.get("gflops_error")), None)


@dataclass
class ReportTable:
    """One table of a report: the runs on one dataset, or the profile-only records.

    Attributes:
        kind: 'dataset' or 'profile'.
        name: Dataset name, or 'profile'.
        title: Heading.
        metrics: Value columns, in order.
        rows: Every row, including those whose runs all failed (CSV lists them; the tables list their errors).
        legend: How to read the table (best marks, deltas, spreads).
        footnotes: Flagged FLOP counts (marked †) and failed counts.
        settings: What the runs shared (or did not), the latency source and versions.
        failures: One line per failed run with its error.
    """

    kind: str
    name: str
    title: str
    metrics: list[Metric]
    rows: list[Row]
    legend: list[str] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def shown(self) -> list[Row]:
        """Rows with at least one finished run: the rows of the rendered table."""
        return [r for r in self.rows if r.ok]


@dataclass
class Report:
    """Every table of one `yoloab report`.

    Attributes:
        tables: One table per dataset (sorted by name), then the profile-only table.
        baseline: The `--baseline` override, if any.
    """

    tables: list[ReportTable]
    baseline: str | None = None


@dataclass(frozen=True)
class Plot:
    """A rendered PNG that belongs to a table.

    Attributes:
        table: Name of the table it illustrates.
        filename: File name in the output folder.
        title: Alternative text.
        data: PNG bytes.
    """

    table: str
    filename: str
    title: str
    data: bytes


def slug(name: str) -> str:
    """A file-name-safe form of a dataset name (`data/my set.yaml` -> `data-my-set.yaml`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points: no other point has lower-or-equal cost and higher-or-equal score.

    A point that another one beats in one coordinate and ties in the other is dominated; identical points are all
    on the front.

    Args:
        costs: Lower is better (GFLOPs, latency).
        scores: Higher is better (mAP).

    Returns:
        The indices on the front, ordered by cost (then by score, best first).
    """
    front = [
        i
        for i, (c, s) in enumerate(zip(costs, scores, strict=True))
        if not any(c2 <= c and s2 >= s and (c2 < c or s2 > s) for c2, s2 in zip(costs, scores, strict=True))
    ]
    return sorted(front, key=lambda i: (costs[i], -scores[i]))


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _setting_text(key: str, value: Any) -> str:
    if key == "train_args":
        return " ".join(f"{k}={v}" for k, v in sorted((value or {}).items())) or "none"
    if key == "yaml_sha256" and value:
        return str(value)[:8]
    return "-" if value is None else str(value)


def _run_row(variant: str, label: str, records: list[dict[str, Any]], latency: dict[str, Any] | None) -> Row:
    records = sorted(records, key=lambda r: (_natural(str(r.get("seed"))), r.get("finished") or "", r.get("key") or ""))
    ok = [r for r in records if r.get("status") == "ok"]
    first = ok[0] if ok else records[0]
    values = {k: mean_std(r.get(k) for r in ok) for k in RUN_METRICS if k != "latency_ms"}
    values["latency_ms"] = Stat(latency["latency_ms"], None, 1) if latency else Stat(None)
    return Row(
        variant=variant,
        label=label,
        base=first.get("base"),
        module=first.get("module"),
        placement=first.get("placement"),
        settings={k: first.get(k) for k in GROUP_KEYS},
        values=values,
        runs=ok,
        failed=[r for r in records if r.get("status") != "ok"],
        latency_source=latency,
    )


def _labels(groups: dict[tuple[str, ...], list[dict[str, Any]]]) -> dict[tuple[str, ...], str]:
    """Row labels: the variant name, plus the settings that differ where one variant has several groups."""
    by_variant: dict[str, list[tuple[str, ...]]] = {}
    for key in groups:
        by_variant.setdefault(key[0], []).append(key)
    labels = {}
    for variant, keys in by_variant.items():
        differing = [i for i, k in enumerate(GROUP_KEYS, 1) if len({key[i] for key in keys}) > 1]
        for key in keys:
            first = groups[key][0]
            extra = ", ".join(
                f"{_SETTING_NAMES.get(GROUP_KEYS[i - 1], GROUP_KEYS[i - 1])} "
                f"{_setting_text(GROUP_KEYS[i - 1], first.get(GROUP_KEYS[i - 1]))}"
                for i in differing
            )
            labels[key] = f"{variant} ({extra})" if extra else variant
    return labels


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key that puts 'epochs 5' before 'epochs 10'."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _row_order(row: Row) -> tuple[Any, ...]:
    # each base model's baseline first, then its variants by name: the order of the articles' tables
    return (row.base or "", row.module is not None, row.variant, _natural(row.label))


def _shared(records: list[dict[str, Any]], keys: Iterable[str]) -> list[str]:
    """'name value' for each key: the value where all records agree, else every value seen."""
    items = []
    for key in keys:
        seen: dict[str, Any] = {}
        for r in records:
            seen.setdefault(_freeze(r.get(key)), r.get(key))
        if not seen or seen.keys() == {"null"}:
            continue
        texts = sorted((_setting_text(key, v) for v in seen.values()), key=_natural)
        text = texts[0] if len(texts) == 1 else " / ".join(texts) + " (differ)"
        items.append(f"{_SETTING_NAMES.get(key, key)} {text}")
    return items


def _latency_line(rows: list[Row]) -> str:
    sources = {row.label: row.latency_source for row in rows if row.latency_source}
    if not sources:
        return "Latency: no yoloab profile record with a latency for these variants ('-')."
    keys = ("imgsz", "device_name", "dtype", "threads")
    described = {
        label: ", ".join(f"{_SETTING_NAMES.get(k, k)} {src[k]}" for k in keys if src.get(k) is not None)
        for label, src in sources.items()
    }
    head = "Latency: median ms at batch 1, from the latest yoloab profile record of each variant"
    if len(set(described.values())) == 1:
        return f"{head} ({next(iter(described.values()))})."
    return f"{head}; measured with different settings: " + "; ".join(f"{k}: {v}" for k, v in described.items()) + "."


def _run_table(name: str, records: list[dict[str, Any]], latency: dict[str, dict[str, Any]]) -> ReportTable:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((str(r.get("variant")), *(_freeze(r.get(k)) for k in GROUP_KEYS)), []).append(r)
    labels = _labels(groups)
    rows = sorted(
        (_run_row(key[0], labels[key], recs, latency.get(key[0])) for key, recs in groups.items()), key=_row_order
    )
    table = ReportTable("dataset", name, f"Dataset {name}", [METRICS[k] for k in RUN_METRICS], rows)
    ok_runs = [r for row in rows for r in row.runs] or records
    seeds = sorted({str(r.get("seed")) for r in ok_runs}, key=_natural)
    table.settings = [
        "Runs share: " + ", ".join([*_shared(ok_runs, RUN_SETTING_KEYS), f"seeds {', '.join(seeds)}"]) + ".",
        "Measured with: " + ", ".join(_shared(ok_runs, (*RUN_MEASURE_KEYS, *VERSION_KEYS))) + ".",
        _latency_line(table.shown),
    ]
    table.failures = [
        f"{row.label} (seed {r.get('seed')}): " + " ".join(str(r.get("error") or f"status {r.get('status')}").split())
        for row in rows
        for r in row.failed
    ]
    return table


def _profile_table(records: list[dict[str, Any]]) -> ReportTable:
    latest: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in records:  # oldest first: a later record of the same variant and size replaces an earlier one
        latest[(str(r.get("variant")), r.get("imgsz"))] = r
    several_sizes = len({imgsz for _, imgsz in latest}) > 1
    rows = sorted(
        (
            Row(
                variant=variant,
                label=f"{variant} @{imgsz}" if several_sizes else variant,
                base=r.get("base"),
                module=r.get("module"),
                placement=r.get("placement"),
                settings={"imgsz": imgsz},
                values={k: Stat(r.get(k), None, int(r.get(k) is not None)) for k in PROFILE_METRICS},
                runs=[r],
            )
            for (variant, imgsz), r in latest.items()
        ),
        key=_row_order,
    )
    table = ReportTable("profile", "profile", "Profile (no training)", [METRICS[k] for k in PROFILE_METRICS], rows)
    kept = [row.runs[0] for row in rows]
    table.settings = [
        "Profiled with: " + ", ".join(_shared(kept, (*PROFILE_SETTING_KEYS, *VERSION_KEYS))) + ".",
        "Latency: median ms at batch 1 (latest record of each variant and size).",
    ]
    return table


def _baseline_for(row: Row, rows: list[Row], override: str | None) -> Row | None:
    """The named variant, else the baseline (module None) of the same base; the one with the same settings first."""
    if override:
        candidates = [r for r in rows if r.variant == override]
    else:
        candidates = [r for r in rows if r.module is None and r.base == row.base]
    same = [r for r in candidates if r.settings == row.settings]
    return (same or candidates or [None])[0]


def _shown_value(metric: Metric, value: float) -> float:
    return round(value * metric.scale, metric.digits)


def _finish(table: ReportTable, override: str | None) -> None:
    """Deltas, best marks, legend and footnotes of a table whose rows are built."""
    rows = table.shown
    used: dict[str, None] = {}
    missing: dict[str, None] = {}
    for row in rows:
        base = _baseline_for(row, rows, override)
        if base is None:
            missing[row.base or "?"] = None
            continue
        used[base.label] = None
        if base is row:
            row.is_baseline = True
            continue
        row.baseline = base.label
        for m in table.metrics:
            value, ref = row.values[m.key].mean, base.values[m.key].mean
            if value is not None and ref is not None:
                row.deltas[m.key] = (value - ref, 100 * (value - ref) / ref if ref else None)
    for m in table.metrics:
        # a flagged Ultralytics count is known to be wrong (thop misses functional convs): never call it the best
        eligible = [
            (row, _shown_value(m, row.values[m.key].mean))
            for row in rows
            if row.values[m.key].mean is not None and not (m.key == "gflops" and row.flops_flag)
        ]
        if len(eligible) < 2:
            continue
        target = (max if m.higher_is_better else min)(v for _, v in eligible)
        for row, v in eligible:
            if v == target:
                row.best.add(m.key)

    maps = table.kind == "dataset"
    table.legend = [
        "Best value per column in bold: "
        + ("highest mAP50 and mAP50-95 (mean over seeds); " if maps else "")
        + "lowest params, GFLOPs and latency."
        + (" A flagged Ultralytics GFLOPs count (†) is not eligible." if any(r.flops_flag for r in rows) else ""),
    ]
    if override:
        delta_text = f"Δ: change against {override} (--baseline), absolute and relative."
    else:
        names = ", ".join(used) or "none stored"
        delta_text = (
            f"Δ: change against the baseline (no module) of the same base model ({names}), absolute and relative."
        )
    if missing:
        delta_text += f" No baseline for: {', '.join(missing)}."
    table.legend.append(delta_text)
    if maps:
        table.legend.append(
            "mAP: best checkpoint on the validation set; mean ± sample standard deviation over seeds where a variant "
            "has several; seeds: finished runs."
        )
    table.footnotes = []
    for row in rows:
        if row.flops_flag:
            note = row.flops_note or "see yoloab profile"
            table.footnotes.append(f"† {row.label}: Ultralytics and aten GFLOPs differ by more than 5%: {note}")
        if row.gflops_error:
            table.footnotes.append(f"{row.label}: Ultralytics GFLOPs not available: {row.gflops_error}")


def _hint(name: str, names: Iterable[str], what: str) -> str:
    names = sorted(set(names))
    return did_you_mean(name, names) or (f" (stored {what}: {', '.join(names)})" if names else "")


def build_report(
    runs: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    *,
    dataset: str | None = None,
    baseline: str | None = None,
    source: str = "the results directory",
) -> Report:
    """Group, aggregate and compare stored records into report tables.

    Args:
        runs: Run records (`yoloab.results.load_runs`), any order.
        profiles: Profile records, oldest first (`yoloab.results.load_profiles`).
        dataset: Only the table of this dataset (the profile-only table is left out).
        baseline: Variant name to take every delta against, instead of each base model's baseline.
        source: How to name where the records came from in error messages.

    Returns:
        One table per dataset, sorted by name, then one for the profile records (unless `dataset` is given).

    Raises:
        ResultsError: No record at all, or `dataset`/`baseline` matching nothing (with the nearest names).
    """
    runs = [r for r in runs if r.get("kind", "run") == "run"]
    if not runs and not profiles:
        raise ResultsError(f"{source} holds no run or profile record; run `yoloab sweep` or `yoloab profile` first")
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_dataset.setdefault(str(r.get("dataset") or "unknown"), []).append(r)
    if dataset is not None and dataset not in by_dataset:
        where = (
            _hint(dataset, by_dataset, "datasets") if by_dataset else " (no training run stored; run `yoloab sweep`)"
        )
        raise ResultsError(f"no training run on dataset {dataset!r} in {source}{where}")

    latency: dict[str, dict[str, Any]] = {}
    for r in profiles:  # oldest first, so the latest measured latency of each variant wins
        if r.get("latency_ms") is not None:
            latency[str(r.get("variant"))] = r
    tables = [_run_table(name, by_dataset[name], latency) for name in sorted(by_dataset) if dataset in (None, name)]
    if dataset is None and profiles:
        tables.append(_profile_table(profiles))

    if baseline is not None:
        names = {row.variant for t in tables for row in t.shown}
        if baseline not in names:
            on = f" on dataset {dataset!r}" if dataset else ""
            raise ResultsError(
                f"baseline {baseline!r} matches no variant{on} in {source}{_hint(baseline, names, 'variants')}"
            )
    for table in tables:
        has_override = baseline is not None and any(row.variant == baseline for row in table.shown)
        _finish(table, baseline if has_override else None)
    return Report(tables, baseline)


def load_report(results_dir: str | Path, *, dataset: str | None = None, baseline: str | None = None) -> Report:
    """Read the results store and build the report (see `build_report`).

    Raises:
        ResultsError: A missing directory, an unreadable record, or nothing matching the request.
    """
    path = Path(results_dir)
    if not path.is_dir():
        raise ResultsError(f"results directory '{path}' does not exist; run `yoloab sweep` or `yoloab profile` first")
    try:
        runs, profiles = load_runs(path), load_profiles(path)
    except (OSError, ValueError, KeyError, TypeError) as err:  # a hand-edited or foreign JSON file
        raise ResultsError(f"cannot read the results store '{path}': {type(err).__name__}: {err}") from None
    return build_report(runs, profiles, dataset=dataset, baseline=baseline, source=f"results directory '{path}'")


# ---- cells shared by the renderers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One table cell, marked up by each renderer.

    Attributes:
        text: The value as text ('-' when unknown, '' for no delta).
        std: Spread over seeds as text, shown as '± std'.
        best: Whether to mark it as the best of its column.
        dagger: Whether it carries the flagged-FLOP-count footnote mark.
    """

    text: str
    std: str | None = None
    best: bool = False
    dagger: bool = False


def _number(metric: Metric, value: float) -> str:
    return f"{value * metric.scale:.{metric.digits}f}"


def _delta_text(metric: Metric, row: Row) -> str:
    if row.is_baseline:
        return ""
    if metric.key not in row.deltas:
        return "-"
    d, pct = row.deltas[metric.key]
    text = f"{d * metric.scale:+.{metric.digits}f}"
    return text if pct is None else f"{text} ({pct:+.1f}%)"


def _value_cell(metric: Metric, row: Row) -> Cell:
    stat = row.values[metric.key]
    dagger = metric.key == "gflops" and row.flops_flag
    if stat.mean is None:
        return Cell("error" if metric.key == "gflops" and row.gflops_error else "-")
    std = _number(metric, stat.std) if metric.spread and stat.std is not None else None
    return Cell(_number(metric, stat.mean), std, metric.key in row.best, dagger)


def table_cells(table: ReportTable) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells of the rendered rows: variant, seeds (run tables), then each metric and its delta.

    Returns:
        The plain-text header and one list of cells per shown row.
    """
    runs = table.kind == "dataset"
    header = ["variant", *(["seeds"] if runs else [])]
    for m in table.metrics:
        header += [m.title, "Δ"]
    body = []
    for row in table.shown:
        cells = [Cell(row.label), *([Cell(str(len(row.runs)))] if runs else [])]
        for m in table.metrics:
            cells += [_value_cell(m, row), Cell(_delta_text(m, row))]
        body.append(cells)
    return header, body


def _notes(table: ReportTable) -> list[str]:
    return [*table.legend, *table.footnotes, *table.settings]


# ---- Markdown ---------------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(cell: Cell) -> str:
    text = _md_escape(cell.text) + (f" ± {cell.std}" if cell.std else "")
    if cell.best and text:
        text = f"**{text}**"
    return text + ("†" if cell.dagger else "")


def report_markdown(report: Report, plots: Sequence[Plot] = ()) -> str:
    """The report as Markdown: a heading, the table and its notes per table, then links to the plots.

    Args:
        report: The report.
        plots: PNGs written next to the Markdown file, linked under their table.
    """
    out = ["# yoloab report", ""]
    for table in report.tables:
        header, body = table_cells(table)
        out += [f"## {table.title}", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in line) + " |" for line in body]
        out.append("")
        for note in _notes(table):  # one paragraph each: no trailing-space line breaks for editors to strip
            out += [_md_escape(note), ""]
        out.pop()
        if table.failures:
            out += ["", "Failed runs (not in the table, means or best marks):", ""]
            out += [f"- {_md_escape(f)}" for f in table.failures]
        images = [p for p in plots if p.table == table.name]
        if images:
            out.append("")
            out += [f"![{p.title}]({p.filename})" for p in images]
        out.append("")
    return "\n".join(out)


# ---- CSV --------------------------------------------------------------------------------------------------------

CSV_FIELDS = (
    "table", "variant", "label", "base", "module", "placement", "baseline",
    "epochs", "imgsz", "batch", "seeds", "n_ok", "n_failed",
    "params", "d_params", "d_params_pct",
    "gflops", "d_gflops", "d_gflops_pct", "flops_flag", "flops_note",
    "gflops_aten", "d_gflops_aten", "d_gflops_aten_pct",
    "latency_ms", "d_latency_ms", "d_latency_ms_pct", "latency_imgsz", "latency_device",
    "map50_mean", "map50_std", "d_map50", "d_map50_pct",
    "map50_95_mean", "map50_95_std", "d_map50_95", "d_map50_95_pct",
    "best", "errors",
)  # fmt: skip


def _csv_row(table: ReportTable, row: Row) -> dict[str, Any]:
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
        "seeds": " ".join(str(s) for s in row.seeds) if table.kind == "dataset" else None,
        "n_ok": len(row.runs),
        "n_failed": len(row.failed),
        "flops_flag": row.flops_flag,
        "flops_note": row.flops_note,
        "best": " ".join(m.key for m in table.metrics if m.key in row.best),
        "errors": " | ".join(" ".join(str(r.get("error")).split()) for r in row.failed) or None,
    }
    if row.latency_source:
        line["latency_imgsz"] = row.latency_source.get("imgsz")
        line["latency_device"] = row.latency_source.get("device_name")
    for m in table.metrics:
        stat = row.values[m.key]
        if m.spread:
            line[f"{m.key}_mean"], line[f"{m.key}_std"] = stat.mean, stat.std
        else:
            line[m.key] = stat.mean
        if m.key in row.deltas:
            line[f"d_{m.key}"], line[f"d_{m.key}_pct"] = row.deltas[m.key]
    return line


def report_csv(report: Report) -> str:
    """Raw numbers for scripts: one row per variant and settings of every table (rows whose runs all failed too).

    Means, sample standard deviations (`*_std`, empty for one seed) and deltas are unrounded; `params` is a count.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for table in report.tables:
        writer.writerows(_csv_row(table, row) for row in table.rows)
    return buf.getvalue()


# ---- LaTeX ------------------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "†": r"$^\dagger$",
}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters (`_ % & # $ { } ~ ^ \`) and spell ±, Δ and † in math mode."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_cell(cell: Cell) -> str:
    text = latex_escape(cell.text) + (rf" $\pm$ {cell.std}" if cell.std else "")
    if cell.best and text:
        text = rf"\textbf{{{text}}}"
    return text + (r"$^\dagger$" if cell.dagger else "")


def report_latex(report: Report) -> str:
    r"""LaTeX tables for papers (needs `\usepackage{booktabs}`), best values in bold, notes under each table."""
    out = [r"% yoloab report; needs \usepackage{booktabs}", ""]
    for table in report.tables:
        header, body = table_cells(table)
        titles = [r"Model", *(["Seeds"] if table.kind == "dataset" else [])]
        for m in table.metrics:
            titles += [m.latex, r"$\Delta$"]
        out += [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(table.title)}}}",
            rf"\label{{tab:yoloab-{slug(table.name).replace('.', '-').replace('_', '-')}}}",
            r"\scriptsize",
            rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}",
            r"\toprule",
            " & ".join(titles) + r" \\",
            r"\midrule",
        ]
        out += [" & ".join(_latex_cell(c) for c in line) + r" \\" for line in body]
        out += [r"\bottomrule", r"\end{tabular}", "", r"\smallskip", r"\begin{minipage}{\linewidth}\scriptsize"]
        notes = _notes(table)
        if table.failures:
            notes = [*notes, "Failed runs (not in the table, means or best marks): " + "; ".join(table.failures) + "."]
        out += [latex_escape(n) + r"\par" for n in notes]
        out += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(out)


# ---- HTML -------------------------------------------------------------------------------------------------------

_HTML_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
th { border-bottom: 2px solid #444; }
td:first-child, th:first-child { text-align: left; }
p.note { font-size: 0.85em; margin: 0.2em 0; color: #444; }
img { max-width: 100%; margin: 0.5em 1em 0.5em 0; border: 1px solid #eee; }
"""


def _html_cell(cell: Cell) -> str:
    text = html.escape(cell.text) + (f" ± {html.escape(cell.std)}" if cell.std else "")
    if cell.best and text:
        text = f"<strong>{text}</strong>"
    return text + ("<sup>†</sup>" if cell.dagger else "")


def report_html(report: Report, plots: Sequence[Plot] = ()) -> str:
    """A self-contained page: every table with its notes, and its plots embedded as `data:image/png` URIs."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>yoloab report</title>',
        f"<style>{_HTML_STYLE}</style></head>",
        "<body>",
        "<h1>yoloab report</h1>",
    ]
    for table in report.tables:
        header, body = table_cells(table)
        out.append(f"<h2>{html.escape(table.title)}</h2>")
        out.append("<table>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>")
        out.append("<tbody>")
        out += ["<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in line) + "</tr>" for line in body]
        out.append("</tbody></table>")
        out += [f'<p class="note">{html.escape(n)}</p>' for n in _notes(table)]
        if table.failures:
            out.append('<p class="note">Failed runs (not in the table, means or best marks):</p>')
            out.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in table.failures) + "</ul>")
        for p in (p for p in plots if p.table == table.name):
            data = base64.b64encode(p.data).decode("ascii")
            out.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(p.title)}">')
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# ---- terminal, dispatch, files ----------------------------------------------------------------------------------


def rich_report(report: Report) -> list[Table]:
    """One Rich table per report table, for the terminal.

    Each delta is a dim second line under its value (half the columns of the Markdown table); best values are bold
    green; notes and failed runs go in the caption.
    """
    out = []
    for table in report.tables:
        header, body = table_cells(table)
        fixed = 2 if table.kind == "dataset" else 1  # variant (and seeds) come before the value/delta pairs
        rt = Table(title=table.title, title_justify="left", caption_justify="left")
        for i, h in enumerate(header[:fixed]):
            rt.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for m in table.metrics:
            rt.add_column(m.title.replace(" (", "\n("), justify="right")
        for line in body:
            cells = [Text(c.text) for c in line[:fixed]]
            for value, change in zip(line[fixed::2], line[fixed + 1 :: 2], strict=True):
                text = Text(value.text + (f" ± {value.std}" if value.std else "") + ("†" if value.dagger else ""))
                text.stylize("bold green" if value.best else "")
                if change.text:
                    text.append("\n" + change.text, style="dim")
                cells.append(text)
            rt.add_row(*cells)
        rt.caption = Text("\n".join(_notes(table) + [f"failed: {f}" for f in table.failures]))
        out.append(rt)
    return out


def render_report(report: Report, fmt: str, plots: Sequence[Plot] = ()) -> str:
    """The report as text in one of `FORMATS` (md, csv, latex, html); plots are linked (md) or embedded (html)."""
    if fmt == "md":
        return report_markdown(report, plots)
    if fmt == "csv":
        return report_csv(report)
    if fmt == "latex":
        return report_latex(report)
    if fmt == "html":
        return report_html(report, plots)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a binary file so that readers never see a partial file (temporary file in the same folder, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the plots from a web server or a colleague
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(out_dir: str | Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write every rendered file (text or PNG bytes) into `out_dir`, each atomically; returns the paths."""
    paths = []
    for name, content in files.items():
        path = Path(out_dir) / name
        if isinstance(content, bytes):
            write_bytes_atomic(path, content)
        else:
            write_atomic(path, content)
        paths.append(path)
    return paths
