r"""The metric table: one entry per value column of every table `yoloab profile` and `yoloab report` print.

Adding a column is one `Metric` in `METRICS` (or one `register_metric` call from a plugin or a test). The entry
says which tables show it, how to title and round it, which way is better, whether it gets a Δ column, and where
its spread comes from; the builders (`yoloab.report.build`) fill it from the records and every renderer
(Markdown, CSV, LaTeX, HTML, Rich) picks it up. For example, a fused-GFLOPs column is::

    register_metric(Metric("gflops_fused", "GFLOPs fused", r"GFLOPs$_\text{fused}$", 2, tables=ALL_TABLES))

A key with a `{name}` field is a dynamic column: it becomes one column per matching record key, in the order of
first appearance (the field matches letters and digits). For one latency column per runtime::

    register_metric(Metric("latency_ms_{runtime}", "latency {runtime} (ms)", "Latency {runtime} (ms)", 2))

gives `latency_ms_onnxruntime`, `latency_ms_openvino`, ... for the runtimes the records hold.

A Δ may carry a confidence interval and a significance mark (`yoloab.report.table.Delta`), rendered by every format
as `+1.2 (+3.4%) [-0.1, +2.5]*`. Set `delta_ci` to the record-key prefix of the interval when a row's one record
holds it (`map50_95_delta` reads `map50_95_delta_ci_low`, `..._ci_high` and `..._significant`); a statistics step
over several seeds may instead fill `Row.deltas` with `Delta(...)` itself after `finish`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

DATASET = "dataset"
"""Report tables of training runs (one per dataset)."""
STORED_PROFILE = "profile"
"""The report's table of stored profile records."""
PROFILE_COMMAND = "profile_command"
"""The table `yoloab profile` prints for its fresh records."""
ALL_TABLES = frozenset({DATASET, STORED_PROFILE, PROFILE_COMMAND})
_COMMAND = frozenset({PROFILE_COMMAND})
_DATASET = frozenset({DATASET})


@dataclass(frozen=True)
class Metric:
    """One value column.

    Attributes:
        key: Record key (`params`, `map50_95`, ...); a `{name}` field makes a dynamic column (see the module doc).
        title: Header for Markdown, HTML, CSV readers and the terminal.
        latex: Header for LaTeX, already in LaTeX markup.
        digits: Decimals shown in report tables.
        scale: Factor applied before display in report tables (params are shown in millions).
        higher_is_better: Direction of the best mark (mAP) as opposed to lower (cost).
        spread: Whether the spread over seeds is shown (metrics that change with the seed).
        delta: Whether a Δ against the baseline follows the value.
        tables: Which kinds of table show the column (`DATASET`, `STORED_PROFILE`, `PROFILE_COMMAND`).
        profile_title: Header in `yoloab profile`'s table (default: `title`).
        profile_format: Format spec of the unscaled value there (default: `digits` decimals); Δs reuse it.
        profile_spread: Record key of the ± shown next to the value there (latency: its interquartile range).
        delta_ci: Record-key prefix of a confidence interval and significance of the Δ (see the module doc).
        error_key: Record key that explains a missing value ('error' is shown instead of '-').
        csv_extra: Row facts the report's CSV lists right after this column (`yoloab.report.csv_format.EXTRAS`).
        unstable_above: For a timed value (median with its IQR as `Stat.std`): the IQR, as a fraction of the median,
            above which the value is flagged unstable (never bold, its Δs flagged); None for values that are not timed.
        per_session: Whether the value depends on the machine's state while it was measured (latency, throughput,
            memory): it is compared (Δ, best mark, Pareto front) only with values of the same timing session.
        default: Whether tables show the column unless `--columns` picks others; a column that is not default
            (the P95/P99 latencies) appears only where `--columns` names it.
    """

    key: str
    title: str
    latex: str
    digits: int
    scale: float = 1.0
    higher_is_better: bool = False
    spread: bool = False
    delta: bool = True
    tables: frozenset[str] = ALL_TABLES
    profile_title: str | None = None
    profile_format: str | None = None
    profile_spread: str | None = None
    delta_ci: str | None = None
    error_key: str | None = None
    csv_extra: tuple[str, ...] = ()
    unstable_above: float | None = None
    per_session: bool = False
    default: bool = True

    @property
    def session_bound(self) -> bool:
        """Whether the value is compared only within one timing session (every timing, and `per_session` values)."""
        return self.per_session or self.timed

    @property
    def timed(self) -> bool:
        """Whether the value is a timing from `yoloab profile` (a median with its IQR), not a count or an mAP."""
        return self.unstable_above is not None

    @property
    def header(self) -> str:
        """The title in `yoloab profile`'s table."""
        return self.profile_title or self.title

    @property
    def spec(self) -> str:
        """Format spec of an unscaled value in `yoloab profile`'s table."""
        return self.profile_format or f".{self.digits}f"

    @property
    def dynamic(self) -> bool:
        """Whether the key is a pattern that expands into one column per matching record key."""
        return "{" in self.key

    def expand(self, keys: Iterable[str]) -> list[Metric]:
        """The concrete columns of a dynamic metric for these record keys (itself when not dynamic)."""
        if not self.dynamic:
            return [self]
        field_name = re.search(r"\{(\w+)\}", self.key).group(1)  # type: ignore[union-attr]
        head, tail = self.key.split("{" + field_name + "}")
        # no underscore in the field: `latency_ms_onnxruntime_iqr` is not a runtime named `onnxruntime_iqr`
        pattern = re.compile(re.escape(head) + r"([A-Za-z0-9]+)" + re.escape(tail) + "$")
        out: dict[str, Metric] = {}
        for key in keys:
            match = pattern.match(key)
            if match and key not in out:
                fill = {field_name: match.group(1)}
                out[key] = replace(
                    self,
                    key=key,
                    title=self.title.format(**fill),
                    latex=self.latex.format(**fill),
                    profile_title=self.profile_title.format(**fill) if self.profile_title else None,
                    profile_spread=self.profile_spread.format(**fill) if self.profile_spread else None,
                    error_key=self.error_key.format(**fill) if self.error_key else None,
                )
        return list(out.values())


