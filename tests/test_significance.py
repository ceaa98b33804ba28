"""Per-image validation statistics and the paired bootstrap, against Ultralytics' own `ap_per_class`."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ultralytics.utils.metrics import ap_per_class

import yoloab.significance as significance
from yoloab.results import ValStats, load_val_stats, store_run
from yoloab.significance import (
    LIMIT_IMAGES,
    LIMIT_SEEDS,
    METHOD_BOOTSTRAP,
    METHOD_SEEDS,
    delta_intervals,
    image_counts,
    paired_bootstrap,
    prepare_curves,
    resample_indices,
    resampled_map,
    t_quantile,
    warnings,
)

# --------------------------------------------------------------------------------------------------------------------
# the previous implementation (yoloab 0.1.0 before issue 23, `git show 1fc475d:yoloab/significance.py`), kept verbatim
# as the reference the fast one must equal on the same resample indices: it rebuilds every class-threshold curve from
# three points per true positive and interpolates it at the 101 grid points

AP_X = np.linspace(0, 1, 101)
TODAY_CHUNK = 1 << 22


def today_class_ap(weights: np.ndarray, tp: np.ndarray, n_l: np.ndarray) -> np.ndarray:
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
            out[:, t] = today_threshold_ap(weights[:, idx], before[:, idx], total, n_l)
    return out


def today_ratio(tpc: np.ndarray, fpc: np.ndarray) -> np.ndarray:
    """Precision; before any drawn prediction the curve is at Ultralytics' (recall 0, precision 1) sentinel."""
    denom = tpc + fpc
    return np.divide(tpc, denom, out=np.ones(denom.shape), where=denom > 0)


def today_threshold_ap(w: np.ndarray, before: np.ndarray, total: np.ndarray, n_l: np.ndarray) -> np.ndarray:
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
    prec[:, 0 : 2 * n : 2] = today_ratio(tp_before, fp)
    prec[:, 1 : 2 * n : 2] = today_ratio(tp_after, fp)
    prec[:, -1] = today_ratio(tp_total, total - tp_total)
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
    top = np.clip(np.floor(AP_X[None] * nl).astype(np.int64), 0, n_l[:, None])
    for _ in range(2):
        top = top + ((top < n_l[:, None]) & ((top + 1) / nl <= AP_X[None]))
        top = top - ((top > 0) & (top / nl > AP_X[None]))
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
        y = np.where((rec_j == AP_X) | (j == m - 1), y_j, slope * (AP_X - rec_j) + y_j)
    return np.trapezoid(y, AP_X, axis=1)


