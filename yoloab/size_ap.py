"""AP by object size: COCO's small / medium / large breakdown of mAP50-95, from per-image validation statistics.

Reference: Lin et al., "Microsoft COCO: Common Objects in Context" (ECCV 2014) and its evaluation code,
`pycocotools.cocoeval.COCOeval` (`evaluateImg`, `accumulate`, `summarize`), which this module transcribes for boxes:

- area ranges [0, 1e10], [0, 32²], [32², 96²], [96², 1e10] (`all`, `small`, `medium`, `large`), both ends included
  (an object of exactly 32² px is small and medium, as in COCO); areas are w x h of the boxes in the pixels of the
  original validation images (COCO uses a segmentation's area where there is one; YOLO labels have boxes only);
- per image and class: at most 100 detections, the highest-scoring (`maxDets[-1]`); labels outside the range are
  ignored; each detection in score order is matched greedily at each IoU threshold 0.50:0.05:0.95 to the unmatched
  label of highest IoU >= the threshold (a label inside the range before any ignored one; among equal IoUs the later
  label); a detection matched to an ignored label, or unmatched with its own area outside the range, is ignored;
- per class: detections of all images in score order (a stable sort; ties keep image order), the precision envelope,
  sampled at 101 recall points 0:0.01:1 (the envelope at the first detection whose recall reaches each point, 0 past
  the last); AP is the mean of the samples, mAP the mean over classes with labels in the range and over thresholds.

Quirks kept: both ends of a range are inclusive; ignored detections take no part in the ranking; the IoU is COCO's box
IoU (no +1 pixel) computed from (x, y, w, h) as its C code does. This sampling differs from Ultralytics' mAP, which
interpolates the envelope with `np.interp` and integrates with the trapezoid rule over the same 101 points, and which
matches predictions to labels of every size by IoU alone; so `map50_95`, Ultralytics' own value, is kept as it was,
and the size classes are COCO's definition exactly (the tests compare with pycocotools to 1e-12).

`match_image` does COCO's per-image matching once, at validation (`yoloab._ultralytics.ValStatsCapture`), and
stores per prediction one code per area range and threshold (`TP`, `FP`, `IGNORED`), per label its area; the AP of
any set of images (the full validation set, or a bootstrap resample with images drawn several times) follows from
those codes without re-validating (`size_map`, `resampled_size_map`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .results import ValStats

AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
"""COCO's area ranges in px² of the original images, in its order; both ends inclusive."""
RANGES = tuple(AREA_RANGES)
SIZE_CLASSES = ("small", "medium", "large")
SIZE_METRICS = {f"map50_95_{size}": size for size in SIZE_CLASSES}
"""Record key -> area range of the AP by object size."""
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCOeval's Params.iouThrs
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCOeval's Params.recThrs
MAX_DETS = 100  # COCOeval's maxDets[-1], per image and class, used by AP and its area breakdown
FP, TP, IGNORED = 0, 1, 2  # per prediction, area range and threshold (`ValStats.coco_match`)
_MAX_BLOCK = 1 << 24  # entries of one class's (predictions x resamples) weights held at once


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Corner boxes to COCO's (x, y, width, height), as Ultralytics' JSON export writes them."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def box_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) IoU of (x, y, w, h) boxes, with the arithmetic of COCO's `bbIou` (no crowd labels)."""
    dt, gt = dt[:, None, :], gt[None, :, :]
    w = np.minimum(dt[..., 2] + dt[..., 0], gt[..., 2] + gt[..., 0]) - np.maximum(dt[..., 0], gt[..., 0])
    h = np.minimum(dt[..., 3] + dt[..., 1], gt[..., 3] + gt[..., 1]) - np.maximum(dt[..., 1], gt[..., 1])
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (dt[..., 2] * dt[..., 3] + gt[..., 2] * gt[..., 3] - inter)
    return np.where((w > 0) & (h > 0), iou, 0.0)


