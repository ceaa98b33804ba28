"""Is a variant's accuracy delta real? Paired bootstrap over validation images, and t-intervals over seeds.

Each run stores per-image validation statistics (`yoloab.results.ValStats`). A resample draws validation images with
replacement; every model of a comparison is scored on the same resample, so the image-to-image difficulty cancels
out of the delta (a paired bootstrap). With several seeds the bootstrap pools them: each resample's delta is the mean
over seeds of the paired per-seed deltas. It answers "would this delta hold on other validation images?". A
t-interval over the per-seed deltas of the full validation set answers "would it hold if I trained again?". Both are
reported; the wider one limits the claim, and a delta is significant only when both exclude 0 (docs/statistics.md).

mAP on a resample is Ultralytics' own definition (`ultralytics.utils.metrics.ap_per_class` and `compute_ap`): per
class with labels, predictions sorted by confidence, cumulative true and false positives, the precision envelope
(the running maximum from the right), AP as the trapezoid over 101 recall points of `np.interp` on the envelope,
then the mean over classes (and over the 10 IoU thresholds for mAP50-95). Drawing an image k times is the same as
giving its predictions and labels weight k (its copies are adjacent in the confidence order), so the predictions are
sorted once and each resample only changes weights. On that curve the interpolated envelope is a step function of
recall: every point from the last one at the level before a true positive to its last copy has the envelope value
of that true positive (a false positive only lowers the precision at a constant recall, and the precision rises over
a true positive's copies), and beyond the last true positive Ultralytics' end sentinels give 0. So

    AP = sum_k env_k * (F(L_k) - F(L_k - w_k)),   F(L) = sum of the trapezoid weights of the grid points x < L / n_l

over the true positives k with w_k copies drawn, L_k labels found up to and including them, env_k the running
maximum from the right of their precision L_k / (predictions drawn up to them). The grid is `linspace(0, 1, 101)`,
whose points compare with any recall L / n_l as the fractions i / 100 do (the tests check every n_l up to 3,000, and
distinct fractions with small denominators are far apart in float64), so the number of grid points below L / n_l is
ceil(100 L / n_l), exact in float64. One pass from the last true positive to the first keeps, per IoU threshold and
resample, L, the running maximum and the sum by parts of (rise of the maximum) x F(L). This equals today's
Ultralytics on the concatenated copies to rounding (the tests check both `ap_per_class` and the previous,
curve-rebuilding implementation, to 1e-9), in a time linear in true positives x thresholds x resamples plus
predictions x resamples for the false positives counted between true positives (docs/statistics.md, scaling).
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
from .size_ap import SIZE_METRICS, resampled_size_maps, size_maps

N_RESAMPLES = 1000
LEVEL = 0.95
MIN_IMAGES = 100  # below this, warn that intervals are wide
_AP_X = np.linspace(0, 1, 101)  # Ultralytics' 101-point COCO interpolation
# trapezoid weights of the grid points: F(L) = _F_STEP * cnt - _F_FIRST * (cnt > 0) for cnt = ceil(100 L / n_l) points
# below the recall (0.005 for the first point, 0.01 for each interior one; the last point, x = 1, never counts)
_F_STEP, _F_FIRST = 0.01, 0.005
_MAX_BLOCK = 1 << 24  # entries of one class's per-resample arrays held at once
_GATHER_ROWS = 1024  # rows of image counts gathered at once for a class's levels
METHOD_BOOTSTRAP = "bootstrap"
METHOD_SEEDS = "bootstrap+t over seeds"
LIMIT_IMAGES = "images"  # the image bootstrap's interval is the wider one
LIMIT_SEEDS = "seeds"  # the t-interval over seeds is the wider one
DEFAULT_LOSS = "CIoU"  # yoloab.losses.DEFAULT_LOSS (as text: reading records needs no torch)


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


@dataclass(frozen=True)
class _ClassCurve:
    """What one class's AP on any resample needs from a run's statistics (resample-independent).

    Attributes:
        pred_image: image of each of the class's predictions, in confidence order, up to its last true positive.
        seg_start: (U,) first prediction of each segment; segment k ends with the class's k-th true positive.
        seg_long: the segments that hold more than their true positive.
        max_seg: the longest segment.
        tp_image: (U,) image of each true positive (a prediction that matches at some IoU threshold).
        tp: (U, T) float 0/1, at which thresholds each of them matches.
        runs: per true positive, the (first, end) ranges of thresholds at which it matches (one range when it
            matches the lowest thresholds up to some IoU, as Ultralytics' matching gives).
        eval_runs: per true positive, the ranges at which its precision can raise the envelope: all of `runs`
            except the thresholds where the next true positive follows it directly and matches too (that one's
            precision is at least as high, so the envelope rises there, not here).
    """

    pred_image: np.ndarray
    seg_start: np.ndarray
    seg_long: np.ndarray
    max_seg: int
    tp_image: np.ndarray
    tp: np.ndarray
    runs: tuple[tuple[tuple[int, int], ...], ...]
    eval_runs: tuple[tuple[tuple[int, int], ...], ...]


@dataclass(frozen=True)
class Curves:
    """A run's statistics prepared for `resampled_map` (sorted once; reuse it for several resample sets).

    Attributes:
        n_images: validation images.
        n_thresholds: IoU thresholds.
        label_hist: (n_images, classes) labels of each class with labels in each image.
        classes: per class with labels, its true positives (None without any: AP 0 wherever it has labels).
    """

    n_images: int
    n_thresholds: int
    label_hist: np.ndarray
    classes: tuple[_ClassCurve | None, ...]


def prepare_curves(stats: ValStats) -> Curves:
    """Sort a run's predictions once for `resampled_map`.

    Raises:
        ValueError: an image holds more true positives of a class at some threshold than labels of it (statistics
            that no validation pass produces: their recall would exceed 1).
    """
    n, n_thr = stats.n_images, stats.tp.shape[1]
    order = np.argsort(-stats.conf)  # the same call as ap_per_class: on the full set, the same order
    order = order[np.argsort(stats.pred_cls[order], kind="stable")]  # grouped by class, each in that order
    tp, pred_cls, pred_image = stats.tp[order], stats.pred_cls[order], stats.pred_image[order]
    classes, label_class = np.unique(stats.target_cls, return_inverse=True)
    n_cls = len(classes)
    hist = np.bincount(stats.target_image * n_cls + label_class, minlength=n * n_cls).reshape(n, n_cls)
    pred_class = np.searchsorted(classes, pred_cls).clip(0, max(n_cls - 1, 0))
    cell = pred_image * n_cls + pred_class
    known = classes[pred_class] == pred_cls if n_cls else np.zeros(len(pred_cls), bool)
    for t in range(n_thr):  # a validation pass never matches more predictions than there are labels
        if (np.bincount(cell[tp[:, t] & known], minlength=n * n_cls) > hist.ravel()).any():
            raise ValueError("statistics hold more true positives of a class in an image than labels of it")
    depth = tp.sum(1)
    prefix = (tp == (np.arange(n_thr) < depth[:, None])).all(1)  # matches the lowest `depth` thresholds only
    lo, hi = np.searchsorted(pred_cls, classes, "left"), np.searchsorted(pred_cls, classes, "right")
    out: list[_ClassCurve | None] = []
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        union = np.flatnonzero(depth[a:b] > 0)
        if not len(union):
            out.append(None)
            continue
        starts = np.concatenate([[0], union[:-1] + 1])
        lengths = union + 1 - starts
        rows = a + union
        d, p = depth[rows], prefix[rows]
        runs = tuple(
            ((0, k),) if q else _threshold_runs(tp[r]) for r, k, q in zip(rows, d.tolist(), p.tolist(), strict=True)
        )
        # thresholds at which the next true positive (no prediction of the class between) matches as well
        shadowed = np.zeros_like(tp[rows])
        follows = np.flatnonzero(lengths[1:] == 1)
        shadowed[follows] = tp[rows[follows + 1]]
        own = tp[rows] & ~shadowed
        start = np.where(shadowed[:, 0] & p, np.minimum(d, np.r_[d[1:], 0]), 0)  # prefix rows: [start, depth)
        simple = p & np.r_[p[1:], True]
        eval_runs = tuple(
            (((b0, k),) if b0 < k else ()) if q else _threshold_runs(o)
            for o, b0, k, q in zip(own, start.tolist(), d.tolist(), simple.tolist(), strict=True)
        )
        out.append(
            _ClassCurve(
                pred_image=pred_image[a : a + union[-1] + 1],
                seg_start=starts,
                seg_long=np.flatnonzero(lengths > 1),
                max_seg=int(lengths.max()),
                tp_image=pred_image[rows],
                tp=tp[rows].astype(np.float64),
                runs=runs,
                eval_runs=eval_runs,
            )
        )
    return Curves(n, n_thr, hist.astype(np.float64), tuple(out))


def _threshold_runs(row: np.ndarray) -> tuple[tuple[int, int], ...]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
    return tuple(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _class_ap_sums(
    cc: _ClassCurve, counts_t: np.ndarray, counts_f: np.ndarray, top: int, n_l: np.ndarray, n_thr: int
) -> tuple[np.ndarray, np.ndarray]:
    """One class's AP at the first threshold and summed over thresholds, on each resample.

    Args:
        cc: the class's true positives.
        counts_t: (N, B) how often each image is drawn in each resample (a small integer type).
        counts_f: the same as float64.
        top: the most copies of one image in a resample.
        n_l: (B,) labels of the class in each resample.
        n_thr: IoU thresholds.

    Returns:
        (B,) AP at the first threshold and (B,) the sum of the APs over all thresholds.
    """
    b = counts_t.shape[1]
    # copies of the class's predictions drawn in each segment (true positive k and the false positives before it)
    ends = np.concatenate([cc.seg_start[1:], [len(cc.pred_image)]])
    total = cc.max_seg * top  # the most copies one segment can hold
    seg = counts_t[cc.pred_image[ends - 1]].astype(np.uint16 if total < 1 << 16 else np.int64)
    buf = np.empty((cc.max_seg, b), counts_t.dtype)  # reused: a fresh large array per segment costs page faults
    for j in cc.seg_long.tolist():  # mode="clip": with the default "raise", numpy copies `out` first
        rows = np.take(counts_t, cc.pred_image[cc.seg_start[j] : ends[j]], axis=0, out=buf[: ends[j] - cc.seg_start[j]],
                       mode="clip")  # fmt: skip
        np.add.reduce(rows, axis=0, dtype=seg.dtype, out=seg[j])
    # levels are labels found L: the grid points below the recall, ceil(100 L / n_l), are then one product with
    # 100 / n_l shrunk by 1e-10 relative, which moves an exact integer just below itself and any other fraction (at
    # least 1 / n_l above the integer below it) by far less than that gap, while the roundings of the product (a few
    # 1e-16 relative) stay far below 1e-10; so the ceiling is exact for n_l < 1e8
    level = np.zeros((n_thr, b))  # (T, B) labels found by all of the class's drawn true positives, exact
    rows_buf = np.empty((min(len(cc.tp_image), _GATHER_ROWS), b))  # bounded: no (U, B) array, whose fresh pages
    for s in range(0, len(cc.tp_image), len(rows_buf)):  # cost more than the products
        rows = np.take(counts_f, cc.tp_image[s : s + len(rows_buf)], axis=0, out=rows_buf[: len(cc.tp_image) - s],
                       mode="clip")  # fmt: skip
        level += cc.tp[s : s + len(rows)].T @ rows
    drawn = seg.sum(0, dtype=np.float64)  # predictions drawn up to the last true positive
    inv = np.empty(b)
    per_label = 100.0 / (np.maximum(n_l, 1.0) * (1 + 1e-10))  # no labels in a resample: no true positive, level 0
    peak, area = np.zeros((n_thr, b)), np.zeros((n_thr, b))  # in units of precision / 100
    rise, grid = np.empty((n_thr, b)), np.empty((n_thr, b))
    views: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    levels: dict[tuple[int, int], np.ndarray] = {}
    sub, add, mul, maximum, ceil, divide = np.subtract, np.add, np.multiply, np.maximum, np.ceil, np.divide
    for k in range(len(cc.tp_image) - 1, -1, -1):  # from the last true positive to the first
        if runs := cc.eval_runs[k]:
            maximum(drawn, 1.0, out=inv)  # nothing drawn yet: level 0 too, precision 0
            divide(100.0, inv, out=inv)
            for run in runs:
                v = views.get(run)
                if v is None:
                    s = slice(*run)
                    v = views[run] = (level[s], peak[s], area[s], rise[s], grid[s])
                lv, pk, ar, rs, gr = v
                mul(lv, inv, out=rs)  # precision after this true positive's copies (x 100, to 1 ulp)
                sub(rs, pk, out=rs)
                maximum(rs, 0.0, out=rs)  # how much the envelope rises here
                add(pk, rs, out=pk)  # the envelope at this true positive
                mul(lv, per_label, out=gr)
                ceil(gr, out=gr)  # grid points below this true positive's recall
                mul(gr, rs, out=gr)
                add(ar, gr, out=ar)  # by parts: sum_k rise_k * cnt(L_k) = sum_k env_k * (cnt(L_k) - cnt(L_k - w_k))
        wk = counts_f[cc.tp_image[k]]
        for run in cc.runs[k]:
            lv = levels.get(run)
            if lv is None:
                lv = levels[run] = level[slice(*run)]
            sub(lv, wk, out=lv)
        sub(drawn, seg[k], out=drawn)
    # F(L) = 0.01 cnt - 0.005 [cnt > 0]; the sum by parts of the second term is the envelope at the first drawn
    # true positive, the maximum of all precisions (0 without any); both sums are in units of precision / 100
    ap = (_F_STEP / 100) * area - (_F_FIRST / 100) * peak
    return ap[0], ap.sum(0)


def resampled_map(stats: ValStats | Curves, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mAP50 and mAP50-95 of one run on each resample of its validation images.

    Args:
        stats: the run's per-image validation statistics, or them prepared by `prepare_curves`.
        counts: (B, N) how often each validation image is drawn (`image_counts`); all ones is the full set.

    Returns:
        (B,) mAP50 and (B,) mAP50-95.

    Raises:
        ValueError: statistics that no validation pass produces (see `prepare_curves`).
    """
    curves = stats if isinstance(stats, Curves) else prepare_curves(stats)
    counts = np.asarray(counts, dtype=np.int64)
    b, n_thr = counts.shape[0], curves.n_thresholds
    top = int(counts.max(initial=0))
    counts_t = np.ascontiguousarray(counts.T, dtype=np.uint8 if top < 1 << 8 else np.int64)
    counts_f = counts_t.astype(np.float64)
    n_l = counts.astype(np.float64) @ curves.label_hist  # (B, C) exact: integer sums far below 2**53
    n_cls = (n_l > 0).sum(1)  # a class without labels in a resample is not part of its mean
    if n_l.size and n_l.max() >= 1e8:
        raise ValueError(f"{int(n_l.max())} labels of one class: the exact grid count needs fewer than 1e8")
    ap50, ap_all = np.zeros(b), np.zeros(b)
    for ci, cc in enumerate(curves.classes):
        if cc is None:
            continue  # no true positive: AP 0 wherever the class has labels
        step = max(1, _MAX_BLOCK // max(len(cc.tp_image), n_thr))  # resamples per block, bounding memory
        for s in range(0, b, step):
            blk = slice(s, s + step)
            a50, a_all = _class_ap_sums(cc, counts_t[:, blk], counts_f[:, blk], top, n_l[blk, ci], n_thr)
            ap50[s : s + step] += a50
            ap_all[s : s + step] += a_all
    with np.errstate(invalid="ignore", divide="ignore"):
        map50 = np.where(n_cls > 0, ap50 / n_cls, 0.0)
        map50_95 = np.where(n_cls > 0, ap_all / (n_cls * n_thr), 0.0)
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
    """A delta with its two intervals.

    Attributes:
        delta: the delta on the full validation set (mean over seeds).
        low: lower end of the paired bootstrap's interval over validation images.
        high: its upper end.
        seed_low: lower end of the t-interval over seeds (None with one seed).
        seed_high: its upper end.
    """

    delta: float
    low: float
    high: float
    seed_low: float | None = None
    seed_high: float | None = None

    @property
    def significant(self) -> bool:
        """Both intervals exclude 0 on the same side (with one seed: the image interval does)."""
        lows, highs = [self.low], [self.high]
        if self.seed_low is not None and self.seed_high is not None:
            lows.append(self.seed_low)
            highs.append(self.seed_high)
        return min(lows) > 0 or max(highs) < 0

    @property
    def limited_by(self) -> str | None:
        """`LIMIT_SEEDS` or `LIMIT_IMAGES`: whose interval is wider and so limits the claim; None with one seed."""
        if self.seed_low is None or self.seed_high is None:
            return None
        return LIMIT_SEEDS if self.seed_high - self.seed_low > self.high - self.low else LIMIT_IMAGES


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
    _check_pairs(variant, baseline)
    n = variant[0].n_images
    counts = image_counts(resample_indices(n, n_resamples, seed), n)
    maps = [(resampled_map(v, counts), resampled_map(b, counts)) for v, b in zip(variant, baseline, strict=True)]
    return _pooled(maps)


def _check_pairs(variant: Sequence[Any], baseline: Sequence[Any]) -> None:
    """Raise ValueError unless the runs pair up and were all validated on the same images."""
    if not variant or len(variant) != len(baseline):
        raise ValueError(f"need paired runs; got {len(variant)} variant and {len(baseline)} baseline runs")
    ref = variant[0].image_sha256
    if any(len(s.image_sha256) != len(ref) or (s.image_sha256 != ref).any() for s in (*variant, *baseline)):
        raise ValueError("paired runs were validated on different images")


def _pooled(pairs: Sequence[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]) -> dict:
    """Mean over seeds of the paired deltas on each resample, from each run's (mAP50, mAP50-95) per resample."""
    out = {"map50": 0.0, "map50_95": 0.0}
    for (v50, v95), (b50, b95) in pairs:
        out["map50"] = out["map50"] + (v50 - b50) / len(pairs)
        out["map50_95"] = out["map50_95"] + (v95 - b95) / len(pairs)
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
        method: `bootstrap` (one seed) or `bootstrap+t over seeds` (both intervals), for a footnote.
        intervals: metric (`map50_95`, `map50`) -> Interval (the image bootstrap's, and the seeds' with 2+ seeds).
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
        """Flat columns per metric.

        `<metric>_delta_ci_low` and `_ci_high` (images), `_seed_ci_low` and `_seed_ci_high` (seeds, None with one
        seed), `_limited_by` and `_significant` (under both).
        """
        out: dict[str, Any] = {}
        for m in METRICS:
            iv = self.intervals[m]
            out |= {
                f"{m}_delta_ci_low": iv.low,
                f"{m}_delta_ci_high": iv.high,
                f"{m}_delta_seed_ci_low": iv.seed_low,
                f"{m}_delta_seed_ci_high": iv.seed_high,
                f"{m}_delta_limited_by": iv.limited_by,
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
    sizes: bool = False,
) -> list[DeltaInterval]:
    """Intervals of every variant's ΔmAP50-95 and ΔmAP50 against its baseline.

    A variant is compared with the baseline (module None) of the same base model, or with `baseline` when named (a
    run with another box loss than CIoU: with its architecture trained with CIoU), trained on the same dataset
    with the same settings; runs are paired by seed, and only seeds that both have with
    stored per-image statistics (from the pass their records report) enter. Variants without such a pair, or whose
    runs were validated on different images, are left out.

    Args:
        records: run records (`yoloab.results.load_runs`); failed ones are ignored.
        results_dir: where their per-image statistics are stored.
        baseline: a variant name to compare every other variant with, instead of each base model's baseline.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.
        level: interval coverage.
        sizes: also the intervals of the AP by object size (`yoloab.size_ap.SIZE_METRICS`), on the same resamples,
            where every paired run's statistics hold it (about twice the mAP's cost, so only when a report shows it).
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "ok":
            groups[_group(r)].append(r)
    runs_cache = _RunCache(results_dir, n_resamples, seed, sizes)  # each run's resampled mAP once, baselines included
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
                v_rec, b_rec = seeds[s], by_variant[base_name][s]
                v, b = runs_cache.stats(v_rec), runs_cache.stats(b_rec)
                if v is not None and b is not None:
                    pairs.append((s, v_rec, v, b, b_rec))
            try:
                out.append(_intervals(name, base_name, first["dataset"], pairs, runs_cache, level))
            except ValueError:  # no pair, or the validation images changed between runs: no honest interval
                continue
    return out


@dataclass(frozen=True)
class _Summary:
    """What the intervals need of a run once its resampled mAP is known (its statistics can go)."""

    key: str
    image_sha256: np.ndarray
    map50: float
    map50_95: float

    @property
    def n_images(self) -> int:
        return len(self.image_sha256)


class _RunCache:
    """Each run's statistics read once and its mAP on the report's resamples computed once.

    A baseline is compared with every variant, so it would otherwise be recomputed per variant.
    """

    def __init__(self, results_dir: str | Path, n_resamples: int, seed: int, sizes: bool = False) -> None:
        self.results_dir, self.n_resamples, self.seed, self.sizes = results_dir, n_resamples, seed, sizes
        self._stats: dict[str, ValStats | _Summary | None] = {}
        self._maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._sizes: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
        self._counts: dict[int, np.ndarray] = {}

    def stats(self, record: dict[str, Any]) -> ValStats | _Summary | None:
        """The run's statistics (or their summary once its mAPs are computed); None without matching ones."""
        key = record["key"]
        if key not in self._stats:
            self._stats[key] = _stats(self.results_dir, record)
        return self._stats[key]

    def maps(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(mAP50, mAP50-95) of a run whose `stats` were found, on each resample of its image count."""
        if key not in self._maps:
            stats = self._stats[key]
            assert isinstance(stats, ValStats)
            n = stats.n_images
            if n not in self._counts:
                self._counts[n] = image_counts(resample_indices(n, self.n_resamples, self.seed), n)
            self._maps[key] = resampled_map(stats, self._counts[n])
            if self.sizes:  # before the statistics go
                full, samples = size_maps(stats), resampled_size_maps(stats, self._counts[n])
                self._sizes[key] = {m: (full[m], x) for m, x in samples.items() if full[m] is not None}
            self._stats[key] = _Summary(key, stats.image_sha256, stats.map50, stats.map50_95)
        return self._maps[key]

    def size_samples(self, key: str) -> dict[str, tuple[float, np.ndarray]]:
        """AP by object size of a run after `maps`: metric -> (full set, each resample); empty without `sizes`."""
        return self._sizes.get(key, {})


def _is_baseline_of(candidate: dict[str, Any], record: dict[str, Any]) -> bool:
    """The baseline (module None) of the same base; for a run with another box loss, its architecture's with CIoU."""
    if candidate.get("loss") not in (None, DEFAULT_LOSS):
        return False
    if record.get("loss") not in (None, DEFAULT_LOSS):
        return candidate.get("variant") == record.get("architecture")
    return candidate.get("module") is None and candidate.get("base") == record.get("base")


def _stats(results_dir: str | Path, record: dict[str, Any]) -> ValStats | None:
    """A run's statistics, only when they come from the validation pass its record reports."""
    stats = load_val_stats(results_dir, record["key"])
    if stats is None or (stats.map50, stats.map50_95) != (record.get("map50"), record.get("map50_95")):
        return None
    return stats


def _intervals(name: str, base: str, dataset: str, pairs: list, runs: _RunCache, level: float) -> DeltaInterval:
    """The intervals of one variant against its baseline from their paired seeds (seed, records, statistics)."""
    _check_pairs([p[2] for p in pairs], [p[3] for p in pairs])
    boot = _pooled([(runs.maps(v_rec["key"]), runs.maps(b_rec["key"])) for _, v_rec, _, _, b_rec in pairs])
    intervals, spread, dspread = {}, {}, {}
    for m in METRICS:
        deltas = [getattr(v, m) - getattr(b, m) for _, _, v, b, _ in pairs]
        intervals[m] = _interval(deltas, boot[m], level)
        if len(pairs) >= 2:
            spread[m] = float(np.std([getattr(v, m) for _, _, v, _, _ in pairs], ddof=1))
            dspread[m] = float(np.std(deltas, ddof=1))
        else:
            spread[m] = dspread[m] = None
    if runs.sizes:
        intervals |= _size_intervals(pairs, runs, level)
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


def _size_intervals(pairs: list, runs: _RunCache, level: float) -> dict[str, Interval]:
    """The intervals of the AP by object size (`yoloab.size_ap`) of the size classes every paired run has.

    Resamples without a label of the size class have no AP (COCOeval's -1) for either run of a pair (they were
    validated on the same images) and are left out of that class's percentiles.
    """
    out = {}
    per_pair = [(runs.size_samples(v["key"]), runs.size_samples(b["key"])) for _, v, _, _, b in pairs]
    for m in SIZE_METRICS:
        if not all(m in v and m in b for v, b in per_pair):
            continue
        boot = np.mean([v[m][1] - b[m][1] for v, b in per_pair], axis=0)
        boot = boot[np.isfinite(boot)]
        if not len(boot):
            continue
        out[m] = _interval([v[m][0] - b[m][0] for v, b in per_pair], boot, level)
    return out


def _interval(deltas: list[float], boot: np.ndarray, level: float) -> Interval:
    """The mean of the per-seed deltas, the bootstrap's percentile interval and, with 2+ seeds, the t-interval."""
    seed = t_interval(deltas, level) if len(deltas) >= 2 else (None, None)
    return Interval(float(np.mean(deltas)), *percentile_interval(boot, level), *seed)


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
