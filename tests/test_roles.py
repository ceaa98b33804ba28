"""Roles built from a rule (block, attention, upsample, sppf), checked from outside the code that builds them.

Each variant is compared with its baseline through forward pre-hooks: every base layer must see the same input shapes
in the variant as in the baseline (at the row it moved to), Detect included. Parameter counts are the baseline's plus
the new modules' own, each built separately with the channels the hooks saw, minus what was replaced. Expected rows
and indices are written out by hand from the yaml files of the installed Ultralytics.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner
from ultralytics.nn.modules.block import SPPF, Bottleneck, C3k

from yoloab.cli.app import app
from yoloab.errors import PlacementError, UnknownModuleError, UnknownRoleError
from yoloab.models import get_base_model
from yoloab.registry import MODULES, register_module
from yoloab.transfer import check_pretrained, seeded_model
from yoloab.variants import baseline, build, build_seeded, count_params, from_yaml, make_variant

runner = CliRunner()
X = torch.zeros(1, 3, 64, 96)  # non-square, so that a transposed map shows


def _shape(a) -> tuple:
    if isinstance(a, dict):  # Detect's eval output
        return tuple((k, _shape(v)) for k, v in sorted(a.items()))
    return tuple(_shape(t) for t in a) if isinstance(a, (list, tuple)) else tuple(a.shape)


def _trace(model: nn.Module) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Input and output shapes of every row of a DetectionModel, from hooks on a forward pass."""
    ins: dict[int, tuple] = {}
    outs: dict[int, tuple] = {}
    hooks = []
    for i, layer in enumerate(model.model):
        hooks.append(layer.register_forward_pre_hook(lambda m, a, i=i: ins.__setitem__(i, _shape(a[0]))))
        hooks.append(layer.register_forward_hook(lambda m, a, y, i=i: outs.__setitem__(i, _shape(y))))
    model.eval()
    with torch.no_grad():
        model(X)
    for h in hooks:
        h.remove()
    return ins, outs


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------------------------------------------------
# every role, on the families the issue names


CASES = [
    ("yolov8n", "EMA", "backbone"),
    ("yolo11n", "EMA", "backbone"),
    ("yolov8n", "CBAM", "neck-outputs"),
    ("yolo11n", "SE", "sppf"),
    ("yolov10n", "CoordAtt", "head"),
    ("yolov8n", "Faster", "all"),
    ("yolo11n", "Faster", "all"),
    ("yolov8n", "DySample", "all"),
    ("yolo11n", "DySample", "all"),
    ("yolov8n", "SPPF_LSKA", "all"),
    ("yolo11n", "SPPF_LSKA", "all"),
]
# rows selected, read off the yaml files by hand
SELECTED = {
    ("yolov8n", "backbone"): [2, 4, 6, 8],  # C2f rows of the backbone
    ("yolo11n", "backbone"): [2, 4, 6, 8],  # C3k2 rows (C2PSA is the tail, not a block row)
    ("yolov8n", "neck-outputs"): [15, 18, 21],  # Detect: [[15, 18, 21], 1, Detect, [nc]]
    ("yolo11n", "sppf"): [9],
    ("yolov10n", "head"): [13, 16, 19, 22],  # C2f rows 13, 16, 19 and C2fCIB row 22
    ("yolov8n", "Faster"): [2, 4, 6, 8, 12, 15, 18, 21],
    ("yolo11n", "Faster"): [2, 4, 6, 8, 13, 16, 19, 22],
    ("yolov8n", "DySample"): [10, 13],
    ("yolo11n", "DySample"): [11, 14],
    ("yolov8n", "SPPF_LSKA"): [9],
    ("yolo11n", "SPPF_LSKA"): [9],
}


def _ids(case) -> str:
    return "-".join(case)


@pytest.fixture(scope="module", params=CASES, ids=[_ids(c) for c in CASES])
def built(request):
    model, module, placement = request.param
    base = get_base_model(model)
    variant = make_variant(base, module, placement)
    b, v = build_seeded(baseline(base)), build_seeded(variant)
    return request.param, variant, b, v, _trace(b), _trace(v)


