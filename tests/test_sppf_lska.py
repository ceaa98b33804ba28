"""Tests for yoloab.modules.sppf_lska: LSKA from explicit depthwise 1-D convolutions, SPPF_LSKA from Ultralytics' SPPF.

The kernel table below is written out from the LSKA authors' code; the SPPF is the one Ultralytics' parse_model
builds for a legacy yolov8/yolo11 row, with LSKA inserted in front of its cv2 by a hook.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ultralytics.nn.tasks import parse_model

from yoloab.modules.sppf_lska import LSKA, SPPF_LSKA
from yoloab.registry import MODULES

# k_size: (first kernel, first padding, dilated kernel, dilation, dilated padding), from the authors' if/elif chain
AUTHORS = {
    7: (3, 1, 3, 2, 2),
    11: (3, 1, 5, 2, 4),
    23: (5, 2, 7, 3, 9),
    35: (5, 2, 11, 3, 15),
    41: (5, 2, 13, 3, 18),
    53: (5, 2, 17, 3, 24),
}


def randomise(m: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """float64, random weights and BN statistics, so that no term can hide behind an init value."""
    torch.manual_seed(seed)
    m = m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.5)
        for b in m.buffers():
            if b.is_floating_point():
                b.uniform_(0.5, 1.5)
    return m


def lska_reference(m: LSKA, x: torch.Tensor, k_size: int) -> torch.Tensor:
    """Paper's LSKA: x * conv1x1(dw(ks,1, d) o dw(1,ks, d) o dw(k0,1) o dw(1,k0) (x)), each depthwise with bias."""
    k0, p0, ks, d, ps = AUTHORS[k_size]
    c = x.shape[1]
    a = F.conv2d(x, m.conv0h.weight, m.conv0h.bias, padding=(0, p0), groups=c)
    a = F.conv2d(a, m.conv0v.weight, m.conv0v.bias, padding=(p0, 0), groups=c)
    a = F.conv2d(a, m.conv_spatial_h.weight, m.conv_spatial_h.bias, padding=(0, ps), dilation=(1, d), groups=c)
    a = F.conv2d(a, m.conv_spatial_v.weight, m.conv_spatial_v.bias, padding=(ps, 0), dilation=(d, 1), groups=c)
    return x * F.conv2d(a, m.conv1.weight, m.conv1.bias)


@pytest.mark.parametrize("k_size", list(AUTHORS), ids=lambda k: f"k{k}")
def test_lska_matches_separable_convolutions(k_size: int) -> None:
    k0, _, ks, _, _ = AUTHORS[k_size]
    m = randomise(LSKA(6, k_size))
    assert m.conv0h.weight.shape == (6, 1, 1, k0) and m.conv_spatial_v.weight.shape == (6, 1, ks, 1)
    x = torch.randn(2, 6, 9, 13, dtype=torch.float64, requires_grad=True)
    y, want = m(x), lska_reference(m, x, k_size)
    torch.testing.assert_close(y, want, rtol=0, atol=1e-10)
    g = torch.randn_like(y)
    params = list(m.parameters())
    for a, e in zip(torch.autograd.grad(y, [x, *params], g), torch.autograd.grad(want, [x, *params], g), strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10)


LSKA_PARAMS = [(dim, k) for dim in (8, 64, 512) for k in (7, 11, 23, 53)]


@pytest.mark.parametrize(("dim", "k_size"), LSKA_PARAMS, ids=[f"dim={d}-k{k}" for d, k in LSKA_PARAMS])
def test_lska_parameter_count(dim: int, k_size: int) -> None:
    k0, _, ks, _, _ = AUTHORS[k_size]
    assert sum(p.numel() for p in LSKA(dim, k_size).parameters()) == dim * dim + dim * (2 * k0 + 2 * ks + 5)


def test_lska_unknown_kernel() -> None:
    with pytest.raises(ValueError, match="k_size"):
        LSKA(8, 9)


def legacy_sppf(c1: int, c2: int, k: int) -> torch.nn.Module:
    """The SPPF Ultralytics builds for a yolov8/yolo11 row `[-1, 1, SPPF, [c2, k]]`."""
    model, _ = parse_model({"nc": 1, "backbone": [[-1, 1, "SPPF", [c2, k]]], "head": []}, ch=c1, verbose=False)
    return model[0]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("c1", "c2", "k"), [(16, 16, 5), (8, 24, 3)], ids=["c16-c16-k5", "c8-c24-k3"])
def test_sppf_lska_is_sppf_with_lska_before_cv2(c1: int, c2: int, k: int, train: bool) -> None:
    mine = randomise(SPPF_LSKA(c1, c2, k)).train(train)
    sppf = legacy_sppf(c1, c2, k).double().train(train)
    sppf.load_state_dict({n: t for n, t in mine.state_dict().items() if not n.startswith("lska.")})
    sppf.cv2.register_forward_pre_hook(lambda _, args: (mine.lska(args[0]),))
    x = torch.randn(2, c1, 6, 11, dtype=torch.float64, requires_grad=True)
    y = mine(x)
    want = sppf(x)
    torch.testing.assert_close(y, want, rtol=0, atol=1e-10)
    g = torch.randn_like(y)
    mine_params = [p for n, p in mine.named_parameters() if not n.startswith("lska.")]
    got = torch.autograd.grad(y, [x, *mine_params], g)
    exp = torch.autograd.grad(want, [x, *sppf.parameters()], g)
    for a, e in zip(got, exp, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10)


def test_cv1_has_the_legacy_activation() -> None:
    assert isinstance(SPPF_LSKA(8, 8).cv1.act, type(legacy_sppf(8, 8, 5).cv1.act))
    assert isinstance(SPPF_LSKA(8, 8).cv1.act, torch.nn.SiLU)


def sppf_lska_params(c1: int, c2: int) -> int:
    c_ = c1 // 2
    d = 4 * c_
    return c1 * c_ + 2 * c_ + d * d + 21 * d + d * c2 + 2 * c2


@pytest.mark.parametrize(("c1", "c2"), [(16, 16), (64, 32), (256, 256), (1024, 1024)], ids=lambda c: f"{c}")
def test_sppf_lska_parameter_count(c1: int, c2: int) -> None:
    assert sum(p.numel() for p in SPPF_LSKA(c1, c2).parameters()) == sppf_lska_params(c1, c2)


@pytest.mark.parametrize(("k", "size"), [(5, (5, 9)), (3, (7, 4)), (7, (2, 3))], ids=["k5-5x9", "k3-7x4", "k7-2x3"])
def test_sppf_lska_shape_non_square(k: int, size: tuple[int, int]) -> None:
    assert SPPF_LSKA(16, 24, k)(torch.randn(2, 16, *size)).shape == (2, 24, *size)


def test_registered() -> None:
    entry = MODULES.get("SPPF_LSKA")
    assert (entry.cls, entry.role, entry.channels, entry.article) == (SPPF_LSKA, "sppf", "conv", None)
