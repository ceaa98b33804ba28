"""alpha-IoU: the IoU loss and its penalties raised to a power α.

Paper: J. He, S. Erfani, X. Ma, J. Bailey, Y. Chi, X.-S. Hua, "Alpha-IoU: A Family of Power Intersection over Union
Losses for Bounding Box Regression", NeurIPS 2021 (arXiv:2110.13675), eqs. 3-5; authors' code
github.com/Jacobi93/Alpha-IoU.

    L_α-IoU  = 1 - IoU^α
    L_α-CIoU = 1 - IoU^α + ρ^{2α}(b, b_gt)/c^{2α} + (β v)^α

α = 3, the paper's recommended value; v and β are CIoU's aspect term and its weight (β without gradient).
"""

from __future__ import annotations

import torch

from .boxes import geometry
from .diou import ciou_v

PAPER = "He et al., Alpha-IoU: A Family of Power IoU Losses, NeurIPS 2021 (arXiv:2110.13675)"
ALPHA = 3.0


def alpha_iou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None, alpha: float = ALPHA) -> torch.Tensor:
    """`1 - IoU^α` per box pair (xyxy)."""
    return 1 - geometry(pred, target).iou ** alpha


def alpha_ciou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None, alpha: float = ALPHA) -> torch.Tensor:
    """`1 - IoU^α + ρ^{2α}/c^{2α} + (β v)^α` per box pair (xyxy)."""
    g = geometry(pred, target)
    v, beta = ciou_v(pred, target)
    return 1 - g.iou**alpha + (g.rho2 / g.c2) ** alpha + (beta * v) ** alpha