def today_resampled_map(stats: ValStats, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        step = max(1, TODAY_CHUNK // int(sel.sum()))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            ap_sum[r] += today_class_ap(counts[np.ix_(r, pred_image[sel])], tp[sel], n_l[r])
    with np.errstate(invalid="ignore", divide="ignore"):
        map50 = np.where(n_cls > 0, ap_sum[:, 0] / n_cls, 0.0)
        map50_95 = np.where(n_cls > 0, ap_sum.sum(1) / (n_cls * n_thr), 0.0)
    return map50, map50_95


def synthetic(n_images: int, seed: int, skill: float = 0.6, nc: int = 3, fp_per_image: int = 6) -> ValStats:
    """Validation statistics a detector could produce: each label found with probability `skill` (matching up to a
    random IoU threshold, never more than once per label), plus false positives; continuous confidences."""
    rng = np.random.default_rng(seed)
    tp, conf, pcls, tcls, pimg, timg = [], [], [], [], [], []
    for i in range(n_images):
        labels = rng.integers(0, nc, rng.integers(1, 7))
        tcls += list(labels)
        timg += [i] * len(labels)
        for c in labels:
            if rng.random() < skill:
                row = np.zeros(10, bool)
                row[: rng.integers(0, 11)] = True  # matched up to some IoU threshold (monotone, as IoU is)
                tp.append(row)
                conf.append(rng.uniform(0.3, 1.0))
                pcls.append(c)
                pimg.append(i)
        for _ in range(rng.integers(0, fp_per_image + 1)):
            tp.append(np.zeros(10, bool))
            conf.append(rng.uniform(0.0, 0.8))
            pcls.append(rng.integers(0, nc))
            pimg.append(i)
    stats = ValStats(
        tp=np.array(tp, bool).reshape(-1, 10),
        conf=np.array(conf, np.float32),
        pred_cls=np.array(pcls, float),
        target_cls=np.array(tcls, float),
        pred_image=np.array(pimg, int),
        target_image=np.array(timg, int),
        images=np.array([f"im{i}.png" for i in range(n_images)]),
        image_sha256=np.array([f"h{i}" for i in range(n_images)]),
        in_train=np.zeros(n_images, bool),
        map50=0.0,
        map50_95=0.0,
    )
    m50, m95 = reference_map(stats, np.arange(n_images))
    return ValStats(**{**stats.__dict__, "map50": m50, "map50_95": m95})


def reference_map(stats: ValStats, indices: np.ndarray) -> tuple[float, float]:
    """Slow reference: concatenate the drawn images' statistics (repeats included) and call `ap_per_class`."""
    take_p = np.concatenate([np.flatnonzero(stats.pred_image == i) for i in indices])
    take_t = np.concatenate([np.flatnonzero(stats.target_image == i) for i in indices])
    ap = ap_per_class(stats.tp[take_p], stats.conf[take_p], stats.pred_cls[take_p], stats.target_cls[take_t])[5]
    return (float(ap[:, 0].mean()), float(ap.mean())) if len(ap) else (0.0, 0.0)


@pytest.mark.parametrize("n_images,seed", [(12, 0), (40, 1), (5, 2)], ids=["12-images", "40-images", "5-images"])
def test_fast_bootstrap_equals_ap_per_class_on_the_same_resamples(n_images, seed):
    stats = synthetic(n_images, seed)
    idx = resample_indices(n_images, 12, seed=seed)
    fast50, fast95 = resampled_map(stats, image_counts(idx, n_images))
    for b in range(len(idx)):
        ref50, ref95 = reference_map(stats, idx[b])
        assert fast50[b] == pytest.approx(ref50, abs=1e-9)
        assert fast95[b] == pytest.approx(ref95, abs=1e-9)
    assert len(set(np.round(fast95, 9))) > 3  # the resamples really differ


def test_full_set_equals_ap_per_class():
    stats = synthetic(30, 7)
    m50, m95 = resampled_map(stats, np.ones((1, 30), int))
    assert (m50[0], m95[0]) == pytest.approx((stats.map50, stats.map50_95), abs=1e-12)
    assert 0.1 < stats.map50_95 < 0.9


def test_class_missing_from_a_resample_and_class_never_predicted():
    # image 0 holds the only label of class 2, and class 1 is never predicted: both edge cases of ap_per_class
    stats = synthetic(6, 3, nc=2)
    extra = ValStats(
        **{
            **stats.__dict__,
            "target_cls": np.concatenate([[2.0], stats.target_cls]),
            "target_image": np.concatenate([[0], stats.target_image]),
            "tp": stats.tp[stats.pred_cls != 1],
            "conf": stats.conf[stats.pred_cls != 1],
            "pred_image": stats.pred_image[stats.pred_cls != 1],
            "pred_cls": stats.pred_cls[stats.pred_cls != 1],
        }
    )
    idx = np.array([[1, 2, 3, 4, 5, 5], [0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]])
    fast50, fast95 = resampled_map(extra, image_counts(idx, 6))
    for b in range(3):
        assert (fast50[b], fast95[b]) == pytest.approx(reference_map(extra, idx[b]), abs=1e-9)


def test_identical_copy_gives_exactly_zero_interval():
    stats = synthetic(60, 4)
    copy = ValStats(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in stats.__dict__.items()})
    boot = paired_bootstrap([copy], [stats], n_resamples=200, seed=0)
    for m in ("map50", "map50_95"):
        assert np.percentile(boot[m], [2.5, 97.5]).tolist() == [0.0, 0.0]


def test_known_large_difference_excludes_zero():
    strong, weak = synthetic(150, 5, skill=0.9), synthetic(150, 5, skill=0.3)
    boot = paired_bootstrap([strong], [weak], n_resamples=300, seed=1)
    lo, hi = np.percentile(boot["map50_95"], [2.5, 97.5])
    assert 0 < lo < strong.map50_95 - weak.map50_95 < hi


def test_resampling_is_seeded_and_paired_runs_must_share_images():
    stats = synthetic(20, 0)
    assert (resample_indices(20, 5, 3) == resample_indices(20, 5, 3)).all()
    assert (image_counts(resample_indices(20, 5, 3), 20).sum(1) == 20).all()
    other = ValStats(**{**stats.__dict__, "image_sha256": np.array([f"x{i}" for i in range(20)])})
    with pytest.raises(ValueError, match="different images"):
        paired_bootstrap([stats], [other])


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423)])
def test_t_quantile_matches_published_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


