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
        seed_low: Lower end of a second interval, over training seeds (mAP with 2+ seeds; `low`/`high` are then
            the interval over validation images).
        seed_high: Upper end of that interval.
        limited_by: Which of the two intervals is wider ('images' or 'seeds'), None without a seed interval.
    """

    abs: float
    pct: float | None
    low: float | None = None
    high: float | None = None
    significant: bool | None = None
    unstable: bool = False
    seed_low: float | None = None
    seed_high: float | None = None
    limited_by: str | None = None


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
        timing_session: The timing session the row's timings come from (`session_of`): a timed value is compared
            (Δ, best mark, Pareto front) only with timings of the same session, whose rounds it shared.
        export_status: Runtime column key -> '✓' (exported, parity within tolerance) or '✗n' (footnote n says why).
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
    timing_session: Any = None
    export_status: dict[str, str] = field(default_factory=dict)
    unstable: dict[str, float] = field(default_factory=dict)
    baseline: str | None = None
    deltas: dict[str, Delta] = field(default_factory=dict)
    best: set[str] = field(default_factory=set)
    is_baseline: bool = False
    loss: str | None = None
    architecture: str | None = None

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
        sizes: Metric key -> the image size its values were measured at ('640'; '320/640' where rows differ), stated
            in the header of run tables ('GFLOPs (Ultralytics) @640').
        apart: Baseline label -> labels of the rows whose timings came from another session than it (no Δ).
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
    sizes: dict[str, str] = field(default_factory=dict)
    apart: dict[str, list[str]] = field(default_factory=dict)

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
        optional: Keys of the columns not shown by default that the records could fill (`--columns` may name them).
    """

    tables: list[ReportTable]
    baseline: str | None = None
    optional: list[str] = field(default_factory=list)


# ---- deltas, best marks, notes ----------------------------------------------------------------------------------

UNSTABLE_MARK = "‡"
"""Marks a timing whose IQR exceeds `Metric.unstable_above` of its median, and every Δ taken against it."""
MISMATCH_MARK = "§"
"""Marks a run table's latency taken from a profile whose model, image size or classes differ from the runs'."""
SEEDS_MARK = "¶"
"""Marks a run table's seed count where a variant and its baseline finished different seeds (a footnote names them)."""
TIMING_KEYS = ("imgsz", "nc", "device_name", "threads", "dtype")
"""Profile-record keys that must match for two timings to be compared (batch-1 latency does not depend on `batch`)."""
STABLE_HINT = (
    "for a stable figure, profile on an otherwise idle machine with the CPU defaults (1 thread, batch 1) and add "
    "--reprofile to replace the stored one"
)
"""What the terminal suggests when a table holds an unstable timing."""
BEST_TIMING_RULE = (
    f"Latency: bold only for the lowest stable median (IQR at most {100 * UNSTABLE_IQR:.0f}% of it), and only if no "
    f"row timed with it, unstable ({UNSTABLE_MARK}) ones included, is faster by more than both IQRs."
)
"""The best-mark rule of timings, as the legend states it (`_mark_best`)."""
OK_MARK = "✓"
"""A runtime's export worked and its outputs match PyTorch's within the parity tolerance."""
FAILED_MARK = "✗"
"""A runtime's export failed or was skipped, or its parity check failed: a numbered footnote says which."""


def seed_gaps(table: ReportTable, row: Row) -> tuple[list[Any], list[Any]]:
    """Seeds the row's baseline finished and the row did not, and seeds the row finished and its baseline did not."""
    base = next((r for r in table.shown if r.label == row.baseline), None) if row.baseline else None
    if base is None:
        return [], []
    mine, theirs = set(map(str, row.seeds)), set(map(str, base.seeds))
    return [s for s in base.seeds if str(s) not in mine], [s for s in row.seeds if str(s) not in theirs]


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


