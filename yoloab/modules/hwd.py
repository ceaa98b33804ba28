"""HWD: Haar wavelet downsampling, then a 1x1 Conv-BN-ReLU (Xu et al., Pattern Recognition 2023).

Paper: G. Xu, W. Liao, X. Zhang, C. Li, X. He, X. Wu, "Haar wavelet downsampling: A simple but effective
downsampling module for semantic segmentation", Pattern Recognition 143 (2023) 109819.
Authors' code: github.com/apple1986/HWD, `HWD.py` (class `Down_wt`), which calls pytorch_wavelets'
`DWTForward(J=1, mode='zero', wave='haar')`.

What this module computes, for input x (B, c1, H, W), with a, b, c, d the top-left, top-right, bottom-left and
bottom-right values of each 2x2 block:
1. a one-level orthonormal 2D Haar transform, as pytorch_wavelets computes it (zero padding on the bottom/right
   for odd sizes): LL = (a + b + c + d) / 2, then the three detail bands in the reference's concatenation order
   yH[0][:, :, 0] = (a + b - c - d) / 2, yH[0][:, :, 1] = (a - b + c - d) / 2, yH[0][:, :, 2] = (a - b - c + d) / 2,
   concatenated band-major into (B, 4 c1, ceil(H/2), ceil(W/2));
2. Conv2d(4 c1, c2, 1) with bias, BatchNorm2d(c2), ReLU, as the reference's `conv_bn_relu`.
Parameters: 4 c1 c2 + c2 (conv bias) + 2 c2 (BN).

The transform is fixed arithmetic on strided slices (no learnable weights, no pytorch_wavelets dependency); its
equality with pytorch_wavelets' DWTForward was checked outside the repository, and the tests compare it with a
hand-computed transform of a known image.

Paper vs code: the paper names the detail bands (H, V, D) and draws a Conv-BN-ReLU; the code fixes their order and
signs through pytorch_wavelets (above) and gives the 1x1 conv a bias that the BN that follows makes redundant.
yoloab follows the code (bias kept, ReLU rather than the SiLU of the surrounding YOLO layers), so that the
reference's weights load and its numbers carry over. The reference's state_dict also holds pytorch_wavelets' four
fixed filter buffers (`wt.h0_col`, `wt.h1_col`, `wt.h0_row`, `wt.h1_row`); this module has none, so a reference
state_dict loads once those four keys are dropped.

Arguments: a replaced Conv row `[c2, 3, 2]` becomes `[c2]` (a 1x1 conv after a fixed 2x downsampling).
Article placement: the paper replaces every downsampling of the encoder (max-pool or strided conv); in YOLO that
is every downsampling conv of the backbone but the stem (`backbone`).

Also registered as `Down_wt`, the reference's class name (`HWD.py`, `Down_wt(in_ch, out_ch)`), which public YOLOv8
yaml files copying it use (`[-1, 1, Down_wt, [256]]`, the "YOLOv8改进" column's HWD article): a registry alias of
this class, same constructor and parameters, not a second implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yoloab.registry import MODULES, Placement, register_module

__all__ = ["HWD", "haar_dwt"]


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """One-level orthonormal 2D Haar transform of a (B, C, H, W) map: (B, 4C, ceil(H/2), ceil(W/2)).

    Channels are band-major: C low-pass (LL) maps, then the three detail bands in pytorch_wavelets' yH order.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))  # DWTForward(mode='zero') pads zeros after the last row/column
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return 0.5 * torch.cat([a + b + c + d, a + b - c - d, a - b + c - d, a - b - c + d], dim=1)


@register_module(
    role="downsample",
    channels="conv",
    paper="HWD, Xu et al., Pattern Recognition 143 (2023) 109819",
    article=Placement("backbone"),
    conv_args=1,
)
class HWD(nn.Module):
    """Haar wavelet downsampling by 2, then Conv2d(1x1, bias) + BatchNorm + ReLU.

    Args:
        c1: input channels.
        c2: output channels.
    """

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv_bn_relu = nn.Sequential(nn.Conv2d(4 * c1, c2, 1), nn.BatchNorm2d(c2), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample by 2 through the Haar sub-bands."""
        return self.conv_bn_relu(haar_dwt(x))


# The authors' class name, kept by the YOLO tutorials that copy HWD.py (same (in_ch, out_ch) constructor).
MODULES.alias("Down_wt", "HWD", "the authors' class name (apple1986/HWD, HWD.py), used by public YOLOv8 yaml files")