# --------------------------------------------------------------------------------------------------------------------
# per-variant intervals and warnings from stored records


def _store(results, key, variant, seed, stats, module="ADown", **extra):
    record = {
        "key": key, "variant": variant, "base": "yolov8n", "module": module, "seed": seed, "status": "ok",
        "dataset": "d", "dataset_id": "d-1", "epochs": 1, "imgsz": 64, "batch": 8, "train_args": {},
        "map50": stats.map50, "map50_95": stats.map50_95, "precision": 0.5, "recall": 0.5, **extra,
    }  # fmt: skip
    stats.save(results / "runs" / f"{key}.npz")
    store_run({**record, "run_dir": None}, results)  # no run dir: store_run must not drop what is already there
    return record


def test_delta_intervals_one_seed(tmp_path):
    base = [synthetic(120, 20, skill=0.4)]
    var = [ValStats(**{**base[0].__dict__, **_improved(base[0])})]
    recs = [
        _store(tmp_path, "b0", "yolov8n", 0, base[0], module=None),
        _store(tmp_path, "v0", "yolov8n-ADown", 0, var[0]),
    ]
    one = delta_intervals(recs, tmp_path, n_resamples=200)
    assert len(one) == 1 and one[0].method == METHOD_BOOTSTRAP and one[0].baseline == "yolov8n"
    cols = one[0].columns
    ends = ("ci_low", "ci_high", "seed_ci_low", "seed_ci_high", "limited_by", "significant")
    assert set(cols) == {f"{m}_delta_{e}" for m in ("map50_95", "map50") for e in ends}
    assert cols["map50_95_delta_ci_low"] > 0 and cols["map50_95_delta_significant"] is True
    assert cols["map50_95_delta_seed_ci_low"] is None and cols["map50_95_delta_limited_by"] is None  # one seed
    boot = paired_bootstrap([var[0]], [base[0]], n_resamples=200)
    assert cols["map50_95_delta_ci_low"] == pytest.approx(np.percentile(boot["map50_95"], 2.5))


def _t_975_df2() -> float:
    """t(0.975) with 2 degrees of freedom in closed form: the df=2 CDF is 1/2 + t / (2 sqrt(2 + t^2)), so the
    p-quantile is (2p - 1) / sqrt(2 p (1 - p)) (4.302652729911275, the published table's 4.3027)."""
    p = 0.975
    return (2 * p - 1) / np.sqrt(2 * p * (1 - p))


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    """Three paired seeds of a baseline and a variant that ranks its detections better; their stored records."""
    results = tmp_path_factory.mktemp("three-seeds")
    base = [synthetic(120, 20 + s, skill=0.4) for s in range(3)]
    var = [ValStats(**{**b.__dict__, **_improved(b)}) for b in base]
    recs = [_store(results, f"b{s}", "yolov8n", s, base[s], module=None) for s in range(3)]
    recs += [_store(results, f"v{s}", "yolov8n-ADown", s, var[s]) for s in range(3)]
    (three,) = delta_intervals(recs, results, n_resamples=200)
    return base, var, three


