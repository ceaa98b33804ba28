"""ECA: the efficient channel attention of Wang et al. (CVPR 2020), as timm's `EcaModule` with the paper's kernel size.

Paper: Q. Wang, B. Wu, P. Zhu, P. Li, W. Zuo, Q. Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, pp. 11534-11542, arXiv:1910.03151.
Authors' code: github.com/BangguWu/ECANet, `models/eca_module.py` (`eca_layer`).

Compared with BangguWu/ECANet@b332f6b3e6e2afe8a3287dc8ee8440a0fbec74c4: `eca_layer(c, k)` vs `ECA(c, k)`, with k
the adaptive size and 1, 3, 5, 7, state_dict loaded as is (same key `conv.weight`), float64 with N(0, 1) weights,
c in {1, 4, 7, 8, 16, 32, 64, 128, 256, 512}: parameter count equal; max abs difference 8.9e-16 (forward and input
gradient), 4.4e-14 (weight gradient), from `mean` vs `AdaptiveAvgPool2d` rounding.

What it computes, for x (B, C, H, W):
1. z = the mean of x over H and W, one value per channel (global average pooling);
2. a = sigmoid(w * z): a 1D convolution across the channel axis with one shared, bias-free kernel w of odd size k
   and zero padding (k - 1) / 2, so a_c = sigmoid(sum_j w_j z_{c + j - (k - 1)/2});
3. y = x * a, a broadcast over H and W.
Parameters: k.

Kernel size: `k_size=None` (the default) applies the paper's adaptive mapping, Eq. (12):
k = |log2(C) / gamma + b / gamma|_odd with gamma = 2, b = 1, computed as t = int((log2(C) + b) / gamma),
k = t if t is odd else t + 1 (the form timm and most re-implementations use). This gives k = 3 for
C = 8..127, 5 for C = 128..2047 and 1 for C < 8. The authors' `eca_layer` itself defaults to a fixed k_size = 3 and
its ResNet scripts pass k per stage by hand (`--ksize 3557`); pass `k_size=3` to get that default. Any explicit
k_size must be odd: the reference's padding (k - 1) // 2 returns C - 1 channels for an even k and then fails.

Reuse: this class is timm's `timm.layers.EcaModule` (same `conv` Conv1d(1, 1, k, bias=False) as the reference, so
state_dicts load either way, and the same forward), built with `channels=None` and the kernel size computed here.
timm's own adaptive mode (`channels=C`) clamps k to at least 3, which differs from the paper for C < 8 (k = 1).
Ultralytics ships no ECA block.
"""

from __future__ import annotations

import math

from timm.layers import EcaModule

from yoloab.registry import channel_count_note, register_module

__all__ = ["ECA", "eca_kernel_size"]


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The paper's adaptive 1D kernel size, Eq. (12): the odd number nearest to (log2(C) + b) / gamma.

    Args:
        channels: number of channels C.
        gamma: the paper's gamma.
        b: the paper's b.

    Returns:
        int((log2(C) + b) / gamma), plus one when even.
    """
    # log2, not log(C, 2): the latter is inexact for some powers of two (log(2**29, 2) > 29).
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@register_module(
    role="attention",
    paper="ECA-Net: Efficient Channel Attention, Wang et al., CVPR 2020, arXiv:1910.03151",
    # public yaml rows such as [-1, 1, ECA, [256]] give a channel count where yoloab reads k_size
    row_notes=(channel_count_note("ECA", "k_size"),),
)
class ECA(EcaModule):
    """Efficient channel attention: x * sigmoid(conv1d_k(avgpool(x))) across channels, k adaptive by default.

    Args:
        c1: input (and output) channels C.
        k_size: odd kernel size of the 1D convolution; None selects it from C with the paper's Eq. (12).
        gamma: gamma of Eq. (12), used only when `k_size` is None.
        b: b of Eq. (12), used only when `k_size` is None.

    Raises:
        ValueError: `k_size` is not a positive odd number.
    """

    def __init__(self, c1: int, k_size: int | None = None, gamma: float = 2, b: float = 1) -> None:
        k = eca_kernel_size(c1, gamma, b) if k_size is None else k_size
        if k < 1 or k % 2 == 0:
            raise ValueError(f"ECA needs a positive odd kernel size, got k_size={k}")
        super().__init__(channels=None, kernel_size=k)
        self.k_size = k
