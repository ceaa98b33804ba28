"""Shape-IoU loss: distance and shape costs weighted by the target box's own shape.

Paper: H. Zhang, S. Zhang, "Shape-IoU: More Accurate Metric considering Bounding Box Shape and Scale",
arXiv:2312.17663, 2023, eqs. 5-11; authors' code github.com/malagoutou/Shape-IoU (`shapeiou.py`).

    ww = 2 w_gt^s / (w_gt^s + h_gt^s),   hh = 2 h_gt^s / (w_gt^s + h_gt^s)
    distance = hh (x_c - x_c^gt)² / c² + ww (y_c - y_c^gt)² / c²
    ω_w = hh |w - w_gt| / max(w, w_gt),   ω_h = ww |h - h_gt| / max(h, h_gt)
    Ω = Σ_{t=w,h} (1 - e^{-ω_t})^4
    L_Shape-IoU = 1 - IoU + distance + 0.5 Ω

c: diagonal of the smallest enclosing box; s ("scale"): a factor tied to the sizes of the dataset's targets, 0 in the
authors' code (then ww = hh = 1), which is the default here; θ = 4 as in SIoU.
"""

from __future__ import annotations

import torch

from .boxes import EPS, geometry

PAPER = "Zhang and Zhang, Shape-IoU, arXiv:2312.17663 (2023); github.com/malagoutou/Shape-IoU"
SCALE = 0.0


def shape_iou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None, scale: float = SCALE) -> torch.Tensor:
    """`1 - IoU + distance + 0.5 Ω` per box pair (xyxy)."""
    g = geometry(pred, target)
    ws, hs = g.wg**scale, g.hg**scale
    ww, hh = 2 * ws / (ws + hs), 2 * hs / (ws + hs)
    distance = (hh * g.dx**2 + ww * g.dy**2) / g.c2
    omega_w = hh * (g.w - g.wg).abs() / (torch.maximum(g.w, g.wg) + EPS)
    omega_h = ww * (g.h - g.hg).abs() / (torch.maximum(g.h, g.hg) + EPS)
    shape = (1 - torch.exp(-omega_w)) ** 4 + (1 - torch.exp(-omega_h)) ** 4
    return 1 - g.iou + distance + 0.5 * shape
