"""SPD-Conv: space-to-depth by 2, then a non-strided convolution (Sunkara & Luo, ECML PKDD 2022).

Paper: R. Sunkara, T. Luo, "No More Strided Convolutions or Pooling: A New CNN Building Block for Low-Resolution
Images and Small Objects", ECML PKDD 2022, pp. 443-459 (arXiv:2208.03641).
Authors' code: github.com/LabSAINT/SPD-Conv (moved to github.com/TrustAIoT/SPD-Conv), `YOLOv5-SPD/models/common.py`
(`space_to_depth`) and `YOLOv5-SPD/models/space_depth_*.yaml`.

What this module computes, for input x (B, c1, H, W):
1. space-to-depth with scale 2, in the authors' sub-map order: the channel-wise concatenation of
   x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2] -> (B, 4 c1, H/2, W/2);
2. a stride-1 k x k Conv from 4 c1 to c2 channels: Conv2d without bias (padding k // 2) + BatchNorm + SiLU, the
   YOLOv5 `Conv` the authors' detector uses (Ultralytics' `Conv` is the same layer).
Parameters: 4 c1 c2 k^2 + 2 c2.

Paper vs code: the paper's block is SPD followed by the non-strided conv, as above. The authors' YOLOv5 yaml files
instead put the stride-1 `Conv(c1, c2, 3, 1)` first and `space_to_depth` after it, so that row outputs 4 c2
channels and the next layer is widened to read them. That order cannot replace a `[c2, 3, 2]` Conv row without
changing the width of every later layer, so yoloab follows the paper's order, with the code's sub-map order and
Conv-BN-SiLU. The authors' ResNet variant (BN + ReLU after SPD) is not the detector design and is not followed.
Odd input sizes are not defined by the reference (its slices differ in size and `torch.cat` fails); this module
raises the same way rather than padding.

Arguments: a replaced Conv row `[c2, 3, 2]` becomes `[c2, 3]` (the stride is the space-to-depth); a Conv-style
`[c2, 3, 2]` row is refused in one line (there is no stride to set).
Public yaml: the YOLOv8 tutorials' `SPDConv(c1, c2, k=1, s=1, p=None, g=1, d=1, act=True)` (the "YOLOv8改进"
column's SPD-Conv article) writes its rows `[c2]`, which there builds a 1x1 conv after the space-to-depth; the same
row builds a 3x3 conv here (k defaults to 3, as the authors' YOLOv5-SPD convs do). Such a row builds with one
warning naming both; `[c2, 1]` builds the tutorials' module, `[c2, 3]` this one without the warning.
Article placement (YOLOv5-SPD): every strided convolution of backbone and head but the stem (`all`).
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.conv import Conv

from yoloab.registry import Placement, RowNote, register_module

__all__ = ["SPDConv", "space_to_depth"]


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """Fold each 2x2 block of a (B, C, H, W) map into channels: (B, 4C, H/2, W/2), in the authors' sub-map order."""
    return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1)


@register_module(
    role="downsample",
    channels="conv",
    paper="SPD-Conv, Sunkara & Luo, ECML PKDD 2022, arXiv:2208.03641",
    article=Placement("all"),
    conv_args=2,
    row_notes=(
        RowNote(
            "yoloab's SPDConv builds a 3x3 conv after the space-to-depth (k=3, as in the authors' YOLOv5-SPD); the "
            "YOLOv8 tutorials' SPDConv(c1, c2, k=1, s=1, ...) builds a 1x1 conv from the same row, with 1/9 of the "
            "conv weights: write [c2, 1] for theirs, [c2, 3] for this one",
            count=1,
        ),
    ),
)
class SPDConv(nn.Module):
    """Space-to-depth (scale 2) followed by a stride-1 Conv-BN-SiLU.

    Args:
        c1: input channels.
        c2: output channels.
        k: kernel size of the non-strided convolution.
    """

    def __init__(self, c1: int, c2: int, k: int = 3) -> None:
        super().__init__()
        self.conv = Conv(4 * c1, c2, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample by 2 without discarding any input value."""
        return self.conv(space_to_depth(x))
