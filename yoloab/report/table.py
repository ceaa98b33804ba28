"""The one table model of `yoloab profile` and `yoloab report`: rows, deltas against a baseline, best marks, notes.

A `ReportTable` holds rows of `Stat`s per `Metric` (`yoloab.report.metrics`); `finish` takes each row's deltas
against its baseline, marks the best value per column and writes the legend and footnotes; `cells` turns the
table into the grid of `Cell`s that every renderer marks up in its own syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .metrics import DATASET, PROFILE_COMMAND, STORED_PROFILE, UNSTABLE_IQR, Metric, Stat


@dataclass(frozen=True)
class Delta:
    """Change of one value against the baseline.

    Attributes:
        abs: Absolute change.
        pct: Relative change in %, None when the baseline value is 0.
        low: Lower end of a confidence interval of the change, if one is known.
        high: Upper end of that interval.
        significant: Whether the change is significant (shown as '*'), None when untested.
        unstable: Whether the value or its baseline is an unstable timing (shown as '‡', see `UNSTABLE_MARK`).
    """

    abs: float
    pct: float | None
    low: float | None = None
    high: float | None = None
    significant: bool | None = None
    unstable: bool = False


@dataclass
class Row:
    """One variant (with its settings) of a table.

    Attributes:
        variant: Variant name.
        label: Name shown in the table: the variant, plus the settings that tell apart rows of the same variant.
        base: Base model.
        module: Swapped module, None for a baseline.
        placement: Placement of the swap.
        settings: The settings that must match for a baseline to be preferred (`GROUP_KEYS` for runs, `imgsz`).
        values: Mean and spread of every metric over the finished runs.
        runs: Finished run records (status 'ok'), or the one profile record.
        failed: Run records that did not finish.
        latency_source: The profile record the latency comes from (run tables).
        latency_mismatch: How that profile differs from the runs ('imgsz 320, nc 80'), None when it matches
            (same model definition, image size and classes).
        group: Rows whose values may be compared for the best mark share it (profile tables: base model and size).
        timing_group: The conditions of the row's timings (image size, classes, device, threads, dtype): a timed
            value is compared (Δ, best mark) only with timings taken under the same conditions.
        unstable: Timed metric key -> its IQR as a fraction of the median, for the values flagged unstable.
        baseline: Label of the row the deltas are taken against; None without one (or for the baseline itself).
        deltas: Metric key -> change against the baseline.
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
    latency_mismatch: str | None = None
    group: tuple[Any, ...] = ()
    timing_group: tuple[Any, ...] | None = None
    unstable: dict[str, float] = field(default_factory=dict)
    baseline: str | None = None
    deltas: dict[str, Delta] = field(default_factory=dict)
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
    def shown_label(self) -> str:
        """The label as tables show it: marked where a run was resumed."""
        return f"{self.label} (resumed)" if self.resumed else self.label

    @property
    def resumed(self) -> list[dict[str, Any]]:
        """Finished runs that were interrupted and resumed (they may differ from an uninterrupted run; README)."""
        return [r for r in self.runs if r.get("resumed")]

    @property
    def flops_flag(self) -> bool:
        """Whether Ultralytics' and the aten GFLOPs disagree (more than 5%)."""
        return any(r.get("flops_flag") for r in self.runs)

    @property
    def flops_note(self) -> str | None:
        """Why the FLOP counts disagree, from the first flagged record."""
        return next((r.get("flops_note") for r in self.runs if r.get("flops_flag")), None)

    @property
    def attention_note(self) -> str | None:
        """How much of the fused count is attention matmuls, which published tables leave out (`yoloab.flops`)."""
        return next((r["attention_note"] for r in self.runs if r.get("attention_note")), None)

    def error(self, key: str | None) -> str | None:
        """The first record's explanation of a missing value (`Metric.error_key`), if any; an `ok` status is none.

        Run tables also look at the profile record their latency comes from (an export status per runtime).
        """
        records = [*self.runs, *([self.latency_source] if self.latency_source else [])]
        return next((str(r[key]) for r in records if r.get(key) and r[key] != "ok"), None) if key else None

    @property
    def gflops_error(self) -> str | None:
        """Why Ultralytics' GFLOPs could not be counted (profile records)."""
        return self.error("gflops_error")


