"""EMA, the Efficient Multi-scale Attention with cross-spatial learning of Ouyang et al. (ICASSP 2023).

Paper: D. Ouyang, S. He, G. Zhang, M. Luo, H. Guo, J. Zhan, Z. Huang, "Efficient Multi-Scale Attention Module with
Cross-Spatial Learning", ICASSP 2023, pp. 1-5, doi:10.1109/ICASSP49357.2023.10096516 (arXiv:2305.13563).
Authors' code: github.com/YOLOonMe/EMA-attention-module, file `EMA_attention_module` (class `EMA(channels, c2=None,
factor=32)`).
Compared with YOLOonMe/EMA-attention-module@afc37ecf52454c03421a86105fc5c16eb4ea1ad3: identical parameter count and
state_dict keys and shapes, loaded across with `load_state_dict`; in float64 on random weights, c1 = 16 to 256 with
factor 32, 8 and 4 (every pair where factor divides c1), square and non-square maps, train and eval mode, forward,
input gradient and parameter gradients are bit-identical (max abs difference 0). The clamped cases (c1, factor 32)
with c1 = 16, 24, 48, 80 are likewise bit-identical to the reference built with factor = gcd(32, c1).

What this module computes, for input x (B, C, H, W), with G groups and m = C / G channels per group:
1. grouping: x is reshaped to (B G, m, H, W), contiguous channel chunks; every layer below is shared by all groups;
2. 1x1 branch: directional average pools (mean over W -> (m, H, 1), mean over H -> (m, W, 1)) concatenated along
   the height axis, one Conv2d(m, m, 1) with bias, split back; x1 = GroupNorm(x_g * sigmoid(h part) * sigmoid(w part));
3. 3x3 branch: x2 = Conv2d(m, m, 3, padding 1) with bias on x_g;
4. cross-spatial learning: s1 = softmax over the m channels of global-average-pooled x1, s2 likewise of x2; the
   spatial map a = s1 @ x2 + s2 @ x1 (each a (1, m) x (m, H W) product), shape (B G, 1, H, W);
5. output x_g * sigmoid(a), reshaped back to (B, C, H, W).
Parameters: 10 m^2 + 4 m (conv1x1 m^2 + m, conv3x3 9 m^2 + m, GroupNorm affine 2 m), m = C / G.

Quirks kept from the reference: the "GroupNorm" is `nn.GroupNorm(m, m)`, one group per channel, so it normalises
each channel of each group over its own H x W map (an instance norm with per-channel affine, eps 1e-5) and has no
running statistics: eval mode computes exactly what train mode does. The softmax runs over the channel axis of the
pooled (1, m) vectors, not over space. The 1x1 branch has no BatchNorm or activation before its sigmoid gates.

Groups at small widths: the reference sets G = factor and asserts only C // G > 0; it also needs G to divide C, or
its reshape fails. With the default factor 32 it therefore rejects C = 16 (YOLO "n" widths) and C = 48 or 80
(yolov8m/x widths). Here G = gcd(factor, C): exactly `factor` whenever the reference runs (factor divides C), and
otherwise the largest group count dividing both, so every group has the same width (C = 16 -> G = 16, m = 1;
C = 48 -> G = 16, m = 3). `self.groups` holds the G actually used. With m = 1 the channel softmax is identically 1,
so the cross-spatial step reduces to a = x2 + x1. The reference's unused second argument `c2` (output channels in
YOLOv5's row convention) is not taken: output channels are always c1, and a row's first argument is `factor`.
timm has no EMA.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yoloab.registry import channel_count_note, register_module

__all__ = ["EMA"]


@register_module(
    role="attention",
    paper="EMA (Efficient Multi-Scale Attention), Ouyang et al., ICASSP 2023, arXiv:2305.13563",
    # public yaml rows such as [-1, 1, EMA, [256]] give a channel count where yoloab reads factor
    row_notes=(channel_count_note("EMA", "factor"),),
)
class EMA(nn.Module):
    """Grouped attention: a directional 1x1 branch and a 3x3 branch, mixed by cross-spatial softmax products.

    Args:
        c1: input (and output) channels.
        factor: requested number of channel groups; the module uses gcd(factor, c1), which equals factor whenever
            factor divides c1 (the only case the reference supports).

    Raises:
        ValueError: `c1` or `factor` is not positive.
    """

    def __init__(self, c1: int, factor: int = 32) -> None:
        super().__init__()
        if c1 < 1 or factor < 1:
            raise ValueError(f"EMA needs positive c1 and factor, got c1={c1}, factor={factor}")
        self.factor = factor
        self.groups = math.gcd(factor, c1)
        m = c1 // self.groups
        # Attribute names and construction order follow the reference, so its state_dicts and seeded init carry over.
        self.softmax = nn.Softmax(-1)
        self.agp = nn.AdaptiveAvgPool2d((1, 1))
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.gn = nn.GroupNorm(m, m)
        self.conv1x1 = nn.Conv2d(m, m, kernel_size=1, stride=1, padding=0)
        self.conv3x3 = nn.Conv2d(m, m, kernel_size=3, stride=1, padding=1)

    def extra_repr(self) -> str:
        """Show the requested factor and the groups used."""
        return f"factor={self.factor}, groups={self.groups}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-weight every position of every channel group.

        Args:
            x: input of shape (B, c1, H, W).

        Returns:
            A tensor of the input's shape.
        """
        b, c, h, w = x.shape
        g, m = self.groups, c // self.groups
        group_x = x.reshape(b * g, m, h, w)
        x_h = self.pool_h(group_x)
        x_w = self.pool_w(group_x).permute(0, 1, 3, 2)
        hw = self.conv1x1(torch.cat([x_h, x_w], dim=2))
        x_h, x_w = torch.split(hw, [h, w], dim=2)
        x1 = self.gn(group_x * x_h.sigmoid() * x_w.permute(0, 1, 3, 2).sigmoid())
        x2 = self.conv3x3(group_x)
        s1 = self.softmax(self.agp(x1).reshape(b * g, 1, m))
        s2 = self.softmax(self.agp(x2).reshape(b * g, 1, m))
        weights = torch.matmul(s1, x2.reshape(b * g, m, h * w)) + torch.matmul(s2, x1.reshape(b * g, m, h * w))
        return (group_x * weights.reshape(b * g, 1, h, w).sigmoid()).reshape(b, c, h, w)
