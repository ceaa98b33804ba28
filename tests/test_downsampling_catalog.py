"""The downsamplers added with issue 14: Ultralytics' own (SCDown, AConv, GhostConv, DWConv), SPD-Conv, HWD, LDConv.

SPD-Conv and HWD are checked against independent computations (explicit per-pixel space-to-depth, the Haar transform
as separable analysis matrices, and values printed by pytorch_wavelets); the Ultralytics modules against the same
yaml edits built by Ultralytics alone, in a process that never imports yoloab.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.models import get_base_model
from yoloab.modules.hwd import HWD, haar_dwt
from yoloab.modules.spdconv import SPDConv, space_to_depth
from yoloab.registry import MODULES
from yoloab.variants import make_variant

runner = CliRunner()
ULTRALYTICS_FOUR = ["SCDown", "AConv", "GhostConv", "DWConv"]


def _randomise_bn(module: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so that an eval-mode comparison sees them."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def _bn_eval(y: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


# --------------------------------------------------------------------------------------------------------------------
# SPD-Conv


def test_space_to_depth_matches_explicit_per_pixel_construction():
    x = torch.arange(2 * 3 * 6 * 4, dtype=torch.float32).view(2, 3, 6, 4)
    expected = torch.empty(2, 12, 3, 2)
    # the authors' sub-map order: (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col)
    offsets = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for b in range(2):
        for k, (dr, dc) in enumerate(offsets):
            for c in range(3):
                for i in range(3):
                    for j in range(2):
                        expected[b, k * 3 + c, i, j] = x[b, c, 2 * i + dr, 2 * j + dc]
    assert torch.equal(space_to_depth(x), expected)


def test_spdconv_output_is_conv_bn_silu_of_the_space_to_depth_map():
    torch.manual_seed(0)
    m = SPDConv(4, 8, 3).eval()
    _randomise_bn(m)
    x = torch.randn(2, 4, 10, 6)
    # independent: rebuild the 4c1-channel map by 2x2 unfolding, then conv (no bias, padding 1), BN, SiLU by hand
    blocks = x.view(2, 4, 5, 2, 3, 2)  # (b, c, i, dr, j, dc)
    s2d = blocks.permute(0, 5, 3, 1, 2, 4).reshape(2, 16, 5, 3)  # channel index = (dc * 2 + dr) * c1 + c
    y = F.silu(_bn_eval(F.conv2d(s2d, m.conv.conv.weight, None, 1, 1), m.conv.bn))
    with torch.no_grad():
        assert torch.allclose(m(x), y, atol=1e-5)
    assert m(x).shape == (2, 8, 5, 3)


# --------------------------------------------------------------------------------------------------------------------
# HWD


def _haar_matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal 1-D Haar analysis matrices (low, high) for length n, zero-extended to even length."""
    half = math.ceil(n / 2)
    low, high = torch.zeros(half, n), torch.zeros(half, n)
    for i in range(half):
        for t, sign in ((0, 1.0), (1, -1.0)):
            if 2 * i + t < n:  # the missing sample of an odd length is a zero
                low[i, 2 * i + t] = 1 / math.sqrt(2)
                high[i, 2 * i + t] = sign / math.sqrt(2)
    return low, high


@pytest.mark.parametrize(("h", "w"), [(4, 6), (5, 7)], ids=["even", "odd"])
def test_haar_subbands_match_separable_analysis_matrices(h, w):
    x = torch.randn(1, 2, h, w, dtype=torch.float64)
    lo_h, hi_h = _haar_matrices(h)
    lo_w, hi_w = _haar_matrices(w)
    bands = []
    # band order of the reference (pytorch_wavelets yL, yH[..., 0], yH[..., 1], yH[..., 2]):
    # low-low, high along height, high along width, high along both
    for rows, cols in ((lo_h, lo_w), (hi_h, lo_w), (lo_h, hi_w), (hi_h, hi_w)):
        bands.append(rows.double() @ x @ cols.double().T)
    assert torch.allclose(haar_dwt(x), torch.cat(bands, dim=1), atol=1e-12)


def test_haar_subbands_of_a_known_image_equal_pytorch_wavelets_values():
    # pytorch_wavelets 1.3.0, DWTForward(J=1, mode='zero', wave='haar') on arange(9).view(3, 3), as the HWD
    # reference (apple1986/HWD, HWD.py) calls it; printed once in a scratch environment and copied here
    x = torch.arange(9.0).view(1, 1, 3, 3)
    expected = torch.tensor(
        [[[4.0, 3.5], [6.5, 4.0]], [[-3.0, -1.5], [6.5, 4.0]], [[-1.0, 3.5], [-0.5, 4.0]], [[0.0, -1.5], [-0.5, 4.0]]]
    )
    assert torch.allclose(haar_dwt(x)[0], expected, atol=1e-6)