@dataclass
class ReportTable:
    """One table: the runs on one dataset, the stored profile records, or the records `yoloab profile` just made.

    Attributes:
        kind: `DATASET`, `STORED_PROFILE` or `PROFILE_COMMAND` (`yoloab.report.metrics`).
        name: Dataset name, or 'profile'.
        title: Heading.
        metrics: Value columns, in order.
        rows: Every row, including those whose runs all failed (CSV lists them; the tables list their errors).
        legend: How to read the table (best marks, deltas, spreads).
        footnotes: Flagged FLOP counts (marked †), failed counts and attention shares (`Row.attention_note`).
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

    @property
    def notes(self) -> list[str]:
        """Everything printed under the table, failures aside: legend, footnotes, settings."""
        return [*self.legend, *self.footnotes, *self.settings]


@dataclass
class Report:
    """Every table of one `yoloab report`.

    Attributes:
        tables: One table per dataset (sorted by name), then the stored-profile table.
        baseline: The `--baseline` override, if any.
    """

    tables: list[ReportTable]
    baseline: str | None = None


# ---- deltas, best marks, notes ----------------------------------------------------------------------------------

UNSTABLE_MARK = "‡"
"""Marks a timing whose IQR exceeds `Metric.unstable_above` of its median, and every Δ taken against it."""
MISMATCH_MARK = "§"
"""Marks a run table's latency taken from a profile whose model, image size or classes differ from the runs'."""
TIMING_KEYS = ("imgsz", "nc", "device_name", "threads", "dtype")
"""Profile-record keys that must match for two timings to be compared (batch-1 latency does not depend on `batch`)."""
STABLE_HINT = (
    "for a stable figure, profile on an otherwise idle machine with the CPU defaults (1 thread, batch 1) and add "
    "--reprofile to replace the stored one"
)
"""What the terminal suggests when a table holds an unstable timing."""


def mismatches(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows whose latency comes from a profile with other settings than their runs, by how it differs."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        if row.latency_mismatch:
            out.setdefault(row.latency_mismatch, []).append(row)
    return out


def stability_hint(tables: list[ReportTable]) -> str | None:
    """One line for the terminal when a table holds an unstable timing: how many, and how to get a stable figure."""
    # a variant's timing shown in a run table and in the profile table is one timing
    n = len({(row.label, key) for table in tables for row in table.shown for key in row.unstable})
    if not n:
        return None
    limit = f"IQR above {100 * UNSTABLE_IQR:.0f}% of the median"
    return f"{n} unstable timing{'s' * (n > 1)} ({UNSTABLE_MARK}: {limit}): {STABLE_HINT}"


def timing_conditions(record: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """The conditions a profile record's timings were taken under (`TIMING_KEYS`), None without a record."""
    return tuple(record.get(k) for k in TIMING_KEYS) if record else None


def unstable_spread(metric: Metric, stat: Stat) -> float | None:
    """The IQR as a fraction of the median where it exceeds the metric's limit (the value is unstable), else None."""
    if metric.unstable_above is None or stat.mean is None or stat.std is None or stat.mean <= 0:
        return None
    spread = stat.std / stat.mean
    return spread if spread > metric.unstable_above else None


def baseline_for(row: Row, rows: list[Row], override: str | None, strict: bool = False) -> Row | None:
    """The named variant, else the baseline (module None) of the same base; the one with the same settings first.

    Args:
        row: The row to compare.
        rows: Candidate rows.
        override: Variant name to compare every row against (`--baseline`).
        strict: Only a baseline with the same settings (`yoloab profile`: the same input size).
    """
    if override:
        candidates = [r for r in rows if r.variant == override]
    else:
        candidates = [r for r in rows if r.module is None and r.base == row.base]
    same = [r for r in candidates if r.settings == row.settings]
    return (same or ([] if strict else candidates) or [None])[0]


