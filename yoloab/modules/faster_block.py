"""Faster Block: FasterNet's partial convolution (PConv) followed by a two-layer pointwise MLP, with a residual.

Paper: J. Chen, S. Kao, H. He, W. Zhuo, S. Wen, C.-H. Lee, S.-H. G. Chan, "Run, Don't Walk: Chasing Higher FLOPS for
Faster Neural Networks", CVPR 2023 (arXiv:2303.03667).
Authors' code: github.com/JierunChen/FasterNet, `models/fasternet.py` (`Partial_conv3`, `MLPBlock`), compared at
commit e8fba4465ae912359c9f661a72b14e39347e4954 with weights copied by state_dict: in float64, train and eval
outputs, input and parameter gradients and BatchNorm running stats agree to max abs difference 0 (ReLU and GELU,
layer scale on and off, c in {16, 24, 30}, n_div in {2, 4}, mlp_ratio in {1, 2}); the same seed gives the same init.

What it computes, for x (B, c, H, W) with c = c2, cp = c // n_div and h = int(c * mlp_ratio):
1. PConv: a 3x3 Conv2d(cp, cp, padding 1, no bias) on the first cp channels; the other c - cp channels pass
   untouched and are concatenated after them (the reference's "split_cat" path);
2. MLP: Conv2d(c, h, 1, no bias) -> BatchNorm2d(h) -> activation -> Conv2d(h, c, 1, no bias);
3. optional layer scale (a per-channel vector, created only when `layer_scale_init_value > 0`), drop-path and the
   residual: out = x + drop_path(gamma * mlp(pconv(x))).
Parameters: 9 cp^2 + c h + 2 h + h c (+ c with layer scale), plus c1 c2 + 2 c2 for the adapter when c1 != c2.
Attribute names and construction order are the reference's (`spatial_mixing.partial_conv3`, `mlp.0/1/3`,
`layer_scale`), so its state_dicts load as they are and a seeded init is the same.

Host contract (the `block` role): C2f / C3k2 / C3 call `FasterBlock(c, c, shortcut)` where they would build
`Bottleneck(c, c, shortcut, ...)`; inside C3k2 with c3k=True it replaces the Bottlenecks of each C3k.
- Shortcut: FasterNet always adds the residual; Bottleneck adds it only when shortcut and c1 == c2, and Ultralytics'
  head rows pass shortcut=False. This block honours the host's flag, so that an ablation changes one thing:
  shortcut=False returns gamma * mlp(pconv(x)). Drop-path then has no effect: stochastic depth drops a residual
  branch, and without the residual there is nothing to fall back on. The field's `C2f_Faster` copies ignore the
  flag and always add the residual, head rows included.
- Channels: a yaml row `[-1, 1, Faster, [c2]]` builds `FasterBlock(c1, c2)`. When c1 != c2 a 1x1 Ultralytics
  `Conv` (Conv2d without bias + BatchNorm + SiLU), `adjust_channel`, maps c1 to c2 first and the residual is taken
  after it, as in the field's `Faster_Block`. Inside a host c1 == c2 and there is no adapter.

Activation: ReLU by default, built in place as the reference does: the authors' configs use ReLU for FasterNet-T2,
-S, -M and -L and GELU for T0 and T1 (`act="gelu"`; `cfg/fasternet_*.yaml`, also timm's `fasternet_t0/t1`). ReLU is
the reference code's own default (`act_layer='RELU'`), the choice of every variant of T2's width or more, and the
cheaper one at detector resolutions, where this block is chosen for latency.

PConv forward paths: the reference offers "split_cat" (training and inference) and "slicing" (inference only: clone
the input, overwrite its first cp channels). Its slicing reads the conv's input from the clone it then overwrites,
so backward fails in training. Here "slicing" reads from the untouched input and writes into the clone: same
output, and autograd works in both modes. "split_cat" stays the default, as in the reference.

Not reused from timm 1.0.31 (`timm.models.fasternet.MLPBlock` / `Partial_conv3`, which equal the reference, same
parameters, layout and forward): timm binds the PConv path at construction (`self.forward = ...`) and keeps the
reference's slicing path that fails backward, and its MLPBlock always adds the residual, so both forwards would need
overriding and the PConv would have to be swapped after construction, leaving nothing of timm but five layer
constructors.

Not part of the block, hence not applied: the authors' FasterNet initialises every Conv2d with trunc_normal(std 0.02)
at network level; this block keeps PyTorch's default init, as the field copies do. Inside a YOLO model Ultralytics
sets every BatchNorm2d to eps 1e-3 and momentum 0.03 (the reference's are 1e-5 and 0.1), as for all its blocks.
Quirk kept: cp = c // n_div rounds down when n_div does not divide c.

Differences of the field's `Faster_Block` (the YOLO "C2f-Faster" copies) from this block: their MLP's first 1x1 conv,
BN and activation is one Ultralytics `Conv`, so SiLU instead of ReLU/GELU; drop_path defaults to 0.1 (here 0, like
the Bottleneck it replaces; the reference sets drop-path per block from a network-level schedule); the shortcut flag is
ignored; with layer scale on, their forward skips the channel adapter. Their parameter count equals this one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from timm.layers import DropPath
from torch import nn
from ultralytics.nn.modules.conv import Conv

from yoloab.registry import register_module

__all__ = ["ACTIVATIONS", "PCONV_FORWARDS", "FasterBlock", "PConv", "faster_block_params"]

# partial(ReLU, inplace=True) is what the reference builds; it follows a BatchNorm, whose backward does not read its
# output, so the in-place write is safe for autograd.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": partial(nn.ReLU, inplace=True),
    "gelu": nn.GELU,
}
PCONV_FORWARDS = ("split_cat", "slicing")


def faster_block_params(c1: int, c2: int, n_div: int = 4, mlp_ratio: float = 2.0, layer_scale: bool = False) -> int:
    """Closed-form parameter count of a `FasterBlock` (BatchNorm weight and bias counted, running stats not).

    Args:
        c1: input channels.
        c2: output channels (the block's width c).
        n_div: the PConv convolves c2 // n_div channels.
        mlp_ratio: hidden width factor of the MLP.
        layer_scale: whether the block has a layer-scale vector.

    Returns:
        9 cp^2 + 2 c h + 2 h (+ c with layer scale) (+ c1 c2 + 2 c2 for the adapter when c1 != c2).
    """
    cp, h = c2 // n_div, int(c2 * mlp_ratio)
    adapter = c1 * c2 + 2 * c2 if c1 != c2 else 0
    return 9 * cp * cp + 2 * c2 * h + 2 * h + (c2 if layer_scale else 0) + adapter


class PConv(nn.Module):
    """FasterNet's partial convolution: a 3x3 conv on the first dim // n_div channels, the rest passed through.

    Attributes:
        dim_conv3: channels the 3x3 conv sees.
        dim_untouched: channels passed through unchanged.
        forward_type: `"split_cat"` or `"slicing"`.
    """

    def __init__(self, dim: int, n_div: int = 4, forward_type: str = "split_cat") -> None:
        """Build the partial convolution.

        Args:
            dim: input and output channels.
            n_div: the conv sees dim // n_div channels.
            forward_type: `"split_cat"` (split, convolve, concatenate) or `"slicing"` (write into a copy).

        Raises:
            ValueError: unknown forward type, or dim // n_div == 0.
        """
        super().__init__()
        if forward_type not in PCONV_FORWARDS:
            raise ValueError(f"unknown PConv forward {forward_type!r}; expected one of {', '.join(PCONV_FORWARDS)}")
        if dim // n_div < 1:
            raise ValueError(f"PConv needs dim >= n_div for a non-empty partial conv, got dim={dim}, n_div={n_div}")
        self.dim_conv3 = dim // n_div
        self.dim_untouched = dim - self.dim_conv3
        self.forward_type = forward_type
        self.partial_conv3 = nn.Conv2d(self.dim_conv3, self.dim_conv3, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve the first `dim_conv3` channels, keep the others.

        Args:
            x: input of shape (B, dim, H, W); never modified.

        Returns:
            Output of shape (B, dim, H, W).
        """
        if self.forward_type == "slicing":
            out = x.clone()
            # Read the conv input from x, not from `out`: overwriting the tensor the conv saved for backward (the
            # reference's order) breaks the weight gradient in training.
            out[:, : self.dim_conv3] = self.partial_conv3(x[:, : self.dim_conv3])
            return out
        x1, x2 = torch.split(x, [self.dim_conv3, self.dim_untouched], dim=1)
        return torch.cat((self.partial_conv3(x1), x2), 1)


def _activation(act: str | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    if callable(act):
        return act
    try:
        return ACTIVATIONS[act.lower()]
    except KeyError:
        raise ValueError(f"unknown FasterBlock activation {act!r}; expected one of {', '.join(ACTIVATIONS)}") from None


@register_module(
    name="Faster",
    role="block",
    paper="FasterNet: Chen et al., Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks, CVPR 2023, "
    "arXiv:2303.03667",
)
class FasterBlock(nn.Module):
    """FasterNet block (PConv -> 1x1 conv -> BN -> act -> 1x1 conv, residual) with the Bottleneck call signature.

    Attributes:
        add: whether the residual is added (the host's `shortcut`).
        spatial_mixing: the PConv.
        mlp: Conv2d(c, h, 1), BatchNorm2d(h), activation, Conv2d(h, c, 1).
        layer_scale: the per-channel scale, or None.
        adjust_channel: the 1x1 Conv mapping c1 to c2, or None when c1 == c2.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        shortcut: bool = True,
        n_div: int = 4,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 0.0,
        act: str | Callable[[], nn.Module] = "relu",
        pconv_fw_type: str = "split_cat",
    ) -> None:
        """Build the block.

        Args:
            c1: input channels; a 1x1 Conv adapts them to c2 when they differ.
            c2: output channels, the width of the FasterNet block.
            shortcut: add the residual (FasterNet always does; Ultralytics' head rows pass False).
            n_div: the PConv convolves the first c2 // n_div channels (the paper's partial ratio r = 1 / n_div).
            mlp_ratio: the MLP's hidden width is int(c2 * mlp_ratio).
            drop_path: stochastic-depth rate of the residual branch (no effect without `shortcut`).
            layer_scale_init_value: initial per-channel scale of the branch; 0 means none, as in every FasterNet.
            act: `"relu"` (FasterNet-T2..L, default), `"gelu"` (T0, T1) or a callable returning an nn.Module.
            pconv_fw_type: `"split_cat"` (default) or `"slicing"`; see `PConv`.

        Raises:
            ValueError: c2 < n_div, an unknown activation or an unknown PConv forward.
        """
        if c2 // n_div < 1:
            raise ValueError(f"FasterBlock needs c2 >= n_div for a non-empty partial conv, got c2={c2}, n_div={n_div}")
        super().__init__()
        act_layer = _activation(act)
        hidden = int(c2 * mlp_ratio)
        self.add = bool(shortcut)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # The reference's order (mlp, then PConv, then layer scale), so that a seeded init draws the same weights.
        self.mlp = nn.Sequential(
            nn.Conv2d(c2, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            act_layer(),
            nn.Conv2d(hidden, c2, 1, bias=False),
        )
        self.spatial_mixing = PConv(c2, n_div, pconv_fw_type)
        self.layer_scale = nn.Parameter(layer_scale_init_value * torch.ones(c2)) if layer_scale_init_value > 0 else None
        self.adjust_channel = Conv(c1, c2, 1) if c1 != c2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the adapter (if any), PConv and the MLP, then the residual when `add`.

        Args:
            x: input of shape (B, c1, H, W).

        Returns:
            Output of shape (B, c2, H, W).
        """
        if self.adjust_channel is not None:
            x = self.adjust_channel(x)
        y = self.mlp(self.spatial_mixing(x))
        if self.layer_scale is not None:
            y = self.layer_scale[:, None, None] * y
        return x + self.drop_path(y) if self.add else y