@pytest.mark.parametrize("metric", ["map50_95", "map50"], ids=["map50_95", "map50"])
def test_multi_seed_gives_both_the_bootstrap_and_the_t_interval(three_seeds, metric):
    base, var, three = three_seeds
    assert three.method == METHOD_SEEDS and three.seeds == [0, 1, 2]
    deltas = np.array([getattr(v, metric) - getattr(b, metric) for v, b in zip(var, base, strict=True)])
    # the t-interval over the three per-seed deltas, from the definition (mean +- t * s / sqrt(n))
    half = _t_975_df2() * deltas.std(ddof=1) / np.sqrt(3)
    t_low, t_high = deltas.mean() - half, deltas.mean() + half
    # the pooled paired bootstrap's central 95% (the bootstrap itself is checked against ap_per_class above)
    boot_low, boot_high = np.percentile(paired_bootstrap(var, base, n_resamples=200)[metric], [2.5, 97.5])
    iv = three.intervals[metric]
    assert iv.delta == pytest.approx(deltas.mean(), abs=1e-12)
    assert (iv.low, iv.high) == pytest.approx((boot_low, boot_high), abs=1e-9)
    assert (iv.seed_low, iv.seed_high) == pytest.approx((t_low, t_high), abs=1e-9)
    # on these runs the seed noise is the wider one on both sides: it limits the claim
    assert t_low < boot_low and t_high > boot_high and iv.limited_by == LIMIT_SEEDS
    assert iv.seed_low < iv.delta < iv.seed_high
    assert three.delta_spread[metric] == pytest.approx(deltas.std(ddof=1), abs=1e-12)


def _improved(stats: ValStats) -> dict:
    """The same detections with every false positive's confidence lowered: a strictly better ranking."""
    conf = np.where(stats.tp[:, 0], stats.conf, stats.conf * 0.2).astype(np.float32)
    m50, m95 = reference_map(ValStats(**{**stats.__dict__, "conf": conf}), np.arange(stats.n_images))
    return {"conf": conf, "map50": m50, "map50_95": m95}


def test_warnings_identical_seeds_train_overlap_and_few_images(tmp_path):
    s = synthetic(30, 0)
    s = ValStats(**{**s.__dict__, "in_train": np.arange(30) < 4})
    recs = [_store(tmp_path, f"k{seed}", "yolov8n-ADown", seed, s) for seed in (0, 1)]
    text = "\n".join(warnings(recs, tmp_path))
    assert "seeds 0, 1 give bit-identical metrics" in text
    assert "4 of 30 validation images are also in the training set" in text
    assert "only 30 validation images" in text
    assert load_val_stats(tmp_path, "k0").in_train.sum() == 4


@pytest.mark.benchmark
def test_benchmark_one_pair_128_images():
    # about 25 predictions per image at Ultralytics' conf=0.001 on a trained small model
    a, b = synthetic(128, 0, fp_per_image=40), synthetic(128, 1, fp_per_image=40)
    t0 = time.process_time()
    paired_bootstrap([a], [b], n_resamples=1000, seed=0)
    cpu = time.process_time() - t0
    print(f"\nbootstrap of one pair, 128 images, {len(a.conf)}+{len(b.conf)} predictions, 1000 resamples: {cpu:.2f} s")
    assert cpu < 2.0


