"""SCDown, the spatial-channel decoupled downsampling of YOLOv10 (reused from Ultralytics, not rewritten).

Paper: Wang et al., "YOLOv10: Real-Time End-to-End Object Detection", NeurIPS 2024 (arXiv:2405.14458).

Reference: a pointwise Conv (1x1, c1 -> c2, Conv2d without bias + BatchNorm + SiLU) that sets the channels, then a
depthwise Conv (k x k, stride s, groups c2, BatchNorm, no activation) that halves the resolution. Ultralytics ships
exactly this as `ultralytics.nn.modules.block.SCDown(c1, c2, k, s)` and scales its channels like `Conv` in its own
`parse_model`, so registering it changes nothing in how Ultralytics builds its yolov10 yaml files.

Arguments: a replaced Conv row `[c2, 3, 2]` keeps all three (`SCDown(c1, c2, 3, 2)`), as yolov10 rows read.
Article placement (yolov10n/s yaml): the backbone's P4 and P5 downsamplings and the head's downsampling to P5;
the head's P4 downsampling stays a Conv (yolov8 rows 5, 7, 19).
"""

from __future__ import annotations

from ultralytics.nn.modules.block import SCDown

from ..registry import Placement, register_module

register_module(
    SCDown,
    role="downsample",
    channels="conv",
    paper="YOLOv10, Wang et al., NeurIPS 2024, arXiv:2405.14458",
    article=(Placement("backbone", (16, 32)), Placement("head", (32,))),
    conv_args=3,  # SCDown(c1, c2, k, s): a Conv row [c2, 3, 2] is kept whole
)

__all__ = ["SCDown"]
