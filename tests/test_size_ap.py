"""AP by object size (issue 27): yoloab's small / medium / large mAP50-95 against pycocotools' COCOeval.

The reference is pycocotools itself, run in these tests (`COCOeval` with iouType 'bbox', its default parameters) on
the same predictions and labels: synthetic scenes of a few images with boxes from 3 to 200 px, and the predictions of
one real Ultralytics validation pass. One small case is also worked out by hand (`test_hand_worked_case`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yoloab import size_ap
from yoloab.results import ValStats, load_val_stats, store_run
from yoloab.significance import delta_intervals, image_counts, percentile_interval, resample_indices

AREAS = ("all", "small", "medium", "large")
COCO_STAT = {"all": 0, "small": 3, "medium": 4, "large": 5}  # COCOeval.stats: AP, AP50, AP75, APs, APm, APl, ...

# --------------------------------------------------------------------------------------------------------------------
# synthetic scenes and the pycocotools reference


def scene(seed: int, n_images: int = 6, n_cls: int = 3, skill: float = 0.12) -> list[tuple[np.ndarray, ...]]:
    """Images of (boxes xywh, scores, classes, label boxes xywh, label classes): jittered labels (some missed, some
    given another class) and false positives, sizes log-uniform from 3 to 200 px so that every COCO range is used."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        g = int(rng.integers(0, 8))
        side = np.exp(rng.uniform(np.log(4), np.log(200), g))
        gt = np.c_[rng.uniform(0, 300, (g, 2)), side * rng.uniform(0.7, 1.4, g), side]
        gc = rng.integers(0, n_cls, g)
        seen = rng.random(g) < 0.85
        dt = gt[seen] + rng.normal(0, skill, (seen.sum(), 4)) * np.c_[gt[seen][:, 2:], gt[seen][:, 2:]]
        dt[:, 2:] = np.abs(dt[:, 2:]) + 0.5
        dc = np.where(rng.random(seen.sum()) < 0.9, gc[seen], rng.integers(0, n_cls, seen.sum()))
        f = int(rng.integers(0, 10))
        fs = np.exp(rng.uniform(np.log(3), np.log(200), f))
        dt = np.r_[dt, np.c_[rng.uniform(0, 300, (f, 2)), fs, fs * rng.uniform(0.5, 2, f)]]
        dc = np.r_[dc, rng.integers(0, n_cls, f)]
        images.append((dt, rng.random(len(dt)), dc.astype(float), gt, gc.astype(float)))
    return images


def to_stats(images: list[tuple[np.ndarray, ...]]) -> ValStats:
    """Per-image statistics as a validation pass stores them, the size codes from `size_ap.match_image`."""
    n = len(images)
    preds, labels = [len(im[0]) for im in images], [len(im[3]) for im in images]
    return ValStats(
        tp=np.zeros((sum(preds), 10), bool),  # Ultralytics' own matching plays no part in the size classes
        conf=np.concatenate([im[1] for im in images]),
        pred_cls=np.concatenate([im[2] for im in images]),
        target_cls=np.concatenate([im[4] for im in images]),
        pred_image=np.repeat(np.arange(n), preds),
        target_image=np.repeat(np.arange(n), labels),
        images=np.array([f"{i}.png" for i in range(n)]),
        image_sha256=np.array([f"sha{i}" for i in range(n)]),
        in_train=np.zeros(n, bool),
        map50=0.0,
        map50_95=0.0,
        coco_match=np.concatenate([size_ap.match_image(*im) for im in images]),
        pred_area=np.concatenate([im[0][:, 2] * im[0][:, 3] for im in images]),
        target_area=np.concatenate([im[3][:, 2] * im[3][:, 3] for im in images]),
    )


