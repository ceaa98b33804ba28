"""Records -> tables: run records grouped into one row per variant and settings, profile records one row each.

`build_report` (and `load_report`, which reads the results store first) makes the tables of `yoloab report`;
`profile_table` makes the table `yoloab profile` prints. Both fill the one model of `yoloab.report.table`, whose
`finish` adds deltas, best marks and notes; rendering is left to the format modules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ResultsError, did_you_mean
from ..results import load_profiles, load_runs
from ..significance import LEVEL, LIMIT_IMAGES, LIMIT_SEEDS, METHOD_SEEDS, delta_intervals
from ..size_ap import SIZE_METRICS, SIZE_NOTE
from .metrics import (
    ALWAYS_SHOWN,
    DATASET,
    PROFILE_COMMAND,
    STORED_PROFILE,
    Metric,
    Stat,
    mean_std,
    metrics_for,
    optional_columns,
)
from .table import (
    MISMATCH_MARK,
    SEEDS_MARK,
    TIMING_KEYS,
    Delta,
    Report,
    ReportTable,
    Row,
    finish,
    seed_gaps,
    session_of,
    timing_conditions,
)

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


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _setting_text(key: str, value: Any) -> str:
    if key == "train_args":
        return " ".join(f"{k}={v}" for k, v in sorted((value or {}).items())) or "none"
    if key == "yaml_sha256" and value:
        return str(value)[:8]
    return "-" if value is None else str(value)


def _profile_stat(metric: Metric, record: dict[str, Any] | None) -> Stat:
    """A value of a profile record; a timing with its IQR as the spread."""
    value = record.get(metric.key) if record else None
    spread = record.get(metric.profile_spread) if record and metric.profile_spread and value is not None else None
    return Stat(value, spread, int(value is not None))


def _mismatch(run: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    """How a profile record differs from a run in what decides its latency (model definition, image size, classes)."""
    out = []
    if profile.get("yaml_sha256") != run.get("yaml_sha256"):
        out.append("another model definition" if profile.get("yaml_sha256") else "an unknown model definition")
    out += [f"{k} {profile.get(k)}" for k in ("imgsz", "nc") if profile.get(k) != run.get(k)]
    return out


def latency_source(run: dict[str, Any], profiles: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """The profile record whose latency a run's row shows, and how it differs from the run (None: it matches).

    The latest record of the same model definition (`yaml_sha256`), image size and class count, measured with a
    latency; failing that, the latest of the same variant name that differs least, with the differences named.

    Args:
        run: One of the row's run records.
        profiles: Profile records, oldest first.
    """
    candidates = [
        (len(_mismatch(run, p)), -i, p)  # fewest differences first, then the latest
        for i, p in enumerate(profiles)
        if any(k.startswith("latency_ms") and v is not None for k, v in p.items())
        and (
            (p.get("yaml_sha256") and p.get("yaml_sha256") == run.get("yaml_sha256"))
            or str(p.get("variant")) == str(run.get("variant"))
        )
    ]
    if not candidates:
        return None, None
    best = min(candidates, key=lambda c: c[:2])[2]
    differs = _mismatch(run, best)
    return best, ", ".join(differs) if differs else None


def _by_seed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row's runs in seed order; its first finished run is the one that speaks for the row."""
    return sorted(records, key=lambda r: (_natural(str(r.get("seed"))), r.get("finished") or "", r.get("key") or ""))


def _first(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("status") == "ok"]
    return ok[0] if ok else records[0]


