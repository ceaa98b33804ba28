"""NWD: the normalized Wasserstein distance of boxes seen as 2-D Gaussians, for tiny objects.

Paper: J. Wang, C. Xu, W. Yang, L. Yu, "A Normalized Gaussian Wasserstein Distance for Tiny Object Detection",
arXiv:2110.13389, 2021, eqs. 5-7; authors' mmdet code (`constant=12.8`).

    box (cx, cy, w, h) -> N(μ, Σ), μ = (cx, cy), Σ = diag(w²/4, h²/4)
    W₂² = ‖(cx, cy, w/2, h/2) - (cx_gt, cy_gt, w_gt/2, h_gt/2)‖²
    NWD = exp(-sqrt(W₂²) / C),   L_NWD = 1 - NWD

C = 12.8 pixels, the paper's value (the average absolute object size of AI-TOD): boxes must be in pixels, which
yoloab ensures. Mixed with IoU as the YOLO catalogs do it (not in the paper, which replaces IoU everywhere):
`NWD-CIoU` = 0.5 (1 - NWD) + 0.5 L_CIoU. Quirk kept from the authors' code: eps inside the square root, which also
keeps the gradient finite for identical boxes.
"""

from __future__ import annotations

import torch

from .boxes import EPS
from .diou import ciou_loss

PAPER = "Wang et al., A Normalized Gaussian Wasserstein Distance for Tiny Object Detection, arXiv:2110.13389 (2021)"
C = 12.8
IOU_RATIO = 0.5  # NWD-CIoU's weight of the CIoU term


def nwd(pred: torch.Tensor, target: torch.Tensor, c: float = C) -> torch.Tensor:
    """The normalized Wasserstein distance per box pair (xyxy, pixels)."""
    centre = ((pred[:, :2] + pred[:, 2:]) - (target[:, :2] + target[:, 2:])) / 2
    half = ((pred[:, 2:] - pred[:, :2]) - (target[:, 2:] - target[:, :2])) / 2
    w2 = (centre**2).sum(-1) + EPS + (half**2).sum(-1)
    return torch.exp(-torch.sqrt(w2) / c)


def nwd_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - NWD` per box pair (xyxy, pixels)."""
    return 1 - nwd(pred, target)


def nwd_ciou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`0.5 (1 - NWD) + 0.5 L_CIoU` per box pair (xyxy, pixels)."""
    return (1 - IOU_RATIO) * nwd_loss(pred, target) + IOU_RATIO * ciou_loss(pred, target)
