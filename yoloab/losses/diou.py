"""DIoU and CIoU losses: IoU with the centre distance, and (CIoU) the aspect ratio.

Paper: Z. Zheng, P. Wang, W. Liu, J. Li, R. Ye, D. Ren, "Distance-IoU Loss: Faster and Better Learning for Bounding
Box Regression", AAAI 2020 (arXiv:1911.08287), eq. 6 (DIoU) and eqs. 9-11 (CIoU).

    L_DIoU = 1 - IoU + ρ²(b, b_gt) / c²
    L_CIoU = L_DIoU + α v,   v = 4/π² (arctan(w_gt/h_gt) - arctan(w/h))²,   α = v / ((1 - IoU) + v)

ρ: distance of the centres; c: diagonal of the smallest enclosing box. α is a trade-off weight the paper does not
differentiate through (treated as a constant, as in its code and torchvision): computed without gradient here.

CIoU is Ultralytics' own box loss (`BboxLoss`, `bbox_iou(..., CIoU=True)`) and yoloab's baseline: a run with the
default loss trains with Ultralytics' untouched criterion, not with this function. This one is the catalog's CIoU,
used as the base of `Inner-CIoU`, `Focaler-CIoU`, `NWD-CIoU`, and equal to torchvision's `complete_box_iou_loss`.
Quirk kept from Ultralytics: `w / (h + eps)` in the arctan, so a zero-height box has a finite term.
"""

from __future__ import annotations

import math

import torch

from .boxes import EPS, geometry

PAPER = "Zheng et al., Distance-IoU Loss, AAAI 2020 (arXiv:1911.08287)"


def diou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - IoU + ρ²/c²` per box pair (xyxy)."""
    g = geometry(pred, target)
    return 1 - g.iou + g.rho2 / g.c2


def ciou_v(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CIoU's aspect-ratio term v and its weight α (without gradient), per box pair."""
    g = geometry(pred, target)
    v = (4 / math.pi**2) * (torch.atan(g.wg / (g.hg + EPS)) - torch.atan(g.w / (g.h + EPS))) ** 2
    with torch.no_grad():
        alpha = v / (1 - g.iou + v + EPS)
    return v, alpha


def ciou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - IoU + ρ²/c² + α v` per box pair (xyxy)."""
    v, alpha = ciou_v(pred, target)
    return diou_loss(pred, target) + alpha * v
