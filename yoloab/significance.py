"""Is a variant's accuracy delta real? Paired bootstrap over validation images, and t-intervals over seeds.

Each run stores per-image validation statistics (`yoloab.results.ValStats`). A resample draws validation images with
replacement; every model of a comparison is scored on the same resample, so the image-to-image difficulty cancels
out of the delta (a paired bootstrap). With several seeds the bootstrap pools them: each resample's delta is the mean
over seeds of the paired per-seed deltas; a t-interval over the per-seed deltas of the full validation set adds the
training (seed) noise, and the reported interval is the hull of both.

mAP on a resample is Ultralytics' own definition (`ultralytics.utils.metrics.ap_per_class`): per class with labels,
predictions sorted by confidence, cumulative true and false positives, the precision envelope, AP as the trapezoid
over 101 recall points of the linearly interpolated envelope, then the mean over classes (and over the 10 IoU
thresholds for mAP50-95). Drawing an image k times is the same as giving its predictions and labels weight k, so
the predictions are sorted once and each resample only changes the weights of cumulative sums. The curve of the
repeated copies is rebuilt from two points per prediction (after its first copy and after its last), which is all
the interpolation sees, so the result equals `ap_per_class` on the concatenated copies (the test checks this).
Predictions of one class with exactly the same confidence may be taken in another order than `ap_per_class` would
on the copies (its sort is not stable); only such ties can make the two differ.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .results import ValStats, load_val_stats

N_RESAMPLES = 1000
LEVEL = 0.95
MIN_IMAGES = 100  # below this, warn that intervals are wide
_AP_X = np.linspace(0, 1, 101)  # Ultralytics' 101-point COCO interpolation
_CHUNK = 1 << 22  # curve points held at once (memory bound, ~32 MB per array)
METHOD_BOOTSTRAP = "bootstrap"
METHOD_SEEDS = "bootstrap+t over seeds"


# --------------------------------------------------------------------------------------------------------------------
# mAP on weighted (resampled) image sets


def resample_indices(n_images: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_images) image indices drawn with replacement, reproducibly from `seed`."""
    return np.random.default_rng(seed).integers(0, n_images, size=(n_resamples, n_images))


def image_counts(indices: np.ndarray, n_images: int) -> np.ndarray:
    """How often each image is drawn in each resample: (n_resamples, n_images) from `resample_indices`."""
    b = indices.shape[0]
    flat = (indices + np.arange(b)[:, None] * n_images).ravel()
    return np.bincount(flat, minlength=b * n_images).reshape(b, n_images)


def _class_ap(weights: np.ndarray, tp: np.ndarray, n_l: np.ndarray) -> np.ndarray:
    """AP at each IoU threshold of one class on each resample.

    Args:
        weights: (B, P) how often each prediction (sorted by confidence, descending) is drawn.
        tp: (P, T) match flags of the predictions.
        n_l: (B,) number of labels of the class in each resample (all > 0).

    Returns:
        (B, T) average precision.
    """
    b = weights.shape[0]
    before = np.cumsum(weights, axis=1) - weights  # copies drawn before each prediction
    total = before[:, -1] + weights[:, -1]
    out = np.zeros((b, tp.shape[1]))
    for t in range(tp.shape[1]):
        idx = np.flatnonzero(tp[:, t])
        if len(idx):  # without a true positive the curve is 0 everywhere: AP 0
            out[:, t] = _threshold_ap(weights[:, idx], before[:, idx], total, n_l)
    return out


def _ratio(tpc: np.ndarray, fpc: np.ndarray) -> np.ndarray:
    """Precision; before any drawn prediction the curve is at Ultralytics' (recall 0, precision 1) sentinel."""
    denom = tpc + fpc
    return np.divide(tpc, denom, out=np.ones(denom.shape), where=denom > 0)


