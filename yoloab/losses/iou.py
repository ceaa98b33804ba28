"""IoU loss: `L = 1 - IoU`, the term the other families add penalties to.

Paper: J. Yu, Y. Jiang, Z. Wang, Z. Cao, T. Huang, "UnitBox: An Advanced Object Detection Network", ACM MM 2016
(arXiv:1608.01471), which regresses boxes with an IoU loss (its form is `-ln IoU`; the linear `1 - IoU` used here is
the form every later IoU-family paper starts from, e.g. GIoU's Algorithm 1).

    IoU = |B ∩ B_gt| / |B ∪ B_gt|,    L_IoU = 1 - IoU

A box pair that does not overlap has IoU 0 and no gradient: what GIoU, DIoU and the rest add penalties for. Offered
as the base of `Inner-IoU` and `Focaler-IoU`.
"""

from __future__ import annotations

import torch

from .boxes import geometry

PAPER = "Yu et al., UnitBox: An Advanced Object Detection Network, ACM MM 2016 (arXiv:1608.01471)"


def iou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - IoU` per box pair (xyxy)."""
    return 1 - geometry(pred, target).iou
