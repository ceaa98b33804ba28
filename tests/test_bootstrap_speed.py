"""Benchmarks of the paired bootstrap at COCO size (issue 23), against the previous implementation.

Deselected by default; run with `pytest -m benchmark tests/test_bootstrap_speed.py -s`. Each measurement runs in a
subprocess with one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1) and reports its process CPU time, so other processes on a
shared machine cost it wall time but not CPU time; the assertions compare ratios of runs made in the same minutes,
never absolute times. The figures go into docs/statistics.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from yoloab.results import ValStats

TESTS = Path(__file__).parent


def coco_like(
    n_images: int = 5000, nc: int = 80, preds_per_image: int = 100, seed: int = 1, label_seed: int = 0
) -> ValStats:
    """Per-image statistics shaped like a small detector's on COCO val2017, at Ultralytics' conf=0.001.

    Labels: Poisson(7.3) per image (COCO's mean), classes Zipf-distributed (the first, like `person`, about a fifth),
    the same for every model (`label_seed`). Each label is found by one prediction with probability 0.75, matching
    up to an IoU threshold drawn uniformly from the 10 (a prefix of thresholds, as Ultralytics' matching gives); its
    confidence is Beta(5, 2), or for a tenth of the hits log-uniform in [0.001, 0.3], so that, as at conf=0.001,
    hits reach down to the lowest confidences and nearly every false positive ranks above its class's last hit. The
    rest of the `preds_per_image` predictions are false positives (half of them of a class the image holds) with
    confidence 0.001 + 0.999 Beta(0.6, 4).
    """
    lr = np.random.default_rng(label_seed)
    n_lab = lr.poisson(7.3, n_images)
    p = 1.0 / np.arange(1, nc + 1)
    p /= p.sum()
    target_image = np.repeat(np.arange(n_images), n_lab)
    target_cls = lr.choice(nc, size=len(target_image), p=p)
    rng = np.random.default_rng(seed)
    found = rng.random(len(target_image)) < 0.75
    tp_img, tp_cls = target_image[found], target_cls[found]
    depth = rng.integers(1, 11, len(tp_img))
    n_fp = np.maximum(preds_per_image - np.bincount(tp_img, minlength=n_images), 0)
    fp_img = np.repeat(np.arange(n_images), n_fp)
    fp_cls = rng.choice(nc, size=len(fp_img), p=p)
    first = np.concatenate([[0], np.cumsum(n_lab)[:-1]])
    own = (rng.random(len(fp_img)) < 0.5) & (n_lab[fp_img] > 0)
    fp_cls[own] = target_cls[first[fp_img[own]] + rng.integers(0, n_lab[fp_img[own]])]
    low = rng.random(len(tp_img)) < 0.1
    tp_conf = np.where(low, np.exp(rng.uniform(np.log(0.001), np.log(0.3), len(tp_img))), rng.beta(5, 2, len(tp_img)))
    conf = np.concatenate([tp_conf, 0.001 + 0.999 * rng.beta(0.6, 4, len(fp_img))]).astype(np.float32)
    tp = np.concatenate([np.arange(10)[None] < depth[:, None], np.zeros((len(fp_img), 10), bool)])
    pred_image, pred_cls = np.concatenate([tp_img, fp_img]), np.concatenate([tp_cls, fp_cls])
    order = np.argsort(pred_image, kind="stable")  # Ultralytics' validation order: image by image
    return ValStats(
        tp=tp[order],
        conf=conf[order],
        pred_cls=pred_cls[order].astype(float),
        target_cls=target_cls.astype(float),
        pred_image=pred_image[order],
        target_image=target_image,
        images=np.array([f"im{i}.jpg" for i in range(n_images)]),
        image_sha256=np.array([f"h{i}" for i in range(n_images)]),
        in_train=np.zeros(n_images, bool),
        map50=0.0,
        map50_95=0.0,
    )


_MEASURE = """
import json, sys, time
sys.path.insert(0, {tests!r})
from test_bootstrap_speed import coco_like
from test_significance import today_resampled_map
from yoloab.significance import image_counts, prepare_curves, resample_indices, resampled_map

def fast(stats, counts):
    return resampled_map(prepare_curves(stats), counts)

n, nc, ppi, b = {n}, {nc}, {ppi}, {b}
base, var = coco_like(n, nc, ppi, seed=1), coco_like(n, nc, ppi, seed=2)
counts = image_counts(resample_indices(n, b, 0), n)
out = {{"predictions": int(len(base.conf)), "labels": int(len(base.target_cls)), "hits": int(base.tp.sum())}}
for name in {order!r}:
    impl = fast if name.startswith("fast") else today_resampled_map
    t0 = time.process_time()
    impl(base, counts)
    t1 = time.process_time()
    impl(var, counts)
    t2 = time.process_time()
    out[name] = {{"baseline": t1 - t0, "variant": t2 - t1, "pair": t2 - t0}}
print(json.dumps(out))
"""


def measure(n: int = 5000, nc: int = 80, ppi: int = 100, b: int = 1000, order: tuple = ("fast",)) -> dict:
    """CPU seconds of each named run (`fast...` or `today...`) of one pair, in a one-thread subprocess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = _MEASURE.format(tests=str(TESTS), n=n, nc=nc, ppi=ppi, b=b, order=list(order))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark
def test_benchmark_coco_pair_and_an_11x3_report_against_today():
    # interleaved: fast, today, fast in one process, so both see the same load
    got = measure(order=("fast-1", "today", "fast-2"))
    fast = min((got["fast-1"], got["fast-2"]), key=lambda r: r["pair"])
    today = got["today"]
    # a report of 11 variants x 3 seeds against a baseline of 3 seeds: today every pair recomputes both runs (33
    # pairs); now each run once (3 baseline + 33 variant runs)
    report_today = 33 * today["pair"]
    report_fast = 3 * fast["baseline"] + 33 * fast["variant"]
    print(
        f"\nCOCO-sized pair ({got['predictions']} predictions, {got['labels']} labels, {got['hits']} hits x IoUs, "
        f"1000 resamples), CPU s on one thread: today {today['pair']:.1f}, now {fast['pair']:.2f} "
        f"({today['pair'] / fast['pair']:.0f}x); 11x3 report: today {report_today / 60:.1f} min, "
        f"now {report_fast:.0f} s ({report_today / report_fast:.0f}x)"
    )
    assert today["pair"] / fast["pair"] > 10


@pytest.mark.benchmark
def test_benchmark_scaling_in_images_classes_and_resamples():
    rows = [(5000, 80, 1000), (2500, 80, 1000), (1000, 80, 1000), (5000, 20, 1000), (5000, 80, 250), (5000, 80, 2000)]
    print("\nimages | classes | resamples | predictions | pair CPU s (one thread)")
    pairs = {}
    for n, nc, b in rows:
        got = measure(n, nc, 100, b)
        pairs[(n, nc, b)] = got["fast"]["pair"]
        print(f"{n} | {nc} | {b} | {got['predictions']} | {got['fast']['pair']:.2f}")
    # linear in images and in resamples, within the noise of a shared machine
    assert pairs[(5000, 80, 1000)] > 2 * pairs[(1000, 80, 1000)]
    assert pairs[(5000, 80, 2000)] > 1.3 * pairs[(5000, 80, 250)]
