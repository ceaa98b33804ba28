"""Any timm model as the backbone (`--module timm-<model>`): counts, training, reload, export, seeding, bad names.

Every expected number comes from timm or Ultralytics alone: timm's own `features_only` model, and the kept tail and
head built by Ultralytics from a yaml this file writes by hand (a stub backbone of plain Convs giving timm's channels
at strides 8/16/32, the base rows after it with their `from` re-indexed here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import torch
import yaml
from typer.testing import CliRunner
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import ROOT

from yoloab.cli.app import app
from yoloab.errors import ModelConfigError, PretrainedError, UnknownModuleError
from yoloab.models import get_base_model
from yoloab.variants import build, count_params, make_variant, select_request

runner = CliRunner()
MODELS = ["fasternet_t0", "starnet_s050", "repvit_m0_9", "efficientvit_b0", "mobilenetv4_conv_small"]
BASES = {
    # base: (its yaml, scale n, P3 row, P4 row, first tail row (SPPF)) -- read off the Ultralytics yaml files
    "yolov8n": ("v8/yolov8.yaml", 4, 6, 9),
    "yolo11n": ("11/yolo11.yaml", 4, 6, 9),
}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _timm_features(name: str) -> torch.nn.Module:
    with torch.device("meta"):  # counting needs no memory: timm's own modules, on the meta device
        return timm.create_model(name, pretrained=False, features_only=True)


def _kept_rows_params(base: str, channels: list[int], nc: int = 80) -> int:
    """Params of the base model's tail and head fed by maps of `channels` at strides 8/16/32, built by Ultralytics.

    The stub backbone is three Conv rows whose width-scaled outputs are exactly `channels` (no `scales`: width 0.25
    of 4c, no max_channels cap); the base rows from its SPPF on follow, their `from` re-indexed by hand.
    """
    path, p3, p4, tail = BASES[base]
    d = yaml.safe_load((ROOT / "cfg/models" / path).read_text())
    depth, width, max_channels = d["scales"]["n"]
    assert width == 0.25 and max_channels == 1024  # no head row of the n scale reaches the cap: inf changes nothing
    stub = [[-1, 1, "Conv", [4 * channels[0], 1, 8]], [-1, 1, "Conv", [4 * channels[1], 1, 2]]]
    stub.append([-1, 1, "Conv", [4 * channels[2], 1, 2]])
    old_nb, shift = len(d["backbone"]), tail - len(stub)
    remap = {p3: 0, p4: 1}

    def move(f):
        if isinstance(f, list):
            return [move(x) for x in f]
        return f if f < 0 else remap.get(f, f - shift)

    rows = stub + d["backbone"][tail:]
    head = [[move(r[0]), *r[1:]] for r in d["head"]]
    sources = [f for r in head for f in ([r[0]] if isinstance(r[0], int) else r[0])]
    assert all(f < 0 or f >= len(stub) or f in (0, 1) for f in sources)
    cfg = {"nc": nc, "depth_multiple": depth, "width_multiple": width, "backbone": rows, "head": head}
    model = DetectionModel(cfg, ch=3, verbose=False)
    assert [model.model[i].conv.out_channels for i in range(3)] == list(channels)
    assert len(d["backbone"]) == old_nb
    return sum(_params(model.model[i]) for i in range(len(stub), len(model.model)))


def _taps(name: str) -> list[int]:
    """Channels at strides 8, 16, 32, read from timm's feature_info (the deepest entry of each reduction)."""
    info = _timm_features(name).feature_info
    red, ch = info.reduction(), info.channels()
    return [ch[max(i for i, r in enumerate(red) if r == s)] for s in (8, 16, 32)]


CASES = [(b, m) for b in BASES for m in MODELS]