UNSTABLE_IQR = 0.10
"""A latency whose interquartile range exceeds this fraction of its median is flagged unstable: on a busy machine the
spread of one variant's timings can exceed the difference between two variants, so such a figure is never the best
of its column and every Δ against it carries the flag."""

METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("params", "params (M)", "Params (M)", 3, scale=1e-6, profile_title="params", profile_format=",.0f"),
        Metric(
            "gflops",
            "GFLOPs (Ultralytics)",
            "GFLOPs (Ultralytics)",
            2,
            error_key="gflops_error",
            csv_extra=("flops_flag", "flops_note"),
        ),
        Metric("gflops_aten", "GFLOPs (aten)", "GFLOPs (aten)", 2),
        Metric(
            "latency_ms",
            "latency (ms)",
            "Latency (ms)",
            2,
            profile_title="latency ms",
            profile_spread="latency_iqr_ms",
            csv_extra=("latency_imgsz", "latency_nc", "latency_device", "latency_threads", "latency_match"),
            unstable_above=UNSTABLE_IQR,
        ),
        # tail latencies of the same samples as the median: asked for with `--columns`, never shown by default
        Metric("latency_p95_ms", "latency P95 (ms)", "Lat.\\ P95 (ms)", 2, per_session=True, default=False),
        Metric("latency_p99_ms", "latency P99 (ms)", "Lat.\\ P99 (ms)", 2, per_session=True, default=False),
        Metric(
            "throughput_ips", "img/s", "img/s", 1, higher_is_better=True, delta=False, tables=_COMMAND, per_session=True
        ),
        Metric("mem_infer_mb", "mem infer MiB", "Mem. infer (MiB)", 0, delta=False, tables=_COMMAND, per_session=True),
        Metric("mem_train_mb", "mem train MiB", "Mem. train (MiB)", 0, delta=False, tables=_COMMAND, per_session=True),
        # one training step with the loss (`yoloab profile --train-step`, yoloab.train_step): shown by the profile that
        # measured it, and by the report's profile table when `--columns` names it
        Metric(
            "train_step_ms",
            "train step (ms)",
            "Train step (ms)",
            1,
            tables=frozenset({STORED_PROFILE, PROFILE_COMMAND}),
            profile_title="train step ms",
            profile_spread="train_step_iqr_ms",
            error_key="train_step_error",
            unstable_above=UNSTABLE_IQR,
            default=False,
        ),
        Metric(
            "mem_train_step_mb",
            "mem train step MiB",
            "Mem. train step (MiB)",
            0,
            delta=False,
            tables=frozenset({STORED_PROFILE, PROFILE_COMMAND}),
            per_session=True,
            default=False,
        ),
        Metric(
            "map50",
            "mAP50",
            r"mAP$_{50}$",
            3,
            higher_is_better=True,
            spread=True,
            tables=_DATASET,
            delta_ci="map50_delta",
        ),
        Metric(
            "map50_95",
            "mAP50-95",
            r"mAP$_{50:95}$",
            3,
            higher_is_better=True,
            spread=True,
            tables=_DATASET,
            delta_ci="map50_95_delta",
        ),
        # COCO's AP by object size (yoloab.size_ap), from the runs' stored statistics: asked for with `--columns`
        # (three more columns with intervals would crowd the default table, and many sets lack a size class)
        *(
            Metric(
                f"map50_95_{size}",
                f"mAP50-95 {size}",
                rf"AP$_{size[0].upper()}$",
                3,
                higher_is_better=True,
                spread=True,
                tables=_DATASET,
                delta_ci=f"map50_95_{size}_delta",
                default=False,
            )
            for size in ("small", "medium", "large")
        ),
        # one column per runtime `yoloab profile --runtime` measured (`latency_ms_onnxruntime`, ...), last so that
        # the PyTorch columns keep their place
        Metric(
            "latency_ms_{runtime}",
            "latency {runtime} (ms)",
            "Latency {runtime} (ms)",
            2,
            profile_spread="latency_iqr_ms_{runtime}",
            error_key="export_{runtime}",
            unstable_above=UNSTABLE_IQR,
        ),
        Metric(
            "latency_p95_ms_{runtime}",
            "latency P95 {runtime} (ms)",
            "Lat.\\ P95 {runtime} (ms)",
            2,
            per_session=True,
            default=False,
        ),
        Metric(
            "latency_p99_ms_{runtime}",
            "latency P99 {runtime} (ms)",
            "Lat.\\ P99 {runtime} (ms)",
            2,
            per_session=True,
            default=False,
        ),
    )
}
"""Every column, in display order (dict order)."""

