"""Coordinate Attention (Hou, Zhou & Feng, CVPR 2021), as timm's `CoordAttn` configured to the authors' module.

Paper: Q. Hou, D. Zhou, J. Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
pp. 13713-13722 (arXiv:2103.02907).
Authors' code: github.com/houqb/CoordAttention, `coordatt.py` (class `CoordAtt(inp, oup, reduction=32)`).
Compared with houqb/CoordAttention@7619bea9acbe260b3793833cc78cef3f124c8112 (`coordatt.py`): identical parameter
count and state_dict keys and shapes, loaded across with `load_state_dict`; in float64 on random weights and BN
statistics, c1 = 16 to 256, reduction 32, 16 and 4, square and non-square maps, train and eval mode, max abs
differences: forward 4e-15, input gradient 6e-15, parameter gradients 1e-13, BN running statistics 9e-16 (mean vs
adaptive pooling sum in a different order).

What this module computes, for input x (B, C, H, W) with C = c1:
1. directional average pooling: z_h (B, C, H, 1) = mean over W, z_w (B, C, W, 1) = mean over H (transposed);
2. a shared 1x1 Conv2d(C, mip) with bias on their concatenation along the height axis (B, C, H + W, 1), then
   BatchNorm2d(mip) and h_swish (x * ReLU6(x + 3) / 6), with mip = max(8, C // reduction);
3. split back into the H and W parts; a_h = sigmoid(Conv2d(mip, C) with bias) on the H part, a_w likewise with its
   own conv on the W part (transposed back to (B, C, 1, W));
4. output x * a_w * a_h: C channels, same H and W.
Parameters: 3 C mip + 3 mip + 2 C (conv1 C mip + mip, bn1 2 mip, conv_h and conv_w mip C + C each).

Reuse of timm: `timm.layers.coord_attn.CoordAttn` (timm 1.0.31; `timm.layers` does not re-export it) has the same
layers under the same names (`conv1`, `bn1`, `conv_h`, `conv_w`), the same forward (strip means, shared conv1 + BN +
Hardswish, sigmoid gates, x * a_w * a_h) and Hardswish by default, but two different defaults: convs without bias,
and a bottleneck of make_divisible(C / 16 * 2/3, 8) channels instead of max(8, C // reduction). This class is
`CoordAttn` with `rd_channels=max(8, C // reduction)` and `bias=True` (BatchNorm2d, Hardswish, sigmoid gate and no
skip stated explicitly), which is the authors' module. `nn.Hardswish` computes h_swish exactly; only its one-sided
derivative at exactly x = -3 or 3 differs from autograd through the reference's ReLU6 (never hit in practice).

Kept from the reference: `reduction` as the constructor's hyper-parameter, the mip >= 8 floor (so at small C the
bottleneck is wider than C // reduction, and wider than C itself when C < 8), conv biases, train-mode BatchNorm.
The reference's `oup` (output channels of conv_h/conv_w) is fixed to c1: as an attention row the output must keep
the input's channels, which is also how the authors' MobileNetV2 uses it (`CoordAtt(hidden_dim, hidden_dim)`).
Inside an Ultralytics model, `initialize_weights` resets every BatchNorm2d, this `bn1` included, to eps 1e-3 and
momentum 0.03 (PyTorch's defaults 1e-5 and 0.1 standalone); it would do the same to the reference module.
The pretrained `mbv2_ca.py` of the same repository names the two output convs `conv2`/`conv3`; the state_dict
layout here follows the standalone `coordatt.py`.
"""

from __future__ import annotations

from timm.layers.coord_attn import CoordAttn
from torch import nn

from yoloab.registry import channel_count_note, register_module

__all__ = ["CoordAtt"]


@register_module(
    role="attention",
    paper="Coordinate Attention, Hou, Zhou & Feng, CVPR 2021, arXiv:2103.02907",
    # public yaml rows such as [-1, 1, CoordAtt, [256]] give a channel count where yoloab reads reduction
    row_notes=(channel_count_note("CoordAtt", "reduction"),),
)
class CoordAtt(CoordAttn):
    """Coordinate attention: channel gates factorised into a height gate and a width gate.

    Args:
        c1: input (and output) channels.
        reduction: bottleneck reduction; the bottleneck has max(8, c1 // reduction) channels.

    Raises:
        ValueError: `c1` or `reduction` is not positive.
    """

    def __init__(self, c1: int, reduction: int = 32) -> None:
        if c1 < 1 or reduction < 1:
            raise ValueError(f"CoordAtt needs positive c1 and reduction, got c1={c1}, reduction={reduction}")
        mip = max(8, c1 // reduction)
        super().__init__(
            c1,
            rd_channels=mip,
            bias=True,
            act_layer=nn.Hardswish,
            norm_layer=nn.BatchNorm2d,
            gate_layer="sigmoid",
            has_skip=False,
        )
        self.reduction = reduction
        self.mip = mip