def run_cocoeval(gt: dict, dets: list[dict]) -> np.ndarray:
    """pycocotools' 12 summary numbers (quietly: it prints)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def cocoeval(images: list[tuple[np.ndarray, ...]], n_cls: int = 3) -> np.ndarray:
    gt = {"images": [{"id": i + 1} for i in range(len(images))], "annotations": [], "categories": []}
    gt["categories"] = [{"id": c + 1} for c in range(n_cls)]
    dets = []
    for i, (dt, conf, dc, boxes, gc) in enumerate(images):
        for b, c in zip(boxes, gc, strict=True):
            ann = {"image_id": i + 1, "category_id": int(c) + 1, "bbox": b.tolist(), "area": float(b[2] * b[3])}
            gt["annotations"].append({**ann, "id": len(gt["annotations"]) + 1, "iscrowd": 0})
        dets += [
            {"image_id": i + 1, "category_id": int(c) + 1, "bbox": b.tolist(), "score": float(s)}
            for b, s, c in zip(dt, conf, dc, strict=True)
        ]
    return run_cocoeval(gt, dets)


def expected(stats: np.ndarray, area: str) -> float | None:
    value = float(stats[COCO_STAT[area]])
    return None if value == -1 else value  # COCOeval's -1: no label of the range


def _ties_and_crowds(images: list[tuple[np.ndarray, ...]], seed: int) -> list[tuple[np.ndarray, ...]]:
    """Integer boxes (equal IoUs), scores in steps of 0.1 (ties within and across images) and 150 detections of one
    class in the first image (COCO keeps the best 100 per image and class)."""
    rng = np.random.default_rng(seed)
    out = [(np.round(dt), np.round(conf, 1), dc, np.round(gt), gc) for dt, conf, dc, gt, gc in images]
    dt, conf, dc, gt, gc = out[0]
    many = np.c_[rng.uniform(0, 300, (150, 2)), rng.uniform(5, 60, (150, 2))].round()
    out[0] = (np.r_[dt, many], np.r_[conf, np.round(rng.random(150), 1)], np.r_[dc, np.zeros(150)], gt, gc)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3], ids=lambda s: f"scene{s}")
@pytest.mark.parametrize("kind", ["continuous", "ties-and-101+-detections"])
def test_size_classes_equal_pycocotools(seed, kind):
    images = scene(seed)
    if kind != "continuous":
        images = _ties_and_crowds(images, seed)
    stats = to_stats(images)
    reference = cocoeval(images)
    for area in AREAS:
        mine, ref = size_ap.size_map(stats, area), expected(reference, area)
        assert (mine is None) == (ref is None), area
        if ref is not None:
            assert mine == pytest.approx(ref, abs=1e-12), area
    assert size_ap.size_maps(stats) == {f"map50_95_{a}": size_ap.size_map(stats, a) for a in size_ap.SIZE_CLASSES}


@pytest.mark.parametrize("seed", [10, 11, 12], ids=lambda s: f"resample{s}")
def test_resampled_sets_equal_pycocotools_on_copied_images(seed):
    """A bootstrap resample draws images with replacement: pycocotools on the images really copied (new ids) must
    give what `resampled_size_map` computes from the weights. Scores are continuous: with equal scores inside one
    image COCO would interleave the copies of the two detections, an order the weights do not model."""
    images = scene(seed, n_images=7)
    stats = to_stats(images)
    counts = np.random.default_rng(seed).multinomial(len(images), np.ones(len(images)) / len(images))[None, :]
    copied = [im for im, k in zip(images, counts[0], strict=True) for _ in range(k)]
    reference = cocoeval(copied)
    for area in AREAS:
        mine, ref = size_ap.resampled_size_map(stats, counts, area)[0], expected(reference, area)
        assert np.isnan(mine) if ref is None else mine == pytest.approx(ref, abs=1e-12), area


def test_hand_worked_case():
    """One image, one class. Labels: A 32x32 (area exactly 32², so small and medium, COCO's ranges being closed) and
    B 100x100 (large). Detections by score: d4 120x120 far from both (0.99), d3 10x10 far (0.95), d1 = A shifted 4 px
    (IoU 28/36 = 0.778: a match at thresholds 0.50..0.75, six of ten) (0.9), d2 = B (0.8).

    small: d2 is matched to B, outside the range: ignored; d4 is unmatched and large: ignored; ranking d3 (FP), d1:
    at the six thresholds where d1 matches, precision 1/2 at recall 1 -> AP 0.5; else 0. mAP = 6/10 x 0.5 = 0.3.
    medium: d3 (100 px²) is ignored too, so d1 alone: 6/10 x 1 = 0.6. large: d4 (FP), d2 -> 0.5 at every threshold.
    all: two labels; at the six thresholds d4, d3 FP then d1, d2 TP: the envelope is 1/2 at recalls 1/2 and 1 -> 0.5;
    at the four others only d2 (precision 1/4 at recall 1/2): 51 of the 101 points -> 0.25 x 51 / 101.
    """
    boxes = np.array([[200, 200, 120, 120], [400, 400, 10, 10], [4, 0, 32, 32], [50, 50, 100, 100]], float)
    conf, cls = np.array([0.99, 0.95, 0.9, 0.8]), np.zeros(4)
    labels = np.array([[0, 0, 32, 32], [50, 50, 100, 100]], float)
    image = (boxes, conf, cls, labels, np.zeros(2))
    codes = size_ap.match_image(*image)
    fp, tp, ig = size_ap.FP, size_ap.TP, size_ap.IGNORED
    # at IoU 0.5, per range (all, small, medium, large), for d4, d3, d1, d2
    assert codes[:, :, 0].T.tolist() == [[fp, fp, tp, tp], [ig, fp, tp, ig], [ig, ig, tp, ig], [fp, ig, ig, tp]]
    assert codes[2, 1].tolist() == [tp] * 6 + [fp] * 4  # d1 in small: matched up to 0.75, then an FP of its size
    stats = to_stats([image])
    assert size_ap.size_map(stats, "small") == pytest.approx(0.3, abs=1e-15)
    assert size_ap.size_map(stats, "medium") == pytest.approx(0.6, abs=1e-15)
    assert size_ap.size_map(stats, "large") == pytest.approx(0.5, abs=1e-15)
    assert size_ap.size_map(stats, "all") == pytest.approx((6 * 0.5 + 4 * 0.25 * 51 / 101) / 10, abs=1e-15)
    reference = cocoeval([image], n_cls=1)
    assert [size_ap.size_map(stats, a) for a in AREAS] == pytest.approx([expected(reference, a) for a in AREAS])
    assert size_ap.size_counts(stats.target_area) == {"small": 1, "medium": 0, "large": 1}  # 32² counted once


def test_recall_points_compare_as_cocoeval_does():
    """The lookup table of recall points reached gives COCO's own float comparison for every count up to 400."""
    n = np.arange(1, 401, dtype=float)
    found = np.arange(401)[:, None].repeat(len(n), 1)
    found = np.minimum(found, n[None, :]).astype(np.int64)
    direct = np.searchsorted(size_ap.RECALL_POINTS, (found / n).ravel(), side="right").reshape(found.shape)
    assert (size_ap._points_reached(found, n) == direct).all()
    assert size_ap._points_reached(np.array([[7]]), np.array([100.0])).item() == 8  # 0.00 .. 0.07: recall 7/100


# --------------------------------------------------------------------------------------------------------------------
# storage: the new arrays are optional, statistics of older runs still load


def test_statistics_round_trip_and_older_files_load_without_sizes(tmp_path):
    stats = to_stats(scene(4))
    path = stats.save(tmp_path / "new.npz")
    back = ValStats.load(path)
    for key in ("coco_match", "pred_area", "target_area", "tp", "conf"):
        assert np.array_equal(getattr(back, key), getattr(stats, key)), key
    assert size_ap.size_maps(back) == size_ap.size_maps(stats)

    old = ValStats(**{**stats.__dict__, "coco_match": None, "pred_area": None, "target_area": None})
    old.save(tmp_path / "old.npz")
    with np.load(tmp_path / "old.npz") as z:
        assert not {"coco_match", "pred_area", "target_area"} & set(z.files)  # what yoloab before issue 27 wrote
    loaded = ValStats.load(tmp_path / "old.npz")
    assert loaded.coco_match is None and not size_ap.has_sizes(loaded)
    assert size_ap.size_maps(loaded) == {"map50_95_small": None, "map50_95_medium": None, "map50_95_large": None}
    assert size_ap.resampled_size_maps(loaded, np.ones((2, loaded.n_images), int)) == {}


def test_size_arrays_that_do_not_fit_are_damaged(tmp_path):
    stats = to_stats(scene(5))
    bad = ValStats(**{**stats.__dict__, "target_area": stats.target_area[:-1]})
    bad.save(tmp_path / "runs" / "k.npz")
    with pytest.warns(UserWarning, match="per-image statistics"):
        assert load_val_stats(tmp_path, "k") is None  # moved aside, like any other damaged statistics


# --------------------------------------------------------------------------------------------------------------------
# one real Ultralytics validation pass


@pytest.fixture(scope="module")
def oracle_validation(tmp_path_factory):
    """Validate a yolov8n whose detections come from the labels (jittered), so that the mAP is far from 0.

    The model runs, but the validator's NMS output is replaced by jittered label boxes (on a 1/8 px grid of the
    64 px letterbox, so 1/2 px in the 256 px originals: Ultralytics' JSON keeps them exactly) with distinct scores
    k/1000, plus false positives; everything after that (Ultralytics' matching and mAP, its COCO JSON export, the
    capture) is the real code. The first pass runs without yoloab's capture, the second with it.
    """
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionValidator

    from yoloab._ultralytics import capture_val_stats, install
    from yoloab.datasets import make_shapes_dataset

    install()
    root = tmp_path_factory.mktemp("sizes")
    data = make_shapes_dataset(root / "shapes", n_train=1, n_val=4, imgsz=256, max_objects=6, seed=3)
    keep = DetectionValidator.preprocess

    def preprocess(self, batch):
        self._oracle_batch = keep(self, batch)
        return self._oracle_batch

    def postprocess(self, preds):
        batch, size = self._oracle_batch, self._oracle_batch["img"].shape[-1]
        out = []
        for si, name in enumerate(batch["im_file"]):
            rng = np.random.default_rng(zlib.crc32(Path(name).name.encode()))
            own = (batch["batch_idx"] == si).cpu().numpy()
            xywh = batch["bboxes"][own].cpu().numpy().astype(np.float64) * size
            cls = batch["cls"][own].cpu().numpy().reshape(-1)
            xywh = xywh + rng.normal(0, 0.08, xywh.shape) * np.c_[xywh[:, 2:], xywh[:, 2:]]
            fp = np.c_[rng.uniform(5, size - 5, (3, 2)), rng.uniform(1, size / 2, (3, 2))]
            xywh = np.r_[xywh, fp]
            cls = np.r_[np.where(rng.random(len(cls)) < 0.9, cls, (cls + 1) % 3), rng.integers(0, 3, 3)]
            xyxy = np.round(np.c_[xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2] * 8) / 8
            conf = rng.choice(np.arange(1, 1000), len(xyxy), replace=False) / 1000 + si  # distinct in the pass
            out.append({
                "bboxes": torch.tensor(xyxy, dtype=torch.float32),
                "conf": torch.tensor(conf / 4, dtype=torch.float32),
                "cls": torch.tensor(cls, dtype=torch.float32),
                "extra": torch.zeros(len(xyxy), 0),
            })  # fmt: skip
        return out

    exported = {}

    def keep_export(validator):
        exported.update(gdict=validator.gdict, jdict=list(validator.jdict), counts=list(validator.pred_counts))

    args = {"data": str(data), "imgsz": 64, "batch": 4, "workers": 0, "plots": False, "verbose": False}
    args |= {"project": str(root / "val"), "exist_ok": True}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DetectionValidator, "preprocess", preprocess)
        mp.setattr(DetectionValidator, "postprocess", postprocess)
        model = YOLO("yolov8n.yaml")
        plain = model.val(name="plain", **args)
        capture = capture_val_stats(model)
        model.add_callback("on_val_end", keep_export)
        captured = model.val(name="captured", save_json=True, **args)
    return data, plain.box, captured.box, capture.result, exported