def session_of(record: dict[str, Any] | None) -> Any:
    """The timing session a profile record was timed in; a record without one is a session of its own.

    Interleaved rounds protect a comparison only between timings taken in the same rounds: a record reused from an
    earlier `yoloab profile` was timed under that run's load, not this one's. Records stored before sessions were
    recorded cannot prove they shared rounds, so each stands alone.
    """
    if not record:
        return None
    session = record.get("timing_session")
    return session if session is not None else ("record", record.get("key"), record.get("profiled"), id(record))


def comparable(metric: Metric, a: Row, b: Row) -> bool:
    """Whether two rows' values of a metric may be compared: always, except timings of other conditions or sessions."""
    if not metric.session_bound:
        return True
    return a.timing_group == b.timing_group and a.timing_session == b.timing_session


def reference_session(rows: list[Row]) -> Any:
    """The timing session the rows of one comparison group are compared in: their baseline's, else the commonest.

    Where several baselines share the group (a run table over two base models), the session most of them share.
    Ties go to the first row in table order.
    """
    pool = [r for r in rows if r.is_baseline] or rows
    sessions = [r.timing_session for r in pool]
    return max(dict.fromkeys(sessions), key=sessions.count) if sessions else None


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
    elif not default_loss(row):  # a box-loss variant: the same architecture trained with the default loss
        candidates = [r for r in rows if r.variant == row.architecture and default_loss(r)]
    else:
        candidates = [r for r in rows if r.module is None and r.base == row.base and default_loss(r)]
    same = [r for r in candidates if r.settings == row.settings]
    return (same or ([] if strict else candidates) or [None])[0]


DEFAULT_LOSS = "CIoU"
"""Ultralytics' own box loss, the baseline of the loss axis (`yoloab.losses.DEFAULT_LOSS`; kept here as text so that
reading records needs no torch)."""


def default_loss(row: Row) -> bool:
    """Whether a row trained with the default box loss (records from before the loss axis did)."""
    return row.loss in (None, DEFAULT_LOSS)


def has_losses(table: ReportTable) -> bool:
    """Whether a table holds a row trained with another box loss than the default: then it shows a loss column."""
    return any(not default_loss(row) for row in table.shown)


def leading_columns(table: ReportTable) -> int:
    """How many columns come before the first metric: variant, loss (`has_losses`), seeds (run tables)."""
    return 1 + has_losses(table) + (table.kind == DATASET)


