"""DySample: upsampling by learned point sampling (Liu et al., ICCV 2023).

Paper: W. Liu, H. Lu, H. Fu, Z. Cao, "Learning to Upsample by Learning to Sample", ICCV 2023 (arXiv:2308.15085).
Authors' code: github.com/tiny-smart/dysample, `dysample.py`, compared at commit
81a1de5caa95d55a0f5488425fa53ec7ef47f8f0: same state_dict keys (`offset`, `scope`, `init_pos`), same construction
order, forward and gradients bit-identical in float64 (max abs difference 0) for both styles and scopes, scales 2
and 3, 1 or 4 groups, with random weights large enough to push samples past the border.

What it computes, for x (B, c1, H, W), scale s and g groups (channels split into g groups sharing one offset field):
1. offsets O of shape (B, 2 g s^2, H, W), channels ordered (x/y, group, sub-row i, sub-column j):
   - style "lp" (linear then pixel-shuffle): O = offset(x), a 1x1 Conv2d(c1, 2 g s^2) with bias;
   - style "pl" (pixel-shuffle then linear): O = pixel_unshuffle(offset(pixel_shuffle(x, s)), s), with a 1x1
     Conv2d(c1 / s^2, 2 g) with bias;
   - static scope (`dyscope=False`): O * 0.25; dynamic scope: O * sigmoid(scope(.)) * 0.5, `scope` a 1x1 conv
     without bias on the same input as `offset`, initialised to zero (so the scope starts at 0.5 * 0.5);
   - plus the `init_pos` buffer, the sub-pixel positions ((j - (s - 1) / 2) / s, (i - (s - 1) / 2) / s), so that
     zero offsets give plain bilinear upsampling (align_corners=False).
2. output pixel (h s + i, w s + j) of group k reads x's group k bilinearly at column w + O_x and row h + O_y (input
   pixel units), clamped into the map: the authors' grid_sample call with `align_corners=False` and
   `padding_mode="border"` on the coordinates 2 (w + 0.5 + O_x) / W - 1, 2 (h + 0.5 + O_y) / H - 1 (the +0.5 and the
   normaliser cancel align_corners=False's half-pixel shift).
Output: (B, c1, s H, s W).

Parameters (style "lp"): 2 g s^2 (c1 + 1), plus 2 g s^2 c1 with `dyscope`.
Parameters (style "pl"): 2 g (c1 / s^2 + 1), plus 2 g c1 / s^2 with `dyscope`.
Requirements on c1 (the authors assert them): c1 divisible by `groups`; for style "pl" also by s^2.

Kept from the reference: the 0.25 / 0.5 offset factors, `init_pos` as a persistent buffer (it is in state_dicts),
`normal_init(std=0.001)` of `offset` and zero `scope`, the op order (so that AMP promotes as in the reference). The
coordinate grid is built on x's device in x's dtype rather than on the CPU then moved (same values), and the
reference's `.view` reshapes are `.reshape` (same values): in Ultralytics' validation the offset conv's output is not
contiguous and the reference's `view` raises "view size is not compatible with input tensor's size and stride".
FLOPs: thop counts the 1x1 convs only, neither `F.grid_sample` (bilinear: about 4 multiply-adds per output value)
nor `F.pixel_shuffle` / `F.pixel_unshuffle`; yoloab flags such disagreements itself.

Arguments: an `nn.Upsample` row `[None, 2, "nearest"]` becomes `[2]`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yoloab.registry import register_module

__all__ = ["DySample"]

STYLES = ("lp", "pl")


@register_module(
    role="upsample",
    paper="DySample: Liu, Lu, Fu, Cao, Learning to Upsample by Learning to Sample, ICCV 2023, arXiv:2308.15085",
)
class DySample(nn.Module):
    """Upsample by sampling the input at content-dependent offsets around each output pixel.

    Args:
        c1: input (and output) channels.
        scale: upsampling factor s.
        style: "lp" (offsets from x, then pixel-shuffled) or "pl" (offsets from pixel_shuffle(x)).
        groups: channel groups, each with its own offset field.
        dyscope: learn a per-position offset range ("DySample+" scope) instead of the static factor 0.25.

    Raises:
        ValueError: unknown style, a scale below 1, or c1 not divisible by `groups` (and, for "pl", by scale^2).
    """

    def __init__(self, c1: int, scale: int = 2, style: str = "lp", groups: int = 4, dyscope: bool = False) -> None:
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"DySample style must be one of {STYLES}, got {style!r}")
        if int(scale) != scale or scale < 1:
            raise ValueError(f"DySample scale must be a positive integer, got {scale!r}")
        if groups < 1 or c1 < groups or c1 % groups:
            raise ValueError(f"DySample needs c1 divisible by groups={groups}, got c1={c1}")
        if style == "pl" and (c1 < scale**2 or c1 % scale**2):
            raise ValueError(f"DySample style 'pl' needs c1 divisible by scale^2={scale**2}, got c1={c1}")
        self.scale = int(scale)
        self.style = style
        self.groups = groups
        cin = c1 // self.scale**2 if style == "pl" else c1
        cout = 2 * groups if style == "pl" else 2 * groups * self.scale**2
        self.offset = nn.Conv2d(cin, cout, 1)
        nn.init.normal_(self.offset.weight, 0.0, 0.001)
        nn.init.zeros_(self.offset.bias)
        if dyscope:
            self.scope = nn.Conv2d(cin, cout, 1, bias=False)
            nn.init.zeros_(self.scope.weight)
        self.register_buffer("init_pos", self._init_pos())

    def _init_pos(self) -> torch.Tensor:
        """Sub-pixel positions of the s x s outputs around each input pixel, as (1, 2 g s^2, 1, 1): x then y."""
        s = self.scale
        h = torch.arange((-s + 1) / 2, (s - 1) / 2 + 1) / s
        yy, xx = torch.meshgrid(h, h, indexing="ij")
        return torch.stack([xx, yy]).repeat(1, self.groups, 1).reshape(1, -1, 1, 1)

    def sample(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Read x bilinearly at each input pixel's centre plus `offset` (B, 2 g s^2, H, W); returns (B, c1, sH, sW)."""
        b, _, h, w = offset.shape
        s = self.scale
        offset = offset.reshape(b, 2, -1, h, w)
        yy, xx = torch.meshgrid(
            torch.arange(h, dtype=x.dtype, device=x.device) + 0.5,
            torch.arange(w, dtype=x.dtype, device=x.device) + 0.5,
            indexing="ij",
        )
        coords = torch.stack([xx, yy]).view(1, 2, 1, h, w)
        normalizer = torch.tensor([w, h], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        coords = 2 * (coords + offset) / normalizer - 1
        coords = (
            F.pixel_shuffle(coords.reshape(b, -1, h, w), s)
            .reshape(b, 2, -1, s * h, s * w)
            .permute(0, 2, 3, 4, 1)
            .contiguous()
            .flatten(0, 1)
        )
        out = F.grid_sample(
            x.reshape(b * self.groups, -1, h, w), coords, mode="bilinear", align_corners=False, padding_mode="border"
        )
        return out.reshape(b, -1, s * h, s * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample x (B, c1, H, W) to (B, c1, scale H, scale W)."""
        dynamic = hasattr(self, "scope")
        if self.style == "pl":
            x_ = F.pixel_shuffle(x, self.scale)
            if dynamic:
                offset = F.pixel_unshuffle(self.offset(x_) * self.scope(x_).sigmoid(), self.scale) * 0.5 + self.init_pos
            else:
                offset = F.pixel_unshuffle(self.offset(x_), self.scale) * 0.25 + self.init_pos
        elif dynamic:
            offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
        else:
            offset = self.offset(x) * 0.25 + self.init_pos
        return self.sample(x, offset)