@pytest.mark.parametrize(("base", "name"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_params_equal_timm_features_only_plus_the_kept_rows(base, name):
    model = build(make_variant(get_base_model(base), f"timm-{name}", "backbone"))
    expected = _params(_timm_features(name)) + _kept_rows_params(base, _taps(name))
    assert count_params(model) == expected


def test_profile_command_counts_the_same(tmp_path):
    name = "fasternet_t0"
    args = ["profile", "--model", "yolov8n", "--module", f"timm-{name}", "--no-latency", "--imgsz", "64"]
    result = runner.invoke(app, [*args, "--format", "json", "--results", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    record = next(r for r in json.loads(result.stdout) if r["module"])
    assert record["variant"] == f"yolov8n-timm-{name}"
    assert record["params"] == _params(_timm_features(name)) + _kept_rows_params("yolov8n", _taps(name))


def test_yaml_row_names_the_model_and_its_taps_and_the_head_reads_them():
    v = make_variant(get_base_model("yolov8n"), "timm-repvit_m0_9", "backbone")
    assert v.config["backbone"][:4] == [
        [-1, 1, "timm", ["repvit_m0_9", [1, 2, 3]]],
        [0, 1, "Index", [96, 0]],
        [0, 1, "Index", [192, 1]],
        [0, 1, "Index", [384, 2]],
    ]
    assert v.config["backbone"][4][2] == "SPPF"
    # yolov8n head: Concat with P4 (base row 6) then P3 (row 4); Detect reads three head rows
    concats = [r[0] for r in v.config["head"] if r[2] == "Concat"]
    assert concats[:2] == [[-1, 2], [-1, 1]]


def test_channels_last_models_come_out_nchw():
    from yoloab.modules.timm_backbone import TimmBackbone

    m = TimmBackbone(3, "mambaout_femto").eval()  # timm gives NHWC maps for MambaOut
    with torch.no_grad():
        outs = m(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 64 // s, 64 // s) for c, s in zip(m.out_channels, m.strides, strict=True)
    ]


# --------------------------------------------------------------------------------------------------------------------
# bad names: one line, the nearest models that work


@pytest.mark.parametrize(
    ("module", "error", "needles"),
    [
        (
            "timm-fasternet_t9",
            UnknownModuleError,
            ["timm has no model 'fasternet_t9'", "nearest that work: fasternet_"],
        ),
        ("timm-vit_tiny_patch16_224", ModelConfigError, ["reductions [16, 16", "needs 8, 16 and 32"]),
        ("timm-swin_tiny_patch4_window7_224", ModelConfigError, ["does not run at 256x256", "nearest that work:"]),
    ],
    ids=["unknown", "no-stride-8-32", "fixed-input-size"],
)
def test_a_model_that_cannot_serve_is_one_line_naming_models_that_do(module, error, needles):
    with pytest.raises(error) as err:
        make_variant(get_base_model("yolov8n"), module, "backbone")
    text = str(err.value)
    assert "\n" not in text and all(n in text for n in needles), text


def test_cli_names_the_nearest_and_exits_2():
    result = runner.invoke(app, ["variants", "--no-build", "--module", "timm-starnet_s05"])
    assert result.exit_code == 2 and "nearest that work: starnet_s050" in result.output, result.output


def test_module_all_does_not_expand_to_timm_models():
    names = [v.name for v in select_request(["yolov8n"], ["all"])]
    assert not any("timm" in n for n in names) and len(names) > 10


def test_list_backbones_gives_params_channels_and_strides():
    result = runner.invoke(app, ["list", "--backbones", "fasternet*"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in timm.list_models("fasternet*"):
        f = _timm_features(name) if name == "fasternet_t0" else None
        line = next(x for x in result.output.splitlines() if f"timm-{name} " in x)
        if f is not None:
            ch = f.feature_info.channels()
            assert f"{_params(f):,}" in line and ", ".join(map(str, ch[1:])) in line and "8, 16, 32" in line
    assert f"{len(timm.list_models('fasternet*'))} of " in result.output
    missing = runner.invoke(app, ["list", "--backbones", "fastrnet*"])
    assert missing.exit_code == 2 and "no timm model matches" in missing.output


# --------------------------------------------------------------------------------------------------------------------
# --backbone-weights


def _seeded(name: str, path: Path):
    from yoloab.transfer import check_pretrained, seeded_model

    v = make_variant(get_base_model("yolov8n"), f"timm-{name}", "backbone")
    return seeded_model(v, check_pretrained(None, [v], path), nc=3)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"], ids=["torch", "safetensors"])
def test_a_timm_state_dict_seeds_the_backbone(tmp_path, suffix):
    name = "starnet_s050"
    torch.manual_seed(1)
    source = timm.create_model(name, pretrained=False)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    model, moved = _seeded(name, path)
    # timm's own loader fills an extractor with the same taps from the same file: every tensor must be equal
    ref = timm.create_model(
        name, pretrained=True, features_only=True, out_indices=(1, 2, 3), pretrained_cfg_overlay={"file": str(path)}
    )
    body = model.model[0].body.state_dict()
    assert body.keys() == ref.state_dict().keys()
    assert all(torch.equal(body[k], v) for k, v in ref.state_dict().items())
    fresh = build(make_variant(get_base_model("yolov8n"), f"timm-{name}", "backbone"), nc=3).model[0].state_dict()
    assert any(not torch.equal(fresh[f"body.{k}"], v) for k, v in body.items() if v.is_floating_point())
    assert moved.transferred_tensors == len(body) and 0 not in moved.fresh_rows + moved.partial_rows
    assert moved.fresh_rows == [i for i in range(1, len(model.model)) if _params(model.model[i])]  # all but the body


def test_a_file_of_another_model_names_the_first_mismatched_tensor(tmp_path):
    other = tmp_path / "t1.pth"
    torch.save(timm.create_model("fasternet_t1").state_dict(), other)  # 64 channels where t0 has 40
    with pytest.raises(PretrainedError) as err:
        _seeded("fasternet_t0", other)
    assert "first mismatched tensor 'patch_embed.proj.weight' has shape [64, 3, 4, 4] in the file, [40, 3, 4, 4]" in (
        str(err.value)
    )
    starnet = tmp_path / "starnet.pth"
    torch.save({"state_dict": timm.create_model("starnet_s050").state_dict()}, starnet)
    args = ["profile", "--module", "timm-fasternet_t0", "--no-latency", "--imgsz", "64", "--results"]
    result = runner.invoke(app, [*args, str(tmp_path / "r"), "--backbone-weights", str(starnet)])
    assert result.exit_code == 2 and "'patch_embed.proj.weight' is not in the file" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    result = runner.invoke(app, [*args, str(tmp_path / "r"), "--backbone-weights", str(tmp_path / "nope.pth")])
    assert result.exit_code == 2 and "no such file" in result.output


# --------------------------------------------------------------------------------------------------------------------
# checkpoints, training, export


@pytest.mark.parametrize("name", ["fasternet_t0", "mobilenetv4_conv_small"])
def test_checkpoint_loads_with_the_safe_unpickler(tmp_path, name):
    from yoloab._ultralytics import read_checkpoint

    model = build(make_variant(get_base_model("yolov8n"), f"timm-{name}", "backbone"), nc=3).eval()
    path = tmp_path / "m.pt"
    torch.save({"model": model, "train_args": {}}, path)  # FasterNet's per-instance forward must not be pickled
    loaded = read_checkpoint(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], model(x)[0])


FRESH = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ultralytics import YOLO
    assert "yoloab" not in sys.modules  # nothing imported it: unpickling the checkpoint must bring what it needs
    model = YOLO(sys.argv[1])
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    result = model.predict(image, imgsz=64, conf=0.0, verbose=False)[0]
    print(json.dumps({"backbone": type(model.model.model[0]).__module__, "boxes": len(result.boxes),
                      "params": sum(p.numel() for p in model.model.parameters())}))
    """
)


@pytest.mark.slow
def test_one_epoch_sweep_trains_and_the_checkpoint_predicts_in_a_fresh_process(tmp_path):
    results = tmp_path / "results"
    tiny = ["--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet", "--epochs", "1"]
    args = ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--module", "timm-starnet_s050", *tiny]
    result = runner.invoke(app, [*args, "--results", str(results)])
    assert result.exit_code == 0, result.output
    record = next(
        json.loads(p.read_text())
        for p in (results / "runs").glob("*.json")
        if json.loads(p.read_text())["variant"] == "yolov8n-timm-starnet_s050"
    )
    assert record["status"] == "ok", record["error"]
    best = Path(record["run_dir"], "weights", "best.pt")
    out = subprocess.run([sys.executable, "-c", FRESH, str(best)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert fresh["backbone"] == "yoloab.modules.timm_backbone" and fresh["boxes"] > 0
    assert fresh["params"] == record["params"]


@pytest.mark.slow
def test_profile_exports_to_onnxruntime_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    args = ["profile", "--model", "yolov8n", "--module", "timm-efficientvit_b0", "--no-latency", "--imgsz", "64"]
    result = runner.invoke(
        app, [*args, "--runtime", "onnxruntime", "--format", "json", "--results", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    record = next(r for r in json.loads(result.stdout) if r["module"])
    assert record["export_onnxruntime"] == "ok" and record["parity_onnxruntime"] < 1e-3, record