def _delta(metric: Metric, row: Row, base: Row) -> Delta | None:
    value, ref = row.values[metric.key].mean, base.values[metric.key].mean
    if not metric.delta or value is None or ref is None:
        return None
    if metric.timed and row.timing_group != base.timing_group:
        return None  # timings under different conditions (image size, threads, device): no meaningful change
    d = value - ref
    record = row.runs[0] if metric.delta_ci and len(row.runs) == 1 else {}
    prefix = metric.delta_ci or ""
    return Delta(
        d,
        100 * d / ref if ref else None,
        record.get(f"{prefix}_ci_low"),
        record.get(f"{prefix}_ci_high"),
        record.get(f"{prefix}_significant"),
        metric.key in row.unstable or metric.key in base.unstable,
    )


def _shown_value(metric: Metric, value: float) -> float:
    return round(value * metric.scale, metric.digits)


def finish(table: ReportTable, override: str | None = None) -> None:
    """Deltas, best marks, legend and footnotes of a table whose rows are built.

    Args:
        table: The table, changed in place.
        override: Variant to compare every row against, instead of each base model's baseline.
    """
    rows = table.shown
    command = table.kind == PROFILE_COMMAND
    for row in rows:
        row.unstable = {m.key: x for m in table.metrics if (x := unstable_spread(m, row.values[m.key])) is not None}
    used: dict[str, None] = {}
    missing: dict[str, None] = {}
    for row in rows:
        # a profile table compares only rows of the same input size: a baseline at another size is no baseline
        base = baseline_for(row, rows, override, strict=table.kind != DATASET)
        if base is None:
            missing[row.base or "?"] = None
            continue
        used[base.label] = None
        if base is row:
            row.is_baseline = True
            continue
        row.baseline = base.label
        for m in table.metrics:
            if (delta := _delta(m, row, base)) is not None:
                row.deltas[m.key] = delta
    table.footnotes = []
    for row in rows:
        if row.flops_flag:
            note = row.flops_note or "see yoloab profile"
            table.footnotes.append(f"† {row.label}: Ultralytics and aten GFLOPs differ by more than 5%: {note}")
        if row.gflops_error:
            table.footnotes.append(f"{row.label}: Ultralytics GFLOPs not available: {row.gflops_error}")
        if row.attention_note:
            table.footnotes.append(f"{row.label}: {row.attention_note}")
        for m in table.metrics:  # a runtime whose export failed or was skipped: why its latency is missing
            status = row.error(m.error_key) if m.error_key and m.error_key.startswith("export_") else None
            if status and row.values[m.key].mean is None:
                table.footnotes.append(f"{row.label}: {m.title}: export {status}")
        if row.resumed:
            after = ", ".join(
                f"seed {r.get('seed')} after epoch {r.get('resumed_from_epoch') or '?'}" for r in row.resumed
            )
            table.footnotes.append(
                f"{row.label} (resumed): {len(row.resumed)} of {len(row.runs)} runs were interrupted and resumed "
                f"({after}); a resumed run can differ from an uninterrupted one (README, Resume)."
            )
    for differs, group in mismatches(rows).items():
        runs = {(row.settings.get("imgsz"), row.runs[0].get("nc")) for row in group}
        imgsz, nc = next(iter(runs))
        how = f" (`yoloab profile ... --imgsz {imgsz} --nc {nc}` measures it)" if len(runs) == 1 and nc else ""
        table.footnotes.append(
            f"{MISMATCH_MARK} latency from a profile at {differs}, not the runs' settings: "
            f"{', '.join(row.label for row in group)}. No profile of the same model, image size and classes is "
            f"stored{how}; compared only with latencies measured the same way."
        )
    flagged = {m: [row for row in rows if m.key in row.unstable] for m in table.metrics}
    if any(flagged.values()):
        limit = max(m.unstable_above or 0.0 for m, r in flagged.items() if r)
        which = "; ".join(
            f"{m.title}: " + ", ".join(f"{row.label} {100 * row.unstable[m.key]:.0f}%" for row in r)
            for m, r in flagged.items()
            if r
        )
        table.footnotes.append(
            f"{UNSTABLE_MARK} unstable timing, its IQR above {100 * limit:.0f}% of the median ({which}): never marked "
            f"best, and a Δ against it carries {UNSTABLE_MARK}. A spread this wide means a busy machine; {STABLE_HINT}."
        )
    if command:  # a quick look at fresh measurements: no best marks, no legend
        return
    for m in table.metrics:
        _mark_best(m, rows)
    table.legend = [_best_legend(table, rows), _delta_legend(override, used, missing)]
    if table.kind == DATASET:
        table.legend.append(
            "mAP: best checkpoint on the validation set; mean ± sample standard deviation over seeds where a variant "
            "has several; seeds: finished runs."
        )


