"""DynamicConv and DynamicBnAct against an independent per-sample computation.

For each sample: routing weights = sigmoid(Linear(mean over H, W)), kernel = sum of the expert kernels weighted by
them, then a plain F.conv2d with Ultralytics' autopad, BatchNorm (eval) and SiLU.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from yoloab.modules.dynamic_bn_act import DynamicBnAct
from yoloab.modules.dynamic_conv import DynamicConv


def _randomize_bn(bn: torch.nn.BatchNorm2d) -> None:
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)


def _per_sample(m: DynamicConv, x: torch.Tensor, c1, c2, k, s, g, d) -> torch.Tensor:
    experts = m.conv.cond_conv.weight.view(-1, c2, c1 // g, k, k)  # (E, c2, c1/g, k, k)
    pad = d * (k - 1) // 2  # Ultralytics' autopad for odd kernels
    bn = m.bn
    outs = []
    for xb in x:
        r = torch.sigmoid(m.conv.routing.weight @ xb.mean(dim=(1, 2)) + m.conv.routing.bias)
        kernel = sum(r[e] * experts[e] for e in range(experts.shape[0]))
        y = F.conv2d(xb[None], kernel, None, s, pad, d, g)
        y = (y - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
        y = y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        outs.append(y * torch.sigmoid(y))
    return torch.cat(outs)


CASES = [
    pytest.param(8, 16, 3, 2, 1, 1, 4, id="k3-s2"),
    pytest.param(8, 16, 1, 1, 1, 1, 4, id="k1-s1"),
    pytest.param(8, 12, 3, 1, 2, 1, 3, id="k3-g2-e3"),
    pytest.param(6, 6, 3, 1, 1, 2, 4, id="k3-d2"),
    pytest.param(8, 16, 5, 2, 1, 1, 2, id="k5-s2-e2"),
]


@pytest.mark.parametrize(("c1", "c2", "k", "s", "g", "d", "experts"), CASES)
def test_dynamic_conv_equals_per_sample_mixture(c1, c2, k, s, g, d, experts):
    torch.manual_seed(0)
    m = DynamicConv(c1, c2, k, s, g=g, d=d, num_experts=experts).eval()
    _randomize_bn(m.bn)
    x = torch.randn(3, c1, 11, 13, dtype=torch.float64)
    m = m.double()
    with torch.no_grad():
        got = m(x)
        want = _per_sample(m, x, c1, c2, k, s, g, d)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # the samples really get different kernels: a shared kernel would not reproduce the output
    assert not torch.allclose(m.conv.routing_weights(x)[0], m.conv.routing_weights(x)[1])


def test_dynamic_bn_act_adds_second_norm_relu_and_residual():
    torch.manual_seed(0)
    m = DynamicBnAct(8, 8, 3, 1, skip=True).eval().double()
    _randomize_bn(m.conv.bn)
    _randomize_bn(m.bn1)
    x = torch.randn(3, 8, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        inner = _per_sample(m.conv, x, 8, 8, 3, 1, 1, 1)
        bn = m.bn1
        y = (inner - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
        y = torch.relu(y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])
        torch.testing.assert_close(m(x), x + y)


@pytest.mark.parametrize(
    ("c1", "c2", "s", "skip", "residual"),
    [(8, 8, 1, True, True), (8, 8, 2, True, False), (8, 16, 1, True, False), (8, 8, 1, False, False)],
    ids=["same-s1-skip", "stride2", "c1!=c2", "no-skip"],
)
def test_dynamic_bn_act_residual_only_when_shapes_allow(c1, c2, s, skip, residual):
    assert DynamicBnAct(c1, c2, 3, s, skip=skip).has_residual is residual