def _run_row(
    variant: str,
    label: str,
    records: list[dict[str, Any]],
    source: tuple[dict[str, Any] | None, str | None],
    metrics: list[Metric],
) -> Row:
    records = _by_seed(records)
    ok = [r for r in records if r.get("status") == "ok"]
    first = _first(records)
    latency, mismatch = source
    values = {}
    for m in metrics:
        if any(m.key in r for r in records):
            values[m.key] = mean_std(r.get(m.key) for r in ok)
        else:  # measured by `yoloab profile`, not by training (latency)
            values[m.key] = _profile_stat(m, latency)
    return Row(
        variant=variant,
        label=label,
        base=first.get("base"),
        module=first.get("module"),
        placement=first.get("placement"),
        loss=first.get("loss"),
        architecture=first.get("architecture"),
        settings={k: first.get(k) for k in GROUP_KEYS},
        values=values,
        runs=ok,
        failed=[r for r in records if r.get("status") != "ok"],
        latency_source=latency,
        latency_mismatch=mismatch,
        timing_group=timing_conditions(latency),
        timing_session=session_of(latency),
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
    described = {
        label: ", ".join(f"{_SETTING_NAMES.get(k, k)} {src[k]}" for k in TIMING_KEYS if src.get(k) is not None)
        for label, src in sources.items()
    }
    head = "Latency: median ± IQR ms at batch 1, from the latest yoloab profile record of the same model, " + (
        "image size and classes as the runs"
        if not any(row.latency_mismatch for row in rows)
        else f"image size and classes as the runs, else the closest one ({MISMATCH_MARK})"
    )
    if len(set(described.values())) == 1:
        return f"{head} ({next(iter(described.values()))})."
    return f"{head}; measured with different settings: " + "; ".join(f"{k}: {v}" for k, v in described.items()) + "."


def _sizes(values: Iterable[Any]) -> str | None:
    """'640', or '320/640' where rows differ; None where no row says."""
    sizes = sorted({v for v in values if v is not None}, key=lambda v: _natural(str(v)))
    return "/".join(map(str, sizes)) or None


def _column_sizes(metrics: list[Metric], rows: list[Row]) -> dict[str, str]:
    """The image size of each column of a run table: FLOPs where they were counted, timings where profiled."""
    runs = [r for row in rows for r in row.runs]
    flops = _sizes(r.get("flops_imgsz") for r in runs)
    trained = _sizes(r.get("imgsz") for r in runs)
    profiled = _sizes(row.latency_source.get("imgsz") for row in rows if row.latency_source)
    out = {}
    for m in metrics:
        if m.key.startswith("gflops"):
            size = flops
        elif m.key.startswith("map"):  # validated at the runs' size
            size = trained
        elif m.session_bound and not any(m.key in r for r in runs):  # from the profile records (latency)
            size = profiled
        else:  # a count that does not depend on the size (params), or a column whose size is not known
            size = None
        if size:
            out[m.key] = size
    return out


def _run_table(
    name: str, records: list[dict[str, Any]], profiles: list[dict[str, Any]], wanted: list[str] | None = None
) -> ReportTable:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((str(r.get("variant")), *(_freeze(r.get(k)) for k in GROUP_KEYS)), []).append(r)
    labels = _labels(groups)
    sources = {key: latency_source(_first(_by_seed(recs)), profiles) for key, recs in groups.items()}
    metrics = metrics_for(DATASET, [*records, *(p for p, _ in sources.values() if p)], wanted)
    rows = sorted(
        (_run_row(key[0], labels[key], recs, sources[key], metrics) for key, recs in groups.items()), key=_row_order
    )
    table = ReportTable(DATASET, name, f"Dataset {name}", metrics, rows)
    table.sizes = _column_sizes(metrics, table.shown)
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


def _profile_row(record: dict[str, Any], label: str, metrics: list[Metric]) -> Row:
    """One profile record as a row: compared with the baseline of its base model at its input size."""
    imgsz = record.get("imgsz")
    return Row(
        variant=str(record.get("variant")),
        label=label,
        base=record.get("base"),
        module=record.get("module"),
        placement=record.get("placement"),
        settings={"imgsz": imgsz},
        values={m.key: _profile_stat(m, record) for m in metrics},
        runs=[record],
        group=(record.get("base"), imgsz),
        timing_group=timing_conditions(record),
        timing_session=session_of(record),
    )


def _stored_profile_table(records: list[dict[str, Any]], wanted: list[str] | None = None) -> ReportTable:
    metrics = metrics_for(STORED_PROFILE, records, wanted)
    latest: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    for r in records:  # oldest first: a later record of the same variant, size and classes replaces an earlier one
        latest[(str(r.get("variant")), r.get("imgsz"), r.get("nc"))] = r
    several_sizes = len({imgsz for _, imgsz, _ in latest}) > 1
    several_nc = len({nc for _, _, nc in latest}) > 1
    rows = sorted(
        (
            _profile_row(
                r,
                variant + (f" @{imgsz}" if several_sizes else "") + (f" nc {nc}" if several_nc else ""),
                metrics,
            )
            for (variant, imgsz, nc), r in latest.items()
        ),
        key=lambda row: (row.base or "", _natural(str(row.settings["imgsz"])), *_row_order(row)),
    )
    table = ReportTable(STORED_PROFILE, "profile", "Profile (no training)", metrics, rows)
    kept = [row.runs[0] for row in rows]
    table.settings = [
        "Profiled with: " + ", ".join(_shared(kept, (*PROFILE_SETTING_KEYS, *VERSION_KEYS))) + ".",
        "Latency: median ± IQR ms at batch 1 (latest record of each variant, size and class count).",
    ]
    return table


def _add_intervals(table: ReportTable, records: list[dict[str, Any]], results_dir: Path, baseline: str | None) -> None:
    """Put the paired-bootstrap interval on each mAP Δ whose runs have stored statistics.

    With 2+ paired seeds the t-interval over seeds goes beside it, with which one is wider; `*` needs both.
    """
    by_key = {r.get("key"): row for row in table.shown for r in row.runs}
    variant_of = {row.label: row.variant for row in table.shown}
    methods: dict[str, None] = {}
    limits: dict[str, dict[str, list[str]]] = {LIMIT_SEEDS: {}, LIMIT_IMAGES: {}}
    sizes = any(m.key in SIZE_METRICS for m in table.metrics)  # their resampling costs: only where shown
    for iv in delta_intervals(records, results_dir, baseline, sizes=sizes):
        row = by_key.get(iv.run_keys[0]) if iv.run_keys else None
        if row is None or variant_of.get(row.baseline or "") != iv.baseline:
            continue
        if {r.get("key") for r in row.runs} != set(iv.run_keys):
            continue  # the interval covers other runs than the row's mean (a seed without statistics): no mark
        for m in table.metrics:
            if m.key in iv.intervals and m.key in row.deltas:
                ci, d = iv.intervals[m.key], row.deltas[m.key]
                row.deltas[m.key] = Delta(
                    d.abs, d.pct, ci.low, ci.high, ci.significant, d.unstable, ci.seed_low, ci.seed_high, ci.limited_by
                )
                if ci.limited_by:
                    limits[ci.limited_by].setdefault(row.label, []).append(m.title)
        methods[iv.method] = None
    if not methods:
        return
    level = f"{int(100 * LEVEL)}%"
    note = (
        f"mAP Δ [low, high]: {level} interval by paired bootstrap over validation images "
        f"({', '.join(methods)}; yoloab.significance): would the Δ hold on other images?"
    )
    if METHOD_SEEDS in methods:
        wider = "; ".join(
            f"{who} wider for " + ", ".join(f"{label} ({', '.join(titles)})" for label, titles in rows.items())
            for who, rows in limits.items()
            if rows
        )
        note += (
            f" With 2+ paired seeds, img [..] is that interval and seeds [..] the {level} t-interval over the "
            f"per-seed Δ: would it hold if trained again? The wider one limits the claim ({wider}); * both "
            "exclude 0."
        )
    else:
        note += " * the interval excludes 0."
    table.footnotes.append(note + " Rows without stored per-image statistics have no interval.")


def _add_seed_gaps(table: ReportTable) -> None:
    """Mark (¶) and name the runs missing where a variant and its baseline finished different seeds."""
    gaps = []
    for row in table.shown:
        lacks, extra = seed_gaps(table, row)
        if lacks or extra:
            parts = [f"{row.variant} seed {', '.join(map(str, lacks))}" if lacks else ""]
            parts += [f"{row.baseline} seed {', '.join(map(str, extra))}" if extra else ""]
            gaps.append(f"{row.label}: no finished {' nor '.join(p for p in parts if p)}")
    if gaps:
        table.footnotes.append(
            f"{SEEDS_MARK} the variant and its baseline finished different seeds; the Δ compares means over "
            f"different seeds and its intervals use the paired seeds only ({'; '.join(gaps)})."
        )


def _hint(name: str, names: Iterable[str], what: str) -> str:
    names = sorted(set(names))
    return did_you_mean(name, names) or (f" (stored {what}: {', '.join(names)})" if names else "")


def dataset_names(runs: list[dict[str, Any]]) -> dict[Any, str]:
    """The name of each dataset identity: that of its latest run.

    yoloab 0.1.0 named a user's dataset after its yaml file (`data`), later ones after its folder; the identity, and
    so the run keys, did not change. Runs of both keep one table, under the newer name.
    """
    out: dict[Any, str] = {}
    for r in sorted(runs, key=lambda r: str(r.get("finished") or r.get("started") or "")):
        if r.get("dataset_id") is not None and r.get("dataset"):
            out[r["dataset_id"]] = str(r["dataset"])
    return out


def build_report(
    runs: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    *,
    dataset: str | None = None,
    baseline: str | None = None,
    source: str = "the results directory",
    results_dir: str | Path | None = None,
    columns: list[str] | None = None,
) -> Report:
    """Group, aggregate and compare stored records into report tables.

    Args:
        runs: Run records (`yoloab.results.load_runs`), any order.
        profiles: Profile records, oldest first (`yoloab.results.load_profiles`).
        dataset: Only the table of this dataset (the profile-only table is left out).
        baseline: Variant name to take every delta against, instead of each base model's baseline.
        source: How to name where the records came from in error messages.
        results_dir: Where the runs' per-image statistics are stored; with it, each mAP Δ gets its interval.
        columns: The value columns to show, in order (`--columns`); default: every default column (LaTeX: its
            compact set). Columns that are not default (P95/P99 latency) are shown only when named.

    Returns:
        One table per dataset, sorted by name, then one for the profile records (unless `dataset` is given).

    Raises:
        ResultsError: No record at all, or `dataset`/`baseline` matching nothing (with the nearest names).
        ReportInputError: `columns` empty, naming a column twice, or naming one no table could show.
    """
    runs = [r for r in runs if r.get("kind", "run") == "run"]
    if not runs and not profiles:
        raise ResultsError(f"{source} holds no run or profile record; run `yoloab sweep` or `yoloab profile` first")
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    names = dataset_names(runs)
    for r in runs:
        by_dataset.setdefault(names.get(r.get("dataset_id")) or str(r.get("dataset") or "unknown"), []).append(r)
    if dataset is not None and dataset not in by_dataset:
        where = (
            _hint(dataset, by_dataset, "datasets") if by_dataset else " (no training run stored; run `yoloab sweep`)"
        )
        raise ResultsError(f"no training run on dataset {dataset!r} in {source}{where}")

    tables = [
        _run_table(name, by_dataset[name], profiles, columns) for name in sorted(by_dataset) if dataset in (None, name)
    ]
    if dataset is None and profiles:
        tables.append(_stored_profile_table(profiles, columns))
    report = Report(tables, baseline, optional_columns([*runs, *profiles]))
    if columns is not None:
        from .latex import check_columns

        check_columns(report, columns)  # before anything is compared: one line naming the valid columns
        for table in tables:
            table.metrics = [m for key in columns for m in table.metrics if m.key == key]
            table.sizes = {k: v for k, v in table.sizes.items() if k in columns}

    if baseline is not None:
        names = {row.variant for t in tables for row in t.shown}
        if baseline not in names:
            on = f" on dataset {dataset!r}" if dataset else ""
            raise ResultsError(
                f"baseline {baseline!r} matches no variant{on} in {source}{_hint(baseline, names, 'variants')}"
            )
    for table in tables:
        has_override = baseline is not None and any(row.variant == baseline for row in table.shown)
        finish(table, baseline if has_override else None)
        if results_dir is not None and table.kind == DATASET:
            _add_intervals(table, by_dataset[table.name], Path(results_dir), baseline if has_override else None)
        if table.kind == DATASET:
            _add_seed_gaps(table)
        if any(m.key in SIZE_METRICS for m in table.metrics):
            table.footnotes.append(SIZE_NOTE)
    return report


def load_report(
    results_dir: str | Path,
    *,
    dataset: str | None = None,
    baseline: str | None = None,
    columns: list[str] | None = None,
) -> Report:
    """Read the results store and build the report (see `build_report`).

    Raises:
        ResultsError: A missing directory, an unreadable record, or nothing matching the request.
        ReportInputError: `columns` naming no valid column (see `build_report`).
    """
    path = Path(results_dir)
    if not path.is_dir():
        raise ResultsError(f"results directory '{path}' does not exist; run `yoloab sweep` or `yoloab profile` first")
    try:
        runs, profiles = load_runs(path), load_profiles(path)
    except (OSError, ValueError, KeyError, TypeError) as err:  # a hand-edited or foreign JSON file
        raise ResultsError(f"cannot read the results store '{path}': {type(err).__name__}: {err}") from None
    return build_report(
        runs,
        profiles,
        dataset=dataset,
        baseline=baseline,
        source=f"results directory '{path}'",
        results_dir=path,
        columns=columns,
    )


def profile_table(
    records: list[dict[str, Any]], title: str = "yoloab profile", columns: list[str] | None = None
) -> ReportTable:
    """The table `yoloab profile` prints: one row per fresh record, in order.

    Deltas are taken against the baseline of the same base model and input size, if profiled, and timed in the same
    session. Columns no record has a value or an explanation (a failed export) for are left out, except the two
    GFLOPs counts. `columns` picks the value columns, in order (P95/P99 latency only when named).
    """
    metrics = [
        m
        for m in metrics_for(PROFILE_COMMAND, records, columns)
        if m.key in ALWAYS_SHOWN
        or any(r.get(m.key) is not None or r.get(m.error_key or "") not in (None, "ok") for r in records)
    ]
    if columns is not None:
        metrics = [m for key in columns for m in metrics if m.key == key]
    rows = [_profile_row(r, str(r.get("variant")), metrics) for r in records]
    table = ReportTable(PROFILE_COMMAND, "profile", title, metrics, rows)
    finish(table)
    return table