def test_real_validation_stores_the_size_arrays_and_keeps_ultralytics_map(oracle_validation):
    data, plain, captured, result, _ = oracle_validation
    assert plain.map > 0.2  # the oracle's detections: a mAP far from 0, so that "unchanged" means something
    assert np.array_equal(plain.all_ap, captured.all_ap) and plain.map == captured.map  # the capture changed nothing
    assert result["map50_95"] == captured.map
    n_pred, n_label = int(result["pred_count"].sum()), int(result["target_count"].sum())
    assert result["coco_match"].shape == (n_pred, 4, 10) and result["coco_match"].dtype == np.uint8
    assert len(result["pred_area"]) == n_pred and len(result["target_area"]) == n_label
    # label areas in the pixels of the 256 px originals (validated at 64 px), read from the label files
    side = 256
    areas = [
        float(w) * side * float(h) * side
        for f in sorted((Path(data).parent / "labels" / "val").glob("*.txt"))
        for *_, w, h in (line.split() for line in f.read_text().splitlines())
    ]
    assert sorted(result["target_area"]) == pytest.approx(sorted(areas), rel=1e-5)
    counts = size_ap.size_counts(result["target_area"])
    assert counts["small"] and counts["medium"] and sum(counts.values()) == n_label


def test_real_validation_size_classes_equal_pycocotools_on_ultralytics_export(oracle_validation):
    """pycocotools on Ultralytics' own COCO JSON of that pass (`save_json`: its label export `gdict` and its
    predictions `jdict`, in original-image pixels) gives what yoloab computes from the stored statistics."""
    _, _, _, result, exported = oracle_validation
    gt = exported["gdict"]
    ids = iter(exported["jdict"])
    dets = [
        {**next(ids), "image_id": im["id"]}
        for im, k in zip(gt["images"], exported["counts"], strict=True)
        for _ in range(k)
    ]  # as eval_json pairs them
    reference = run_cocoeval(gt, dets)
    stats = ValStats.from_capture(result, [""] * len(result["im_files"]), [False] * len(result["im_files"]))
    values = {area: size_ap.size_map(stats, area) for area in AREAS}
    assert values["small"] and values["medium"]  # both classes hold labels and true positives here
    for area in AREAS:
        ref = expected(reference, area)
        assert (values[area] is None) == (ref is None), area
        if ref is not None:
            assert values[area] == pytest.approx(ref, abs=1e-9), area


