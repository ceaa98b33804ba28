"""ADown, the YOLOv9 downsampling block (reused from Ultralytics, not rewritten).

Paper: Wang, Yeh, Liao, "YOLOv9: Learning What You Want to Learn Using Programmable Gradient Information",
arXiv:2402.13616 (2024).

Reference: average-pool 2x2 stride 1, split channels in halves; half one goes through a 3x3 stride-2 Conv
(Conv2d without bias + BatchNorm + SiLU), half two through a 3x3 stride-2 max-pool (padding 1) then a 1x1 Conv;
each branch outputs c2/2 channels; the two are concatenated. Ultralytics ships exactly this as
`ultralytics.nn.modules.block.ADown` and already scales its channels like `Conv`, so yoloab only registers the
class with its metadata. Article placement: every downsampling conv but the stem (`all`); the article also shows a
backbone-only version.
"""

from __future__ import annotations

from ultralytics.nn.modules.block import ADown

from ..registry import Placement, register_module

register_module(
    ADown,
    role="downsample",
    channels="conv",
    paper="YOLOv9, Wang et al., arXiv:2402.13616",
    article=Placement("all"),
    conv_args=1,  # ADown(c1, c2): a Conv row [c2, 3, 2] becomes [c2]
)

__all__ = ["ADown"]
