"""AKConv, the alterable-kernel convolution of Zhang et al. (arXiv:2311.11587), ported from CV-ZhangXin/AKConv.

Also registered as `LDConv`: the same authors later renamed the module "LDConv: Linear deformable convolution for
improving convolutional neural networks" (Image and Vision Computing 2024; arXiv:2311.11587 v3, CV-ZhangXin/LDConv).
`LDConv` is a registry alias of this class, not a second implementation: rows and `--module` accept either name.

The reference predicts, with a zero-initialised 3x3 conv, a (row, col) offset for each of `num_param` kernel points
at every output cell, samples the input bilinearly at `cell * stride + kernel point + offset` (no padding), stacks
the N samples of a cell along the height axis and reduces them with an (N, 1) conv of stride (N, 1), BN and SiLU.

Kept from the reference, on purpose, so that its numbers and state_dicts carry over:
- the initial kernel layout (a round(sqrt(N))-wide grid filled row by row, the remainder on an extra row);
- the bilinear sampling that clamps both corners and the position into the image: a position p < 0 or p >= H-1
  (likewise W-1) gets weight 1 on both corners of that axis, so it returns 2x the border value (4x in a corner);
- the attribute names `conv` and `p_conv`, the construction order (same random init) and `bias=None` meaning no
  bias on the reducing conv, while `p_conv` keeps PyTorch's default bias.

Avoided: copies in circulation build the grids with `meshgrid(..., indexing='xy')`, which transposes the sampling
grid on square maps and scrambles it on non-square ones; this port uses the original `'ij'` orientation. Dropped:
the reference's backward hook meant to scale offset gradients by 0.1, which has no effect (it rebinds locals).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from yoloab.registry import MODULES, Placement, register_module

__all__ = ["AKConv", "kernel_points"]


def kernel_points(num_param: int) -> list[tuple[int, int]]:
    """List the initial (row, col) sampling points of an AKConv kernel, in the reference's order.

    Args:
        num_param: number of kernel points N.

    Returns:
        A round(sqrt(N))-wide grid filled row-major, then the N % width remaining points on one more row.

    Raises:
        ValueError: `num_param` is not positive.
    """
    if num_param < 1:
        raise ValueError(f"AKConv needs at least one kernel point, got num_param={num_param}")
    width = round(math.sqrt(num_param))
    rows, extra = divmod(num_param, width)
    return [(r, c) for r in range(rows) for c in range(width)] + [(rows, c) for c in range(extra)]


@register_module(
    role="downsample",
    channels="conv",
    paper=(
        "Zhang et al., AKConv: Convolutional Kernel with Arbitrary Sampled Shapes and Arbitrary Number of "
        "Parameters, arXiv:2311.11587"
    ),
    article=Placement("backbone", (4, 8)),
)
class AKConv(nn.Module):
    """Convolution over N learnable sampling points per output cell.

    Args:
        c1: input channels.
        c2: output channels.
        num_param: number of kernel points N.
        stride: stride of the sampling grid and of the offset conv.
        bias: bias of the reducing conv; the reference's default `None` means none.
    """

    def __init__(self, c1: int, c2: int, num_param: int, stride: int = 1, bias: bool | None = None) -> None:
        super().__init__()
        kernel_points(num_param)  # validates num_param before any layer is built
        self.num_param = num_param
        self.stride = stride
        # Built before p_conv, as in the reference, so that a seeded init matches it.
        self.conv = nn.Sequential(
            nn.Conv2d(c1, c2, kernel_size=(num_param, 1), stride=(num_param, 1), bias=bias),
            nn.BatchNorm2d(c2),
            nn.SiLU(),
        )
        self.p_conv = nn.Conv2d(c1, 2 * num_param, kernel_size=3, padding=1, stride=stride)
        nn.init.constant_(self.p_conv.weight, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sample the input at the offset kernel points and reduce the samples.

        Args:
            x: input of shape (B, c1, H, W).

        Returns:
            Output of shape (B, c2, floor((H - 1) / stride) + 1, floor((W - 1) / stride) + 1).
        """
        offset = self.p_conv(x)
        n = self.num_param
        height, width = x.shape[2:]
        # (b, h, w, 2N): row positions in [..., :N], column positions in [..., N:]
        p = (self._get_p_0(offset) + self._get_p_n(offset) + offset).permute(0, 2, 3, 1)

        q_lt = p.detach().floor()
        q_rb = q_lt + 1
        q_lt = self._clamp(q_lt, n, height, width).long()
        q_rb = self._clamp(q_rb, n, height, width).long()
        q_lb = torch.cat([q_lt[..., :n], q_rb[..., n:]], dim=-1)
        q_rt = torch.cat([q_rb[..., :n], q_lt[..., n:]], dim=-1)
        # An axis's two weights sum to 1 only while q_rb = q_lt + 1; once clamping merges the corners they sum to 2,
        # which is the reference's 2x at the border. Clamping p too does not change that, only rounding far out.
        p = self._clamp(p, n, height, width)

        def weight(q: torch.Tensor, row_sign: int, col_sign: int) -> torch.Tensor:
            d = q.to(p.dtype) - p
            return (1 + row_sign * d[..., :n]) * (1 + col_sign * d[..., n:])

        x_offset = (
            weight(q_lt, 1, 1).unsqueeze(1) * self._gather(x, q_lt, n)
            + weight(q_rb, -1, -1).unsqueeze(1) * self._gather(x, q_rb, n)
            + weight(q_lb, 1, -1).unsqueeze(1) * self._gather(x, q_lb, n)
            + weight(q_rt, -1, 1).unsqueeze(1) * self._gather(x, q_rt, n)
        )
        return self.conv(rearrange(x_offset, "b c h w n -> b c (h n) w"))

    def _get_p_n(self, offset: torch.Tensor) -> torch.Tensor:
        """Build the initial kernel points as (1, 2N, 1, 1): N row coordinates, then N column coordinates."""
        n = self.num_param
        width = round(math.sqrt(n))
        rows, extra = divmod(n, width)
        grid_r, grid_c = torch.meshgrid(
            torch.arange(rows, device=offset.device), torch.arange(width, device=offset.device), indexing="ij"
        )
        tail_c = torch.arange(extra, device=offset.device)
        p_n_r = torch.cat([grid_r.flatten(), torch.full_like(tail_c, rows)])
        p_n_c = torch.cat([grid_c.flatten(), tail_c])
        return torch.cat([p_n_r, p_n_c]).view(1, 2 * n, 1, 1).to(offset.dtype)

    def _get_p_0(self, offset: torch.Tensor) -> torch.Tensor:
        """Build the top-left sampling position of every output cell as (1, 2N, h, w), without padding."""
        n = self.num_param
        h, w = offset.shape[2:]
        s = self.stride
        p_0_r, p_0_c = torch.meshgrid(
            torch.arange(0, h * s, s, device=offset.device),
            torch.arange(0, w * s, s, device=offset.device),
            indexing="ij",
        )
        return torch.cat([p_0_r.expand(1, n, h, w), p_0_c.expand(1, n, h, w)], dim=1).to(offset.dtype)

    @staticmethod
    def _clamp(p: torch.Tensor, n: int, height: int, width: int) -> torch.Tensor:
        """Clamp row positions into [0, height-1] and column positions into [0, width-1]."""
        return torch.cat([p[..., :n].clamp(0, height - 1), p[..., n:].clamp(0, width - 1)], dim=-1)

    @staticmethod
    def _gather(x: torch.Tensor, q: torch.Tensor, n: int) -> torch.Tensor:
        """Read x at integer positions q of shape (b, h, w, 2N); returns (b, c, h, w, N)."""
        b, h, w, _ = q.shape
        c = x.shape[1]
        index = (q[..., :n] * x.shape[3] + q[..., n:]).view(b, 1, h * w * n)
        # An expanded (stride-0) index avoids materialising c copies, unlike the reference's .contiguous().
        return x.flatten(2).gather(-1, index.expand(b, c, h * w * n)).view(b, c, h, w, n)


MODULES.alias("LDConv", "AKConv", "the authors' later name (Image and Vision Computing 2024)")