def test_the_run_record_takes_the_size_classes_of_the_statistics_it_stores(oracle_validation, tmp_path):
    """`training._save_val_stats`: the record's `map50_95_small/medium/large` are those of the stored file."""
    from types import SimpleNamespace

    from yoloab.datasets import load_dataset
    from yoloab.training import _save_val_stats

    data, _, _, result, _ = oracle_validation
    spec = SimpleNamespace(run_dir=tmp_path, dataset=load_dataset(str(data)), label="oracle")
    out = {"map50": result["map50"], "map50_95": result["map50_95"]}
    _save_val_stats(spec, result, out)
    stored = ValStats.load(tmp_path / "val_stats.npz")
    assert {k: out[k] for k in size_ap.SIZE_METRICS} == size_ap.size_maps(stored)
    assert out["map50_95_small"] is not None and out["map50_95_medium"] is not None
    other = {"map50": result["map50"], "map50_95": 0.0}  # another pass than the recorded one: nothing stored
    _save_val_stats(spec, result, other)
    assert not (tmp_path / "val_stats.npz").exists() and "map50_95_small" not in other


# --------------------------------------------------------------------------------------------------------------------
# records, intervals and the report


def _store(results: Path, key: str, variant: str, seed: int, images: list, module: str | None) -> dict:
    """A finished run's record whose size values come from pycocotools, with its statistics beside it."""
    stats, reference = to_stats(images), cocoeval(images)
    record = {
        "kind": "run", "key": key, "variant": variant, "base": "yolov8n", "module": module, "seed": seed,
        "status": "ok",
        "dataset": "d", "dataset_id": "d-1", "epochs": 1, "imgsz": 64, "batch": 8, "train_args": {},
        "map50": stats.map50, "map50_95": stats.map50_95, "precision": 0.5, "recall": 0.5,
        **{f"map50_95_{a}": expected(reference, a) for a in size_ap.SIZE_CLASSES},
    }  # fmt: skip
    stats.save(results / "runs" / f"{key}.npz")
    store_run({**record, "run_dir": None}, results)
    return record


