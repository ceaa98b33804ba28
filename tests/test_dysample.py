"""Tests for yoloab.modules.dysample: offsets and bilinear sampling recomputed from the paper's equations.

The reference here generates the offsets with einsum and explicit reshapes and samples with a gather-based bilinear
interpolation: no grid_sample, no pixel_shuffle, nothing read from the module but its weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from yoloab.modules.dysample import DySample
from yoloab.registry import MODULES

C1, B, H, W = 8, 2, 3, 4


def sub_pixel_positions(scale: int, groups: int) -> torch.Tensor:
    """Paper's initial positions, (2, groups, s, s): x = (j - (s-1)/2) / s at sub-column j, y likewise at sub-row i."""
    r = (torch.arange(scale, dtype=torch.float64) - (scale - 1) / 2) / scale
    px = r.view(1, scale).expand(scale, scale)
    py = r.view(scale, 1).expand(scale, scale)
    return torch.stack([px, py]).view(2, 1, scale, scale).expand(2, groups, scale, scale)


def offsets(m: DySample, x: torch.Tensor) -> torch.Tensor:
    """Offsets (B, 2, groups, s, s, H, W) in input pixels, from the module's weights only."""
    b, c, h, w = x.shape
    s, g = m.scale, m.groups

    def conv1x1(weight: torch.Tensor, bias: torch.Tensor | None, inp: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("oc,bchw->bohw", weight[:, :, 0, 0], inp)
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    if m.style == "pl":
        # sub-pixel (i, j) of low-res cell (h, w) in channel k is input channel k s^2 + i s + j
        inp = x.view(b, c // s**2, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // s**2, h * s, w * s)
    else:
        inp = x
    o = conv1x1(m.offset.weight, m.offset.bias, inp)
    if hasattr(m, "scope"):
        o = o * torch.sigmoid(conv1x1(m.scope.weight, None, inp)) * 0.5
    else:
        o = o * 0.25
    if m.style == "pl":
        o = o.view(b, 2, g, h, s, w, s).permute(0, 1, 2, 4, 6, 3, 5)
    else:
        o = o.view(b, 2, g, s, s, h, w)
    return o + sub_pixel_positions(s, g).view(1, 2, g, s, s, 1, 1)


def bilinear_gather(x: torch.Tensor, px: torch.Tensor, py: torch.Tensor, groups: int) -> torch.Tensor:
    """Read x (B, C, H, W) at positions (B, groups, h', w') per channel group, clamped into the map; (B, C, h', w')."""
    b, c, h, w = x.shape
    px, py = px.clamp(0, w - 1), py.clamp(0, h - 1)
    x0, y0 = px.detach().floor().long(), py.detach().floor().long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    fx, fy = px - x0, py - y0
    flat = x.reshape(b, groups, c // groups, h * w)

    def read(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        idx = (yi * w + xi).flatten(2).unsqueeze(2).expand(-1, -1, c // groups, -1)
        return flat.gather(3, idx).view(b, groups, c // groups, *px.shape[2:])

    fx, fy = fx.unsqueeze(2), fy.unsqueeze(2)
    out = (
        read(y0, x0) * (1 - fx) * (1 - fy)
        + read(y0, x1) * fx * (1 - fy)
        + read(y1, x0) * (1 - fx) * fy
        + read(y1, x1) * fx * fy
    )
    return out.reshape(b, c, *px.shape[2:])


def reference(m: DySample, x: torch.Tensor) -> torch.Tensor:
    """DySample from the paper: output (h s + i, w s + j) of group k reads group k at (w, h) + offset."""
    b, _, h, w = x.shape
    s = m.scale
    o = offsets(m, x)  # (B, 2, g, s_i, s_j, H, W)
    base_x = torch.arange(w, dtype=x.dtype).view(1, 1, 1, 1, 1, w)
    base_y = torch.arange(h, dtype=x.dtype).view(1, 1, 1, 1, h, 1)
    # output row h s + i, column w s + j
    px = (base_x + o[:, 0]).permute(0, 1, 4, 2, 5, 3).reshape(b, m.groups, h * s, w * s)
    py = (base_y + o[:, 1]).permute(0, 1, 4, 2, 5, 3).reshape(b, m.groups, h * s, w * s)
    return bilinear_gather(x, px, py, m.groups)


def randomised(style: str, dyscope: bool, groups: int, seed: int = 0) -> DySample:
    """A float64 DySample with weights large enough that offsets reach past the border."""
    torch.manual_seed(seed)
    m = DySample(C1, 2, style, groups, dyscope).double()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 1.5)
    return m


CASES = [(style, dyscope, g) for style in ("lp", "pl") for dyscope in (False, True) for g in (1, 4)]
CASE_IDS = [f"{s}-{'dynamic' if d else 'static'}-g{g}" for s, d, g in CASES]


@pytest.mark.parametrize(("style", "dyscope", "groups"), CASES, ids=CASE_IDS)
def test_forward_and_gradients_match_paper(style: str, dyscope: bool, groups: int) -> None:
    m = randomised(style, dyscope, groups)
    x = torch.randn(B, C1, H, W, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())
    y, want = m(x), reference(m, x)
    assert y.shape == (B, C1, 2 * H, 2 * W)
    torch.testing.assert_close(y, want, rtol=0, atol=1e-10)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *params], g)
    exp = torch.autograd.grad(want, [x, *params], g)
    for a, e in zip(got, exp, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10)


def test_offsets_reach_the_border() -> None:
    """The comparison above exercises the border clamp: some positions fall outside the map."""
    m = randomised("lp", False, 4)
    o = offsets(m, torch.randn(B, C1, H, W, dtype=torch.float64))
    assert o.abs().max() > 1.0


@pytest.mark.parametrize("scale", [2, 3, 4], ids=lambda s: f"x{s}")
def test_zero_offsets_are_bilinear_upsampling(scale: int) -> None:
    m = DySample(16, scale)
    with torch.no_grad():
        m.offset.weight.zero_()
    x = torch.randn(1, 16, 3, 5)
    want = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(m(x), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2], ids=lambda g: f"g{g}")
def test_init_pos_layout(groups: int) -> None:
    # channels ordered (x/y, group, sub-row, sub-column), scale 2
    x_part, y_part = [-0.25, 0.25, -0.25, 0.25], [-0.25, -0.25, 0.25, 0.25]
    want = torch.tensor(x_part * groups + y_part * groups).view(1, -1, 1, 1)
    m = DySample(8, 2, groups=groups)
    assert torch.equal(m.init_pos, want)
    assert "init_pos" in m.state_dict()


def test_default_init() -> None:
    torch.manual_seed(0)
    m = DySample(64, dyscope=True)
    assert (m.scale, m.style, m.groups) == (2, "lp", 4)
    assert 0.0005 < m.offset.weight.std().item() < 0.002
    assert not m.offset.bias.any() and not m.scope.weight.any() and m.scope.bias is None


def param_count(c1: int, style: str, dyscope: bool, g: int = 4, s: int = 2) -> int:
    cin, cout = (c1 // s**2, 2 * g) if style == "pl" else (c1, 2 * g * s**2)
    return cin * cout + cout + (cin * cout if dyscope else 0)


PARAM_CASES = [(c1, style, d) for c1 in (16, 64, 256) for style in ("lp", "pl") for d in (False, True)]


@pytest.mark.parametrize(
    ("c1", "style", "dyscope"),
    PARAM_CASES,
    ids=[f"c1={c}-{s}-{'dynamic' if d else 'static'}" for c, s, d in PARAM_CASES],
)
def test_parameter_count(c1: int, style: str, dyscope: bool) -> None:
    m = DySample(c1, style=style, dyscope=dyscope)
    assert sum(p.numel() for p in m.parameters()) == param_count(c1, style, dyscope)


@pytest.mark.parametrize(
    ("style", "scale", "shape"),
    [("lp", 2, (2, 3, 5)), ("pl", 2, (2, 5, 3)), ("lp", 3, (1, 4, 7)), ("pl", 3, (1, 7, 2))],
    ids=["lp-x2-3x5", "pl-x2-5x3", "lp-x3-4x7", "pl-x3-7x2"],
)
def test_output_shape_non_square(style: str, scale: int, shape: tuple[int, int, int]) -> None:
    b, h, w = shape
    c1 = 36
    m = DySample(c1, scale, style, groups=2)
    assert m(torch.randn(b, c1, h, w)).shape == (b, c1, scale * h, scale * w)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c1": 6}, "c1=6"),
        ({"c1": 2}, "c1=2"),
        ({"c1": 8, "style": "pl", "scale": 4}, "c1=8"),
        ({"c1": 10, "style": "pl", "groups": 2}, "c1=10"),
        ({"c1": 8, "style": "xy"}, "style"),
    ],
    ids=["not-div-groups", "below-groups", "pl-below-scale2", "pl-not-div-scale2", "bad-style"],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DySample(**kwargs)


def test_registered() -> None:
    entry = MODULES.get("DySample")
    assert (entry.cls, entry.role, entry.channels, entry.article) == (DySample, "upsample", "same", None)


@pytest.mark.parametrize("style", ["lp", "pl"])
def test_channels_last_input_gives_the_same_output(style: str) -> None:
    # Ultralytics' validation hands the module maps whose offsets are not contiguous; the reference's `.view` raised
    torch.manual_seed(3)
    m = DySample(64, 2, style).double().eval()
    torch.nn.init.normal_(m.offset.weight, std=0.5)
    x = torch.randn(2, 64, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = m(x)
        got = m(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
