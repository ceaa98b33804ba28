"""Box geometry shared by the IoU-family losses.

Boxes are xyxy tensors of shape (N, 4), predicted and target paired row by row. Every quantity is per box pair. The
small constant `EPS` sits where torchvision's `ops` box losses put it (`union + eps`, `enclosing diagonal + eps`,
`enclosing area + eps`), so that GIoU, DIoU and CIoU equal torchvision's to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EPS = 1e-7


@dataclass(frozen=True)
class Geometry:
    """What the IoU family is built from, for a batch of box pairs (all tensors of shape (N,)).

    Attributes:
        w, h: predicted width and height.
        wg, hg: target width and height.
        inter: intersection area.
        union: union area (without eps).
        iou: intersection over union, `inter / (union + EPS)`.
        cw, ch: width and height of the smallest enclosing box.
        c2: squared diagonal of the enclosing box plus `EPS`.
        dx, dy: predicted minus target centre, along x and y.
        rho2: squared distance of the centres.
    """

    w: torch.Tensor
    h: torch.Tensor
    wg: torch.Tensor
    hg: torch.Tensor
    inter: torch.Tensor
    union: torch.Tensor
    iou: torch.Tensor
    cw: torch.Tensor
    ch: torch.Tensor
    c2: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    rho2: torch.Tensor


def geometry(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> Geometry:
    """Areas, overlap, enclosing box and centre offsets of paired xyxy boxes.

    Args:
        pred: predicted boxes (N, 4), xyxy.
        target: target boxes (N, 4), xyxy.
        eps: added to the union and to the enclosing diagonal.
    """
    x1, y1, x2, y2 = pred.unbind(-1)
    gx1, gy1, gx2, gy2 = target.unbind(-1)
    w, h, wg, hg = x2 - x1, y2 - y1, gx2 - gx1, gy2 - gy1
    inter = (torch.minimum(x2, gx2) - torch.maximum(x1, gx1)).clamp(min=0) * (
        torch.minimum(y2, gy2) - torch.maximum(y1, gy1)
    ).clamp(min=0)
    union = w * h + wg * hg - inter
    cw = torch.maximum(x2, gx2) - torch.minimum(x1, gx1)
    ch = torch.maximum(y2, gy2) - torch.minimum(y1, gy1)
    dx = (x1 + x2 - gx1 - gx2) / 2
    dy = (y1 + y2 - gy1 - gy2) / 2
    return Geometry(
        w=w,
        h=h,
        wg=wg,
        hg=hg,
        inter=inter,
        union=union,
        iou=inter / (union + eps),
        cw=cw,
        ch=ch,
        c2=cw**2 + ch**2 + eps,
        dx=dx,
        dy=dy,
        rho2=dx**2 + dy**2,
    )
