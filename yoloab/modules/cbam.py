"""CBAM: the convolutional block attention module of Woo et al. (ECCV 2018), ported from Jongchan/attention-module.

Paper: S. Woo, J. Park, J.-Y. Lee, I. S. Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
pp. 3-19, arXiv:1807.06521.
Authors' code: github.com/Jongchan/attention-module, `MODELS/cbam.py` (`CBAM`, `ChannelGate`, `SpatialGate`).

Compared with Jongchan/attention-module@459efad0e05ee7dde50c41ca10a3d0800bc3792a: `CBAM(c, r)` vs `CBAM(c, r)`
(kernel 7, the authors' only size), state_dict loaded as is (same keys), float64 with N(0, 1) weights and random BN
statistics, c in {8, 16, 32, 64, 128, 256}, r in {16, 8}, in train mode, in eval mode and on inputs with many tied
maxima: parameter count equal; max abs difference 4.6e-15 (forward), 8.6e-14 (input gradient), 7.4e-13 (parameter
gradients); BN running statistics after a training step exactly equal. With tied maxima the gradients are exactly
equal (`amax`, which splits a tied maximum's gradient, would not be). Built under the same seed, both draw the same
initial weights (same layers, same construction order).

What it computes, for x (B, C, H, W), r = `reduction`, k = `kernel_size`:
1. channel attention: a shared MLP (Linear(C, C // r) with bias, ReLU, Linear(C // r, C) with bias) applied to the
   spatial average and to the spatial maximum of x; x' = x * sigmoid(MLP(avg) + MLP(max)), per channel;
2. spatial attention: the channel-wise maximum and mean of x', stacked in that order (2, H, W), go through a k x k
   conv (2 -> 1, padding (k - 1) / 2, no bias) and BatchNorm2d(1); y = x' * sigmoid(BN(conv(...))), per position.
Parameters: 2 C (C // r) + C // r + C (the MLP) + 2 k^2 (the conv) + 2 (BN weight and bias); BN also keeps running
statistics (buffers).

Quirks of the reference, kept:
- the spatial pool stacks [max, mean] (the paper's Eq. (3) writes [AvgPool; MaxPool]); with a trained conv the
  order matters, and the authors' checkpoints follow the code;
- the spatial BatchNorm uses eps 1e-5 and momentum 0.01 (PyTorch convention: running = 0.99 running + 0.01 batch),
  not PyTorch's default momentum 0.1; the paper mentions no normalisation there at all;
- the MLP's hidden width is exactly C // r with no lower bound or rounding.
Refused where the reference is silently degenerate: for C < r the reference builds zero-width Linear layers (PyTorch
warns "Initializing zero-element tensors is a no-op") and its channel gate becomes the constant sigmoid(2 b2),
independent of the input. This module raises instead: in a yaml row that case almost always means a channel count
written where the reduction ratio goes (`[-1, 1, CBAM, [1024]]`, the form of Ultralytics' own CBAM(c1)); the row
needs no channel argument here (`[-1, 1, CBAM, []]`). With r = 16 every YOLO width from 16 up has a hidden unit.
- attribute names follow the reference (`ChannelGate.mlp.1`, `ChannelGate.mlp.3`, `SpatialGate.spatial.conv`,
  `SpatialGate.spatial.bn`), so the authors' CBAM weights load with `load_state_dict` unchanged.
Not exposed: the reference's ablation switches (`pool_types` with 'lp'/'lse', `no_spatial`); the paper's module is
the default avg + max with spatial attention. `kernel_size` is a constructor argument here (the reference hard-codes
7; the paper ablates 3 and 7).

Why not timm's `timm.layers.CbamModule`: it stacks [mean, max] in the spatial pool, its BatchNorm uses momentum 0.1,
its MLP has no bias by default and is made of 1x1 convs (other parameter shapes and keys), and it rounds the hidden
width (`make_divisible(C / r)`: 24 channels / 16 -> 2, not 1).
Why not Ultralytics' `ultralytics.nn.modules.conv.CBAM`: it is not the paper's module. Its channel attention is a
global average pool and one 1x1 conv (C -> C, with bias) with no max-pool branch and no reduction MLP, and its
spatial attention stacks [mean, max] and has no BatchNorm. Rows naming `CBAM` in a yaml built through yoloab get
this module, with this constructor.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from yoloab.registry import channel_count_note, register_module

__all__ = ["CBAM", "ChannelGate", "SpatialGate"]


class ChannelGate(nn.Module):
    """CBAM's channel attention: x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))).

    Args:
        c1: channels C.
        reduction: reduction ratio r of the shared MLP (hidden width C // r).
    """

    def __init__(self, c1: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = c1 // reduction
        # Flatten at index 0 keeps the reference's parameter keys (mlp.1, mlp.3).
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c1, hidden), nn.ReLU(), nn.Linear(hidden, c1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of x (B, C, H, W) by its attention weight."""
        # Global adaptive pools export as GlobalAveragePool/GlobalMaxPool and, like the reference's full-map
        # max_pool2d, send a tied maximum's gradient to one element only.
        att = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(att)[..., None, None]


class SpatialGate(nn.Module):
    """CBAM's spatial attention: x * sigmoid(BN(conv_k([max_c(x), mean_c(x)]))).

    Args:
        kernel_size: odd size k of the 2 -> 1 convolution.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.spatial = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False),
                bn=nn.BatchNorm2d(1, eps=1e-5, momentum=0.01),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each position of x (B, C, H, W) by its attention weight."""
        pooled = torch.cat((x.max(dim=1, keepdim=True).values, x.mean(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


@register_module(
    role="attention",
    paper="CBAM: Convolutional Block Attention Module, Woo, Park, Lee & Kweon, ECCV 2018, arXiv:1807.06521",
    # public yaml rows such as [-1, 1, CBAM, [256]] give a channel count where yoloab reads reduction
    row_notes=(channel_count_note("CBAM", "reduction"),),
)
class CBAM(nn.Module):
    """The paper's CBAM: channel attention (avg + max through a shared MLP), then spatial attention.

    Args:
        c1: input (and output) channels C.
        reduction: reduction ratio r of the channel MLP (hidden width C // r).
        kernel_size: odd kernel size of the spatial attention conv.

    Raises:
        ValueError: `reduction` is not positive or leaves no hidden unit, or `kernel_size` is not a positive odd number.
    """

    def __init__(self, c1: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"CBAM needs a positive reduction ratio, got reduction={reduction}")
        if c1 // reduction < 1:
            raise ValueError(
                f"CBAM(c1={c1}, reduction={reduction}) has c1 // reduction = 0 hidden units; use reduction <= {c1} "
                "(a yaml row takes no channel count: [-1, 1, CBAM, []])"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CBAM needs a positive odd kernel size, got kernel_size={kernel_size}")
        self.ChannelGate = ChannelGate(c1, reduction)
        self.SpatialGate = SpatialGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine x (B, C, H, W) by channel then spatial attention; the output has the same shape."""
        return self.SpatialGate(self.ChannelGate(x))