def _mark_best(m: Metric, rows: list[Row]) -> None:
    """Bold the best value of each group of comparable rows (same `group`, and same `timing_group` for timings)."""
    groups: dict[tuple[Any, ...], list[tuple[Row, float]]] = {}
    for row in rows:
        value = row.values[m.key].mean
        # a flagged Ultralytics count is known to be wrong (thop misses functional convs) and an unstable timing is
        # noise: neither is ever called the best
        if value is None or (m.key == "gflops" and row.flops_flag) or m.key in row.unstable:
            continue
        key = (row.group, row.timing_group) if m.timed else (row.group,)
        groups.setdefault(key, []).append((row, _shown_value(m, value)))
    for eligible in groups.values():
        if len(eligible) < 2:
            continue
        target = (max if m.higher_is_better else min)(v for _, v in eligible)
        for row, v in eligible:
            if v == target:
                row.best.add(m.key)


def _best_legend(table: ReportTable, rows: list[Row]) -> str:
    higher = [m.title for m in table.metrics if m.higher_is_better]
    maps = table.kind == DATASET
    return (
        "Best value per column in bold: "
        + (f"highest {' and '.join(higher)} (mean over seeds); " if maps and higher else "")
        + "lowest params, GFLOPs and latency"
        + (" within each base model and image size" if table.kind == STORED_PROFILE else "")
        + (", latency only among timings under the same conditions" if _several_timing_groups(table, rows) else "")
        + "."
        + (" A flagged Ultralytics GFLOPs count (†) is not eligible." if any(r.flops_flag for r in rows) else "")
        + (f" An unstable timing ({UNSTABLE_MARK}) is not eligible." if any(r.unstable for r in rows) else "")
    )


def _several_timing_groups(table: ReportTable, rows: list[Row]) -> bool:
    """Whether rows that are otherwise compared hold timings taken under different conditions."""
    timed = [m for m in table.metrics if m.timed]
    seen: dict[tuple[Any, ...], set[tuple[Any, ...] | None]] = {}
    for r in rows:
        if any(r.values[m.key].mean is not None for m in timed):
            seen.setdefault(r.group, set()).add(r.timing_group)
    return any(len(conditions) > 1 for conditions in seen.values())


def _delta_legend(override: str | None, used: dict[str, None], missing: dict[str, None]) -> str:
    if override:
        text = f"Δ: change against {override} (--baseline), absolute and relative."
    else:
        names = ", ".join(used) or "none stored"
        text = f"Δ: change against the baseline (no module) of the same base model ({names}), absolute and relative."
    if missing:
        text += f" No baseline for: {', '.join(missing)}."
    return text


