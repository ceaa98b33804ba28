"""Tests for the CoordAtt, SimAM and EMA attention modules.

Expected values come from the papers' equations written out here with plain torch ops (means, einsums, explicit
shifts for the 3x3 convolution), from closed-form parameter counts and from hand-worked numbers, never from the
modules' own code paths or the authors' code. All numeric comparisons run in float64 on random weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yoloab.modules.coord_attention import CoordAtt
from yoloab.modules.ema_attention import EMA
from yoloab.modules.simam import SimAM
from yoloab.registry import MODULES

EPS = 1e-5  # PyTorch's BatchNorm2d / GroupNorm default, which the authors' modules use
TOL = {"rtol": 1e-10, "atol": 1e-12}


def randomize(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights (BN/GN affine included) and non-trivial BN running statistics, in float64."""
    g = torch.Generator().manual_seed(seed)
    m = m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
        for name, buf in m.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g, dtype=buf.dtype))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g, dtype=buf.dtype) + 0.5)
    return m


# ---------------------------------------------------------------- independent computations from the papers


def coordatt_reference(m: CoordAtt, x: torch.Tensor, training: bool) -> torch.Tensor:
    """Coordinate attention (Hou et al., Eqs. 4-9) with m's weights."""
    z_h = x.mean(dim=3)  # (B, C, H): average over the width at each row
    z_w = x.mean(dim=2)  # (B, C, W): average over the height at each column
    f = torch.cat([z_h, z_w], dim=2)  # (B, C, H + W)
    f = torch.einsum("oc,bcp->bop", m.conv1.weight[:, :, 0, 0], f) + m.conv1.bias[:, None]
    if training:
        mean = f.mean(dim=(0, 2), keepdim=True)
        var = ((f - mean) ** 2).mean(dim=(0, 2), keepdim=True)  # biased, as BN normalises with
    else:
        mean, var = m.bn1.running_mean[:, None], m.bn1.running_var[:, None]
    f = (f - mean) / torch.sqrt(var + EPS) * m.bn1.weight[:, None] + m.bn1.bias[:, None]
    f = f * torch.clamp(f + 3, 0, 6) / 6  # h_swish
    f_h, f_w = f[..., : x.shape[2]], f[..., x.shape[2] :]
    g_h = torch.sigmoid(torch.einsum("om,bmh->boh", m.conv_h.weight[:, :, 0, 0], f_h) + m.conv_h.bias[:, None])
    g_w = torch.sigmoid(torch.einsum("om,bmw->bow", m.conv_w.weight[:, :, 0, 0], f_w) + m.conv_w.bias[:, None])
    return x * g_h[..., :, None] * g_w[..., None, :]


