"""Tests for yoloab.modules.se, .eca and .cbam: the papers' equations, parameter counts, shapes, BN modes, yaml rows.

The expected values come from computations written here from the papers' equations with plain tensor operations
(explicit means, matrix products, banded matrices, shifted sums, sigmoid as 1 / (1 + exp(-t))), from closed forms and
from literal tables, never from the modules' own forward or from the authors' code.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from yoloab.modules.cbam import CBAM
from yoloab.modules.eca import ECA, eca_kernel_size
from yoloab.modules.se import SE
from yoloab.registry import MODULES

WIDTHS = [16, 32, 64, 128, 256]
WIDTH_IDS = [f"c{c}" for c in WIDTHS]


def _sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + torch.exp(-t))


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _randomize(m: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Float64 copy with small random parameters (gates stay away from saturation) and random BN statistics.

    Biases get an offset of +scale so that the first layer's ReLU units are active on some samples: a unit dead on
    the whole batch has a zero gradient, which `_assert_same_function` refuses as proving nothing.
    """
    m = m.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype) + (scale if name.endswith("bias") else 0))
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=b.dtype))
    return m


def _input(c: int, seed: int, h: int = 5, w: int = 7) -> torch.Tensor:
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _assert_same_function(module: torch.nn.Module, reference, x: torch.Tensor) -> None:
    """Forward outputs and gradients (input and every parameter) of module and reference agree to 1e-10."""
    params = list(module.parameters())
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(99), dtype=x.dtype)
    x1 = x.clone().requires_grad_(True)
    y1 = module(x1)
    g1 = torch.autograd.grad((y1 * weights).sum(), [x1, *params])
    x2 = x.clone().requires_grad_(True)
    y2 = reference(x2)
    g2 = torch.autograd.grad((y2 * weights).sum(), [x2, *params])
    assert y1.shape == x.shape
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-10)
    for name, a, b in zip(["input", *(n for n, _ in module.named_parameters())], g1, g2, strict=True):
        assert b.abs().max() > 0, f"reference gradient of {name} is zero: the comparison would prove nothing"
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=f"gradient of {name}")


# ---------------------------------------------------------------------------------------------------------------
# SE: s = sigmoid(W2 relu(W1 z + b1) + b2), z the spatial mean (Hu et al., Eqs. 2-4)


