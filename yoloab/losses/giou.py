r"""GIoU loss: IoU minus the share of the enclosing box that neither box covers.

Paper: H. Rezatofighi, N. Tsoi, J. Gwak, A. Sadeghian, I. Reid, S. Savarese, "Generalized Intersection over Union:
A Metric and a Loss for Bounding Box Regression", CVPR 2019 (arXiv:1902.09630), Algorithm 1 and 2.

    GIoU = IoU - |C \ (B ∪ B_gt)| / |C|,    L_GIoU = 1 - GIoU

with C the smallest box enclosing both. No constant. Quirk kept: torchvision's placement of eps
(`inter / (union + eps)`, `(|C| - union) / (|C| + eps)`), which the tests compare against.
"""

from __future__ import annotations

import torch

from .boxes import EPS, geometry

PAPER = "Rezatofighi et al., Generalized Intersection over Union, CVPR 2019 (arXiv:1902.09630)"


def giou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - GIoU` per box pair (xyxy)."""
    g = geometry(pred, target)
    area_c = g.cw * g.ch
    return 1 - (g.iou - (area_c - g.union) / (area_c + EPS))
