"""Inner-IoU: the IoU of auxiliary boxes scaled about the centres, added to a base IoU loss.

Paper: H. Zhang, C. Xu, S. Zhang, "Inner-IoU: More Effective Intersection over Union Loss with Auxiliary Bounding
Box", arXiv:2311.02877, 2023, eqs. 1-10.

    inner boxes: centre kept, width and height times `ratio`
    IoU_inner = inter(inner, inner_gt) / (w h ratio² + w_gt h_gt ratio² - inter)
    L_Inner-X = L_X + IoU - IoU_inner                 (X: IoU, GIoU, DIoU, CIoU, EIoU, SIoU, MPDIoU, Shape-IoU)

The paper studies ratio in [0.5, 1.5] (below 1 speeds up high-IoU samples, above 1 low-IoU ones); 0.7 is the value of
the authors' YOLOv8 code, the default here. Combinations offered: `Inner-<X>` for each X above.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .boxes import EPS, geometry

PAPER = "Zhang, Xu and Zhang, Inner-IoU, arXiv:2311.02877 (2023)"
RATIO = 0.7


def inner_iou(pred: torch.Tensor, target: torch.Tensor, ratio: float = RATIO) -> torch.Tensor:
    """IoU of the boxes scaled by `ratio` about their centres, per box pair (xyxy)."""

    def scaled(b: torch.Tensor) -> torch.Tensor:
        centre, half = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]) * ratio / 2
        return torch.cat((centre - half, centre + half), -1)

    g = geometry(scaled(pred), scaled(target), EPS)
    return g.iou


def inner(base: Callable[..., torch.Tensor], ratio: float = RATIO) -> Callable[..., torch.Tensor]:
    """`L_X + IoU - IoU_inner` for a base loss `L_X`."""

    def loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
        return base(pred, target, ctx) + geometry(pred, target).iou - inner_iou(pred, target, ratio)

    return loss
