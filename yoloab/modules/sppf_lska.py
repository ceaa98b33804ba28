"""SPPF-LSKA: Ultralytics' SPPF with Large Separable Kernel Attention on the pooled concatenation.

LSKA paper: K. W. Lau, L.-M. Po, Y. A. U. Rehman, "Large Separable Kernel Attention: Rethinking the Large Kernel
Attention Design in CNN", Expert Systems with Applications 236 (2024) 121352 (arXiv:2309.01439).
Authors' code: github.com/StevenLauHKHK/Large-Separable-Kernel-Attention, class `LSKA` in `models/van.py` (the same
class is in `mmdetection/mmdet/models/backbones/van.py`), compared at commit
bb2a8d2cfd7e9ff48a34306197249d90153c8d4e: same state_dict keys, same construction order, forward and gradients
bit-identical in float64 (max abs difference 0) for every k_size the authors define.

LSKA(dim, k_size) decomposes a k x k large-kernel attention into depthwise 1-D convolutions (all with bias):
(1, k0) then (k0, 1) with padding (k0 - 1) / 2, then (1, ks) and (ks, 1) with dilation d and padding d (ks - 1) / 2,
then a 1x1 Conv2d(dim, dim); the output is x * attn (no sigmoid, no residual). The authors' table, k_size: (k0, ks, d):
7: (3, 3, 2), 11: (3, 5, 2), 23: (5, 7, 3), 35: (5, 11, 3), 41: (5, 13, 3), 53: (5, 17, 3)
(k0 = 2 d - 1, ks = floor(k_size / d)). Parameters: dim^2 + dim (2 k0 + 2 ks + 5); k_size 11: dim^2 + 21 dim.
The authors' class builds no conv for any other k_size (and fails at forward); here that is a ValueError.

SPPF_LSKA(c1, c2, k, lska_k), as in the YOLOv8-LSKA variants of the field (attribute names `cv1`, `cv2`, `m`,
`lska`, built in that order): with c_ = c1 // 2, y0 = cv1(x) = Conv(c1, c_, 1, 1), three chained max-pools
(k, stride 1, padding k // 2) y1..y3, out = cv2(lska(cat(y0..y3))) with LSKA(4 c_, lska_k) and
cv2 = Conv(4 c_, c2, 1, 1) (Conv = Conv2d without bias + BatchNorm + activation).
Parameters (lska_k 11): c1 c_ + 2 c_ + (4 c_)^2 + 21 (4 c_) + 4 c_ c2 + 2 c2.

Which SPPF: Ultralytics 8.4's `SPPF(c1, c2, k=5, n=3, shortcut=False)` builds cv1 without activation (YOLO26's
SPPF), but `parse_model` gives cv1 `Conv.default_act` back for legacy rows `[c2, k]` such as yolov8's and yolo11's.
SPPF_LSKA equals that legacy path: cv1 with the default activation (SiLU unless the yaml sets `activation:`), n = 3,
no shortcut; so an SPPF -> SPPF_LSKA ablation changes only the LSKA.

Why SPPF-LSKA rather than Ultralytics' AIFI for this role: AIFI is RT-DETR's transformer encoder layer (attention
over flattened tokens); SPPF-LSKA stays a CNN module that keeps the SPPF's pooled receptive fields and adds a
large-kernel attention over them. AIFI can be used natively in Ultralytics yaml files anyway.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.conv import Conv

from yoloab.registry import register_module

__all__ = ["LSKA", "LSKA_KERNELS", "SPPF_LSKA"]

# k_size -> (k0, ks, dilation), from the authors' if/elif chain
LSKA_KERNELS: dict[int, tuple[int, int, int]] = {
    7: (3, 3, 2),
    11: (3, 5, 2),
    23: (5, 7, 3),
    35: (5, 11, 3),
    41: (5, 13, 3),
    53: (5, 17, 3),
}


class LSKA(nn.Module):
    """Large Separable Kernel Attention: x times a separable, dilated depthwise large-kernel map of x.

    Args:
        dim: channels (input and output).
        k_size: the large kernel it decomposes, a key of `LSKA_KERNELS`.

    Raises:
        ValueError: `k_size` is not one the authors define.
    """

    def __init__(self, dim: int, k_size: int = 11) -> None:
        super().__init__()
        if k_size not in LSKA_KERNELS:
            raise ValueError(f"LSKA k_size must be one of {sorted(LSKA_KERNELS)}, got {k_size}")
        self.k_size = k_size
        k0, ks, d = LSKA_KERNELS[k_size]
        p0, ps = (k0 - 1) // 2, d * (ks - 1) // 2
        self.conv0h = nn.Conv2d(dim, dim, kernel_size=(1, k0), padding=(0, p0), groups=dim)
        self.conv0v = nn.Conv2d(dim, dim, kernel_size=(k0, 1), padding=(p0, 0), groups=dim)
        self.conv_spatial_h = nn.Conv2d(dim, dim, kernel_size=(1, ks), padding=(0, ps), groups=dim, dilation=d)
        self.conv_spatial_v = nn.Conv2d(dim, dim, kernel_size=(ks, 1), padding=(ps, 0), groups=dim, dilation=d)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weight x (B, dim, H, W) elementwise by its attention map; same shape out."""
        attn = self.conv_spatial_v(self.conv_spatial_h(self.conv0v(self.conv0h(x))))
        return x * self.conv1(attn)


@register_module(
    role="sppf",
    paper=(
        "LSKA: Lau, Po, Rehman, Large Separable Kernel Attention: Rethinking the Large Kernel Attention Design in CNN, "
        "Expert Systems with Applications 2024, arXiv:2309.01439 (SPPF_LSKA: SPPF followed by LSKA on the pooled "
        "concatenation, as in the YOLOv8-LSKA variants)"
    ),
)
class SPPF_LSKA(nn.Module):
    """SPPF (legacy yolov8/yolo11 path) with LSKA applied to the concatenated pyramid before cv2.

    Args:
        c1: input channels.
        c2: output channels.
        k: max-pool kernel size (three chained pools: receptive fields k, 2k - 1, 3k - 2).
        lska_k: LSKA's large kernel, a key of `LSKA_KERNELS`.
    """

    def __init__(self, c1: int, c2: int, k: int = 5, lska_k: int = 11) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.lska = LSKA(c_ * 4, lska_k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x (B, c1, H, W) to (B, c2, H, W)."""
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(self.lska(torch.cat(y, 1)))