def simam_reference(x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    """SimAM's minimal energy e_t = 4 (var + lambda) / ((t - mu)^2 + 2 var + 2 lambda); output x * sigmoid(1 / e_t).

    The variance divides by M - 1 = H W - 1, as the authors' code does (M - 1 "other" neurons in the derivation).
    """
    count = x.shape[2] * x.shape[3]
    mu = x.sum(dim=(2, 3), keepdim=True) / count
    var = ((x - mu) ** 2).sum(dim=(2, 3), keepdim=True) / (count - 1)
    energy = 4 * (var + e_lambda) / ((x - mu) ** 2 + 2 * var + 2 * e_lambda)
    return x * torch.sigmoid(1 / energy)


def ema_reference(m: EMA, x: torch.Tensor) -> torch.Tensor:
    """EMA (Ouyang et al., Fig. 2) with m's weights: G groups of c/G channels, all layers shared by the groups."""
    b, c, h, w = x.shape
    g = m.groups
    k = c // g
    xg = x.view(b, g, k, h, w)
    # 1x1 branch: directional pools, one shared 1x1 conv, two sigmoid gates, then a per-channel norm over H x W
    w1, b1 = m.conv1x1.weight[:, :, 0, 0], m.conv1x1.bias
    gate_h = torch.sigmoid(torch.einsum("oi,bgih->bgoh", w1, xg.mean(dim=4)) + b1[:, None])
    gate_w = torch.sigmoid(torch.einsum("oi,bgiw->bgow", w1, xg.mean(dim=3)) + b1[:, None])
    u = xg * gate_h[..., :, None] * gate_w[..., None, :]
    mu = u.mean(dim=(3, 4), keepdim=True)
    var = ((u - mu) ** 2).mean(dim=(3, 4), keepdim=True)
    x1 = (u - mu) / torch.sqrt(var + EPS) * m.gn.weight[:, None, None] + m.gn.bias[:, None, None]
    # 3x3 branch, zero padding 1, as nine shifted 1x1 products
    padded = F.pad(xg, (1, 1, 1, 1))
    x2 = m.conv3x3.bias[:, None, None].expand(b, g, k, h, w)
    for i in range(3):
        for j in range(3):
            window = padded[..., i : i + h, j : j + w]
            x2 = x2 + torch.einsum("oi,bgihw->bgohw", m.conv3x3.weight[:, :, i, j], window)
    # cross-spatial learning: channel softmax of one branch's global pool times the other branch's map
    s1 = torch.softmax(x1.mean(dim=(3, 4)), dim=2)
    s2 = torch.softmax(x2.mean(dim=(3, 4)), dim=2)
    a = torch.einsum("bgk,bgkhw->bghw", s1, x2) + torch.einsum("bgk,bgkhw->bghw", s2, x1)
    return (xg * torch.sigmoid(a)[:, :, None]).reshape(b, c, h, w)


# ---------------------------------------------------------------- equality with the equations, forward and backward

CASES = [
    pytest.param("CoordAtt", 32, {}, True, id="CoordAtt-c32-train"),
    pytest.param("CoordAtt", 32, {}, False, id="CoordAtt-c32-eval"),
    pytest.param("CoordAtt", 64, {"reduction": 4}, True, id="CoordAtt-c64-r4-train"),
    pytest.param("SimAM", 8, {}, True, id="SimAM-lambda1e-4"),
    pytest.param("SimAM", 8, {"e_lambda": 0.5}, True, id="SimAM-lambda0.5"),
    pytest.param("EMA", 64, {}, True, id="EMA-c64-g32-train"),
    pytest.param("EMA", 64, {}, False, id="EMA-c64-g32-eval"),
    pytest.param("EMA", 64, {"factor": 8}, True, id="EMA-c64-g8"),
    pytest.param("EMA", 16, {}, True, id="EMA-c16-clamped-g16"),
    pytest.param("EMA", 48, {}, True, id="EMA-c48-clamped-g16"),
]
BUILDERS = {"CoordAtt": CoordAtt, "SimAM": SimAM, "EMA": EMA}


def reference_output(name: str, m: nn.Module, x: torch.Tensor, training: bool) -> torch.Tensor:
    if name == "CoordAtt":
        return coordatt_reference(m, x, training)
    if name == "SimAM":
        return simam_reference(x, m.e_lambda)
    return ema_reference(m, x)


@pytest.mark.parametrize("name, c1, kwargs, training", CASES)
def test_forward_and_gradients_equal_the_papers_equations(name, c1, kwargs, training):
    m = randomize(BUILDERS[name](c1, **kwargs)).train(training)
    x = torch.randn(2, c1, 6, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    params = list(m.parameters())
    expected = reference_output(name, m, x, training)
    got = m(x)
    torch.testing.assert_close(got, expected, **TOL)

    cotangent = torch.randn(got.shape, dtype=got.dtype, generator=torch.Generator().manual_seed(2))
    grads_got = torch.autograd.grad(got, [x, *params], cotangent)
    grads_expected = torch.autograd.grad(expected, [x, *params], cotangent)
    names = ["input", *(n for n, _ in m.named_parameters())]
    torch.testing.assert_close(
        dict(zip(names, grads_got, strict=True)), dict(zip(names, grads_expected, strict=True)), **TOL
    )


# ---------------------------------------------------------------- parameter counts in closed form


@pytest.mark.parametrize(
    "c1, reduction, mip",
    [(16, 32, 8), (32, 32, 8), (64, 32, 8), (128, 32, 8), (256, 32, 8), (512, 32, 16), (1024, 32, 32), (64, 4, 16)],
    ids=["c16", "c32", "c64", "c128", "c256", "c512", "c1024", "c64-r4"],
)
def test_coordatt_parameter_count(c1, reduction, mip):
    m = CoordAtt(c1, reduction)
    assert m.conv1.out_channels == mip  # max(8, c1 // reduction), worked out by hand in the table
    # conv1 (c1 -> mip, bias) + BN affine + conv_h and conv_w (mip -> c1, bias)
    assert sum(p.numel() for p in m.parameters()) == 3 * c1 * mip + 3 * mip + 2 * c1


@pytest.mark.parametrize(
    "c1, factor, groups",
    [(16, 32, 16), (32, 32, 32), (64, 32, 32), (128, 32, 32), (256, 32, 32), (48, 32, 16), (80, 32, 16), (64, 8, 8)],
    ids=["c16", "c32", "c64", "c128", "c256", "c48", "c80", "c64-f8"],
)
def test_ema_groups_and_parameter_count(c1, factor, groups):
    m = EMA(c1, factor)
    assert m.groups == groups
    k = c1 // groups
    # conv1x1 k^2 + k, conv3x3 9 k^2 + k, GroupNorm(k, k) affine 2 k
    assert sum(p.numel() for p in m.parameters()) == 10 * k * k + 4 * k


@pytest.mark.parametrize("c1", [16, 256], ids=["c16", "c256"])
def test_simam_has_no_parameters_or_buffers(c1):
    m = SimAM(c1)
    assert list(m.parameters()) == [] and list(m.buffers()) == []


def test_state_dict_keys_follow_the_authors_layout():
    """Checkpoints of the authors' modules load by name: houqb's coordatt.py and YOLOonMe's EMA."""
    assert list(CoordAtt(32).state_dict()) == [
        "conv1.weight",
        "conv1.bias",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "conv_h.weight",
        "conv_h.bias",
        "conv_w.weight",
        "conv_w.bias",
    ]
    assert list(EMA(64).state_dict()) == [
        "gn.weight",
        "gn.bias",
        "conv1x1.weight",
        "conv1x1.bias",
        "conv3x3.weight",
        "conv3x3.bias",
    ]


# ---------------------------------------------------------------- shapes, modes, small widths, quirks


@pytest.mark.parametrize("name", ["CoordAtt", "SimAM", "EMA"])
@pytest.mark.parametrize("c1", [16, 32, 64, 128, 256], ids=lambda c: f"c{c}")
def test_output_shape_equals_input_shape_on_a_non_square_map(name, c1):
    m = BUILDERS[name](c1)
    x = torch.randn(2, c1, 5, 11)
    y = m(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_ema_eval_equals_train_because_its_norm_keeps_no_statistics():
    m = randomize(EMA(64, 8))
    x = torch.randn(2, 64, 7, 4, dtype=torch.float64)
    assert list(m.buffers()) == []
    torch.testing.assert_close(m.eval()(x), m.train()(x), rtol=0, atol=0)


def test_coordatt_eval_uses_running_statistics():
    m = randomize(CoordAtt(32))
    x = torch.randn(2, 32, 6, 9, dtype=torch.float64)
    before = m.bn1.running_mean.clone()
    y_eval = m.eval()(x)
    assert torch.equal(m.bn1.running_mean, before)
    assert not torch.allclose(y_eval, m.train()(x))
    assert not torch.equal(m.bn1.running_mean, before)


def test_simam_divides_the_variance_by_hw_minus_one():
    # one 2x2 channel [1, 1, 1, 5]: mean 2, d = [1, 1, 1, 9], sum 12, n = 3, variance 4;
    # with lambda 0: E_inv = d / 16 + 1/2 = [9/16, 9/16, 9/16, 17/16] (dividing by H W = 4 would give d / 12 + 1/2)
    x = torch.tensor([[[[1.0, 1.0], [1.0, 5.0]]]], dtype=torch.float64)
    expected = x * torch.sigmoid(torch.tensor([[[[9 / 16, 9 / 16], [9 / 16, 17 / 16]]]], dtype=torch.float64))
    torch.testing.assert_close(SimAM(1, e_lambda=0.0)(x), expected, **TOL)


def test_simam_keeps_the_reference_nan_on_a_1x1_map():
    assert torch.isnan(SimAM(4)(torch.randn(1, 4, 1, 1))).all()


def test_ema_with_one_channel_per_group_reduces_to_the_sum_of_both_branches():
    # c1 = 16 with factor 32 is clamped to 16 groups of one channel, where the channel softmax is identically 1
    m = randomize(EMA(16))
    x = torch.randn(1, 16, 5, 6, dtype=torch.float64)
    xg = x.view(16, 1, 5, 6)
    gated = xg * torch.sigmoid(m.conv1x1(xg.mean(3, keepdim=True))) * torch.sigmoid(m.conv1x1(xg.mean(2, keepdim=True)))
    x1 = F.group_norm(gated, 1, m.gn.weight, m.gn.bias, EPS)
    x2 = m.conv3x3(xg)
    torch.testing.assert_close(m(x), (xg * torch.sigmoid(x1 + x2)).view_as(x), **TOL)


@pytest.mark.parametrize(
    "cls, args",
    [(EMA, (0,)), (EMA, (32, 0)), (CoordAtt, (0,)), (CoordAtt, (32, 0))],
    ids=["EMA-c0", "EMA-factor0", "CoordAtt-c0", "CoordAtt-reduction0"],
)
def test_non_positive_sizes_are_refused(cls, args):
    with pytest.raises(ValueError, match="positive"):
        cls(*args)


@pytest.mark.parametrize("name", ["CoordAtt", "SimAM", "EMA"])
def test_registered_as_attention_with_a_citation(name):
    entry = MODULES.get(name)
    assert entry.cls is BUILDERS[name]
    assert (entry.role, entry.channels, entry.article) == ("attention", "same", None)
    assert {"CoordAtt": "arXiv:2103.02907", "SimAM": "ICML 2021", "EMA": "arXiv:2305.13563"}[name] in entry.paper


def test_rows_build_inside_a_yolo_model():
    from ultralytics.nn.tasks import DetectionModel

    config = {
        "nc": 3,
        "backbone": [
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "EMA", []],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "CoordAtt", []],
            [-1, 1, "SimAM", []],
            [-1, 1, "EMA", [8]],
        ],
        "head": [[[1, 5], 1, "Detect", ["nc"]]],
    }
    model = DetectionModel(config, ch=3, verbose=False)
    layers = model.model
    assert [type(layers[i]).__name__ for i in (1, 3, 4, 5)] == ["EMA", "CoordAtt", "SimAM", "EMA"]
    assert (layers[1].groups, layers[5].groups, layers[3].conv_h.out_channels) == (16, 8, 32)
    assert model.stride.tolist() == [2.0, 4.0]  # Ultralytics' own probe forward went through every row
    seen = {}
    for i in (1, 3, 4, 5):
        layers[i].register_forward_hook(lambda mod, inp, out, i=i: seen.update({i: (inp[0].shape, out)}))
    model.train()(torch.randn(1, 3, 64, 96))
    assert {i: tuple(out.shape) for i, (_, out) in seen.items()} == {
        1: (1, 16, 32, 48),
        3: (1, 32, 16, 24),
        4: (1, 32, 16, 24),
        5: (1, 32, 16, 24),
    }
    assert all(shape_in == out.shape for shape_in, out in seen.values())
    sum(out.sum() for _, out in seen.values()).backward()
    assert all(p.grad is not None for i in (1, 3, 5) for p in layers[i].parameters())