def test_every_base_layer_sees_the_same_inputs_and_detect_the_same_three_maps(built):
    (_, module, _), variant, b, v, (b_in, _), (v_in, _) = built
    row_map = variant.row_map or {i: i for i in range(len(b.model))}
    assert len(row_map) == len(b.model)
    for i in range(len(b.model)):
        assert v_in[row_map[i]] == b_in[i], f"base row {i} ({b.model[i].type}) sees other inputs in {variant.name}"
    assert type(v.model[-1]) is type(b.model[-1]) and len(v_in[len(v.model) - 1]) == 3


def test_selected_rows_are_the_ones_read_off_the_yaml(built):
    (model, module, placement), variant, *_ = built
    expected = SELECTED.get((model, placement)) or SELECTED[(model, module)]
    if MODULES.get(module).role == "attention":
        assert variant.after == expected
        # each inserted row sits right after the row it follows, shifted by the rows inserted before it
        assert variant.rows == [r + k + 1 for k, r in enumerate(expected)]
    else:
        assert variant.rows == expected and variant.row_map is None


def test_parameters_are_the_baselines_plus_the_new_modules_own(built):
    (_, module, _), variant, b, v, (b_in, b_out), _ = built
    entry = MODULES.get(module)
    expected = _params(b)
    torch.manual_seed(0)
    if entry.role == "attention":
        expected += sum(_params(entry.cls(b_out[a][1])) for a in variant.after)
    elif entry.role == "upsample":
        expected += sum(_params(entry.cls(b_in[r][1], 2)) for r in variant.rows)
    elif entry.role == "sppf":
        for r in variant.rows:
            old = b.model[r]
            assert isinstance(old, SPPF)
            expected += _params(entry.cls(b_in[r][1], b_out[r][1], 5)) - _params(old)
    elif entry.role == "block":
        for r in variant.rows:
            for blk in b.model[r].modules():
                if isinstance(blk, Bottleneck):
                    c = blk.cv1.conv.in_channels
                    expected += _params(entry.cls(c, c, blk.add)) - _params(blk)
    assert count_params(v) == expected


def test_yolo11_c3k_rows_keep_their_c3k_and_hold_the_block_inside():
    v = build(make_variant(get_base_model("yolo11n"), "Faster", "all"))
    cls = MODULES.get("Faster").cls
    # yolo11.yaml rows 6, 8 and 22 are C3k2 with c3k=True: their repeat is a C3k whose two Bottlenecks are replaced
    for r in (6, 8, 22):
        c3k = v.model[r].m[0]
        assert isinstance(c3k, C3k) and [type(x) for x in c3k.m] == [cls, cls]
    for r in (2, 4, 13, 16, 19):
        assert all(type(x) is cls for x in v.model[r].m)
    assert not any(isinstance(m, Bottleneck) for m in v.modules())