def test_validation_images_found_in_the_training_set_by_content(tmp_path):
    import shutil

    from yoloab.datasets import file_sha256, in_training_set, load_dataset, make_shapes_dataset

    root = make_shapes_dataset(tmp_path / "d", n_train=3, n_val=2, imgsz=32, seed=0).parent
    val = sorted((root / "images" / "val").glob("*.png"))
    shutil.copyfile(val[1], root / "images" / "train" / "renamed-copy.png")  # same content, other name and folder
    data = load_dataset(str(root / "data.yaml"))
    hashes = [file_sha256(p) for p in val]
    assert in_training_set(data, hashes, val) == [False, True]
    # a list file as the training source, lines relative to the list's folder
    (root / "train.txt").write_text("images/train/00000.png\n")
    (root / "list.yaml").write_text(f"path: {root}\ntrain: train.txt\nval: images/val\nnames: [a, b, c]\n")
    assert in_training_set(load_dataset(str(root / "list.yaml")), hashes, val) == [False, False]


# --------------------------------------------------------------------------------------------------------------------
# issue 23: the fast bootstrap equals the previous implementation on the same resample indices


def _shuffled_depths(stats: ValStats, seed: int) -> ValStats:
    """The same statistics with some true-positive rows made non-prefix (e.g. a match at 0.75 but not at 0.5), which
    Ultralytics' matching never gives but the stored format allows: the fast path must handle any row."""
    rng = np.random.default_rng(seed)
    tp = stats.tp.copy()
    rows = np.flatnonzero(tp.any(1))
    pick = rows[rng.random(len(rows)) < 0.3]
    tp[pick] = tp[pick][:, rng.permutation(tp.shape[1])]
    m50, m95 = reference_map(ValStats(**{**stats.__dict__, "tp": tp}), np.arange(stats.n_images))
    return ValStats(**{**stats.__dict__, "tp": tp, "map50": m50, "map50_95": m95})


def _dense_hits(n_images: int, seed: int) -> ValStats:
    """Detector with many confident hits in a row (adjacent true positives, the case the fast path shortcuts)."""
    return synthetic(n_images, seed, skill=0.95, nc=2, fp_per_image=1)


