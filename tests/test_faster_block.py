"""Tests for yoloab.modules.faster_block: FasterNet's block against the paper's equations, sizes and YOLO hosts.

Expected values come from an independent computation written here (F.conv2d on the first c // n_div channels,
einsum for the 1x1 convs, BatchNorm written out) and from closed forms, never from the authors' code or the module.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules.block import C3, Bottleneck, C2f, C3k, C3k2
from ultralytics.nn.modules.conv import Conv

from yoloab.modules.faster_block import FasterBlock, PConv, faster_block_params
from yoloab.registry import MODULES


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def closed_form(c: int, n_div: int, mlp_ratio: float) -> int:
    """(c / n_div)^2 * 9 for the PConv; c*h + 2h (BN) + h*c for the MLP, h = c * mlp_ratio."""
    cp, h = c // n_div, int(c * mlp_ratio)
    return cp * cp * 9 + c * h + 2 * h + h * c


def randomise(m: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics, so that no term of the block can hide behind zeros or ones."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.5)
    return m


def batch_norm(h: torch.Tensor, bn: nn.BatchNorm2d, training: bool) -> torch.Tensor:
    """(h - mean) / sqrt(var + eps) * weight + bias; batch statistics (biased variance) in training."""
    if training:
        mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    return (h - mean[:, None, None]) / torch.sqrt(var[:, None, None] + bn.eps) * bn.weight[:, None, None] + bn.bias[
        :, None, None
    ]


def paper_block(m: FasterBlock, x: torch.Tensor, act: str, training: bool) -> torch.Tensor:
    """The FasterNet block from the paper's equations, reading the module's parameter tensors."""
    if m.adjust_channel is not None:  # the C2f-Faster adapter: 1x1 conv -> BN -> SiLU
        a = m.adjust_channel
        x = F.silu(batch_norm(torch.einsum("oc,bchw->bohw", a.conv.weight[:, :, 0, 0], x), a.bn, training))
    w_p = m.spatial_mixing.partial_conv3.weight
    cp = w_p.shape[0]
    z = torch.cat([F.conv2d(x[:, :cp], w_p, padding=1), x[:, cp:]], dim=1)  # PConv; the rest untouched
    h = torch.einsum("oc,bchw->bohw", m.mlp[0].weight[:, :, 0, 0], z)
    h = batch_norm(h, m.mlp[1], training)
    h = torch.relu(h) if act == "relu" else F.gelu(h)
    y = torch.einsum("oc,bchw->bohw", m.mlp[3].weight[:, :, 0, 0], h)
    if m.layer_scale is not None:
        y = m.layer_scale[:, None, None] * y
    return x + y if m.add else y


class Case(NamedTuple):
    training: bool
    act: str = "relu"
    shortcut: bool = True
    layer_scale: float = 0.0
    fw: str = "split_cat"
    c1: int = 16
    c2: int = 16
    n_div: int = 4


CASES = {
    "eval-relu": Case(False),
    "train-relu": Case(True),
    "eval-gelu": Case(False, "gelu"),
    "train-gelu": Case(True, "gelu"),
    "eval-no-shortcut": Case(False, shortcut=False),
    "train-no-shortcut": Case(True, shortcut=False),
    "eval-layer-scale": Case(False, layer_scale=0.3),
    "train-layer-scale": Case(True, layer_scale=0.3),
    "eval-slicing": Case(False, fw="slicing"),
    "train-slicing": Case(True, fw="slicing"),
    "train-slicing-gelu-layer-scale": Case(True, "gelu", layer_scale=0.3, fw="slicing"),
    "eval-c30-ndiv4-uneven-split": Case(False, c1=30, c2=30),
    "train-c24-ndiv2": Case(True, c1=24, c2=24, n_div=2),
    "eval-adapter-8to16": Case(False, c1=8, c2=16),
    "train-adapter-8to16-no-shortcut": Case(True, shortcut=False, c1=8, c2=16),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_forward_and_gradients_match_the_paper_equations(case: Case) -> None:
    m = FasterBlock(
        case.c1,
        case.c2,
        case.shortcut,
        case.n_div,
        layer_scale_init_value=case.layer_scale,
        act=case.act,
        pconv_fw_type=case.fw,
    )
    m = randomise(m.double()).train(case.training)
    x = torch.randn(2, case.c1, 6, 7, dtype=torch.float64, requires_grad=True)
    version = x._version
    expected = paper_block(m, x, case.act, case.training)
    out = m(x)
    assert out.shape == (2, case.c2, 6, 7)
    assert x._version == version  # the input, which the residual reads, is never written
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    leaves = [x, *m.parameters()]
    grad_out = torch.randn_like(out)
    got = torch.autograd.grad(out, leaves, grad_out)
    want = torch.autograd.grad(expected, leaves, grad_out)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_slicing_and_split_cat_agree(training: bool) -> None:
    x = torch.randn(2, 12, 5, 5, dtype=torch.float64, requires_grad=True)
    split, sliced = PConv(12, 4, "split_cat").double(), PConv(12, 4, "slicing").double()
    sliced.load_state_dict(split.state_dict())
    split.train(training), sliced.train(training)
    a, b = split(x), sliced(x)
    assert torch.equal(a, b)
    assert torch.equal(a[:, 3:], x[:, 3:])  # the last 12 - 12 // 4 channels pass untouched
    (ga,) = torch.autograd.grad(a.square().sum(), split.partial_conv3.weight)
    (gb,) = torch.autograd.grad(b.square().sum(), sliced.partial_conv3.weight)
    assert torch.equal(ga, gb)


@pytest.mark.parametrize(
    ("c", "n_div", "mlp_ratio"),
    [(16, 4, 2.0), (32, 4, 2.0), (64, 4, 2.0), (64, 2, 2.0), (64, 8, 1.0), (30, 4, 2.0), (48, 4, 1.5), (40, 4, 3.0)],
    ids=lambda v: str(v),
)
def test_parameter_count_is_the_closed_form(c: int, n_div: int, mlp_ratio: float) -> None:
    m = FasterBlock(c, c, n_div=n_div, mlp_ratio=mlp_ratio)
    assert n_params(m) == closed_form(c, n_div, mlp_ratio)
    assert faster_block_params(c, c, n_div, mlp_ratio) == closed_form(c, n_div, mlp_ratio)


@pytest.mark.parametrize(
    ("c1", "c2", "layer_scale", "extra"),
    [(16, 16, 0.0, 0), (8, 16, 0.0, 8 * 16 + 2 * 16), (32, 16, 0.0, 32 * 16 + 2 * 16), (16, 16, 1e-2, 16)],
    ids=["same-channels-no-adapter", "adapter-8to16", "adapter-32to16", "layer-scale"],
)
def test_adapter_and_layer_scale_parameters(c1: int, c2: int, layer_scale: float, extra: int) -> None:
    m = FasterBlock(c1, c2, layer_scale_init_value=layer_scale)
    assert n_params(m) == closed_form(c2, 4, 2.0) + extra
    assert faster_block_params(c1, c2, layer_scale=layer_scale > 0) == n_params(m)
    assert (m.adjust_channel is None) == (c1 == c2)
    if c1 != c2:
        assert isinstance(m.adjust_channel, Conv) and m.adjust_channel.conv.kernel_size == (1, 1)


def test_shortcut_false_drops_exactly_the_residual() -> None:
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64)
    with_res = randomise(FasterBlock(16, 16, True).double()).eval()
    without = FasterBlock(16, 16, False).double().eval()
    without.load_state_dict(with_res.state_dict())
    torch.testing.assert_close(with_res(x) - without(x), x, rtol=0, atol=1e-12)
    assert not torch.allclose(without(x), with_res(x))


@pytest.mark.parametrize("shortcut", [True, False], ids=["shortcut", "no-shortcut"])
def test_drop_path_drops_the_branch_only_when_there_is_a_residual(shortcut: bool) -> None:
    # drop-path rate 1 drops every sample's branch in training: x + 0 with a residual; without one it is not applied
    m = randomise(FasterBlock(16, 16, shortcut, drop_path=1.0).double()).train()
    plain = FasterBlock(16, 16, shortcut).double().train()
    plain.load_state_dict(m.state_dict())
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64)
    assert torch.equal(m(x), x if shortcut else plain(x))


def test_state_dict_keys_are_the_references() -> None:
    # the authors' MLPBlock names, so that their checkpoints load block by block
    assert list(FasterBlock(16, 16, layer_scale_init_value=0.5).state_dict()) == [
        "layer_scale",
        "mlp.0.weight",
        "mlp.1.weight",
        "mlp.1.bias",
        "mlp.1.running_mean",
        "mlp.1.running_var",
        "mlp.1.num_batches_tracked",
        "mlp.3.weight",
        "spatial_mixing.partial_conv3.weight",
    ]


def test_activation_defaults_to_relu_and_gelu_is_selectable() -> None:
    relu = FasterBlock(16, 16).mlp[2]
    assert type(relu) is nn.ReLU and relu.inplace
    assert type(FasterBlock(16, 16, act="gelu").mlp[2]) is nn.GELU
    assert type(FasterBlock(16, 16, act=nn.Hardswish).mlp[2]) is nn.Hardswish


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c1": 2, "c2": 2}, "c2 >= n_div"),
        ({"c1": 16, "c2": 16, "act": "swish"}, "unknown FasterBlock activation"),
        ({"c1": 16, "c2": 16, "pconv_fw_type": "fast"}, "unknown PConv forward"),
    ],
    ids=["too-few-channels", "unknown-activation", "unknown-pconv-forward"],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FasterBlock(**kwargs)


def test_registered_as_a_block_module() -> None:
    entry = MODULES.get("Faster")
    assert entry.cls is FasterBlock
    assert (entry.role, entry.channels, entry.article) == ("block", "conv", None)
    assert "arXiv:2303.03667" in entry.paper and "FasterNet" in entry.paper
    assert {"C2f", "C3k2", "C3"} <= set(entry.hosts)


def swap_bottlenecks(host: nn.Module) -> tuple[int, int, int]:
    """Replace every Bottleneck inside `host` by FasterBlock(c, c, shortcut) as the block role does.

    Returns:
        the number of blocks replaced, their width, and the parameters the Bottlenecks had.
    """
    replaced, removed, width = 0, 0, 0
    for parent in list(host.modules()):
        for name, child in parent.named_children():
            if type(child) is Bottleneck:
                c = child.cv1.conv.in_channels
                setattr(parent, name, FasterBlock(c, c, child.add))
                replaced, removed, width = replaced + 1, removed + n_params(child), c
    return replaced, width, removed


HOSTS = {
    "C2f": (lambda: C2f(64, 64, n=2), 2, 32),
    "C2f-head-no-shortcut": (lambda: C2f(64, 64, n=2, shortcut=False), 2, 32),
    "C3k2": (lambda: C3k2(64, 64, n=2, c3k=False), 2, 32),
    "C3k2-c3k": (lambda: C3k2(64, 64, n=2, c3k=True), 4, 16),  # each C3k holds two Bottlenecks of width 32 * 0.5
    "C3": (lambda: C3(64, 64, n=2), 2, 32),
}


@pytest.mark.parametrize(("make", "blocks", "width"), list(HOSTS.values()), ids=list(HOSTS))
def test_slots_into_ultralytics_hosts(make, blocks: int, width: int) -> None:
    torch.manual_seed(0)
    host = make()
    before = n_params(host)
    shortcut = all(b.add for b in host.modules() if type(b) is Bottleneck)
    replaced, c, removed = swap_bottlenecks(host)
    assert (replaced, c) == (blocks, width)
    assert not any(type(b) is Bottleneck for b in host.modules())
    faster = [b for b in host.modules() if isinstance(b, FasterBlock)]
    assert all(b.add == shortcut and b.adjust_channel is None for b in faster)
    if isinstance(host, C3k2) and any(isinstance(b, C3k) for b in host.m):
        assert all(isinstance(b, FasterBlock) for inner in host.m for b in inner.m)
    assert n_params(host) == before - removed + blocks * closed_form(width, 4, 2.0)
    x = torch.randn(2, 64, 16, 16, requires_grad=True)
    out = host(x)
    assert out.shape == (2, 64, 16, 16)
    out.square().mean().backward()
    assert all(b.spatial_mixing.partial_conv3.weight.grad is not None for b in faster)


def test_builds_standalone_from_yaml_rows() -> None:
    from ultralytics.nn.tasks import DetectionModel

    import yoloab  # noqa: F401  (arms Ultralytics' parser with the registry)

    d = {
        "nc": 2,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Faster", [32]], [-1, 1, "Faster", [32]]],
        "head": [[[-1], 1, "Detect", ["nc"]]],
    }
    model = DetectionModel(d, verbose=False)
    widen, keep = model.model[1], model.model[2]
    assert isinstance(widen, FasterBlock) and isinstance(keep, FasterBlock)
    assert isinstance(widen.adjust_channel, Conv) and keep.adjust_channel is None
    assert n_params(widen) == closed_form(32, 4, 2.0) + 16 * 32 + 2 * 32
    assert n_params(keep) == closed_form(32, 4, 2.0)