def test_yolo12_without_sppf_refuses_in_one_line():
    result = runner.invoke(app, ["variants", "--model", "yolo12n", "--module", "SPPF_LSKA"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "selects no row of yolo12n; SPPF rows: none" in result.stderr


@pytest.mark.parametrize(
    ("module", "placement", "needle"),
    [
        ("EMA", "sppf", "selects no row of yolo12n"),
        ("DySample", "backbone", "selects no row of yolov8n"),
        ("Faster", "neck-outputs", "does not apply to block modules"),
        ("EMA", "all:P9", "level 'P9' is not P1..P7"),
        ("EMA", "0", "are not rows an attention module can follow"),
    ],
    ids=["attention-sppf-on-yolo12", "upsample-in-backbone", "block-neck-outputs", "bad-level", "stem-row"],
)
def test_placements_a_role_cannot_take_are_refused(module, placement, needle):
    model = "yolo12n" if "yolo12" in needle else "yolov8n"
    with pytest.raises(PlacementError, match=needle):
        make_variant(get_base_model(model), module, placement)


def test_levels_narrow_a_section():
    v = make_variant(get_base_model("yolov8n"), "EMA", "all:P4,P5")
    # C2f rows at P4/P5: backbone 6 (P4), 8 (P5); head 12 (P4), 18 (P4), 21 (P5); not 2 (P2), 4 or 15 (P3)
    assert v.after == [6, 8, 12, 18, 21] and v.name == "yolov8n-EMA-all-P4-P5"


# --------------------------------------------------------------------------------------------------------------------
# the inserted rows and remapped inputs, against a yaml written by hand

HAND_YAML = """\
# yolov8n with the paper's CBAM after SPPF, every later index shifted by hand
nc: 80
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
  - [-1, 3, C2f, [128, True]]
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 6, C2f, [256, True]]
  - [-1, 1, Conv, [512, 3, 2]] # 5-P4/16
  - [-1, 6, C2f, [512, True]]
  - [-1, 1, Conv, [1024, 3, 2]] # 7-P5/32
  - [-1, 3, C2f, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]] # 9
  - [-1, 1, CBAM, []] # 10
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 6], 1, Concat, [1]] # cat backbone P4
  - [-1, 3, C2f, [512]] # 13
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]] # cat backbone P3
  - [-1, 3, C2f, [256]] # 16 (P3/8-small)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 13], 1, Concat, [1]] # cat head P4
  - [-1, 3, C2f, [512]] # 19 (P4/16-medium)
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 10], 1, Concat, [1]] # cat head P5 (the CBAM output)
  - [-1, 3, C2f, [1024]] # 22 (P5/32-large)
  - [[16, 19, 22], 1, Detect, [nc]] # Detect(P3, P4, P5)
"""


@pytest.fixture
def hand_yaml(tmp_path) -> Path:
    path = tmp_path / "my-cbam.yaml"
    path.write_text(HAND_YAML)
    return path


def test_generated_sppf_variant_has_the_hand_written_rows(hand_yaml):
    import yaml

    generated = make_variant(get_base_model("yolov8n"), "CBAM", "sppf").config
    hand = yaml.safe_load(HAND_YAML)
    assert generated["backbone"] + generated["head"] == hand["backbone"] + hand["head"]


def test_hand_written_yaml_builds_the_generated_model(hand_yaml):
    generated = make_variant(get_base_model("yolov8n"), "CBAM", "sppf")
    user = from_yaml(hand_yaml)
    a, b = build_seeded(generated), build_seeded(user)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    assert [type(m) for m in a.model] == [type(m) for m in b.model]
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(X)[0], b(X)[0])


def test_hand_written_yaml_is_matched_to_its_base_with_a_row_map(hand_yaml):
    user = from_yaml(hand_yaml)
    assert (user.base, user.module, user.rows, user.after) == ("yolov8n", "CBAM", [10], [9])
    assert user.row_map == {i: i if i <= 9 else i + 1 for i in range(23)}


def test_hand_written_yaml_profiles_with_its_delta_against_yolov8n(hand_yaml, tmp_path):
    args = ["profile", str(hand_yaml), "--no-latency", "--results", str(tmp_path / "r")]
    records = {r["variant"]: r for r in json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)}
    assert set(records) == {"yolov8n", "my-cbam"}  # the baseline it was matched to comes with it
    assert (records["my-cbam"]["base"], records["my-cbam"]["module"]) == ("yolov8n", "CBAM")
    # the paper's CBAM at SPPF's 256 channels: shared MLP 256 -> 16 -> 256 with biases, a 7x7 2 -> 1 conv + BN
    cbam = (256 * 16 + 16) + (16 * 256 + 256) + 2 * 49 + 2
    assert records["my-cbam"]["params"] - records["yolov8n"]["params"] == cbam
    table = runner.invoke(app, [*args, "--format", "md"]).stdout
    row = next(line for line in table.splitlines() if line.startswith("| my-cbam |"))
    assert row.split("|")[3].strip() == f"+{cbam:,} (+{100 * cbam / records['yolov8n']['params']:.1f}%)"


def test_a_same_rule_row_reading_another_row_gets_that_rows_channels(tmp_path):
    # SimAM on backbone row 6 (P4, 128 channels) rather than on the row before it (SPPF, 256): the row's output
    # channels must be row 6's, or row 13's C2f is built for 512 input channels instead of 384 and the forward fails
    text = HAND_YAML.replace("  - [-1, 1, CBAM, []] # 10\n", "  - [6, 1, SimAM, []] # 10\n")
    up = '  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]\n  - [[-1, 6]'
    text = text.replace(up, up.replace("[-1, 1", "[9, 1").replace("[[-1, 6]", "[[-1, 10]"))
    text = text.replace("[[-1, 10], 1, Concat, [1]] # cat head P5", "[[-1, 9], 1, Concat, [1]] # cat head P5")
    path = tmp_path / "branch.yaml"
    path.write_text(text)
    model = build(from_yaml(path))
    ins, outs = _trace(model)
    assert ins[10] == outs[6] == outs[10] == (1, 128, 4, 6)
    assert ins[12] == ((1, 256, 4, 6), (1, 128, 4, 6))
    assert count_params(model) == count_params(build(baseline(get_base_model("yolov8n"))))


