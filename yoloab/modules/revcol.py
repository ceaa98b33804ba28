"""RevCol: Reversible Column Networks as a detection backbone.

Paper: Cai et al., "Reversible Column Networks", ICLR 2023 (arXiv:2212.11696).
Reference: megvii-research/RevCol, `models/revcol.py`, `models/revcol_function.py`, `models/modules.py` (and the
mmdet backbone in `Detection/mmdet/models/backbones/revcol.py`, which returns the four maps of the last column).

The reference builds a stem (4x4 patchify conv + channels-first LayerNorm) and `num_subnet` columns. Every column
has four levels; a level fuses this column's finer level (2x2 stride-2 conv + LayerNorm) with the previous column's
coarser level (Linear + LayerNorm + nearest x2 upsample) and runs ConvNeXt blocks. A column updates its state as
`c_l = alpha_l * c_l(previous column) + Level_l(...)`; because `alpha_l` is invertible (its magnitude is clamped to
>= 1e-3), the previous column can be rebuilt from the next one, so the reversible mode keeps only column outputs and
recomputes each level in backward (with the forward's RNG and autocast state replayed).

Kept from the reference: the architecture, the five sizes, parameter names (`stem`, `subnet{i}`, `alpha0..3`,
`level0..3`, `fusion`, `down`, `up.channel_reschedule`, `blocks`, `dwconv`, `norm`, `pwconv1`, `pwconv2`, `gamma`) so
reference state_dicts load, the init (truncated normal std 0.02 for Conv2d and Linear weights, zero bias, as in the
classification `FullNet`; the mmdet backbone re-inits only Linear layers), the per-column drop-path schedule and
the RNG/autocast replay of the reversible backward.

Left out: the classification heads (`cls`, `cls_blocks`) and the intermediate-supervision decoders
(`decoder_blocks`), which are not part of the detection backbone; the `kernel_size` option (always 3, as in every
released config); the `revcol_huge` variant (a different fusion).

Differences, on purpose:
- The reversible path runs only when `self.training and torch.is_grad_enabled()` (the reference uses it whenever
  `save_memory` is set, also in eval), so inference and `torch.inference_mode()` take the plain path.
- The autograd function takes the alphas as tensor inputs and returns their gradients (the reference accumulates
  them into `.grad` behind autograd's back); the outputs then require grad even when the stem is frozen, and the
  first column's alphas get an exact zero gradient, as in the non-reversible path.
- The gradient of the previous column is computed with detached alphas (the reference builds a needless graph).
- Current torch APIs: `torch.amp.autocast(device_type)`, `torch.is_autocast_enabled(device_type)`,
  `torch.get_autocast_dtype(device_type)` instead of `torch.cuda.amp` / `torch.cpu.amp`.
- The channels-first LayerNorm uses `F.layer_norm` over permuted dims (same result in fp32; under fp16 autocast it
  normalises in fp32 instead of fp16 on CUDA, which avoids overflow in the variance).
- Init: the rare weights that timm's `trunc_normal_` (std 0.02, bounds +-2) sets to exactly -2 (an artifact of
  its sampler, ~1 weight in 2**24) are zeroed.
- An alpha that is exactly 0 is clamped to +1e-3 (the reference's `sign()` leaves it at 0, which breaks the
  reconstruction with a division by zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

from ..registry import register_module

__all__ = ["REVCOL_SIZES", "RevCol", "RevColConfig", "revcol_param_count"]

EXPANSION = 4  # ConvNeXt MLP ratio
KERNEL_SIZE = 3  # depthwise kernel of every released RevCol config
ALPHA_INIT = 0.5  # reference `shortcut_scale_init_value`
ALPHA_MIN = 1e-3  # smallest |alpha|: keeps the column update invertible
LAYER_SCALE_INIT = 1e-6
LN_EPS = 1e-6


@dataclass(frozen=True)
class RevColConfig:
    """One RevCol size.

    Attributes:
        channels: channels of the four levels (strides 4, 8, 16, 32).
        layers: ConvNeXt blocks in each level of a column.
        num_subnet: number of columns.
        drop_path: final drop-path rate of one column's linear schedule.
    """

    channels: tuple[int, int, int, int]
    layers: tuple[int, int, int, int]
    num_subnet: int
    drop_path: float

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or len(self.layers) != 4:
            raise ValueError(f"RevCol needs 4 channels and 4 layer counts, got {self.channels} and {self.layers}")
        if self.num_subnet < 1:
            raise ValueError(f"RevCol needs at least one column, got num_subnet={self.num_subnet}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")


REVCOL_SIZES: dict[str, RevColConfig] = {
    "tiny": RevColConfig((64, 128, 256, 512), (2, 2, 4, 2), 4, 0.1),
    "small": RevColConfig((64, 128, 256, 512), (2, 2, 4, 2), 8, 0.3),
    "base": RevColConfig((72, 144, 288, 576), (1, 1, 3, 2), 16, 0.4),
    "large": RevColConfig((128, 256, 512, 1024), (1, 2, 6, 2), 8, 0.5),
    "xlarge": RevColConfig((224, 448, 896, 1792), (1, 2, 6, 2), 8, 0.5),
}


def _config(size: str | RevColConfig) -> RevColConfig:
    """Resolve a size name (or pass a config through)."""
    if isinstance(size, RevColConfig):
        return size
    if size not in REVCOL_SIZES:
        raise ValueError(f"unknown RevCol size {size!r}; sizes: {', '.join(REVCOL_SIZES)}")
    return REVCOL_SIZES[size]


def revcol_param_count(size_or_config: str | RevColConfig, c1: int = 3) -> int:
    """Exact parameter count of the backbone, in closed form from the config (nothing is built).

    Args:
        size_or_config: a key of `REVCOL_SIZES` or a `RevColConfig`.
        c1: input channels.

    Returns:
        The number of parameters of `RevCol(c1, size_or_config)`.
    """
    cfg = _config(size_or_config)
    ch, n = cfg.channels, cfg.num_subnet

    def layer_norm(c: int) -> int:
        return 2 * c

    def conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
        return cin // groups * cout * k * k + cout

    def linear(cin: int, cout: int) -> int:
        return cin * cout + cout

    def block(c: int) -> int:
        hidden = EXPANSION * c
        return conv(c, c, KERNEL_SIZE, groups=c) + layer_norm(c) + linear(c, hidden) + linear(hidden, c) + c

    stem = conv(c1, ch[0], 4) + layer_norm(ch[0])
    blocks = sum(cfg.layers[i] * block(ch[i]) for i in range(4))
    down = sum(conv(ch[i - 1], ch[i], 2) + layer_norm(ch[i]) for i in range(1, 4))
    up = sum(linear(ch[i + 1], ch[i]) + layer_norm(ch[i]) for i in range(3))
    alphas = sum(ch)
    # every column has blocks, down paths and alphas; all but the first also take the previous column's coarser level
    return stem + n * (blocks + down + alphas) + (n - 1) * up


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) map (the reference's `LayerNorm(data_format="channels_first")`).

    Args:
        channels: number of channels.
        eps: variance epsilon.
    """

    def __init__(self, channels: int, eps: float = LN_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector."""
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNextBlock(nn.Module):
    """ConvNeXt block: depthwise 3x3 -> LayerNorm -> Linear(C, 4C) -> GELU -> Linear(4C, C) -> gamma -> drop-path.

    Args:
        channels: input and output channels.
        drop_path: stochastic-depth rate of the residual branch.
    """

    def __init__(self, channels: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, KERNEL_SIZE, padding=KERNEL_SIZE // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=LN_EPS)
        self.pwconv1 = nn.Linear(channels, EXPANSION * channels)  # 1x1 convs as Linear on channels-last (faster)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(EXPANSION * channels, channels)
        self.gamma = nn.Parameter(LAYER_SCALE_INIT * torch.ones(channels))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Residual ConvNeXt update."""
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class UpSampleConvnext(nn.Module):
    """Coarser level to this level: Linear on channels-last + LayerNorm, then nearest x2 upsampling.

    Args:
        in_channels: channels of the coarser level.
        out_channels: channels of this level.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.channel_reschedule = nn.Sequential(
            nn.Linear(in_channels, out_channels), nn.LayerNorm(out_channels, LN_EPS)
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        """Project channels, then upsample x2."""
        x = self.channel_reschedule(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.upsample(x)


class Fusion(nn.Module):
    """Input of level `level`: this column's finer level downsampled, plus the previous column's coarser level.

    Args:
        level: level index 0..3.
        channels: channels of the four levels.
        first_col: the first column has no previous column, hence no `up` path.
    """

    def __init__(self, level: int, channels: Sequence[int], first_col: bool) -> None:
        super().__init__()
        self.level = level
        self.first_col = first_col
        # level 0 takes the stem output as is
        self.down = (
            nn.Sequential(nn.Conv2d(channels[level - 1], channels[level], 2, stride=2), LayerNorm2d(channels[level]))
            if level > 0
            else nn.Identity()
        )
        # level 3 has no coarser level to take from
        self.up = UpSampleConvnext(channels[level + 1], channels[level]) if not first_col and level < 3 else None

    def forward(self, c_down: Tensor, c_up: Tensor | None) -> Tensor:
        """Fuse `c_down` (this column, level - 1) with `c_up` (previous column, level + 1; ignored when unused)."""
        x = self.down(c_down)
        return x if self.up is None else self.up(c_up) + x


class Level(nn.Module):
    """One level of a column: a `Fusion` then `layers[level]` ConvNeXt blocks.

    Args:
        level: level index 0..3.
        channels: channels of the four levels.
        layers: blocks per level.
        first_col: whether this is the first column.
        dp_rates: drop-path rates of all blocks of one column, in order.
    """

    def __init__(
        self, level: int, channels: Sequence[int], layers: Sequence[int], first_col: bool, dp_rates: Sequence[float]
    ) -> None:
        super().__init__()
        start = sum(layers[:level])
        self.fusion = Fusion(level, channels, first_col)
        self.blocks = nn.Sequential(
            *(ConvNextBlock(channels[level], dp_rates[start + i]) for i in range(layers[level]))
        )

    def forward(self, c_down: Tensor, c_up: Tensor | None) -> Tensor:
        """Fuse, then run the blocks."""
        return self.blocks(self.fusion(c_down, c_up))


def _rng_states(cuda_devices: list[int]) -> tuple[Tensor, list[Tensor]]:
    """CPU RNG state and the RNG state of each CUDA device in use."""
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in cuda_devices]


def _set_rng_states(states: tuple[Tensor, list[Tensor]], cuda_devices: list[int]) -> None:
    """Restore states saved by `_rng_states`."""
    torch.set_rng_state(states[0])
    for device, state in zip(cuda_devices, states[1], strict=True):
        torch.cuda.set_rng_state(state, device)


class _ReverseColumn(torch.autograd.Function):
    """One column that keeps only its outputs and rebuilds the previous column's outputs in backward.

    Inputs: `levels` (the four `Level` modules), the stem output `x`, the previous column's `c0..c3` (ints 0 for the
    first column) and `alpha0..3`. Outputs: this column's `c0..c3`. Level parameters get their gradients
    accumulated by the inner backward calls (as in the reference); `x`, the previous column and the alphas get theirs
    through autograd.
    """

    @staticmethod
    def forward(ctx: Any, levels: Sequence[Level], x: Tensor, *args: Any) -> tuple[Tensor, ...]:  # noqa: D102
        prev, alphas = list(args[:4]), args[4:]
        ctx.levels = levels
        ctx.first_col = not isinstance(prev[0], Tensor)
        ctx.cuda_devices = sorted({t.get_device() for t in (x, *prev) if isinstance(t, Tensor) and t.is_cuda})
        # replay the caller's autocast state in backward, for the device of the input and for the CPU
        cache = torch.is_autocast_cache_enabled()
        ctx.autocast = {
            dev: {
                "enabled": torch.is_autocast_enabled(dev),
                "dtype": torch.get_autocast_dtype(dev),
                "cache_enabled": cache,
            }
            for dev in {x.device.type, "cpu"}
            if torch.amp.is_autocast_available(dev)
        }
        ctx.rng = []
        outs, c_down = [], x
        for level in range(4):
            ctx.rng.append(_rng_states(ctx.cuda_devices))  # before the level: drop-path masks are drawn inside
            c_up = prev[level + 1] if level < 3 else None
            c_down = levels[level](c_down, c_up) + alphas[level] * prev[level]
            outs.append(c_down)
        ctx.save_for_backward(x, *outs, *alphas)
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        x, *saved = ctx.saved_tensors
        outs, alphas = [c.detach() for c in saved[:4]], [a.detach() for a in saved[4:]]
        levels, first_col = ctx.levels, ctx.first_col
        x = x.detach().requires_grad_(True)
        g_prev: list[Tensor | None] = [None] * 4  # gradient w.r.t. the previous column's c_l
        g_alpha: list[Tensor] = [torch.zeros_like(a) for a in alphas]
        carry: Tensor | None = None  # gradient reaching this column's c_l from level l + 1's down path
        rebuilt: Tensor | None = None  # previous column's c_{l+1}, rebuilt one step earlier

        with ExitStack() as stack:
            stack.enter_context(torch.enable_grad())
            stack.enter_context(torch.random.fork_rng(devices=ctx.cuda_devices, device_type="cuda"))
            for dev, kwargs in ctx.autocast.items():
                stack.enter_context(torch.amp.autocast(device_type=dev, **kwargs))
            for level in range(3, -1, -1):
                g_up = grads[level] if carry is None else grads[level] + carry
                c_down = x if level == 0 else outs[level - 1].requires_grad_(True)
                c_up = None if rebuilt is None else rebuilt.requires_grad_(True)
                _set_rng_states(ctx.rng[level], ctx.cuda_devices)
                out = levels[level](c_down, c_up)
                torch.autograd.backward(out, g_up.to(out.dtype))
                with torch.no_grad():
                    if c_up is not None and c_up.grad is not None:
                        g_prev[level + 1] = g_prev[level + 1] + c_up.grad
                    g_prev[level] = g_up * alphas[level]
                    if not first_col:
                        # invert c_l = alpha_l * prev_l + Level_l(...)
                        rebuilt = (outs[level] - out) / alphas[level]
                        g_alpha[level] = (g_up * rebuilt).sum((0, 2, 3), keepdim=True).to(alphas[level].dtype)
                carry = None if level == 0 else c_down.grad
                del out

        g_x = x.grad if ctx.needs_input_grad[1] else None
        g_prev_out = [None] * 4 if first_col else g_prev
        return (None, g_x, *g_prev_out, *g_alpha)


class SubNet(nn.Module):
    """One column: four levels and the four shortcut scales `alpha0..3`.

    Args:
        channels: channels of the four levels.
        layers: blocks per level.
        first_col: whether this is the first column.
        dp_rates: drop-path rates of all blocks of one column.
        save_memory: use the reversible path in training.
    """

    def __init__(
        self,
        channels: Sequence[int],
        layers: Sequence[int],
        first_col: bool,
        dp_rates: Sequence[float],
        save_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_memory = save_memory
        self.first_col = first_col
        for i in range(4):
            setattr(self, f"alpha{i}", nn.Parameter(ALPHA_INIT * torch.ones(1, channels[i], 1, 1)))
            setattr(self, f"level{i}", Level(i, channels, layers, first_col, dp_rates))

    @property
    def alphas(self) -> list[nn.Parameter]:
        """The four shortcut scales."""
        return [self.alpha0, self.alpha1, self.alpha2, self.alpha3]

    @property
    def levels(self) -> list[Level]:
        """The four levels."""
        return [self.level0, self.level1, self.level2, self.level3]

    @torch.no_grad()
    def clamp_alphas(self) -> None:
        """Clamp each |alpha| to >= 1e-3 in place, keeping its sign (zero counts as positive)."""
        for alpha in self.alphas:
            # through `.data`, as the reference does: the write does not bump the version counter that autograd
            # checks, so a second forward before backward (the alphas are saved for backward) stays legal
            magnitude = alpha.data.abs().clamp_min(ALPHA_MIN)
            alpha.data.copy_(torch.where(alpha.data < 0, -magnitude, magnitude))

    def forward(
        self, x: Tensor, c0: Tensor | int, c1: Tensor | int, c2: Tensor | int, c3: Tensor | int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Update the column state.

        Args:
            x: stem output.
            c0: previous column's level outputs (0 for the first column).
            c1: see `c0`.
            c2: see `c0`.
            c3: see `c0`.

        Returns:
            This column's four level outputs.
        """
        self.clamp_alphas()
        prev = (c0, c1, c2, c3)
        if self.save_memory and self.training and torch.is_grad_enabled():
            return _ReverseColumn.apply(self.levels, x, *prev, *self.alphas)
        outs, c_down = [], x
        for i, (level, alpha) in enumerate(zip(self.levels, self.alphas, strict=True)):
            c_down = level(c_down, prev[i + 1] if i < 3 else None) + alpha * prev[i]
            outs.append(c_down)
        return tuple(outs)