def _se_reference(m: SE, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    z = x.reshape(b, c, h * w).sum(-1) / (h * w)
    w1 = m.fc1.weight.reshape(m.fc1.out_channels, c)
    w2 = m.fc2.weight.reshape(c, m.fc1.out_channels)
    hidden = z @ w1.T + (m.fc1.bias if m.fc1.bias is not None else 0)
    hidden = torch.where(hidden > 0, hidden, torch.zeros_like(hidden))
    s = _sigmoid(hidden @ w2.T + (m.fc2.bias if m.fc2.bias is not None else 0))
    return x * s[:, :, None, None]


@pytest.mark.parametrize(
    ("c", "reduction", "bias"),
    [(16, 16, True), (64, 16, True), (256, 16, True), (48, 4, True), (64, 16, False), (32, 8, False)],
    ids=["c16-r16", "c64-r16", "c256-r16", "c48-r4", "c64-r16-nobias", "c32-r8-nobias"],
)
def test_se_equals_the_papers_equations(c, reduction, bias):
    m = _randomize(SE(c, reduction, bias=bias), seed=c + reduction)
    _assert_same_function(m, lambda x: _se_reference(m, x), _input(c, seed=1))


@pytest.mark.parametrize("c", WIDTHS, ids=WIDTH_IDS)
def test_se_parameter_count_is_the_closed_form(c):
    hidden = c // 16  # exactly C // r, no rounding to a multiple of 8
    assert _params(SE(c)) == 2 * c * hidden + hidden + c
    assert _params(SE(c, bias=False)) == 2 * c * hidden


def test_se_hidden_width_is_c_floor_divided_by_r():
    assert SE(24).fc1.out_channels == 1  # timm's default rounding would give 8
    assert SE(40, 8).fc1.out_channels == 5


def test_se_refuses_a_zero_width_excitation():
    with pytest.raises(ValueError, match="c1 // reduction = 0"):
        SE(8)
    with pytest.raises(ValueError, match="positive reduction"):
        SE(16, 0)


# ---------------------------------------------------------------------------------------------------------------
# ECA: a = sigmoid(conv1d_k(z)) across channels, zero padding (k - 1) / 2 (Wang et al., Eqs. 9-12)


def _banded(w: torch.Tensor, c: int) -> torch.Tensor:
    """The C x C matrix A of the 1D convolution across channels: A[i, i + j - p] = w[j]."""
    k = w.numel()
    p = (k - 1) // 2
    a = torch.zeros(c, c, dtype=w.dtype)
    for j in range(k):
        d = j - p
        if abs(d) < c:
            a = a + w[j] * torch.diag(torch.ones(c - abs(d), dtype=w.dtype), d)
    return a


def _eca_reference(m: ECA, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    z = x.reshape(b, c, h * w).sum(-1) / (h * w)
    a = _sigmoid(z @ _banded(m.conv.weight.reshape(-1), c).T)
    return x * a[:, :, None, None]


def test_banded_matrix_matches_a_hand_written_case():
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    expected = torch.tensor([[2, 3, 0, 0], [1, 2, 3, 0], [0, 1, 2, 3], [0, 0, 1, 2]], dtype=torch.float64)
    torch.testing.assert_close(_banded(w, 4), expected)


@pytest.mark.parametrize(
    ("c", "k_size"),
    [(16, None), (128, None), (256, None), (4, None), (32, 5), (8, 7), (3, 5)],
    ids=["c16-auto", "c128-auto", "c256-auto", "c4-auto", "c32-k5", "c8-k7", "c3-k5-wider-than-c"],
)
def test_eca_equals_the_papers_equations(c, k_size):
    m = _randomize(ECA(c, k_size), seed=c, scale=0.5)
    _assert_same_function(m, lambda x: _eca_reference(m, x), _input(c, seed=2))


# k = |(log2 C + 1) / 2|_odd, worked out by hand: C = 16 -> 2.5 -> 3, C = 128 -> 4 -> 5, C = 2048 -> 6 -> 7, C = 4 -> 1
ECA_K = {1: 1, 4: 1, 7: 1, 8: 3, 16: 3, 32: 3, 64: 3, 127: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}


@pytest.mark.parametrize(("c", "k"), list(ECA_K.items()), ids=[f"c{c}-k{k}" for c, k in ECA_K.items()])
def test_eca_adaptive_kernel_size_follows_eq_12(c, k):
    m = ECA(c)
    assert eca_kernel_size(c) == m.k_size == m.conv.kernel_size[0] == k
    assert _params(m) == k  # the whole module is one bias-free kernel
    assert m.conv.padding[0] == (k - 1) // 2


def test_eca_kernel_size_follows_gamma_and_b():
    assert ECA(256, gamma=1, b=0).k_size == 9  # log2 256 = 8 -> 9
    assert ECA(256, gamma=3, b=1).k_size == 3  # 9 / 3 = 3
    assert ECA(256, k_size=3).k_size == 3  # the authors' eca_layer default, fixed


@pytest.mark.parametrize("k_size", [2, 4, 0, -1], ids=["k2", "k4", "k0", "k-1"])
def test_eca_refuses_a_kernel_size_that_is_not_positive_odd(k_size):
    with pytest.raises(ValueError, match="positive odd"):
        ECA(64, k_size)


# ---------------------------------------------------------------------------------------------------------------
# CBAM: channel gate sigmoid(MLP(avg) + MLP(max)), then spatial gate sigmoid(BN(conv_k([max_c, mean_c])))
# (Woo et al., Eqs. 2-3, with the authors' [max, mean] order and BatchNorm)


def _mlp(m: CBAM, v: torch.Tensor) -> torch.Tensor:
    lin1, lin2 = m.ChannelGate.mlp[1], m.ChannelGate.mlp[3]
    hidden = v @ lin1.weight.T + lin1.bias
    return torch.where(hidden > 0, hidden, torch.zeros_like(hidden)) @ lin2.weight.T + lin2.bias


def _conv_same(maps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """k x k convolution (cross-correlation) with zero padding (k - 1) / 2, as a sum of shifted maps."""
    b, c, h, w = maps.shape
    k = weight.shape[-1]
    p = (k - 1) // 2
    padded = torch.zeros(b, c, h + 2 * p, w + 2 * p, dtype=maps.dtype)
    padded[:, :, p : p + h, p : p + w] = maps
    out = torch.zeros(b, h, w, dtype=maps.dtype)
    for ch in range(c):
        for i in range(k):
            for j in range(k):
                out = out + weight[0, ch, i, j] * padded[:, ch, i : i + h, j : j + w]
    return out[:, None]


def _cbam_reference(m: CBAM, x: torch.Tensor, training: bool) -> torch.Tensor:
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    channel = _sigmoid(_mlp(m, flat.sum(-1) / (h * w)) + _mlp(m, flat.max(-1).values))
    x1 = x * channel[:, :, None, None]
    pooled = torch.stack([x1.max(1).values, x1.sum(1) / c], dim=1)  # [max, mean], the authors' order
    t = _conv_same(pooled, m.SpatialGate.spatial.conv.weight)
    bn = m.SpatialGate.spatial.bn
    if training:
        mean, var = t.mean(), ((t - t.mean()) ** 2).mean()  # batch statistics, biased variance
    else:
        mean, var = bn.running_mean[0], bn.running_var[0]
    t = (t - mean) / torch.sqrt(var + 1e-5) * bn.weight[0] + bn.bias[0]
    return x1 * _sigmoid(t)


CBAM_CASES = [(16, 16, 7), (64, 16, 7), (256, 16, 7), (32, 8, 3), (48, 16, 5)]
CBAM_IDS = ["c16-r16-k7", "c64-r16-k7", "c256-r16-k7", "c32-r8-k3", "c48-r16-k5"]


@pytest.mark.parametrize(("c", "reduction", "kernel_size"), CBAM_CASES, ids=CBAM_IDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cbam_equals_the_papers_equations(c, reduction, kernel_size, mode):
    m = _randomize(CBAM(c, reduction, kernel_size), seed=c + kernel_size).train(mode == "train")
    _assert_same_function(m, lambda x: _cbam_reference(m, x, mode == "train"), _input(c, seed=3, h=6, w=9))


@pytest.mark.parametrize("c", WIDTHS, ids=WIDTH_IDS)
def test_cbam_parameter_count_is_the_closed_form(c):
    hidden = c // 16
    mlp = c * hidden + hidden + hidden * c + c  # two Linear layers with bias
    assert _params(CBAM(c)) == mlp + 2 * 7 * 7 + 2  # bias-free 7x7 conv on [max, mean], BN weight and bias
    assert _params(CBAM(c, kernel_size=3)) == mlp + 2 * 3 * 3 + 2


def test_cbam_eval_uses_the_running_statistics():
    m = _randomize(CBAM(32), seed=5)
    bn = m.SpatialGate.spatial.bn
    with torch.no_grad():
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0)
    x = _input(32, seed=6)
    with torch.no_grad():
        expected = _cbam_reference(m, x, training=False)
        evaluated = m.eval()(x)
        trained = m.train()(x)
    torch.testing.assert_close(evaluated, expected, rtol=0, atol=1e-10)
    assert (evaluated - trained).abs().max() > 1e-3  # batch and running statistics really differ here


def test_cbam_batchnorm_keeps_the_authors_eps_and_momentum():
    m = _randomize(CBAM(32), seed=7).train()
    bn = m.SpatialGate.spatial.bn
    old_mean, old_var = bn.running_mean.clone(), bn.running_var.clone()
    x = _input(32, seed=8)
    with torch.no_grad():
        m(x)
        # the conv input of the spatial gate, recomputed with the reference's channel gate
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        x1 = x * _sigmoid(_mlp(m, flat.sum(-1) / (h * w)) + _mlp(m, flat.max(-1).values))[:, :, None, None]
        t = _conv_same(torch.stack([x1.max(1).values, x1.sum(1) / c], dim=1), m.SpatialGate.spatial.conv.weight)
    n = t.numel()
    batch_mean, batch_var = t.mean(), ((t - t.mean()) ** 2).sum() / (n - 1)  # running_var takes the unbiased one
    torch.testing.assert_close(bn.running_mean[0], 0.99 * old_mean[0] + 0.01 * batch_mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(bn.running_var[0], 0.99 * old_var[0] + 0.01 * batch_var, rtol=0, atol=1e-12)
    assert bn.eps == 1e-5


def test_cbam_refuses_a_zero_width_mlp_where_the_reference_degenerates():
    # 8 // 16 = 0: the reference would build zero-width Linear layers and a gate independent of its input
    with pytest.raises(ValueError, match=r"CBAM\(c1=8, reduction=16\) has c1 // reduction = 0 hidden units"):
        CBAM(8)
    with pytest.raises(ValueError, match=r"a yaml row takes no channel count: \[-1, 1, CBAM, \[\]\]"):
        CBAM(256, 1024)  # a field yaml's [-1, 1, CBAM, [1024]] read as the reduction ratio


@pytest.mark.parametrize(
    ("reduction", "kernel_size", "match"),
    [(0, 7, "positive reduction"), (16, 4, "positive odd"), (16, 0, "positive odd")],
    ids=["r0", "k4", "k0"],
)
def test_cbam_refuses_bad_hyper_parameters(reduction, kernel_size, match):
    with pytest.raises(ValueError, match=match):
        CBAM(64, reduction, kernel_size)


# ---------------------------------------------------------------------------------------------------------------
# all three: shapes, registry entries, yaml rows


MODULE_CASES = [(SE, "SE"), (ECA, "ECA"), (CBAM, "CBAM")]


@pytest.mark.parametrize(("cls", "name"), MODULE_CASES, ids=[n for _, n in MODULE_CASES])
@pytest.mark.parametrize("c", [16, 64], ids=["c16", "c64"])
def test_output_shape_equals_input_shape_on_a_non_square_map(cls, name, c):
    x = torch.randn(2, c, 6, 11)
    assert cls(c).eval()(x).shape == (2, c, 6, 11)


@pytest.mark.parametrize(
    ("name", "arxiv"),
    [("SE", "1709.01507"), ("ECA", "1910.03151"), ("CBAM", "1807.06521")],
    ids=["SE", "ECA", "CBAM"],
)
def test_registered_as_attention_with_the_paper(name, arxiv):
    entry = MODULES.get(name)
    assert entry.cls.__name__ == name
    assert entry.role == "attention" and entry.channels == "same"
    assert f"arXiv:{arxiv}" in entry.paper
    assert entry.article is None  # the integrator sets placements


def test_yaml_rows_build_with_input_channels_and_arguments(tmp_path):
    text = """
    nc: 3
    scales:
      n: [1.0, 0.25, 1024]
    backbone:
      - [-1, 1, Conv, [64, 3, 2]]
      - [-1, 1, SE, []]
      - [-1, 1, ECA, []]
      - [-1, 1, CBAM, []]
      - [-1, 1, CBAM, [8, 3]]
      - [-1, 1, Conv, [128, 3, 2]]
      - [-1, 1, SE, [4, False]]
      - [-1, 1, ECA, [5]]
    head:
      - [[4, 7], 1, Detect, [nc]]
    """
    path = tmp_path / "attn.yaml"
    path.write_text(textwrap.dedent(text))
    rows = DetectionModel(str(path), verbose=False).model
    assert [type(rows[i]).__name__ for i in (1, 2, 3, 4, 6, 7)] == ["SE", "ECA", "CBAM", "CBAM", "SE", "ECA"]
    # row 0 outputs 64 * 0.25 = 16 channels, row 5 outputs 32
    assert rows[1].fc1.in_channels == 16 and rows[1].fc1.out_channels == 1
    assert rows[2].k_size == 3
    assert rows[3].ChannelGate.mlp[1].out_features == 1 and rows[3].SpatialGate.spatial.conv.kernel_size == (7, 7)
    assert rows[4].ChannelGate.mlp[1].out_features == 2 and rows[4].SpatialGate.spatial.conv.kernel_size == (3, 3)
    assert rows[6].fc1.out_channels == 8 and rows[6].fc1.bias is None
    assert rows[7].k_size == 5
