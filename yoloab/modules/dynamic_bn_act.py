"""DynamicBnAct, ParameterNet's `ConvBnAct` block with a DynamicConv inside, as used by the YOLO articles.

Paper: Han et al., "ParameterNet", CVPR 2024 (see `dynamic_conv`).

Reference: a DynamicConv (which in the article's YOLO port already carries its own BatchNorm and SiLU), followed by
a second BatchNorm2d(c2) and a ReLU; a residual connection, with optional drop-path, only when `skip` is set, the
stride is 1 and c1 == c2. The doubled normalisation and the SiLU-then-ReLU pair are the article's design and are
kept. Parameters: those of DynamicConv + 2*c2. Same article placement as DynamicConv.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from ..registry import register_module
from .dynamic_conv import DYNAMIC_ARTICLE, PARAMETERNET, DynamicConv


@register_module(role="downsample", channels="conv", paper=PARAMETERNET, article=DYNAMIC_ARTICLE)
class DynamicBnAct(nn.Module):
    """DynamicConv -> BatchNorm2d -> ReLU, with an optional residual."""

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 1,
        s: int = 1,
        d: int = 1,
        pad: int | None = None,
        skip: bool = False,
        act: type[nn.Module] = nn.ReLU,
        norm: type[nn.Module] = nn.BatchNorm2d,
        drop_path: float = 0.0,
        num_experts: int = 4,
    ) -> None:
        """Initialize the block.

        Args:
            c1: input channels.
            c2: output channels.
            k: kernel size.
            s: stride.
            d: dilation.
            pad: padding; None pads like `autopad`.
            skip: add a residual when the stride is 1 and c1 == c2.
            act: activation class applied after the second norm.
            norm: normalisation class of the second norm.
            drop_path: drop-path rate on the residual branch.
            num_experts: number of expert kernels of the DynamicConv.
        """
        super().__init__()
        self.has_residual = skip and s == 1 and c1 == c2
        self.conv = DynamicConv(c1, c2, k, s, pad, d=d, num_experts=num_experts)
        self.bn1 = norm(c2)
        self.act1 = act()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = self.act1(self.bn1(self.conv(x)))
        return x + self.drop_path(y) if self.has_residual else y


__all__ = ["DynamicBnAct"]
