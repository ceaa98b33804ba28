"""SIoU loss: IoU with angle-aware distance and shape costs.

Paper: Z. Gevorgyan, "SIoU Loss: More Powerful Learning for Bounding Box Regression", arXiv:2205.12740, 2022,
eqs. 1-11.

    Λ = 1 - 2 sin²(arcsin(x) - π/4),   x = c_h / σ          (angle cost; the smaller of the two angles to the axes)
    Δ = Σ_{t=x,y} (1 - e^{-γ ρ_t}),  ρ_x = (Δc_x / c_w)², ρ_y = (Δc_y / c_h)², γ = 2 - Λ     (distance cost)
    Ω = Σ_{t=w,h} (1 - e^{-ω_t})^θ,  ω_w = |w - w_gt| / max(w, w_gt), ω_h likewise           (shape cost)
    L_SIoU = 1 - IoU + (Δ + Ω) / 2

σ: distance of the centres; c_w, c_h: width and height of the smallest enclosing box; θ = 4 (the paper's value, from
its range 2-6). The paper picks α or β = π/2 - α, whichever is below π/4: x is the smaller of |Δc_x|, |Δc_y| over σ.
Quirk: σ is `sqrt(ρ² + eps)` so that identical boxes have a finite gradient (the square root's derivative at 0).
"""

from __future__ import annotations

import math

import torch

from .boxes import EPS, geometry

PAPER = "Gevorgyan, SIoU Loss: More Powerful Learning for Bounding Box Regression, arXiv:2205.12740 (2022)"
THETA = 4.0


def siou_loss(pred: torch.Tensor, target: torch.Tensor, ctx: object = None, theta: float = THETA) -> torch.Tensor:
    """`1 - IoU + (Δ + Ω)/2` per box pair (xyxy)."""
    g = geometry(pred, target)
    sigma = torch.sqrt(g.rho2 + EPS)
    x = torch.minimum(g.dx.abs(), g.dy.abs()) / sigma
    angle = 1 - 2 * torch.sin(torch.arcsin(x) - math.pi / 4) ** 2
    gamma = 2 - angle
    rho_x, rho_y = (g.dx / (g.cw + EPS)) ** 2, (g.dy / (g.ch + EPS)) ** 2
    distance = (1 - torch.exp(-gamma * rho_x)) + (1 - torch.exp(-gamma * rho_y))
    omega_w = (g.w - g.wg).abs() / (torch.maximum(g.w, g.wg) + EPS)
    omega_h = (g.h - g.hg).abs() / (torch.maximum(g.h, g.hg) + EPS)
    shape = (1 - torch.exp(-omega_w)) ** theta + (1 - torch.exp(-omega_h)) ** theta
    return 1 - g.iou + (distance + shape) / 2