def _outside(area: np.ndarray) -> np.ndarray:
    """(n, ranges) whether each area falls outside each range."""
    lo = np.array([r[0] for r in AREA_RANGES.values()])
    hi = np.array([r[1] for r in AREA_RANGES.values()])
    return (area[:, None] < lo) | (area[:, None] > hi)


def _last_best(score: np.ndarray) -> np.ndarray:
    """Per row, the last column holding the row's maximum (COCO keeps the later of equal IoUs); -1 where all < 0."""
    last = score.shape[1] - 1 - np.argmax(score[:, ::-1], axis=1)
    return np.where(score.max(axis=1) >= 0, last, -1)


def match_image(
    boxes: np.ndarray, conf: np.ndarray, cls: np.ndarray, gt_boxes: np.ndarray, gt_cls: np.ndarray
) -> np.ndarray:
    """COCO's per-image evaluation (`COCOeval.evaluateImg`) for every class, area range and IoU threshold.

    Args:
        boxes: (P, 4) predicted boxes (x, y, w, h) in original-image pixels.
        conf: (P,) their scores.
        cls: (P,) their classes.
        gt_boxes: (G, 4) label boxes (x, y, w, h) in the same pixels.
        gt_cls: (G,) label classes.

    Returns:
        (P, len(RANGES), 10) uint8: `TP` (matched to a label of the range), `FP` (unmatched, inside the range) or
        `IGNORED` (matched to a label outside the range, unmatched outside the range, or past the 100 best of its
        class in the image), in the order of the predictions given.
    """
    boxes, gt_boxes = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    conf, cls, gt_cls = np.asarray(conf).reshape(-1), np.asarray(cls).reshape(-1), np.asarray(gt_cls).reshape(-1)
    n_r, n_t = len(RANGES), len(IOU_THRESHOLDS)
    codes = np.full((len(boxes), n_r, n_t), IGNORED, np.uint8)
    outside = _outside(boxes[:, 2] * boxes[:, 3])
    gt_outside = _outside(gt_boxes[:, 2] * gt_boxes[:, 3])
    need = np.tile(np.minimum(IOU_THRESHOLDS, 1 - 1e-10), n_r)[:, None]  # (R*T, 1), range-major
    for c in np.unique(cls):
        rows = np.flatnonzero(cls == c)
        rows = rows[np.argsort(-conf[rows], kind="stable")][:MAX_DETS]
        g = np.flatnonzero(gt_cls == c)
        matched = np.zeros((len(rows), n_r * n_t), bool)
        on_ignored = np.zeros_like(matched)
        if len(g):
            iou = box_iou(boxes[rows], gt_boxes[g])
            ignored = np.repeat(gt_outside[g].T, n_t, axis=0)  # (R*T, G)
            taken = np.zeros_like(ignored)
            for d in np.flatnonzero(iou.max(axis=1) >= need.min()):  # the others match nothing at any threshold
                ok = ~taken & (iou[d] >= need)
                best = _last_best(np.where(ok & ~ignored, iou[d], -1.0))
                best = np.where(best >= 0, best, _last_best(np.where(ok & ignored, iou[d], -1.0)))
                hit = np.flatnonzero(best >= 0)
                taken[hit, best[hit]] = True
                matched[d, hit] = True
                on_ignored[d, hit] = ignored[hit, best[hit]]
        matched, on_ignored = matched.reshape(-1, n_r, n_t), on_ignored.reshape(-1, n_r, n_t)
        unmatched = np.where(outside[rows][:, :, None], IGNORED, FP)
        codes[rows] = np.where(matched, np.where(on_ignored, IGNORED, TP), unmatched)
    return codes


# --------------------------------------------------------------------------------------------------------------------
# AP from the stored codes, on the full set or on weighted (resampled) images


def has_sizes(stats: ValStats) -> bool:
    """Whether the statistics store what the AP by object size needs (runs validated before it was added do not)."""
    return stats.coco_match is not None and stats.target_area is not None


