"""DWConv, Ultralytics' depthwise (grouped) convolution (reused from Ultralytics, not rewritten).

Paper: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
arXiv:1704.04861 (2017), the depthwise convolution it stands for.

Reference: `ultralytics.nn.modules.conv.DWConv(c1, c2, k, s, d, act)` is a `Conv` (Conv2d without bias + BatchNorm
+ SiLU) with groups = gcd(c1, c2): truly depthwise when c1 == c2, and for a downsampling row that doubles the
channels (c2 = 2 c1) each input channel feeds two outputs. Ultralytics scales its channels like `Conv` in
`parse_model`, so registering it changes nothing in how Ultralytics builds rtdetr-l.

Arguments: a replaced Conv row `[c2, 3, 2]` is kept whole (`DWConv(c1, c2, 3, 2)`, SiLU kept). RT-DETR-l's rows
also pass `d=1, act=False`; yoloab keeps the Conv's activation so that only the grouping changes.
Article placement (rtdetr-l yaml): the backbone's P3, P4 and P5 downsamplings (yolov8 rows 3, 5, 7).
"""

from __future__ import annotations

from ultralytics.nn.modules.conv import DWConv

from ..registry import Placement, register_module

register_module(
    DWConv,
    role="downsample",
    channels="conv",
    paper="MobileNets (depthwise conv), Howard et al., arXiv:1704.04861; as in RT-DETR-l",
    article=Placement("backbone", (8, 16, 32)),
    conv_args=3,  # DWConv(c1, c2, k, s): a Conv row [c2, 3, 2] is kept whole
)

__all__ = ["DWConv"]
