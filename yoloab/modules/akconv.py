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
Changed for NaN only: the reference turns a NaN position into index -2**63 and its gather raises, which made
Ultralytics' `get_flops` (it feeds uninitialised `torch.empty` memory) fail at random; a NaN position reads pixel 0
here, and the NaN still reaches the output through the weights. Finite inputs are untouched.

Two formulations of the same function (`impl`; every profile and run record names the one built, `akconv_impl`):
- `faithful` (the default): the reference's own steps: four `gather`s of every channel at the four bilinear corners,
  weighted, stacked as (b, c, h*N, w) and reduced by the (N, 1) conv, differentiated by autograd.
- `fast`: the same positions, corners and weights from the same expressions (so the same floors, clamps and kinks of
  bilinear sampling at integer positions), the four corners read in one `index_select` of channel-last rows, the
  sampling's backward written out (`_BilinearSamples`), then the same `conv` layers on the same stacked samples.
  Equal to `faithful` in float64 on the forward and every gradient to 1e-12, integer positions included
  (tests/test_akconv.py). On CPU it measured 1.3-1.5x faster per training step at yolov8n's row-1 shape
  (AKConv(16, 32, 3, 2) on 1x16x320x320, one thread, shared 2-core machine): short of the 2x that would make it the
  default (docs/training-cost.md). On CUDA it is not measured yet.
Both hold the same parameters under the same names, so state_dicts and checkpoints interchange. Choose with the
constructor's (and yaml row's) fifth argument (`[c2, N, s, None, fast]`), or with the `YOLOAB_AKCONV` environment
variable for modules built without one; the argument wins. A pickled model (an Ultralytics checkpoint) keeps the
choice it was built with; one saved before the choice existed runs `faithful`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from einops import rearrange
from torch import nn
from torch.autograd.function import once_differentiable

from yoloab.errors import did_you_mean
from yoloab.registry import BUILD_ENV, MODULES, Placement, register_module

__all__ = ["IMPLS", "AKConv", "kernel_points", "resolve_impl"]

IMPLS = ("faithful", "fast")
"""The formulations of AKConv's forward (module doc); the first is the default."""
IMPL_ENV = "YOLOAB_AKCONV"
"""Environment variable choosing the formulation of modules built without an explicit `impl`."""
BUILD_ENV.add(IMPL_ENV)  # a profile measured under it is another measurement: part of its key


def resolve_impl(impl: str | None) -> str:
    """The formulation a new AKConv uses: `impl` if given, else `$YOLOAB_AKCONV`, else `faithful`.

    Raises:
        ValueError: a name that is not one of `IMPLS` (the yaml build turns it into a ModelConfigError).
    """
    where = "impl"
    if impl is None:
        impl, where = os.environ.get(IMPL_ENV) or IMPLS[0], IMPL_ENV
    if impl not in IMPLS:
        raise ValueError(
            f"{where}={impl!r} is not an AKConv formulation{did_you_mean(str(impl), IMPLS)}; expected faithful or fast"
        )
    return impl


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
    recorded=("akconv_impl",),
)
class AKConv(nn.Module):
    """Convolution over N learnable sampling points per output cell.

    Args:
        c1: input channels.
        c2: output channels.
        num_param: number of kernel points N.
        stride: stride of the sampling grid and of the offset conv.
        bias: bias of the reducing conv; the reference's default `None` means none.
        impl: `faithful` or `fast` (module doc); None: `$YOLOAB_AKCONV`, else `faithful`. No parameter depends on it.
    """

    def __init__(
        self, c1: int, c2: int, num_param: int, stride: int = 1, bias: bool | None = None, impl: str | None = None
    ) -> None:
        super().__init__()
        kernel_points(num_param)  # validates num_param before any layer is built
        self.akconv_impl = resolve_impl(impl)
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
        # a module unpickled from a checkpoint saved before the choice existed has no attribute: it ran faithful
        if getattr(self, "akconv_impl", IMPLS[0]) == "fast":
            return self._forward_fast(x)
        return self._forward_faithful(x)

    def _forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """The `fast` formulation: the sampling as one autograd node (module doc), then the reference's conv."""
        n = self.num_param
        b, c = x.shape[:2]
        offset = self.p_conv(x)
        # the reference's positions, elementwise the same values, kept as (b, 2N, h, w) planes; clamped by autograd,
        # so that the gradient at the clamp's ends is torch's, as in the reference
        p = self._get_p_0(offset) + self._get_p_n(offset) + offset
        h, w = p.shape[2:]
        floor = p.detach().floor().nan_to_num(nan=0.0)  # see _forward_faithful
        p = torch.cat([p[:, :n].clamp(0, x.shape[2] - 1), p[:, n:].clamp(0, x.shape[3] - 1)], dim=1)
        samples = _BilinearSamples.apply(x, p, floor)  # (b, h*w, N, c)
        # stacked as the reference stacks them, (b, c, h*N, w), for the reference's own reducing conv, BN and SiLU:
        # FLOP counters (Ultralytics' thop hooks modules) and fusing tools see the same layers either way
        stacked = samples.view(b, h, w, n, c).permute(0, 4, 1, 3, 2).reshape(b, c, h * n, w)
        return self.conv(stacked)

    def _forward_faithful(self, x: torch.Tensor) -> torch.Tensor:
        """The `faithful` formulation: the reference's four gathers and its (N, 1) conv (module doc)."""
        offset = self.p_conv(x)
        n = self.num_param
        height, width = x.shape[2:]
        # (b, h, w, 2N): row positions in [..., :N], column positions in [..., N:]
        p = (self._get_p_0(offset) + self._get_p_n(offset) + offset).permute(0, 2, 3, 1)

        # a NaN position (a NaN input: Ultralytics' get_flops feeds uninitialised `torch.empty` memory) would become
        # index -2**63 and stop the forward; read pixel 0 instead: the weights carry the NaN into the output anyway
        q_lt = p.detach().floor().nan_to_num(nan=0.0)
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


