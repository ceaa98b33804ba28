"""MPDIoU loss: IoU minus the distances of the top-left and bottom-right corners, over the image size.

Paper: S. Ma, Y. Xu, "MPDIoU: A Loss for Efficient and Accurate Bounding Box Regression", arXiv:2307.07662, 2023,
Algorithm 1.

    d1² = (x1 - x1_gt)² + (y1 - y1_gt)²,   d2² = (x2 - x2_gt)² + (y2 - y2_gt)²
    MPDIoU = IoU - d1²/(w² + h²) - d2²/(w² + h²),   L_MPDIoU = 1 - MPDIoU

w, h: width and height of the input image, in the units of the boxes. No other constant. Quirk avoided: copies in
YOLOv8 forks often divide grid-unit boxes by the image size in pixels (a different normalisation per head level);
yoloab hands the loss boxes in pixels and the input size in pixels (`LossContext.image_wh`).
"""

from __future__ import annotations

import torch

from .boxes import geometry

PAPER = "Ma and Xu, MPDIoU: A Loss for Efficient and Accurate Bounding Box Regression, arXiv:2307.07662 (2023)"


def mpdiou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None) -> torch.Tensor:
    """`1 - MPDIoU` per box pair (xyxy); the image size comes from `ctx.image_wh` (width, height).

    Raises:
        ValueError: no image size in the context.
    """
    image_wh = getattr(ctx, "image_wh", None)
    if image_wh is None:
        raise ValueError("MPDIoU needs the input image size (LossContext.image_wh)")
    w, h = (float(v) for v in image_wh)
    norm = w**2 + h**2
    d1 = (pred[:, 0] - target[:, 0]) ** 2 + (pred[:, 1] - target[:, 1]) ** 2
    d2 = (pred[:, 2] - target[:, 2]) ** 2 + (pred[:, 3] - target[:, 3]) ** 2
    return 1 - (geometry(pred, target).iou - d1 / norm - d2 / norm)
