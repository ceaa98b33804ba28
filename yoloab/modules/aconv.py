"""AConv, the downsampling block of YOLOv9's small GELAN models (reused from Ultralytics, not rewritten).

Paper: Wang, Yeh, Liao, "YOLOv9: Learning What You Want to Learn Using Programmable Gradient Information",
arXiv:2402.13616 (2024).

Reference: average-pool 2x2 stride 1, then one 3x3 stride-2 Conv (Conv2d without bias + BatchNorm + SiLU) from c1
to c2 channels: ADown without the channel split and the max-pool branch. Ultralytics ships it as
`ultralytics.nn.modules.block.AConv(c1, c2)` and already scales its channels like `Conv` in `parse_model`, so
registering it changes nothing in how Ultralytics builds its yolov9t/s yaml files.

Arguments: a replaced Conv row `[c2, 3, 2]` becomes `[c2]` (kernel and stride are built in).
Article placement (yolov9t/s yaml): the backbone's P3, P4 and P5 downsamplings and both in the head; the P2
downsampling stays a Conv (yolov8 rows 3, 5, 7, 16, 19).
"""

from __future__ import annotations

from ultralytics.nn.modules.block import AConv

from ..registry import Placement, register_module

register_module(
    AConv,
    role="downsample",
    channels="conv",
    paper="YOLOv9, Wang et al., arXiv:2402.13616",
    article=Placement("all", (8, 16, 32)),
    conv_args=1,  # AConv(c1, c2): a Conv row [c2, 3, 2] becomes [c2]
)

__all__ = ["AConv"]