def _range_index(area: str) -> int:
    if area not in AREA_RANGES:
        raise ValueError(f"unknown area range {area!r}; expected one of {', '.join(RANGES)}")
    return RANGES.index(area)


def resampled_size_map(stats: ValStats, counts: np.ndarray, area: str) -> np.ndarray:
    """COCO's mAP50-95 over one area range on each set of images given by `counts`.

    An image drawn k times counts as k copies of its predictions and labels, adjacent in the score order as
    COCOeval ranks copies with equal scores (except two detections of one class with exactly the same score in one
    image, whose copies COCOeval would interleave). On such a ranking the envelope at every copy of a true positive
    equals the envelope at its last copy (the precision rises over the copies), so each recall point takes the
    envelope of the first true positive whose cumulative label count reaches it, and a class's AP is
    sum_k env_k * (points <= recall_k - points <= recall_(k-1)) / 101 over its true positives k.

    Args:
        stats: per-image statistics with the size codes (`has_sizes`).
        counts: (B, N) how often each validation image is taken; all ones is the full validation set.
        area: `all`, `small`, `medium` or `large`.

    Returns:
        (B,) mAP50-95; NaN where the set holds no label of the range (COCOeval's -1).
    """
    r = _range_index(area)
    lo, hi = AREA_RANGES[area]
    counts = np.asarray(counts, dtype=np.int64)
    b, n_t = counts.shape[0], len(IOU_THRESHOLDS)
    labelled = (stats.target_area >= lo) & (stats.target_area <= hi)
    classes = np.unique(stats.target_cls[labelled])
    hist = np.zeros((stats.n_images, len(classes)))
    np.add.at(hist, (stats.target_image[labelled], np.searchsorted(classes, stats.target_cls[labelled])), 1.0)
    n_labels = counts.astype(np.float64) @ hist  # (B, C) labels of each class in the range, per set
    order = np.argsort(-stats.conf, kind="stable")  # COCO's ranking: score, then image order, then given order
    codes = stats.coco_match[order, r, :]
    pred_cls, pred_image = stats.pred_cls[order], stats.pred_image[order]
    counts_t = np.ascontiguousarray(counts.T, dtype=np.uint16 if counts.max(initial=0) < 1 << 16 else np.int64)
    total = np.zeros(b)
    for ci, c in enumerate(classes):
        mine = np.flatnonzero(pred_cls == c)
        for t in range(n_t):
            kept = mine[codes[mine, t] != IGNORED]
            tp = np.flatnonzero(codes[kept, t] == TP)
            if len(tp):  # else AP 0 wherever the class has labels
                kept = kept[: tp[-1] + 1]  # detections after the last true positive change no sample
                total += _class_ap(counts_t, pred_image[kept], tp, n_labels[:, ci])
    with np.errstate(invalid="ignore", divide="ignore"):
        n_cls = (n_labels > 0).sum(axis=1)
        return np.where(n_cls > 0, total / (n_cls * n_t), np.nan)