CASES = {
    "5-images-3-classes": lambda: synthetic(5, 2),
    "40-images-1-class": lambda: synthetic(40, 1, nc=1),
    "60-images-7-classes": lambda: synthetic(60, 3, nc=7),
    "150-images-many-fp": lambda: synthetic(150, 4, fp_per_image=30),
    "non-prefix-rows": lambda: _shuffled_depths(synthetic(80, 5), 5),
    "adjacent-hits": lambda: _dense_hits(80, 6),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_fast_bootstrap_equals_the_previous_implementation(case):
    stats = CASES[case]()
    n = stats.n_images
    counts = image_counts(resample_indices(n, 60, seed=1), n)
    new50, new95 = resampled_map(stats, counts)
    old50, old95 = today_resampled_map(stats, counts)
    assert np.abs(new50 - old50).max() < 1e-9 and np.abs(new95 - old95).max() < 1e-9
    assert len(set(np.round(new95, 9))) > 5  # the resamples really differ


def test_fast_bootstrap_equals_ap_per_class_with_non_prefix_rows():
    stats = _shuffled_depths(synthetic(30, 8), 8)
    idx = resample_indices(30, 6, seed=2)
    fast50, fast95 = resampled_map(prepare_curves(stats), image_counts(idx, 30))
    for b in range(len(idx)):
        assert (fast50[b], fast95[b]) == pytest.approx(reference_map(stats, idx[b]), abs=1e-9)


def test_grid_points_below_a_recall_are_ceil_100_l_over_n_l():
    # the premise of the fast path: linspace(0, 1, 101) compares with L / n_l as the fractions i / 100 do
    x = np.linspace(0, 1, 101)
    for n_l in range(1, 3001):
        level = np.arange(n_l + 1)
        below = np.searchsorted(x, level / n_l, side="left")
        assert (below == np.ceil(100 * level / n_l)).all(), n_l


def test_more_hits_than_labels_is_refused():
    # one image with one label and two predictions matching it: no validation pass gives this (recall would be 2)
    one = {"images": np.array(["a.png"]), "image_sha256": np.array(["h"]), "in_train": np.zeros(1, bool)}
    stats = ValStats(
        tp=np.ones((2, 10), bool),
        conf=np.array([0.9, 0.8], np.float32),
        pred_cls=np.zeros(2),
        target_cls=np.zeros(1),
        pred_image=np.zeros(2, int),
        target_image=np.zeros(1, int),
        map50=0.0,
        map50_95=0.0,
        **one,
    )
    with pytest.raises(ValueError, match="more true positives of a class in an image than labels"):
        prepare_curves(stats)


def test_each_run_is_resampled_once_per_report(tmp_path, monkeypatch):
    base = [synthetic(50, 30 + s, skill=0.4) for s in range(2)]
    recs = [_store(tmp_path, f"b{s}", "yolov8n", s, base[s], module=None) for s in range(2)]
    for name in ("yolov8n-ADown", "yolov8n-SPD"):
        recs += [
            _store(tmp_path, f"{name}{s}", name, s, ValStats(**{**b.__dict__, **_improved(b)}))
            for s, b in enumerate(base)
        ]
    calls = []
    real = significance.resampled_map
    monkeypatch.setattr(significance, "resampled_map", lambda st, c: calls.append(st) or real(st, c))
    out = delta_intervals(recs, tmp_path, n_resamples=50)
    assert len(out) == 2 and len(calls) == 6  # 2 baseline + 4 variant runs, not 8 (the baseline once per report)


# --------------------------------------------------------------------------------------------------------------------
# issue 27: the seed interval beside the image bootstrap


def _worsened(stats: ValStats) -> dict:
    """The same detections with every false positive's confidence raised above the hits': a worse ranking."""
    conf = np.where(stats.tp[:, 0], stats.conf * 0.5, np.minimum(stats.conf + 0.5, 1.0)).astype(np.float32)
    m50, m95 = reference_map(ValStats(**{**stats.__dict__, "conf": conf}), np.arange(stats.n_images))
    return {"conf": conf, "map50": m50, "map50_95": m95}


@pytest.fixture(scope="module")
def seed_limited(tmp_path_factory):
    """Three seeds on 300 images: two improve every image a lot, one worsens it a little. Over images every seed's
    delta is steady (narrow bootstrap, mean clearly above 0); across seeds it swings (wide t-interval over 0)."""
    results = tmp_path_factory.mktemp("seed-limited")
    base = [synthetic(300, 40 + s, skill=0.5) for s in range(3)]
    var = [ValStats(**{**b.__dict__, **(_worsened(b) if s == 1 else _improved(b))}) for s, b in enumerate(base)]
    recs = [_store(results, f"b{s}", "yolov8n", s, base[s], module=None, kind="run") for s in range(3)]
    recs += [_store(results, f"v{s}", "yolov8n-ADown", s, var[s], kind="run") for s in range(3)]
    return results, recs, base, var


def test_wide_seed_spread_limits_the_claim_and_removes_the_mark(seed_limited):
    results, recs, base, var = seed_limited
    (iv,) = delta_intervals(recs, results)
    m = iv.intervals["map50_95"]
    deltas = np.array([v.map50_95 - b.map50_95 for v, b in zip(var, base, strict=True)])
    half = _t_975_df2() * deltas.std(ddof=1) / np.sqrt(3)
    boot_low, boot_high = np.percentile(paired_bootstrap(var, base)["map50_95"], [2.5, 97.5])
    assert (m.seed_low, m.seed_high) == pytest.approx((deltas.mean() - half, deltas.mean() + half), abs=1e-12)
    assert (m.low, m.high) == pytest.approx((boot_low, boot_high), abs=1e-12)
    assert 0 < boot_low and m.seed_low < 0 < m.seed_high  # the images alone would call it significant
    assert m.limited_by == LIMIT_SEEDS and m.significant is False
    assert iv.columns["map50_95_delta_limited_by"] == "seeds" and iv.columns["map50_95_delta_significant"] is False


def test_report_shows_both_intervals_and_names_the_wider(seed_limited):
    import csv
    import io

    from yoloab.report import load_report, report_csv, report_markdown

    results, _, base, var = seed_limited
    md = report_markdown(load_report(results))
    row = next(line for line in md.splitlines() if line.startswith("| yolov8n-ADown"))
    deltas = np.array([v.map50_95 - b.map50_95 for v, b in zip(var, base, strict=True)])
    half = _t_975_df2() * deltas.std(ddof=1) / np.sqrt(3)
    low, high = np.percentile(paired_bootstrap(var, base)["map50_95"], [2.5, 97.5])
    shown = (
        f"img [{low:+.3f}, {high:+.3f}] seeds [{deltas.mean() - half:+.3f}, {deltas.mean() + half:+.3f}] (seeds wider)"
    )
    cell = next(c.strip() for c in row.split("|") if shown in c)
    assert cell.endswith("(seeds wider)")  # no '*': the images alone would mark it, the seeds do not
    assert "seeds [..] the 95% t-interval over the per-seed Δ" in md
    csv_row = next(r for r in csv.DictReader(io.StringIO(report_csv(load_report(results)))) if r["module"] == "ADown")
    assert float(csv_row["map50_95_delta_seed_ci_low"]) == pytest.approx(deltas.mean() - half, abs=1e-12)
    assert float(csv_row["map50_95_delta_ci_low"]) == pytest.approx(low, abs=1e-12)
    assert (csv_row["map50_95_delta_limited_by"], csv_row["map50_95_delta_significant"]) == ("seeds", "False")
    assert "The wider one limits the claim (seeds wider for yolov8n-ADown (mAP50, mAP50-95)); * both exclude 0" in md


def test_images_limit_when_the_seeds_agree(three_seeds_agree):
    (iv,) = three_seeds_agree
    m = iv.intervals["map50_95"]
    assert m.limited_by == LIMIT_IMAGES and m.high - m.low > m.seed_high - m.seed_low
    assert m.significant is (min(m.low, m.seed_low) > 0 or max(m.high, m.seed_high) < 0)


@pytest.fixture(scope="module")
def three_seeds_agree(tmp_path_factory):
    """Three seeds whose deltas are nearly the same (the variant is the baseline's own better ranking, on 40 images):
    the seeds agree, the images vary."""
    results = tmp_path_factory.mktemp("seeds-agree")
    base = synthetic(40, 60, skill=0.5)
    var = ValStats(**{**base.__dict__, **_improved(base)})
    recs = []
    for s in range(3):
        jitter = {"map50_95": base.map50_95 + 1e-4 * s, "map50": base.map50 + 1e-4 * s}
        recs.append(_store(results, f"b{s}", "yolov8n", s, ValStats(**{**base.__dict__, **jitter}), module=None))
        recs.append(_store(results, f"v{s}", "yolov8n-ADown", s, var))
    return delta_intervals(recs, results, n_resamples=300)


def test_different_seed_sets_are_marked_and_the_missing_runs_named(tmp_path):
    from yoloab.report import load_report, report_markdown

    base = [synthetic(40, 70 + s) for s in range(3)]
    for s in range(3):
        _store(tmp_path, f"b{s}", "yolov8n", s, base[s], module=None, kind="run")
    for s in (0, 1):  # seed 2 of the variant never finished
        better = ValStats(**{**base[s].__dict__, **_improved(base[s])})
        _store(tmp_path, f"v{s}", "yolov8n-ADown", s, better, kind="run")
    _store(tmp_path, "c3", "yolov8n-C2f", 3, base[0], kind="run")  # a seed the baseline lacks, and none it has
    md = report_markdown(load_report(tmp_path))
    assert "| yolov8n-ADown | 2¶ |" in md and "| yolov8n | 3 |" in md and "| yolov8n-C2f | 1¶ |" in md
    assert "yolov8n-ADown: no finished yolov8n-ADown seed 2" in md
    assert "yolov8n-C2f: no finished yolov8n-C2f seed 0, 1, 2 nor yolov8n seed 3" in md