def _delta(metric: Metric, row: Row, base: Row) -> Delta | None:
    value, ref = row.values[metric.key].mean, base.values[metric.key].mean
    if not metric.delta or value is None or ref is None:
        return None
    if not comparable(metric, row, base):
        return None  # timings under other conditions or in another session: the change would be the machine's
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
    apart: dict[str, dict[str, None]] = {}  # baseline label -> rows timed in another session than it
    apart_metrics: dict[str, None] = {}
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
            elif _other_session(m, row, base):
                apart.setdefault(base.label, {})[row.label] = None
                apart_metrics[m.title] = None
    table.footnotes = []
    n_status = 0
    for row in rows:
        if row.flops_flag:
            note = row.flops_note or "see yoloab profile"
            table.footnotes.append(f"† {row.label}: Ultralytics and aten GFLOPs differ by more than 5%: {note}")
        if row.gflops_error:
            table.footnotes.append(f"{row.label}: Ultralytics GFLOPs not available: {row.gflops_error}")
        if row.attention_note:
            table.footnotes.append(f"{row.label}: {row.attention_note}")
        for m in table.metrics:  # a runtime's export status: ✓, or ✗ and a footnote saying why
            if not (m.error_key and m.error_key.startswith("export_")):
                continue
            why = _export_problem(m, row)
            if why:
                n_status += 1
                row.export_status[m.key] = f"{FAILED_MARK}{n_status}"
                table.footnotes.append(f"{FAILED_MARK}{n_status} {row.label}: {m.title}: {why}")
            elif row.error(m.error_key) is None and _export_record(m, row) is not None:
                row.export_status[m.key] = OK_MARK
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
    if any(row.export_status for row in rows):
        table.footnotes.append(
            f"Runtime columns: {OK_MARK} exported and within the parity tolerance of PyTorch; {FAILED_MARK}n not "
            f"exported, or its outputs differ from PyTorch's (footnote {FAILED_MARK}n says which)."
        )
    table.apart = {base: list(labels) for base, labels in apart.items()}
    for base_label, labels in apart.items():
        table.footnotes.append(
            f"Δ {', '.join(apart_metrics)}: not shown for {', '.join(labels)}: timed in another session than "
            f"{base_label}, and timings from different sessions differ by the machine's load, not the models; "
            "re-run `yoloab profile ... --reprofile` with all of these rows to time them together."
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
        if (beaten := _mark_best(m, rows)) is not None:
            table.footnotes.append(beaten)
    table.legend = [_best_legend(table, rows), _delta_legend(override, used, missing)]
    if has_losses(table) and not override:
        table.legend[-1] += (
            f" A row trained with another box loss than {DEFAULT_LOSS} (Ultralytics' own; `variant+LOSS`) is compared "
            f"with the same architecture trained with {DEFAULT_LOSS}."
        )
    if table.kind == DATASET:
        table.legend.append(
            "mAP: best checkpoint on the validation set; mean ± sample standard deviation over seeds where a variant "
            "has several; seeds: finished runs."
        )


def _other_session(metric: Metric, row: Row, base: Row) -> bool:
    """Whether a Δ is missing only because the two timings, under the same conditions, come from other sessions."""
    both = row.values[metric.key].mean is not None and base.values[metric.key].mean is not None
    return (
        metric.delta
        and metric.session_bound
        and both
        and row.timing_group == base.timing_group
        and row.timing_session != base.timing_session
    )


def _export_record(metric: Metric, row: Row) -> dict[str, Any] | None:
    """The record holding the runtime's export status: the row's own, or the profile its latency comes from."""
    key = metric.error_key or ""
    return next((r for r in [*row.runs, *([row.latency_source] if row.latency_source else [])] if key in r), None)


def _export_problem(metric: Metric, row: Row) -> str | None:
    """Why a runtime column holds no trustworthy latency: the export failed or was skipped, or parity failed."""
    status = row.error(metric.error_key)
    if status and row.values[metric.key].mean is None:
        return f"export {status}"
    record = _export_record(metric, row)
    runtime = (metric.error_key or "")[len("export_") :]
    if record is not None and record.get(f"parity_flag_{runtime}"):
        value = record.get(f"parity_{runtime}")
        figure = f" {value:.1e}" if isinstance(value, (int, float)) else ""
        return (
            f"parity{figure} above the tolerance (max |{runtime} - PyTorch| / max |PyTorch| over the raw head "
            "output): the timed artifact does not compute what the model does"
        )
    return None


def _spread(row: Row, metric: Metric) -> float:
    """The half-width of a timing's interval: its IQR (0 where none is known)."""
    return (row.values[metric.key].std or 0.0) if metric.timed else 0.0


def clearly_better(metric: Metric, a: Row, b: Row) -> bool:
    """Whether `a` beats `b` by more than both spreads: the gap exceeds the IQR of each (timings; else any gap)."""
    x, y = a.values[metric.key].mean, b.values[metric.key].mean
    if x is None or y is None:
        return False
    gap = (x - y) if metric.higher_is_better else (y - x)
    return gap > max(_spread(a, metric), _spread(b, metric))


def _mark_best(m: Metric, rows: list[Row]) -> str | None:
    """Bold the best value of each group of comparable rows; say where a timing group gets no mark, and why.

    Rows compare within their `group`; a session-bound value (a timing) also only within the same conditions and
    the group's reference timing session (`reference_session`). Candidates are the rows with the best value that are
    not flagged (an Ultralytics count that thop gets wrong, an unstable timing). A timing candidate keeps its mark only
    if no row of its session, unstable ones included, is better by more than both IQRs (`clearly_better`).

    Returns:
        A footnote where a stable timing was the best candidate but an unstable row beats it clearly; else None.
    """
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        # a flagged Ultralytics count is known to be wrong (thop misses functional convs): it competes with nothing
        if row.values[m.key].mean is not None and not (m.key == "gflops" and row.flops_flag):
            groups.setdefault((row.group, row.timing_group) if m.session_bound else (row.group,), []).append(row)
    notes = []
    for members in groups.values():
        if m.session_bound:
            session = reference_session(members)
            members = [r for r in members if r.timing_session == session]
        if len(members) < 2:
            continue
        # an unstable timing is noise: never called the best, but it still counts against the others (below)
        eligible = [r for r in members if m.key not in r.unstable]
        if not eligible:
            continue
        pick = max if m.higher_is_better else min
        target = pick(_shown_value(m, r.values[m.key].mean) for r in eligible)  # type: ignore[arg-type]
        for row in eligible:
            if _shown_value(m, row.values[m.key].mean) != target:  # type: ignore[arg-type]
                continue
            better = [r for r in members if r is not row and clearly_better(m, r, row)] if m.timed else []
            if better:
                notes.append(f"{row.label} (beaten by {', '.join(r.label for r in better)})")
            else:
                row.best.add(m.key)
    if not notes:
        return None
    return (
        f"{m.title}: no best mark for {'; '.join(notes)}: the lowest stable median is slower than an unstable "
        "timing by more than both IQRs, so no figure of that group is shown as the best."
    )


def _best_legend(table: ReportTable, rows: list[Row]) -> str:
    timed = [m for m in table.metrics if m.timed]
    higher = [m.title for m in table.metrics if m.higher_is_better]
    maps = table.kind == DATASET
    return (
        "Best value per column in bold: "
        + (f"highest {' and '.join(higher)} (mean over seeds); " if maps and higher else "")
        + "lowest params, GFLOPs and latency"
        + (" within each base model and image size" if table.kind == STORED_PROFILE else "")
        + (
            ", latency only among timings under the same conditions and in the same timing session as the baseline"
            if _several_timing_groups(table, rows)
            else ""
        )
        + "."
        + (" A flagged Ultralytics GFLOPs count (†) is not eligible." if any(r.flops_flag for r in rows) else "")
        + (f" {BEST_TIMING_RULE}" if any(r.values[m.key].mean is not None for m in timed for r in rows) else "")
    )


def _several_timing_groups(table: ReportTable, rows: list[Row]) -> bool:
    """Whether rows that are otherwise compared hold timings taken under different conditions."""
    timed = [m for m in table.metrics if m.timed]
    seen: dict[tuple[Any, ...], set[tuple[Any, ...]]] = {}
    for r in rows:
        if any(r.values[m.key].mean is not None for m in timed):
            seen.setdefault(r.group, set()).add((r.timing_group, r.timing_session))
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
        status: A runtime column's export status, '✓' or '✗n' (`Row.export_status`), shown before the value; where
            the export failed, instead of it (LaTeX and CSV keep `text`: 'failed', 'skipped').
        short: The Δ as the terminal shows it: the relative change alone ('-71.0%'), its marks kept.
    """

    text: str
    std: str | None = None
    best: bool = False
    marks: str = ""
    delta: bool = False
    status: str = ""
    short: str = ""

    @property
    def shown(self) -> str:
        """Value, '± spread' and marks as plain text, with the export status (the figure's own marks kept)."""
        if self.status and self.text in ("failed", "skipped"):
            return self.status
        text = self.text + (f" ± {self.std}" if self.std else "") + self.marks
        return f"{self.status} {text}" if self.status else text


def _number(metric: Metric, value: float, command: bool, sign: str = "") -> str:
    if command:  # `yoloab profile` shows raw units (a parameter count, not millions)
        return format(value, sign + metric.spec)
    return format(value * metric.scale, f"{sign}.{metric.digits}f")


def delta_text(metric: Metric, delta: Delta, command: bool = False) -> str:
    """`+1.23 (+4.5%)`, then `[-0.1, +2.0]` for a confidence interval and `*` for a significant change.

    With a second interval over seeds: `img [-0.1, +2.0] seeds [-0.5, +2.4] (seeds wider)`, the wider one named.
    """
    text = _number(metric, delta.abs, command, "+")
    if delta.pct is not None:
        text += f" ({delta.pct:+.1f}%)"
    if delta.low is not None and delta.high is not None:
        seeds = delta.seed_low is not None and delta.seed_high is not None
        text += f" {'img ' if seeds else ''}[{_number(metric, delta.low, command, '+')}, "
        text += f"{_number(metric, delta.high, command, '+')}]"
        if seeds:  # both intervals, and which one is wider (it limits the claim)
            text += f" seeds [{_number(metric, delta.seed_low, command, '+')}, "  # type: ignore[arg-type]
            text += f"{_number(metric, delta.seed_high, command, '+')}] ({delta.limited_by} wider)"  # type: ignore[arg-type]
    return text + ("*" if delta.significant else "") + (UNSTABLE_MARK if delta.unstable else "")


def short_delta_text(delta: Delta) -> str:
    """The Δ in a narrow column: relative change only ('-71.0%'), with '*' (significant) and '‡' (unstable)."""
    text = f"{delta.pct:+.1f}%" if delta.pct is not None else "n/a"
    return text + ("*" if delta.significant else "") + (UNSTABLE_MARK if delta.unstable else "")


def _delta_cell(metric: Metric, row: Row, command: bool) -> Cell:
    if row.is_baseline:
        return Cell("", delta=True)
    delta = row.deltas.get(metric.key)
    if delta is None or (command and delta.pct is None):  # profile: nothing where the values are not comparable
        return Cell("" if command else "-", delta=True)
    return Cell(delta_text(metric, delta, command), delta=True, short=short_delta_text(delta))


def _value_cell(metric: Metric, row: Row, command: bool) -> Cell:
    stat = row.values[metric.key]
    marks = "†" if metric.key == "gflops" and row.flops_flag else ""
    status = row.export_status.get(metric.key, "")
    if stat.mean is None:
        err = row.error(metric.error_key)
        if err and metric.error_key and metric.error_key.startswith("export_"):
            return Cell(err.split(":")[0], status=status)  # `failed` or `skipped`; the footnote gives the reason
        return Cell("error" if err else "-")
    # seeds' spread where it is asked for; a timing's IQR always, it is how much to trust the median
    shown_std = (command or metric.spread or metric.timed) and stat.std is not None
    std = _number(metric, stat.std, command) if shown_std else None  # type: ignore[arg-type]
    if metric.timed:
        marks += (UNSTABLE_MARK if metric.key in row.unstable else "") + (MISMATCH_MARK if row.latency_mismatch else "")
    return Cell(_number(metric, stat.mean, command), std, metric.key in row.best, marks, status=status)


def title(table: ReportTable, metric: Metric) -> str:
    """A metric's column title in this table: `yoloab profile`'s short one, or the report's with its image size."""
    if table.kind == PROFILE_COMMAND:
        return metric.header
    size = table.sizes.get(metric.key)
    return f"{metric.title} @{size}" if size else metric.title


def header(table: ReportTable) -> list[str]:
    """Plain-text header: variant, seeds (run tables), then each metric (with its image size) and its Δ."""
    command = table.kind == PROFILE_COMMAND
    out = ["variant", *(["loss"] if has_losses(table) else []), *(["seeds"] if table.kind == DATASET else [])]
    for m in table.metrics:
        out.append(title(table, m))
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
        line = [
            Cell(label),
            *([Cell(row.loss or DEFAULT_LOSS)] if has_losses(table) else []),
            *(
                [Cell(str(len(row.runs)), marks=SEEDS_MARK if any(seed_gaps(table, row)) else "")]
                if table.kind == DATASET
                else []
            ),
        ]
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
