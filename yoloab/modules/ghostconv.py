"""GhostConv, the cheap-operation convolution of GhostNet (reused from Ultralytics, not rewritten).

Paper: Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020 (arXiv:1911.11907).

Reference: a primary Conv (k x k, stride s, c1 -> c2/2) and a cheap depthwise 5x5 Conv on its output (c2/2 ->
c2/2, groups c2/2), both Conv2d without bias + BatchNorm + SiLU; the two halves are concatenated. Ultralytics
ships it as `ultralytics.nn.modules.conv.GhostConv(c1, c2, k, s, g, act)` and scales its channels like `Conv` in
`parse_model`, so registering it changes nothing in how Ultralytics builds yolov8-ghost.

Arguments: a replaced Conv row `[c2, 3, 2]` is kept whole (`GhostConv(c1, c2, 3, 2)`).
Article placement (Ultralytics' yolov8-ghost yaml): every downsampling conv but the stem (`all`).
"""

from __future__ import annotations

from ultralytics.nn.modules.conv import GhostConv

from ..registry import Placement, register_module

register_module(
    GhostConv,
    role="downsample",
    channels="conv",
    paper="GhostNet, Han et al., CVPR 2020, arXiv:1911.11907",
    article=Placement("all"),
    conv_args=3,  # GhostConv(c1, c2, k, s): a Conv row [c2, 3, 2] is kept whole
)

__all__ = ["GhostConv"]