ALWAYS_SHOWN = ("gflops", "gflops_aten")
"""Columns `yoloab profile` shows even when no record has a value (the FLOP counts are what it is for)."""


def register_metric(metric: Metric, *, after: str | None = None) -> Metric:
    """Add a column to `METRICS` (or replace the one with the same key).

    Args:
        metric: The column.
        after: Key of the column it follows (default: the end).

    Returns:
        The metric, so that a module can keep a name for it.
    """
    items = [(k, m) for k, m in METRICS.items() if k != metric.key]
    at = next((i + 1 for i, (k, _) in enumerate(items) if k == after), len(items))
    items.insert(at, (metric.key, metric))
    METRICS.clear()
    METRICS.update(items)
    return metric


def unregister_metric(key: str) -> None:
    """Remove a column added with `register_metric` (tests)."""
    METRICS.pop(key, None)


def metrics_for(
    table: str, records: Iterable[dict[str, Any]] = (), wanted: Iterable[str] | None = None
) -> list[Metric]:
    """The concrete columns of a kind of table, dynamic ones expanded over the keys of `records`.

    Args:
        table: `DATASET`, `STORED_PROFILE` or `PROFILE_COMMAND`.
        records: The records whose keys expand the dynamic columns.
        wanted: Column keys asked for (`--columns`): a column that is not `default` is included only when named here.
    """
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    asked = set(wanted or ())
    return [c for m in METRICS.values() if table in m.tables for c in m.expand(keys) if c.default or c.key in asked]


def optional_columns(records: Iterable[dict[str, Any]]) -> list[str]:
    """Keys of the columns that are not shown by default but that these records could fill (`--columns` names)."""
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    return [c.key for m in METRICS.values() if not m.default for c in m.expand(keys) if c.key in keys]


@dataclass(frozen=True)
class Stat:
    """Mean and spread of one value over the records of a row.

    Attributes:
        mean: Mean, None when no record has the value.
        std: Sample standard deviation (n - 1) over seeds, None for fewer than two values; in `yoloab profile`'s
            table, the record's own spread (`Metric.profile_spread`).
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