def test_haar_transform_preserves_energy():
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    assert haar_dwt(x).square().sum().item() == pytest.approx(x.square().sum().item(), rel=1e-12)


def test_hwd_output_is_conv1x1_bn_relu_of_the_subbands():
    torch.manual_seed(0)
    m = HWD(3, 8).eval()
    _randomise_bn(m)
    x = torch.randn(2, 3, 8, 6)
    conv, bn = m.conv_bn_relu[0], m.conv_bn_relu[1]
    y = F.relu(_bn_eval(F.conv2d(haar_dwt(x), conv.weight, conv.bias), bn))
    with torch.no_grad():
        assert torch.allclose(m(x), y, atol=1e-5)
    assert conv.bias is not None, "the reference's 1x1 conv keeps its bias"


# --------------------------------------------------------------------------------------------------------------------
# Ultralytics' own modules: registering them changes nothing, and profile counts equal Ultralytics' own builds

_ULTRALYTICS_ONLY = textwrap.dedent(
    """
    import json, sys
    import yaml
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import ROOT
    edits = {"SCDown": None, "AConv": 1, "GhostConv": None, "DWConv": None}  # args kept of [c2, 3, 2]
    out = {}
    for name, keep in edits.items():
        d = yaml.safe_load((ROOT / "cfg/models/v8/yolov8.yaml").read_text())
        d["scale"] = "n"
        rows = d["backbone"] + d["head"]
        for r in (1, 3, 5, 7, 16, 19):
            assert rows[r][2] == "Conv" and rows[r][3][2] == 2
            rows[r][2], rows[r][3] = name, rows[r][3][:keep]
        model = DetectionModel(d, verbose=False)
        out[name] = sum(p.numel() for p in model.parameters())
    assert "yoloab" not in sys.modules
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_profile_of_ultralytics_modules_equals_ultralytics_alone():
    alone = subprocess.run([sys.executable, "-c", _ULTRALYTICS_ONLY], capture_output=True, text=True, check=True)
    expected = json.loads(alone.stdout.strip().splitlines()[-1])
    args = ["profile", "--model", "yolov8n", "--placement", "all", "--no-latency", "--format", "json", "--imgsz", "64"]
    for name in ULTRALYTICS_FOUR:
        args += ["--module", name]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = {r["module"]: r for r in json.loads(result.stdout) if r["module"]}
    assert {m: records[m]["params"] for m in ULTRALYTICS_FOUR} == expected
    assert all(records[m]["variant"] == f"yolov8n-{m}-all" for m in ULTRALYTICS_FOUR)


@pytest.mark.parametrize(
    ("module", "rows"),
    [("SCDown", [5, 7, 19]), ("AConv", [3, 5, 7, 16, 19]), ("GhostConv", [1, 3, 5, 7, 16, 19]), ("DWConv", [3, 5, 7])],
    ids=ULTRALYTICS_FOUR,
)
def test_article_placements_are_where_the_source_models_use_them(module, rows):
    assert make_variant(get_base_model("yolov8n"), module, "article").rows == rows


def test_ultralytics_modules_are_built_by_ultralytics_itself():
    # the yaml rows keep Ultralytics' class: yoloab's placeholder path is not involved
    v = make_variant(get_base_model("yolov8n"), "SCDown", "all")
    from yoloab.variants import build

    model = build(v)
    assert type(model.model[5]).__module__ == "ultralytics.nn.modules.block"


# --------------------------------------------------------------------------------------------------------------------
# LDConv alias and the catalog listing


def test_ldconv_is_an_alias_of_akconv_not_a_second_class():
    assert MODULES.get("LDConv") is MODULES.get("AKConv")
    assert "LDConv" in MODULES and "LDConv" not in MODULES.names()
    assert [e.name for e in MODULES].count("AKConv") == 1
    v = make_variant(get_base_model("yolov8n"), "LDConv", "article")
    assert v.module == "AKConv" and v.rows == [1, 3]
    # a yaml row naming LDConv builds the same AKConv layer
    from copy import deepcopy

    from yoloab.variants import build

    renamed = deepcopy(v)
    for r in v.rows:
        (renamed.config["backbone"] + renamed.config["head"])[r][2] = "LDConv"
    ak, ld = build(v), build(renamed)
    assert type(ld.model[1]) is type(ak.model[1]) and sum(p.numel() for p in ld.parameters()) == sum(
        p.numel() for p in ak.parameters()
    )


def test_list_shows_new_entries_with_papers():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, paper in [
        ("SCDown", "YOLOv10"),
        ("AConv", "YOLOv9"),
        ("GhostConv", "GhostNet"),
        ("DWConv", "MobileNets"),
        ("SPDConv", "SPD-Conv"),
        ("HWD", "Pattern Recognition"),
        ("LDConv", "alias of AKConv"),
    ]:
        assert any(line.split("│")[1].strip() == name and paper in line for line in lines if "│" in line), name