N_STORE_IMAGES = 20


@pytest.fixture(scope="module")
def size_store(tmp_path_factory):
    """A baseline and a variant (two seeds each) on the same images; the variant's boxes are tighter."""
    results = tmp_path_factory.mktemp("size-store")
    records, images = [], {}
    for seed in (0, 1):
        for key, variant, module, skill in (("b", "yolov8n", None, 0.14), ("v", "yolov8n-ADown", "ADown", 0.07)):
            # the same scene seed for both: the same labels, other detections
            images[f"{key}{seed}"] = scene(100 + seed, n_images=N_STORE_IMAGES, skill=skill)
            records.append(_store(results, f"{key}{seed}", variant, seed, images[f"{key}{seed}"], module))
    return results, records, images


def test_size_intervals_equal_percentiles_of_pycocotools_on_resampled_images(size_store):
    """The bootstrap of each size class: 12 resamples, each scored by pycocotools on the images really copied."""
    results, records, images = size_store
    n_resamples = 12
    (iv,) = delta_intervals(records, results, n_resamples=n_resamples, sizes=True)
    assert set(iv.intervals) == {"map50_95", "map50", "map50_95_small", "map50_95_medium", "map50_95_large"}
    assert set(delta_intervals(records, results, n_resamples=5)[0].intervals) == {"map50_95", "map50"}
    deltas = {a: [] for a in size_ap.SIZE_CLASSES}  # per resample: mean over seeds of variant - baseline
    for row in image_counts(resample_indices(N_STORE_IMAGES, n_resamples, 0), N_STORE_IMAGES):
        per_seed = {a: [] for a in size_ap.SIZE_CLASSES}
        for seed in (0, 1):
            v, b = (cocoeval([im for im, k in zip(images[f"{r}{seed}"], row, strict=True) for _ in range(k)])
                    for r in ("v", "b"))  # fmt: skip
            for a in size_ap.SIZE_CLASSES:
                missing = expected(v, a) is None or expected(b, a) is None  # no label of the size drawn
                per_seed[a].append(np.nan if missing else expected(v, a) - expected(b, a))
        for a in size_ap.SIZE_CLASSES:
            deltas[a].append(np.mean(per_seed[a]))
    for a in size_ap.SIZE_CLASSES:
        m, d = f"map50_95_{a}", np.array(deltas[a])
        got = iv.intervals[m]
        assert (got.low, got.high) == pytest.approx(percentile_interval(d[np.isfinite(d)]), abs=1e-12), m
        by_record = [r[m] for r in records]  # b0, v0, b1, v1
        assert got.delta == pytest.approx(np.mean(by_record[1::2]) - np.mean(by_record[0::2]), abs=1e-12)
        assert got.seed_low is not None and got.seed_high is not None  # two seeds: the t-interval beside it


