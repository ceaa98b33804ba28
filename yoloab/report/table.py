"""The one table model of `yoloab profile` and `yoloab report`: rows, deltas against a baseline, best marks, notes.

A `ReportTable` holds rows of `Stat`s per `Metric` (`yoloab.report.metrics`); `finish` takes each row's deltas
against its baseline, marks the best value per column and writes the legend and footnotes; `cells` turns the
table into the grid of `Cell`s that every renderer marks up in its own syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .metrics import DATASET, PROFILE_COMMAND, Metric, Stat


@dataclass(frozen=True)
class Delta:
    """Change of one value against the baseline.

    Attributes:
        abs: Absolute change.
        pct: Relative change in %, None when the baseline value is 0.
        low: Lower end of a confidence interval of the change, if one is known.
        high: Upper end of that interval.
        significant: Whether the change is significant (shown as '*'), None when untested.
    """

    abs: float
    pct: float | None
    low: float | None = None
    high: float | None = None
    significant: bool | None = None


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


def _delta(metric: Metric, row: Row, value: float, ref: float) -> Delta:
    d = value - ref
    record = row.runs[0] if metric.delta_ci and len(row.runs) == 1 else {}
    prefix = metric.delta_ci or ""
    return Delta(
        d,
        100 * d / ref if ref else None,
        record.get(f"{prefix}_ci_low"),
        record.get(f"{prefix}_ci_high"),
        record.get(f"{prefix}_significant"),
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
    used: dict[str, None] = {}
    missing: dict[str, None] = {}
    for row in rows:
        base = baseline_for(row, rows, override, strict=command)
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
            if m.delta and value is not None and ref is not None:
                row.deltas[m.key] = _delta(m, row, value, ref)
    table.footnotes = []
    for row in rows:
        if row.flops_flag:
            note = row.flops_note or "see yoloab profile"
            table.footnotes.append(f"† {row.label}: Ultralytics and aten GFLOPs differ by more than 5%: {note}")
        if row.gflops_error:
            table.footnotes.append(f"{row.label}: Ultralytics GFLOPs not available: {row.gflops_error}")
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
    if command:  # a quick look at fresh measurements: no best marks, no legend
        return
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
    table.legend = [_best_legend(table, rows), _delta_legend(override, used, missing)]
    if table.kind == DATASET:
        table.legend.append(
            "mAP: best checkpoint on the validation set; mean ± sample standard deviation over seeds where a variant "
            "has several; seeds: finished runs."
        )


def _best_legend(table: ReportTable, rows: list[Row]) -> str:
    higher = [m.title for m in table.metrics if m.higher_is_better]
    maps = table.kind == DATASET
    return (
        "Best value per column in bold: "
        + (f"highest {' and '.join(higher)} (mean over seeds); " if maps and higher else "")
        + "lowest params, GFLOPs and latency."
        + (" A flagged Ultralytics GFLOPs count (†) is not eligible." if any(r.flops_flag for r in rows) else "")
    )


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
        dagger: Whether it carries the flagged-FLOP-count footnote mark.
        delta: Whether it is the Δ of the value before it (the terminal stacks it under that value).
    """

    text: str
    std: str | None = None
    best: bool = False
    dagger: bool = False
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
    return text + ("*" if delta.significant else "")


def _delta_cell(metric: Metric, row: Row, command: bool) -> Cell:
    if row.is_baseline:
        return Cell("", delta=True)
    delta = row.deltas.get(metric.key)
    if delta is None or (command and delta.pct is None):  # profile: nothing where the values are not comparable
        return Cell("" if command else "-", delta=True)
    return Cell(delta_text(metric, delta, command), delta=True)


def _value_cell(metric: Metric, row: Row, command: bool) -> Cell:
    stat = row.values[metric.key]
    dagger = metric.key == "gflops" and row.flops_flag
    if stat.mean is None:
        err = row.error(metric.error_key)
        if err and metric.error_key and metric.error_key.startswith("export_"):
            return Cell(err.split(":")[0])  # `failed` or `skipped`; the footnote gives the reason
        return Cell("error" if err else "-")
    shown_std = (command or metric.spread) and stat.std is not None
    std = _number(metric, stat.std, command) if shown_std else None  # type: ignore[arg-type]
    return Cell(_number(metric, stat.mean, command), std, metric.key in row.best, dagger)


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


def slug(name: str) -> str:
    """A file- and label-safe form of a table name (`data/my set.yaml` -> `data-my-set.yaml`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"