class _BilinearSamples(torch.autograd.Function):
    """The reference's bilinear sampling as one autograd node, with its backward written out.

    `x` (b, c, H, W) is read at the positions `p` (b, 2N, h, w), rows in [:, :N], columns in [:, N:], already clamped
    into the image (by autograd's clamp outside, so that its gradient at the ends is torch's); `floor` is floor(p)
    before the clamp. The result is (b, h*w, N, c), channel-last like the corners it is summed from.

    Forward, the reference's expressions on the same values: corners floor and floor + 1 clamped into the image, and
    per corner the weight (1 + sr (q_r - p_r)) (1 + sc (q_c - p_c)), summed in its order lt, rb, lb, rt. Backward,
    the derivatives of those expressions as autograd forms them for the reference: the corners carry no gradient
    and each weight factor contributes -sr or -sc.

    Where the time goes instead: the four corners of every channel are read as rows of c contiguous values
    (`index_select` copies a row at a time where `gather` reads an element at a time), the weighted sum runs in place,
    the gradient of x is one `scatter_add` per image for all corners, and the sums over channels for the position
    gradient reuse one buffer. The reference's autograd graph instead holds and re-reads about twenty tensors the
    size of all corners of all channels.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        n, h, w = p.shape[1] // 2, p.shape[2], p.shape[3]
        p_r, p_c = p[:, :n], p[:, n:]
        q_r, q_c = floor[:, :n], floor[:, n:]
        r0, r1 = q_r.clamp(0, height - 1), (q_r + 1).clamp(0, height - 1)
        c0, c1 = q_c.clamp(0, width - 1), (q_c + 1).clamp(0, width - 1)
        a_r0, a_r1 = 1 + (r0 - p_r), 1 - (r1 - p_r)
        a_c0, a_c1 = 1 + (c0 - p_c), 1 - (c1 - p_c)
        weights = torch.stack([a_r0 * a_c0, a_r1 * a_c1, a_r0 * a_c1, a_r1 * a_c0], dim=1)  # (b, 4, N, h, w)
        r0, r1, c0, c1 = (t.long() for t in (r0, r1, c0, c1))
        index = torch.stack([r0 * width + c0, r1 * width + c1, r0 * width + c1, r1 * width + c0], dim=1)
        # everything per sample from here on in the order (b, corner, h, w, N): the samples' channel-last order
        index = index.permute(0, 1, 3, 4, 2).reshape(b, 4, h * w * n)
        wv = weights.permute(0, 1, 3, 4, 2).reshape(b, 4, h * w * n, 1)
        rows = index + torch.arange(b, device=x.device).view(b, 1, 1) * (height * width)
        pixels = x.permute(0, 2, 3, 1).contiguous().view(b * height * width, c)  # a view at b = 1 is not rows
        corners = pixels.index_select(0, rows.flatten()).view(b, 4, h * w * n, c)
        samples = corners[:, 0] * wv[:, 0]
        for k in range(1, 4):
            samples.addcmul_(corners[:, k], wv[:, k])
        ctx.save_for_backward(corners, index, wv, a_r0, a_r1, a_c0, a_c1)
        ctx.x_shape, ctx.x_dtype, ctx.p_shape = x.shape, x.dtype, p.shape
        return samples.view(b, h * w, n, c)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        corners, index, weights, a_r0, a_r1, a_c0, a_c1 = ctx.saved_tensors
        b, c = ctx.x_shape[:2]
        count = index.shape[2]  # samples per corner: h * w * N
        grad = grad.reshape(b, count, c)  # channel-last, like the corners
        grad_x = grad_p = None
        if ctx.needs_input_grad[0]:
            # scattered in the image's own layout, all corners in one call per image (one call beats four)
            spread = grad.new_empty(b, c, 4, count, dtype=ctx.x_dtype)
            torch.mul(grad.transpose(1, 2).unsqueeze(2), weights.view(b, 1, 4, count), out=spread)
            spread = spread.view(b, c, -1)
            grad_x = spread.new_zeros(b, c, math.prod(ctx.x_shape[2:]))
            for i in range(b):
                grad_x[i].scatter_add_(-1, index[i].view(1, -1).expand(c, -1), spread[i])
            grad_x = grad_x.view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            n, h, w = ctx.p_shape[1] // 2, ctx.p_shape[2], ctx.p_shape[3]
            buffer = torch.empty_like(grad)
            # per corner, the sum over channels of its value times the incoming gradient, as (b, N, h, w)
            lt, rb, lb, rt = (
                torch.mul(corners[:, k], grad, out=buffer).sum(-1).view(b, h, w, n).permute(0, 3, 1, 2)
                for k in range(4)
            )
            grad_r = (a_c1 * rb - a_c0 * lt) + (a_c0 * rt - a_c1 * lb)
            grad_c = (a_r1 * rb - a_r0 * lt) + (a_r0 * lb - a_r1 * rt)
            grad_p = torch.cat([grad_r, grad_c], dim=1).to(a_r0.dtype)
        return grad_x, grad_p, None


MODULES.alias("LDConv", "AKConv", "the authors' later name (Image and Vision Computing 2024)")