# --------------------------------------------------------------------------------------------------------------------
# the registry


def test_an_unknown_role_is_refused_naming_the_roles(clean_registry):
    with pytest.raises(UnknownRoleError, match=r"unknown role 'atention' \(nearest: attention\); expected one of"):

        @register_module(role="atention", paper="x")
        class Nope(nn.Module):
            pass


def test_an_attention_module_cannot_take_another_channel_rule(clean_registry):
    with pytest.raises(UnknownRoleError, match="role 'attention' takes channel rule 'same'"):

        @register_module(role="attention", channels="input", paper="x")
        class Nope(nn.Module):
            pass


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("C2f_Fastr", "names block 'Fastr' in host C2f, which is not registered (nearest: Faster)"),
        ("C2f_ADown", "puts ADown (downsample module) in host C2f; block modules: Faster"),
        ("C2PSA_Faster", "puts Faster in C2PSA, which it does not fit; its hosts: C2f, C3k2, C3"),
    ],
    ids=["unknown-block", "not-a-block", "wrong-host"],
)
def test_bad_block_host_rows_are_one_clear_line(tmp_path, name, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(HAND_YAML.replace("[-1, 3, C2f, [128, True]]", f"[-1, 3, {name}, [128, True]]"))
    with pytest.raises(UnknownModuleError, match="row 2 \\(backbone\\) " + name):
        build(from_yaml(path))
    result = runner.invoke(app, ["profile", str(path), "--no-latency", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2 and needle in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------------------------------------------------
# written files build in a fresh process


def test_written_yaml_files_build_in_a_fresh_process(tmp_path):
    out = tmp_path / "v"
    for module, placement in (("EMA", "backbone"), ("Faster", "all"), ("DySample", "all"), ("SPPF_LSKA", "all")):
        args = ["variants", "--model", "yolov8n", "--module", module, "--placement", placement, "--out", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.yaml"))
    assert [f.stem for f in files] == [
        "yolov8n-DySample-all",
        "yolov8n-EMA-backbone",
        "yolov8n-Faster-all",
        "yolov8n-SPPF_LSKA-all",
    ]
    header = (out / "yolov8n-EMA-backbone.yaml").read_text()
    rows = "2 -> row 3, 4 -> row 6, 6 -> row 9, 8 -> row 12"
    assert f"# Insert: EMA at placement 'backbone' after base rows {rows}" in header
    assert "# Regenerate: yoloab variants --model yolov8n --module EMA --placement backbone --out <dir>" in header
    code = textwrap.dedent(
        f"""
        import json, sys
        import yoloab
        from ultralytics import YOLO
        files = {[str(f) for f in files]!r}
        print(json.dumps({{f: sum(p.numel() for p in YOLO(f).model.parameters()) for f in files}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    here = {str(f): count_params(build(from_yaml(f))) for f in files}
    assert fresh == here


# --------------------------------------------------------------------------------------------------------------------
# --pretrained follows the row map

NC = 3


def test_attention_variant_receives_every_tensor_of_the_baseline(checkpoint):
    path, source = checkpoint
    v = make_variant(get_base_model("yolov8n"), "EMA", "backbone")
    model, moved = seeded_model(v, check_pretrained(path, [v]), NC)
    assert moved.transferred_tensors == len(source)
    # base row r is row r + (number of rows inserted at or before r - 1): EMA after 2, 4, 6, 8
    shift = {r: r + sum(a < r for a in (2, 4, 6, 8)) for r in range(23)}
    own = model.state_dict()
    for key, value in source.items():
        _, row, rest = key.split(".", 2)
        assert torch.equal(own[f"model.{shift[int(row)]}.{rest}"], value), key
    assert moved.fresh_rows == [3, 6, 9, 12]


def test_block_variant_receives_every_tensor_outside_the_inner_blocks(checkpoint):
    path, source = checkpoint
    v = make_variant(get_base_model("yolov8n"), "Faster", "all")
    model, moved = seeded_model(v, check_pretrained(path, [v]), NC)
    hosts = (2, 4, 6, 8, 12, 15, 18, 21)  # the C2f rows of yolov8.yaml
    outside = [k for k in source if not any(k.startswith(f"model.{r}.m.") for r in hosts)]
    assert moved.transferred_tensors == len(outside) < len(source)
    own = model.state_dict()
    assert all(torch.equal(own[k], source[k]) for k in outside)
    assert moved.partial_rows == list(hosts) and moved.fresh_rows == []


# --------------------------------------------------------------------------------------------------------------------
# one sweep through every new role


@pytest.mark.slow
def test_one_epoch_sweep_trains_each_new_role_and_reports_its_delta(tmp_path):
    results = tmp_path / "results"
    args = ["sweep", "--dataset", "builtin", "--builtin-images", "8", "--imgsz", "64", "--batch", "8"]
    args += ["--workers", "0", "--quiet", "--epochs", "1", "--results", str(results), "--model", "yolov8n"]
    for module in ("EMA", "Faster", "DySample", "SPPF_LSKA"):
        args += ["--module", module]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = runner.invoke(app, ["report", "--results", str(results), "--format", "csv"])
    assert report.exit_code == 0, report.output
    rows = {r["variant"]: r for r in csv.DictReader(io.StringIO(report.stdout)) if r["table"] != "profile"}
    expected = {f"yolov8n-{m}-article" for m in ("EMA", "Faster", "DySample", "SPPF_LSKA")}
    assert set(rows) == expected | {"yolov8n"}
    for name in expected:
        assert rows[name]["baseline"] == "yolov8n" and rows[name]["n_ok"] == "1"
        assert rows[name]["d_map50_95"] not in ("", None) and rows[name]["d_params"] not in ("", None)


# --------------------------------------------------------------------------------------------------------------------
# a plugin of each new role, through the CLI

PLUGIN = """
import torch
from torch import nn
from yoloab import register_module


@register_module(role="attention", paper="test plugin")
class TmpGate(nn.Module):
    def __init__(self, c1, scale=2.0):
        super().__init__()
        self.w = nn.Parameter(torch.full((c1,), scale))

    def forward(self, x):
        return x * torch.sigmoid(self.w)[None, :, None, None]


@register_module(role="block", paper="test plugin")
class TmpBlock(nn.Module):
    def __init__(self, c1, c2, shortcut=True):
        super().__init__()
        self.cv = nn.Conv2d(c1, c2, 1)

    def forward(self, x):
        return self.cv(x)
"""


@pytest.mark.parametrize(
    ("module", "placement", "extra"),
    [("TmpGate", "neck-outputs", lambda c: 64 + 128 + 256), ("TmpBlock", "head:P3", lambda c: None)],
    ids=["attention", "block"],
)
def test_plugin_modules_of_the_new_roles_work_in_every_verb(tmp_path, clean_registry, module, placement, extra):
    path = tmp_path / "tmp_plugin.py"
    path.write_text(PLUGIN)
    args = ["--plugin", str(path), "--model", "yolov8n", "--module", module, "--placement", placement]
    listed = runner.invoke(app, ["list", "--plugin", str(path)])
    assert listed.exit_code == 0 and module in listed.stdout
    result = runner.invoke(app, ["profile", *args, "--no-latency", "--format", "json", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    base, variant = json.loads(result.stdout)
    assert variant["variant"] == f"yolov8n-{module}-{placement.replace(':', '-')}"
    if module == "TmpGate":  # one gate weight per channel of P3, P4, P5 (yolov8n: 64, 128, 256)
        assert variant["params"] - base["params"] == extra(None)
    else:  # head row 15 (P3), [-1, 3, C2f, [256]] at depth 0.33: one Bottleneck (two 3x3 Conv 32 -> 32 + BN)
        assert base["params"] - variant["params"] == 2 * (32 * 32 * 9 + 2 * 32) - (32 * 32 + 32)