@pytest.mark.parametrize("fmt", ["md", "csv", "latex", "html", "terminal"])
def test_report_columns_with_delta_and_interval_in_every_format(size_store, fmt):
    from yoloab.report import load_report, render_report, rich_report

    results, records, _ = size_store
    columns = ["map50_95", "map50_95_small", "map50_95_medium", "map50_95_large"]
    report = load_report(results, columns=columns)
    default = load_report(results)
    assert not any(m.key.startswith("map50_95_") for t in default.tables for m in t.metrics)  # asked for only
    assert set(default.optional) >= {"map50_95_small", "map50_95_medium", "map50_95_large"}
    base = {a: np.mean([r[f"map50_95_{a}"] for r in records if r["module"] is None]) for a in size_ap.SIZE_CLASSES}
    var = {a: np.mean([r[f"map50_95_{a}"] for r in records if r["module"]]) for a in size_ap.SIZE_CLASSES}
    (table,) = report.tables
    row = next(r for r in table.rows if r.variant == "yolov8n-ADown")
    for a in size_ap.SIZE_CLASSES:
        delta = row.deltas[f"map50_95_{a}"]
        assert delta.abs == pytest.approx(var[a] - base[a]) and delta.low is not None and delta.high is not None
    assert any("COCO's AP by object size" in note for note in table.footnotes)
    if fmt == "terminal":
        console_text = io.StringIO()
        from rich.console import Console

        console = Console(file=console_text, width=400, color_system=None)
        for t in rich_report(report):
            console.print(t)
        text = console_text.getvalue()
        assert "small" in text and f"{var['small']:.3f}" in text
        return
    text = render_report(report, fmt, columns=columns) if fmt == "latex" else render_report(report, fmt)
    if fmt == "csv":
        line = next(r for r in csv.DictReader(io.StringIO(text)) if r["variant"] == "yolov8n-ADown")
        for a in size_ap.SIZE_CLASSES:
            assert float(line[f"map50_95_{a}_mean"]) == pytest.approx(var[a])
            assert float(line[f"d_map50_95_{a}"]) == pytest.approx(var[a] - base[a])
            low, high = float(line[f"map50_95_{a}_delta_ci_low"]), float(line[f"map50_95_{a}_delta_ci_high"])
            assert low == pytest.approx(row.deltas[f"map50_95_{a}"].low) and low < high
        return
    titles = {"md": "mAP50-95 small", "html": "mAP50-95 small", "latex": "AP$_S$"}
    assert titles[fmt] in text and "AP$_L$" in text if fmt == "latex" else titles[fmt] in text
    assert f"{var['small']:.3f}" in text and f"{var['medium']:.3f}" in text
    assert f"{var['small'] - base['small']:+.3f}" in text  # the Δ beside it


def test_report_of_runs_without_size_statistics_shows_dashes(tmp_path, size_store):
    """Runs stored before issue 27: no size arrays in the statistics, no size keys in the records."""
    from yoloab.report import load_report, render_report

    _, records, images = size_store
    for record in records:
        stats = to_stats(images[record["key"]])
        old = ValStats(**{**stats.__dict__, "coco_match": None, "pred_area": None, "target_area": None})
        old.save(tmp_path / "runs" / f"{record['key']}.npz")
        store_run({k: v for k, v in record.items() if not k.startswith("map50_95_")} | {"run_dir": None}, tmp_path)
    report = load_report(tmp_path, columns=["map50_95", "map50_95_small"])
    row = next(r for r in report.tables[0].rows if r.variant == "yolov8n-ADown")
    assert row.values["map50_95_small"].mean is None and row.deltas.get("map50_95_small") is None
    assert row.deltas["map50_95"].low is not None  # the overall mAP keeps its interval
    line = next(x for x in render_report(report, "md").splitlines() if x.startswith("| yolov8n-ADown |"))
    assert line.rstrip(" |").endswith("| - | -")  # the size column and its Δ: no value