def _class_ap(counts_t: np.ndarray, image: np.ndarray, tp: np.ndarray, n_labels: np.ndarray) -> np.ndarray:
    """One class's AP at one threshold on each set.

    Args:
        counts_t: (N, B) copies of each image in each set (a small unsigned type where the sums fit in it).
        image: image of each of the class's ranked detections, up to its last true positive.
        tp: positions of the true positives among them.
        n_labels: (B,) labels of the class in the range, per set.
    """
    starts = np.concatenate([[0], tp[:-1] + 1])  # segment k: the false positives before true positive k, and it
    longest = int(np.diff(np.append(starts, len(image))).max())
    if counts_t.dtype != np.int64 and longest * int(counts_t.max(initial=0)) >= np.iinfo(counts_t.dtype).max:
        counts_t = counts_t.astype(np.int64)  # a segment's copies would overflow the small type
    found = counts_t[image[tp]].cumsum(axis=0, dtype=np.int64)  # (U, B) labels found up to each true positive
    out = np.empty(counts_t.shape[1])
    step = max(1, _MAX_BLOCK // len(image))
    for s in range(0, len(out), step):  # bounded memory: (detections, sets in the block) copies at once
        seg = np.add.reduceat(counts_t[image, s : s + step], starts, axis=0)
        drawn = seg.cumsum(axis=0, dtype=np.int64)  # detections ranked up to each true positive, copies counted
        f = found[:, s : s + step]
        envelope = np.maximum.accumulate((f / np.maximum(drawn, 1))[::-1], axis=0)[::-1]
        points = _points_reached(f, n_labels[s : s + step])
        out[s : s + step] = (envelope * np.diff(points, axis=0, prepend=0)).sum(axis=0) / len(RECALL_POINTS)
    return out


def _points_reached(found: np.ndarray, n_labels: np.ndarray) -> np.ndarray:
    """(U, B) recall points at or below each recall found / n_labels, by COCO's own float comparisons.

    COCOeval compares `tp / npig` with its `recThrs` (`np.searchsorted(rc, recThrs, side='left')`); the same float
    division and comparison are done here, once per distinct (labels found, label count) pair when that is cheaper.
    """
    n = np.maximum(n_labels, 1.0)
    distinct, which = np.unique(n, return_inverse=True)
    top = int(found.max(initial=0)) + 1
    if len(distinct) * top >= found.size:
        return np.searchsorted(RECALL_POINTS, (found / n).ravel(), side="right").reshape(found.shape)
    table = np.searchsorted(RECALL_POINTS, np.arange(top) / distinct[:, None], side="right").astype(np.uint8)
    return table[which, found.astype(np.int64)]


def size_map(stats: ValStats, area: str) -> float | None:
    """COCO's mAP50-95 over one area range on the full validation set; None without labels of the range or codes."""
    if not has_sizes(stats):
        return None
    value = float(resampled_size_map(stats, np.ones((1, stats.n_images), np.int64), area)[0])
    return None if np.isnan(value) else value


def size_maps(stats: ValStats) -> dict[str, float | None]:
    """The record's `map50_95_small`, `_medium`, `_large` (None where not computable)."""
    return {key: size_map(stats, area) for key, area in SIZE_METRICS.items()}


def resampled_size_maps(stats: ValStats, counts: np.ndarray) -> dict[str, np.ndarray]:
    """`SIZE_METRICS` key -> (B,) mAP50-95 of that size class on each set (NaN: none of its labels drawn).

    Empty for statistics without the size codes.
    """
    if not has_sizes(stats):
        return {}
    return {key: resampled_size_map(stats, counts, area) for key, area in SIZE_METRICS.items()}


def size_counts(areas: np.ndarray) -> dict[str, int]:
    """How many of the given box areas (px² of the original images) fall in each size class (32² counts as small)."""
    areas = np.asarray(areas, dtype=np.float64)
    out, taken = {}, np.zeros(len(areas), bool)
    for size in SIZE_CLASSES:  # the ranges share their ends: count each box once, in the first that holds it
        lo, hi = AREA_RANGES[size]
        here = (areas >= lo) & (areas <= hi) & ~taken
        out[size], taken = int(here.sum()), taken | here
    return out


SIZE_NOTE = (
    "mAP50-95 small / medium / large: COCO's AP by object size (box area up to 32x32 px, 32x32 to 96x96 px, from "
    "96x96 px, in the pixels of the original validation images), as pycocotools' COCOeval computes it (101 recall "
    "points, at most 100 detections per image and class), from the per-image statistics stored at validation "
    "(yoloab.size_ap); '-' where the runs predate them or no validation object has that size. mAP50-95 is "
    "Ultralytics' own, over all sizes."
)
"""The report's footnote under a table that shows a size class."""