@register_module(
    role="backbone",
    channels="input",
    paper="Cai et al., Reversible Column Networks, ICLR 2023",
    sizes=tuple(REVCOL_SIZES),
    options={"rev": (True,)},  # RevCol-tiny-rev: the yaml row [tiny, True] sets save_memory
    recorded=("save_memory",),
)
class RevCol(nn.Module):
    """Reversible Column Network backbone returning the last column's maps at strides 4, 8, 16 and 32.

    Args:
        c1: input channels.
        size: a key of `REVCOL_SIZES`, or a `RevColConfig`.
        save_memory: train with the reversible path (activations of a column are recomputed in backward).
        drop_path: overrides the size's drop-path rate.

    Attributes:
        out_channels: channels of the four outputs.
        strides: strides of the four outputs.
    """

    strides = (4, 8, 16, 32)

    def __init__(
        self, c1: int = 3, size: str | RevColConfig = "tiny", save_memory: bool = False, drop_path: float | None = None
    ) -> None:
        super().__init__()
        cfg = _config(size)
        if drop_path is not None:
            cfg = RevColConfig(cfg.channels, cfg.layers, cfg.num_subnet, drop_path)
        self.config = cfg
        self.num_subnet = cfg.num_subnet
        self.out_channels = list(cfg.channels)
        ch = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(c1, ch[0], 4, stride=4), LayerNorm2d(ch[0]))
        # one linear schedule over the blocks of a column, shared by every column (reference `dp_rate`)
        dp_rates = torch.linspace(0, cfg.drop_path, sum(cfg.layers), device="cpu").tolist()  # cpu: works under meta
        for i in range(cfg.num_subnet):
            self.add_module(f"subnet{i}", SubNet(ch, cfg.layers, i == 0, dp_rates, save_memory))
        self.apply(self._init_weights)

    @property
    def save_memory(self) -> bool:
        """Whether training uses the reversible path."""
        return self.subnet0.save_memory

    @save_memory.setter
    def save_memory(self, value: bool) -> None:
        for column in self.columns:
            column.save_memory = value

    @property
    def columns(self) -> list[SubNet]:
        """The columns, first to last."""
        return [getattr(self, f"subnet{i}") for i in range(self.num_subnet)]

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            trunc_normal_(module.weight, std=0.02)  # bounds a=-2, b=2 absolute (timm default), as the reference
            # the inverse-CDF sampler turns a uniform draw of exactly -1 into erfinv(-1) = -inf, clamped to -2 =
            # -100 std: about one weight in 2**24 (~2 per `tiny`); zero those instead of keeping the outliers
            with torch.no_grad():
                module.weight.masked_fill_(module.weight.abs() >= 2.0, 0.0)
            nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Run the stem and every column.

        Args:
            x: images (N, c1, H, W); H and W should be multiples of 32.

        Returns:
            The last column's maps [stride 4, 8, 16, 32] with `out_channels` channels.
        """
        x = self.stem(x)
        cs: tuple[Tensor | int, ...] = (0, 0, 0, 0)
        for column in self.columns:
            cs = column(x, *cs)
        return list(cs)
