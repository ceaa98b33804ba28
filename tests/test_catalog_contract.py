"""Contract of every registered module, parametrized over the registry: a new module is covered without new code.

Downsampling modules are built the way a placement builds them (from a Conv row `[c2, 3, 2]`) and must halve the
resolution, give c2 channels, backpropagate, and have exactly the parameter count of a closed-form formula.
Backbones must give one map per declared stride with the declared channels. Block, attention, upsampling and SPPF
modules must keep the shapes their role promises and backpropagate into every parameter.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
import torch

from yoloab.placement import article_rules
from yoloab.registry import MODULES
from yoloab.roles import ROLES

E = 4  # experts, the DynamicConv default


def _conv_bn(c1: int, c2: int, k: int) -> int:
    return c1 * c2 * k * k + 2 * c2


# Closed forms from the papers' designs (see SPEC section 2), for a module replacing Conv(c1, c2, 3, 2).
PARAM_FORMULAS = {
    "ADown": lambda c1, c2: _conv_bn(c1 // 2, c2 // 2, 3) + _conv_bn(c1 // 2, c2 // 2, 1),
    "DynamicConv": lambda c1, c2: E * c2 * c1 * 9 + c1 * E + E + 2 * c2,
    "DynamicBnAct": lambda c1, c2: E * c2 * c1 * 9 + c1 * E + E + 2 * c2 + 2 * c2,
    # AKConv with num_param N = 3: offsets 3x3 conv c1 -> 2N with bias, (N,1) reducer without bias, BN
    "AKConv": lambda c1, c2: 9 * c1 * 2 * 3 + 2 * 3 + c1 * c2 * 3 + 2 * c2,
    # YOLOv10: pointwise Conv c1 -> c2, then depthwise 3x3 (groups c2) with BN
    "SCDown": lambda c1, c2: _conv_bn(c1, c2, 1) + c2 * 9 + 2 * c2,
    "AConv": lambda c1, c2: _conv_bn(c1, c2, 3),  # avg-pool has no weights
    # GhostNet: primary conv c1 -> c2/2 (3x3), cheap depthwise 5x5 on c2/2
    "GhostConv": lambda c1, c2: _conv_bn(c1, c2 // 2, 3) + (c2 // 2) * 25 + 2 * (c2 // 2),
    "DWConv": lambda c1, c2: c2 * (c1 // math.gcd(c1, c2)) * 9 + 2 * c2,  # groups gcd(c1, c2)
    "SPDConv": lambda c1, c2: _conv_bn(4 * c1, c2, 3),  # 2x2 space-to-depth, then a 3x3 stride-1 Conv
    "HWD": lambda c1, c2: 4 * c1 * c2 + c2 + 2 * c2,  # 4 Haar bands, 1x1 conv with bias, BN
}

DOWNSAMPLERS = [e for e in MODULES if e.role == "downsample"]
BACKBONES = [e for e in MODULES if e.role == "backbone"]


def _from_conv_row(entry, c1: int, c2: int) -> torch.nn.Module:
    return entry.cls(c1, c2, *[3, 2][: entry.conv_args - 1])


@pytest.mark.parametrize("entry", DOWNSAMPLERS, ids=lambda e: e.name)
def test_downsampler_shape_stride_and_backward(entry):
    torch.manual_seed(0)
    m = _from_conv_row(entry, 16, 32).train()
    x = torch.randn(2, 16, 20, 28, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 32, 10, 14)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize("entry", DOWNSAMPLERS, ids=lambda e: e.name)
@pytest.mark.parametrize(("c1", "c2"), [(16, 32), (32, 64), (64, 64)], ids=["16-32", "32-64", "64-64"])
def test_downsampler_parameter_count_matches_closed_form(entry, c1, c2):
    assert entry.name in PARAM_FORMULAS, f"add a closed-form parameter count for {entry.name} to PARAM_FORMULAS"
    m = _from_conv_row(entry, c1, c2)
    assert sum(p.numel() for p in m.parameters()) == PARAM_FORMULAS[entry.name](c1, c2)


@pytest.mark.parametrize("entry", BACKBONES, ids=lambda e: e.name)
def test_backbone_outputs_match_declared_strides_and_channels(entry):
    torch.manual_seed(0)
    m = entry.cls(3, entry.default_size).train()
    x = torch.randn(1, 3, 64, 96, requires_grad=True)
    outs = m(x)
    assert len(outs) == len(m.strides) == len(m.out_channels)
    for out, s, c in zip(outs, m.strides, m.out_channels, strict=True):
        assert out.shape == (1, c, math.ceil(64 / s), math.ceil(96 / s))
    sum(o.mean() for o in outs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("entry", list(MODULES), ids=lambda e: e.name)
def test_registry_metadata_is_complete(entry):
    assert entry.paper, "every module names its paper"
    assert entry.origin.rsplit(":", 1)[1].isdigit()
    assert entry.channels == ROLES[entry.role].channels
    if entry.role == "downsample":
        assert entry.article_rules and all(r.scope in {"all", "backbone", "head"} for r in entry.article_rules)
    elif entry.role == "backbone":
        assert entry.sizes and entry.article is None
    else:  # the row roles: an article placement of their own, or the role's default
        assert all(r.scope in ROLES[entry.role].selectors for r in article_rules(entry)) and article_rules(entry)
    if entry.builtin:
        path = Path(entry.origin.rsplit(":", 1)[0])
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "paper" in doc.lower() or "arxiv" in doc.lower() or "iclr" in doc.lower(), f"{path} provenance"
        assert len(doc) > 200, "built-in module files open with a provenance docstring"
        if entry.role in NEW_ROLES:  # compared once with the authors' code: the commit is named
            assert re.search(r"\b[0-9a-f]{40}\b", doc), f"{path} names the authors' commit it was compared with"


NEW_ROLES = ("block", "attention", "upsample", "sppf")


def _role_case(entry) -> tuple[torch.nn.Module, tuple[int, ...], tuple[int, ...]]:
    """The module built as its role builds it, an input shape and the output shape the role promises."""
    c, h, w = 32, 10, 14
    if entry.role == "attention":
        return entry.cls(c), (2, c, h, w), (2, c, h, w)
    if entry.role == "upsample":
        return entry.cls(c, 2), (2, c, h, w), (2, c, 2 * h, 2 * w)
    if entry.role == "sppf":
        return entry.cls(c, 48, 5), (2, c, h, w), (2, 48, h, w)
    return entry.cls(c, c, True), (2, c, h, w), (2, c, h, w)


@pytest.mark.parametrize("entry", [e for e in MODULES if e.role in NEW_ROLES], ids=lambda e: e.name)
def test_row_role_modules_keep_their_contract_and_backpropagate(entry):
    torch.manual_seed(0)
    m, shape, expected = _role_case(entry)
    x = torch.randn(*shape, requires_grad=True)
    y = m.train()(x)
    assert y.shape == expected
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
