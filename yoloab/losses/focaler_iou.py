"""Focaler-IoU: the IoU linearly remapped onto [d, u], added to a base IoU loss.

Paper: H. Zhang, S. Zhang, "Focaler-IoU: More Focused Intersection over Union Loss", arXiv:2401.10525, 2024,
eqs. 1-5.

    IoU_focaler = 0 if IoU < d;  (IoU - d)/(u - d) if d <= IoU <= u;  1 if IoU > u
    L_Focaler-X = L_X + IoU - IoU_focaler             (X: IoU, GIoU, DIoU, CIoU, EIoU, SIoU, MPDIoU, Shape-IoU)

d = 0, u = 0.95: the authors' code's defaults (the paper varies them per dataset: a lower interval focuses on easy
samples, a higher one on hard ones). Combinations offered: `Focaler-<X>` for each X above.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .boxes import geometry

PAPER = "Zhang and Zhang, Focaler-IoU: More Focused Intersection over Union Loss, arXiv:2401.10525 (2024)"
D, U = 0.0, 0.95


def focaler_iou(iou: torch.Tensor, d: float = D, u: float = U) -> torch.Tensor:
    """The IoU remapped: 0 below d, 1 above u, linear between."""
    return ((iou - d) / (u - d)).clamp(0, 1)


def focaler(base: Callable[..., torch.Tensor], d: float = D, u: float = U) -> Callable[..., torch.Tensor]:
    """`L_X + IoU - IoU_focaler` for a base loss `L_X`."""

    def loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
        iou = geometry(pred, target).iou
        return base(pred, target, ctx) + iou - focaler_iou(iou, d, u)

    return loss
