"""DynamicConv from ParameterNet, in the Ultralytics `Conv` form used by the YOLO articles.

Paper: Han et al., "ParameterNet: Parameters Are All You Need for Large-scale Visual Pretraining of Mobile
Networks", CVPR 2024.

Reference: a routing layer (global average pool -> Linear(c1, num_experts) with bias -> sigmoid) mixes
`num_experts` kernels per sample, and the convolution runs as one grouped conv over the batch; this is timm's
`CondConv2d`, reused here. The YOLO articles wrap it like Ultralytics' `Conv`: bias off, padding from `autopad`, then
BatchNorm2d(c2) and the default activation (SiLU). Parameters: num_experts*c2*(c1/g)*k*k + c1*num_experts +
num_experts + 2*c2.

Known measurement trap, kept visible on purpose: `CondConv2d` calls `F.conv2d`, which thop does not see, so
Ultralytics' GFLOPs count misses the main convolution of every DynamicConv. yoloab reports an independent aten count
beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import CondConv2d
from torch import nn
from ultralytics.nn.modules.conv import Conv, autopad

from ..registry import Placement, register_module

# The article swaps the downsampling convs at P3, P4 and P5 of the backbone and both in the head: `all` minus P2.
DYNAMIC_ARTICLE = Placement("all", (8, 16, 32))
PARAMETERNET = "ParameterNet, Han et al., CVPR 2024"


class RoutedCondConv(nn.Module):
    """ParameterNet's dynamic convolution: sigmoid routing over experts feeding timm's CondConv2d."""

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 1,
        s: int = 1,
        p: int | None = None,
        g: int = 1,
        d: int = 1,
        num_experts: int = 4,
    ) -> None:
        """Initialize the routing layer and the expert kernels.

        Args:
            c1: input channels.
            c2: output channels.
            k: kernel size.
            s: stride.
            p: padding; None pads like Ultralytics' `autopad`.
            g: groups.
            d: dilation.
            num_experts: number of expert kernels mixed per sample.
        """
        super().__init__()
        self.routing = nn.Linear(c1, num_experts)
        self.cond_conv = CondConv2d(c1, c2, k, s, autopad(k, p, d), d, g, bias=False, num_experts=num_experts)

    def routing_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample expert weights, shape (batch, num_experts)."""
        return torch.sigmoid(self.routing(F.adaptive_avg_pool2d(x, 1).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve each sample with its own mixture of the expert kernels."""
        return self.cond_conv(x, self.routing_weights(x))


@register_module(role="downsample", channels="conv", paper=PARAMETERNET, article=DYNAMIC_ARTICLE)
class DynamicConv(nn.Module):
    """Dynamic convolution + BatchNorm + activation, a drop-in for Ultralytics' `Conv`."""

    default_act = Conv.default_act

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 1,
        s: int = 1,
        p: int | None = None,
        g: int = 1,
        d: int = 1,
        act: bool | nn.Module = True,
        num_experts: int = 4,
    ) -> None:
        """Initialize like `Conv(c1, c2, k, s, p, g, d, act)`, plus the number of experts.

        Args:
            c1: input channels.
            c2: output channels.
            k: kernel size.
            s: stride.
            p: padding; None pads like `autopad`.
            g: groups.
            d: dilation.
            act: True for the default activation (SiLU), a module to use instead, or False for none.
            num_experts: number of expert kernels.
        """
        super().__init__()
        self.conv = RoutedCondConv(c1, c2, k, s, p, g, d, num_experts)
        self.bn = nn.BatchNorm2d(c2)
        self.act = self.default_act if act is True else act if isinstance(act, nn.Module) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply dynamic convolution, batch norm and activation."""
        return self.act(self.bn(self.conv(x)))


__all__ = ["DYNAMIC_ARTICLE", "PARAMETERNET", "DynamicConv", "RoutedCondConv"]
