"""EIoU loss: DIoU plus separate width and height differences.

Paper: Y.-F. Zhang, W. Ren, Z. Zhang, Z. Jia, L. Wang, T. Tan, "Focal and Efficient IOU Loss for Accurate Bounding
Box Regression", Neurocomputing 506, 2022 (arXiv:2101.08158), eq. 11.

    L_EIoU = 1 - IoU + ρ²(b, b_gt)/c² + ρ²(w, w_gt)/C_w² + ρ²(h, h_gt)/C_h²

C_w, C_h: width and height of the smallest enclosing box, c² = C_w² + C_h². No constant. The paper's Focal-EIoU
(`IoU^γ L_EIoU`) is not offered. Quirk avoided: some copies (e.g. the Wise-IoU repository's `_EIoU`) divide the
centre offsets by C_w, C_h instead of the width and height differences; this follows the paper.
"""

from __future__ import annotations

import torch

from .boxes import EPS, geometry

PAPER = "Zhang et al., Focal and Efficient IOU Loss, Neurocomputing 2022 (arXiv:2101.08158)"


def eiou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - IoU + ρ²/c² + (w - w_gt)²/C_w² + (h - h_gt)²/C_h²` per box pair (xyxy)."""
    g = geometry(pred, target)
    return 1 - g.iou + g.rho2 / g.c2 + (g.w - g.wg) ** 2 / (g.cw**2 + EPS) + (g.h - g.hg) ** 2 / (g.ch**2 + EPS)