# ---- cells shared by the renderers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One table cell, marked up by each renderer.

    Attributes:
        text: The value as text ('-' when unknown, '' for no delta).
        std: Spread as text, shown as '± std'.
        best: Whether to mark it as the best of its column.
        marks: Footnote marks after the value: '†' a flagged FLOP count, '‡' an unstable timing (`UNSTABLE_MARK`),
            '§' a latency from a profile with other settings (`MISMATCH_MARK`).
        delta: Whether it is the Δ of the value before it (the terminal stacks it under that value).
    """

    text: str
    std: str | None = None
    best: bool = False
    marks: str = ""
    delta: bool = False


def _number(metric: Metric, value: float, command: bool, sign: str = "") -> str:
    if command:  # `yoloab profile` shows raw units (a parameter count, not millions)
        return format(value, sign + metric.spec)
    return format(value * metric.scale, f"{sign}.{metric.digits}f")


def delta_text(metric: Metric, delta: Delta, command: bool = False) -> str:
    """`+1.23 (+4.5%)`, then `[-0.1, +2.0]` for a confidence interval and `*` for a significant change."""
    text = _number(metric, delta.abs, command, "+")
    if delta.pct is not None:
        text += f" ({delta.pct:+.1f}%)"
    if delta.low is not None and delta.high is not None:
        text += f" [{_number(metric, delta.low, command, '+')}, {_number(metric, delta.high, command, '+')}]"
    return text + ("*" if delta.significant else "") + (UNSTABLE_MARK if delta.unstable else "")


def _delta_cell(metric: Metric, row: Row, command: bool) -> Cell:
    if row.is_baseline:
        return Cell("", delta=True)
    delta = row.deltas.get(metric.key)
    if delta is None or (command and delta.pct is None):  # profile: nothing where the values are not comparable
        return Cell("" if command else "-", delta=True)
    return Cell(delta_text(metric, delta, command), delta=True)


def _value_cell(metric: Metric, row: Row, command: bool) -> Cell:
    stat = row.values[metric.key]
    marks = "†" if metric.key == "gflops" and row.flops_flag else ""
    if stat.mean is None:
        err = row.error(metric.error_key)
        if err and metric.error_key and metric.error_key.startswith("export_"):
            return Cell(err.split(":")[0])  # `failed` or `skipped`; the footnote gives the reason
        return Cell("error" if err else "-")
    # seeds' spread where it is asked for; a timing's IQR always, it is how much to trust the median
    shown_std = (command or metric.spread or metric.timed) and stat.std is not None
    std = _number(metric, stat.std, command) if shown_std else None  # type: ignore[arg-type]
    if metric.timed:
        marks += (UNSTABLE_MARK if metric.key in row.unstable else "") + (MISMATCH_MARK if row.latency_mismatch else "")
    return Cell(_number(metric, stat.mean, command), std, metric.key in row.best, marks)


def header(table: ReportTable) -> list[str]:
    """Plain-text header: variant, seeds (run tables), then each metric and its Δ."""
    command = table.kind == PROFILE_COMMAND
    out = ["variant", *(["seeds"] if table.kind == DATASET else [])]
    for m in table.metrics:
        out.append(m.header if command else m.title)
        if m.delta:
            out.append(f"Δ {m.header}" if command else "Δ")
    return out


def cells(table: ReportTable) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells of the rendered rows: variant, seeds (run tables), then each metric and its Δ.

    Returns:
        The plain-text header and one list of cells per shown row.
    """
    command = table.kind == PROFILE_COMMAND
    body = []
    for row in table.shown:
        label = row.shown_label
        line = [Cell(label), *([Cell(str(len(row.runs)))] if table.kind == DATASET else [])]
        for m in table.metrics:
            line.append(_value_cell(m, row, command))
            if m.delta:
                line.append(_delta_cell(m, row, command))
        body.append(line)
    return header(table), body


def flagged_records(table: ReportTable) -> list[dict[str, Any]]:
    """Copies of the rows' records with `<key>_unstable` for every timing the table shows (machine formats)."""
    out = []
    for row in table.rows:
        for record in row.runs:
            flags = {f"{m.key}_unstable": m.key in row.unstable for m in table.metrics if m.timed and record.get(m.key)}
            out.append({**record, **flags})
    return out


def slug(name: str) -> str:
    """A file- and label-safe form of a table name (`data/my set.yaml` -> `data-my-set.yaml`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"
