"""Per-image validation statistics and the paired bootstrap, against Ultralytics' own `ap_per_class`."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ultralytics.utils.metrics import ap_per_class

from yoloab.results import ValStats, load_val_stats, store_run
from yoloab.significance import (
    METHOD_BOOTSTRAP,
    METHOD_SEEDS,
    delta_intervals,
    image_counts,
    paired_bootstrap,
    resample_indices,
    resampled_map,
    t_quantile,
    warnings,
)


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
    assert set(cols) == {f"{m}_delta_ci_{e}" for m in ("map50_95", "map50") for e in ("low", "high")} | {
        "map50_95_delta_significant",
        "map50_delta_significant",
    }
    assert cols["map50_95_delta_ci_low"] > 0 and cols["map50_95_delta_significant"] is True
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
def test_multi_seed_interval_is_the_hull_of_bootstrap_and_t_interval(three_seeds, metric):
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
    assert iv.low == pytest.approx(min(t_low, boot_low), abs=1e-9)
    assert iv.high == pytest.approx(max(t_high, boot_high), abs=1e-9)
    # on these runs the seed noise is the wider one on both sides, so both ends above come from the t-interval
    assert t_low < boot_low and t_high > boot_high
    assert iv.low < iv.delta < iv.high
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