def _threshold_ap(w: np.ndarray, before: np.ndarray, total: np.ndarray, n_l: np.ndarray) -> np.ndarray:
    """AP of one class at one IoU threshold, from its true positives only.

    Between two true positives, false positives only lower the precision at a constant recall, so the curve needs
    per true positive k just three points: the state before it (the last point of the previous recall level), after
    its first copy and after its last copy; then the final state and Ultralytics' end sentinels.

    Args:
        w: (B, n) copies drawn of each true positive, in confidence order.
        before: (B, n) copies of any prediction of the class drawn before each true positive.
        total: (B,) copies of all predictions of the class.
        n_l: (B,) labels of the class.
    """
    b, n = w.shape
    tp_after = np.cumsum(w, axis=1)
    tp_before = tp_after - w
    fp = before - tp_before  # false positives drawn before each true positive
    tp_total = tp_after[:, -1]
    prec = np.empty((b, 2 * n + 1))
    prec[:, 0 : 2 * n : 2] = _ratio(tp_before, fp)
    prec[:, 1 : 2 * n : 2] = _ratio(tp_after, fp)
    prec[:, -1] = _ratio(tp_total, total - tp_total)
    env = np.flip(np.maximum.accumulate(np.flip(prec, axis=1), axis=1), axis=1)

    # curve points as label counts (exact integers) with their envelope: the start sentinel (0, 1), per true positive
    # (before, first copy, last copy) where the first copy's envelope is the last's (precision rises over the copies),
    # the final state, then the end sentinels (last recall, 0) and (1, 0)
    m = 3 * n + 4
    level = np.empty((b, m), dtype=np.int64)
    level[:, 0] = 0
    level[:, 1 : 3 * n + 1 : 3] = tp_before
    level[:, 2 : 3 * n + 2 : 3] = tp_before + (w > 0)
    level[:, 3 : 3 * n + 3 : 3] = tp_after
    level[:, -3:-1] = tp_total[:, None]
    level[:, -1] = n_l
    yv = np.empty((b, m))
    yv[:, 0] = 1.0
    yv[:, 1 : 3 * n + 1 : 3] = env[:, 0 : 2 * n : 2]
    yv[:, 2 : 3 * n + 2 : 3] = env[:, 1 : 2 * n : 2]
    yv[:, 3 : 3 * n + 3 : 3] = env[:, 1 : 2 * n : 2]
    yv[:, -3] = env[:, -1]
    yv[:, -2:] = 0.0

    # the highest label count whose recall (count / n_l, rounded as Ultralytics rounds it) is <= each x
    nl = n_l.astype(float)[:, None]
    top = np.clip(np.floor(_AP_X[None] * nl).astype(np.int64), 0, n_l[:, None])
    for _ in range(2):
        top = top + ((top < n_l[:, None]) & ((top + 1) / nl <= _AP_X[None]))
        top = top - ((top > 0) & (top / nl > _AP_X[None]))
    # last curve point at or below that count: np.interp's left neighbour (integer keys, so the search is exact)
    stride = int(n_l.max()) + 2
    row = np.arange(b, dtype=np.int64)[:, None]
    j = np.searchsorted((level + row * stride).ravel(), (top + row * stride).ravel(), side="right")
    j = j.reshape(b, -1) - 1 - row * m
    j1 = np.minimum(j + 1, m - 1)
    rec_j = np.take_along_axis(level, j, 1) / nl
    rec_j1 = np.take_along_axis(level, j1, 1) / nl
    y_j = np.take_along_axis(yv, j, 1)
    y_j1 = np.take_along_axis(yv, j1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (y_j1 - y_j) / (rec_j1 - rec_j)  # as np.interp computes it
        y = np.where((rec_j == _AP_X) | (j == m - 1), y_j, slope * (_AP_X - rec_j) + y_j)
    return np.trapezoid(y, _AP_X, axis=1)


def resampled_map(stats: ValStats, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mAP50 and mAP50-95 of one run on each resample of its validation images.

    Args:
        stats: the run's per-image validation statistics.
        counts: (B, N) how often each validation image is drawn (`image_counts`); all ones is the full set.

    Returns:
        (B,) mAP50 and (B,) mAP50-95.
    """
    counts = np.asarray(counts, dtype=np.int64)
    b = counts.shape[0]
    order = np.argsort(-stats.conf)  # the same call as ap_per_class: on the full set, the same order
    tp, pred_cls, pred_image = stats.tp[order], stats.pred_cls[order], stats.pred_image[order]
    n_thr = tp.shape[1]
    ap_sum, n_cls = np.zeros((b, n_thr)), np.zeros(b)
    for c in np.unique(stats.target_cls):
        n_l = counts @ np.bincount(stats.target_image[stats.target_cls == c], minlength=stats.n_images)
        present = n_l > 0  # a class without labels in a resample is not part of its mean
        n_cls += present
        sel = pred_cls == c
        if not sel.any():
            continue  # AP 0 where present
        rows = np.flatnonzero(present)
        step = max(1, _CHUNK // int(sel.sum()))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            ap_sum[r] += _class_ap(counts[np.ix_(r, pred_image[sel])], tp[sel], n_l[r])
    with np.errstate(invalid="ignore", divide="ignore"):
        map50 = np.where(n_cls > 0, ap_sum[:, 0] / n_cls, 0.0)
        map50_95 = np.where(n_cls > 0, ap_sum.sum(1) / (n_cls * n_thr), 0.0)
    return map50, map50_95


# --------------------------------------------------------------------------------------------------------------------
# intervals


def t_quantile(q: float, df: int) -> float:
    """Quantile of Student's t distribution with `df` degrees of freedom (bisection on its closed-form CDF)."""

    def cdf(x: float) -> float:
        # Abramowitz & Stegun 26.7.3 / 26.7.4: A(t|df) for integer df, CDF = (1 + A) / 2
        theta = math.atan(x / math.sqrt(df))
        s, c2 = math.sin(theta), math.cos(theta) ** 2
        if df % 2:
            term, total = 1.0, 1.0 if df > 1 else 0.0
            for k in range(3, df, 2):
                term *= c2 * (k - 1) / k
                total += term
            a = (2 / math.pi) * (theta + s * math.cos(theta) * total) if df > 1 else 2 * theta / math.pi
        else:
            term, total = 1.0, 1.0
            for k in range(2, df, 2):
                term *= c2 * (k - 1) / k
                total += term
            a = s * total
        return (1 + a) / 2

    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


@dataclass
class Interval:
    """A delta with its interval.

    Attributes:
        delta: the delta on the full validation set (mean over seeds).
        low: lower end of the interval.
        high: upper end.
    """

    delta: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap samples."""
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def t_interval(deltas: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The t-interval of the mean of per-seed deltas (needs two or more)."""
    d = np.asarray(deltas, dtype=float)
    half = t_quantile(1 - (1 - level) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def paired_bootstrap(
    variant: Sequence[ValStats],
    baseline: Sequence[ValStats],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Bootstrap distribution of ΔmAP50 and ΔmAP50-95 (variant minus baseline), seeds paired and pooled.

    Args:
        variant: statistics of the variant's runs, one per seed.
        baseline: statistics of the baseline's runs, of the same seeds in the same order.
        n_resamples: resamples of the validation images.
        seed: seed of the resampling (not of training).

    Returns:
        `map50` and `map50_95`: (n_resamples,) mean over seeds of the paired deltas on each resample.

    Raises:
        ValueError: no pair, or runs validated on different images.
    """
    if not variant or len(variant) != len(baseline):
        raise ValueError(f"need paired runs; got {len(variant)} variant and {len(baseline)} baseline runs")
    ref = variant[0].image_sha256
    if any(len(s.image_sha256) != len(ref) or (s.image_sha256 != ref).any() for s in (*variant, *baseline)):
        raise ValueError("paired runs were validated on different images")
    counts = image_counts(resample_indices(len(ref), n_resamples, seed), len(ref))
    out = {"map50": np.zeros(n_resamples), "map50_95": np.zeros(n_resamples)}
    for v, b in zip(variant, baseline, strict=True):
        v50, v95 = resampled_map(v, counts)
        b50, b95 = resampled_map(b, counts)
        out["map50"] += (v50 - b50) / len(variant)
        out["map50_95"] += (v95 - b95) / len(variant)
    return out


# --------------------------------------------------------------------------------------------------------------------
# per-variant results for reports

METRICS = ("map50_95", "map50")


@dataclass
class DeltaInterval:
    """The intervals of one variant's mAP deltas against its baseline, on one dataset with one set of settings.

    Attributes:
        variant: the variant's name.
        baseline: the baseline's name.
        dataset: dataset name.
        run_keys: keys of the variant's runs that entered (one per paired seed).
        seeds: the paired seeds.
        n_images: validation images.
        method: `bootstrap` (one seed) or `bootstrap+t over seeds` (hull of both intervals), for a footnote.
        intervals: metric (`map50_95`, `map50`) -> Interval.
        seed_spread: metric -> standard deviation over seeds of the variant's value (None with one seed).
        delta_spread: metric -> standard deviation over seeds of the paired delta (None with one seed).
    """

    variant: str
    baseline: str
    dataset: str
    run_keys: list[str]
    seeds: list[int]
    n_images: int
    method: str
    intervals: dict[str, Interval]
    seed_spread: dict[str, float | None] = field(default_factory=dict)
    delta_spread: dict[str, float | None] = field(default_factory=dict)

    @property
    def columns(self) -> dict[str, Any]:
        """The report's CSV columns: `<metric>_delta_ci_low`, `_ci_high`, `_significant` for both metrics."""
        out: dict[str, Any] = {}
        for m in METRICS:
            iv = self.intervals[m]
            out |= {
                f"{m}_delta_ci_low": iv.low,
                f"{m}_delta_ci_high": iv.high,
                f"{m}_delta_significant": iv.significant,
            }
        return out


def _group(record: dict[str, Any]) -> tuple[str, ...]:
    """What two runs must share to be compared: dataset and result-deciding settings."""
    settings = (record.get("epochs"), record.get("imgsz"), record.get("batch"), record.get("train_args") or {})
    return (str(record.get("dataset_id")), json.dumps(settings, sort_keys=True, default=str))


def delta_intervals(
    records: Iterable[dict[str, Any]],
    results_dir: str | Path,
    baseline: str | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> list[DeltaInterval]:
    """Intervals of every variant's ΔmAP50-95 and ΔmAP50 against its baseline.

    A variant is compared with the baseline (module None) of the same base model, or with `baseline` when named,
    trained on the same dataset with the same settings; runs are paired by seed, and only seeds that both have with
    stored per-image statistics (from the pass their records report) enter. Variants without such a pair, or whose
    runs were validated on different images, are left out.

    Args:
        records: run records (`yoloab.results.load_runs`); failed ones are ignored.
        results_dir: where their per-image statistics are stored.
        baseline: a variant name to compare every other variant with, instead of each base model's baseline.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.
        level: interval coverage.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "ok":
            groups[_group(r)].append(r)
    out = []
    for runs in groups.values():
        by_variant: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for r in runs:
            by_variant[r["variant"]][r["seed"]] = r
        for name, seeds in sorted(by_variant.items()):
            first = next(iter(seeds.values()))
            base_name = baseline or next(
                (n for n, s in by_variant.items() if _is_baseline_of(next(iter(s.values())), first)), None
            )
            if base_name is None or base_name == name or base_name not in by_variant:
                continue
            pairs = []
            for s in sorted(set(seeds) & set(by_variant[base_name])):
                v, b = _stats(results_dir, seeds[s]), _stats(results_dir, by_variant[base_name][s])
                if v is not None and b is not None:
                    pairs.append((s, seeds[s], v, b))
            try:
                out.append(_intervals(name, base_name, first["dataset"], pairs, n_resamples, seed, level))
            except ValueError:  # no pair, or the validation images changed between runs: no honest interval
                continue
    return out


def _is_baseline_of(candidate: dict[str, Any], record: dict[str, Any]) -> bool:
    return candidate.get("module") is None and candidate.get("base") == record.get("base")


def _stats(results_dir: str | Path, record: dict[str, Any]) -> ValStats | None:
    """A run's statistics, only when they come from the validation pass its record reports."""
    stats = load_val_stats(results_dir, record["key"])
    if stats is None or (stats.map50, stats.map50_95) != (record.get("map50"), record.get("map50_95")):
        return None
    return stats


def _intervals(name: str, base: str, dataset: str, pairs: list, n_resamples: int, seed: int, level: float):
    boot = paired_bootstrap([p[2] for p in pairs], [p[3] for p in pairs], n_resamples, seed)
    intervals, spread, dspread = {}, {}, {}
    for m in METRICS:
        deltas = [getattr(v, m) - getattr(b, m) for _, _, v, b in pairs]
        low, high = percentile_interval(boot[m], level)
        if len(pairs) >= 2:
            t_low, t_high = t_interval(deltas, level)
            low, high = min(low, t_low), max(high, t_high)
            spread[m] = float(np.std([getattr(v, m) for _, _, v, _ in pairs], ddof=1))
            dspread[m] = float(np.std(deltas, ddof=1))
        else:
            spread[m] = dspread[m] = None
        intervals[m] = Interval(float(np.mean(deltas)), low, high)
    return DeltaInterval(
        variant=name,
        baseline=base,
        dataset=dataset,
        run_keys=[p[1]["key"] for p in pairs],
        seeds=[p[0] for p in pairs],
        n_images=pairs[0][2].n_images,
        method=METHOD_SEEDS if len(pairs) >= 2 else METHOD_BOOTSTRAP,
        intervals=intervals,
        seed_spread=spread,
        delta_spread=dspread,
    )


# --------------------------------------------------------------------------------------------------------------------
# warnings


def warnings(records: Iterable[dict[str, Any]], results_dir: str | Path) -> list[str]:
    """What makes deltas untrustworthy, one line each.

    Seeds of one variant with bit-identical metrics; validation images also in the training set (same file
    content); fewer than `MIN_IMAGES` validation images.
    """
    out: list[str] = []
    ok = [r for r in records if r.get("status") == "ok"]
    by_variant: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_variant[(r["variant"], *_group(r))].append(r)
    for (name, *_), runs in sorted(by_variant.items()):
        seen: dict[tuple, list[int]] = defaultdict(list)
        for r in sorted(runs, key=lambda r: r["seed"]):
            seen[tuple(r.get(k) for k in ("map50", "map50_95", "precision", "recall"))].append(r["seed"])
        for seeds in seen.values():
            if len(seeds) > 1:
                out.append(
                    f"{name} on {runs[0]['dataset']}: seeds {', '.join(map(str, seeds))} give bit-identical metrics; "
                    "the seed was not applied or the runs were cached, so they are not independent"
                )
    checked = set()
    for r in ok:
        if r.get("dataset_id") in checked or (stats := load_val_stats(results_dir, r["key"])) is None:
            continue
        checked.add(r.get("dataset_id"))
        if (dup := int(stats.in_train.sum())) > 0:
            out.append(
                f"{r['dataset']}: {dup} of {stats.n_images} validation images are also in the training set "
                "(same file content); their mAP measures memory, not generalisation"
            )
        if stats.n_images < MIN_IMAGES:
            out.append(
                f"{r['dataset']}: only {stats.n_images} validation images (fewer than {MIN_IMAGES}); "
                "intervals over images will be wide"
            )
    return out
