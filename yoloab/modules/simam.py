"""SimAM, the parameter-free energy-based attention of Yang, Zhang, Li & Xie (ICML 2021).

Paper: L. Yang, R.-Y. Zhang, L. Li, X. Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
Neural Networks", ICML 2021, PMLR 139:11863-11874 (no arXiv version).
Authors' code: github.com/ZjjConan/SimAM, `networks/attentions/simam_module.py` (class `simam_module(channels=None,
e_lambda=1e-4)`; the copy under `mmdetection/` is identical).
Compared with ZjjConan/SimAM@ae98f43a34a051cc82f6e618853c690e1f4c92e6: no parameters on either side; in float64,
C = 16 to 256, e_lambda 1e-4 and 0.1, square and non-square maps, train and eval mode, forward and input gradient
are bit-identical (max abs difference 0).

What this module computes, for input x (B, C, H, W), independently per sample and channel, with n = H W - 1:
    d = (x - mean_HW(x))^2,   v = sum_HW(d) / n,   E_inv = d / (4 (v + e_lambda)) + 0.5,   out = x * sigmoid(E_inv)
E_inv is the inverse of the minimal neuron energy e_t* = 4 (v + lambda) / ((t - mu)^2 + 2 v + 2 lambda) of the
paper's closed form. Output: C channels, same H and W. Parameters: 0 (no buffers either).

Quirks kept from the reference: the variance divides by n = H W - 1 (the derivation's count of "other" neurons)
although the mean is over all H W positions; consequently a 1x1 map gives 0 / 0 = NaN, as in the reference. `c1` is
accepted, as the reference accepts `channels`, only so that the module fits the (c1, *args) row convention; it is
unused. timm has no SimAM.
"""

from __future__ import annotations

import torch
from torch import nn

from yoloab.registry import channel_count_note, register_module

__all__ = ["SimAM"]


@register_module(
    role="attention",
    paper="SimAM, Yang, Zhang, Li & Xie, ICML 2021, PMLR 139:11863-11874 (no arXiv version)",
    # public yaml rows such as [-1, 1, SimAM, [256]] give a channel count where yoloab reads e_lambda
    row_notes=(channel_count_note("SimAM", "e_lambda"),),
)
class SimAM(nn.Module):
    """Parameter-free 3-D attention: each activation is gated by the inverse of its minimal energy.

    Args:
        c1: input channels; accepted for the row convention and unused, like the reference's `channels`.
        e_lambda: the energy regulariser lambda, added to the channel variance.
    """

    def __init__(self, c1: int | None = None, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda
        self.activation = nn.Sigmoid()

    def extra_repr(self) -> str:
        """Show lambda, as the reference's repr does."""
        return f"e_lambda={self.e_lambda}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate x by sigmoid of its inverse minimal energy.

        Args:
            x: input of shape (B, C, H, W).

        Returns:
            A tensor of the input's shape.
        """
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        e_inv = d / (4 * (d.sum(dim=(2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return x * self.activation(e_inv)
