"""Deployment runtimes: export status, parity against an independent run, the export cache, missing runtimes."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import yoloab.deploy as deploy
from yoloab import Placement, register_module
from yoloab.cli.app import app
from yoloab.errors import MissingExtraError, UnknownRuntimeError
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, profile_variants
from yoloab.variants import baseline, build, make_variant

runner = CliRunner()
ort = pytest.importorskip("onnxruntime")
IMGSZ = 64
CPU = torch.device("cpu")


def _seeded(variant):
    torch.manual_seed(0)
    return deploy.calibrate_batchnorm(build(variant), IMGSZ)


@pytest.mark.slow  # exports (and a profile): 20-80 s on a shared 2-core machine
def test_calibrated_model_output_depends_on_the_input():
    """As initialised, the head output is the same for any image; parity is only a check once it is not."""
    torch.manual_seed(0)
    model = build(baseline(get_base_model("yolov8n"))).eval()
    x1, x2 = (deploy.fixed_input(IMGSZ, 2)[i : i + 1] for i in range(2))
    before = deploy.parity(deploy.torch_reference(model, x1), deploy.torch_reference(model, x2))
    deploy.calibrate_batchnorm(model, IMGSZ)
    after = deploy.parity(deploy.torch_reference(model, x1), deploy.torch_reference(model, x2))
    assert before < 1e-5 < 1e-2 < after


def _independent_ratio(onnx_path: str, model: nn.Module, x: np.ndarray) -> float:
    """The parity figure computed here: a plain ONNX Runtime session and Ultralytics' own fuse, then numpy."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2  # as deploy_variant below: round-off depends on how the work is split
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    exported = session.run(None, {session.get_inputs()[0].name: x})[0]
    fused = copy.deepcopy(model).eval().fuse(verbose=False)
    with torch.no_grad():
        ref = fused(torch.from_numpy(x))[0].numpy()
    return float(np.max(np.abs(exported - ref)) / np.max(np.abs(ref)))


def test_parity_formula_on_a_hand_made_case():
    ref = np.array([[1.0, -4.0, 2.0]])
    assert deploy.parity(ref, np.array([[1.0, -3.5, 2.0]])) == pytest.approx(0.5 / 4)
    with pytest.raises(ValueError, match="shape"):
        deploy.parity(ref, ref.T)


@pytest.mark.slow  # exports (and a profile): 20-80 s on a shared 2-core machine
def test_parity_figure_equals_an_independent_onnxruntime_run(tmp_path):
    variant = baseline(get_base_model("yolov8n"))
    model = _seeded(variant)
    fields, opened = deploy.deploy_variant(model, variant.name, ["onnxruntime"], tmp_path, IMGSZ, None, CPU, 2, False)
    assert fields["export_onnxruntime"] == "ok" and fields["provider_onnxruntime"] == "CPUExecutionProvider"
    assert fields["export_mb_onnxruntime"] > 1 and fields["export_s_onnxruntime"] > 0
    (artifact,) = tmp_path.glob("*/yolov8n.onnx")
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0)).numpy()  # deploy's fixed input
    expected = _independent_ratio(str(artifact), model, x)
    assert 0 < expected < 1e-3
    assert fields["parity_onnxruntime"] == pytest.approx(expected, rel=0.05, abs=1e-9)
    assert fields["parity_flag_onnxruntime"] is False
    # and the figure moves when the exported model is not the one it is compared with
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.model[0].conv.weight.mul_(1.5)  # the stem
    off = _independent_ratio(str(artifact), changed, x)
    assert off > 1e-2 and deploy.parity(deploy.torch_reference(changed, x), opened["onnxruntime"].one(x)) == (
        pytest.approx(off, rel=0.05)
    )


def test_dynamic_conv_batch_artifact_matches_a_per_sample_loop(tmp_path):
    """DynamicConv routes each sample to its own kernel (a grouped conv over the batch): batch > 1 must stay exact."""
    variant = make_variant(get_base_model("yolov8n"), "DynamicConv", "article")
    model = _seeded(variant)
    fields, opened = deploy.deploy_variant(model, variant.name, ["onnxruntime"], tmp_path, IMGSZ, 3, CPU, 2, False)
    assert fields["export_onnxruntime"] == "ok" and fields["parity_batch_onnxruntime"] < 1e-3
    x = torch.rand(3, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(7)).numpy()
    batched = opened["onnxruntime"].many(x)
    singles = np.concatenate([deploy.torch_reference(model, x[i : i + 1]) for i in range(3)])
    assert np.max(np.abs(batched - singles)) / np.max(np.abs(singles)) < 1e-3
    assert np.max(np.abs(singles[0] - singles[1])) > 1e-3  # different images really give different outputs


class CumMaxDown(nn.Module):
    """A downsampling conv followed by a running maximum: torch.onnx has no symbolic for aten::cummax."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2)

    def forward(self, x):
        return torch.cummax(self.conv(x), dim=1).values


@pytest.fixture
def cummax_variant(clean_registry):
    register_module(role="downsample", channels="conv", paper="test", article=Placement("backbone", (8,)))(CumMaxDown)
    return make_variant(get_base_model("yolov8n"), "CumMaxDown", "article")


@pytest.mark.slow  # exports (and a profile): 20-80 s on a shared 2-core machine
def test_export_failure_is_one_line_naming_the_op_and_row(tmp_path, cummax_variant):
    made = deploy.export(_seeded(cummax_variant), "cummax", "onnxruntime", tmp_path, IMGSZ, 1, False, CPU)
    assert made.status.startswith("failed: unsupported operator aten::cummax (opset ")
    assert "\n" not in made.status and made.path is None
    if importlib.util.find_spec("openvino"):
        ov = deploy.export(_seeded(cummax_variant), "cummax", "openvino", tmp_path, IMGSZ, 1, False, CPU)
        assert ov.status == "failed: unsupported operator aten::cummax"
    settings = ProfileSettings(imgsz=IMGSZ, latency=False, runtimes=("torch", "onnxruntime"), exports=tmp_path)
    base, record = profile_variants([baseline(get_base_model("yolov8n")), cummax_variant], settings)
    assert base["export_onnxruntime"] == "ok" and record["export_onnxruntime"] == made.status
    assert record["parity_onnxruntime"] is None and record["provider_onnxruntime"] is None


@pytest.mark.slow  # exports (and a profile): 20-80 s on a shared 2-core machine
def test_second_run_finds_the_export_in_the_cache(tmp_path, monkeypatch):
    torch.set_num_threads(2)  # before building: BN calibration's sums round by thread count, and so the cache key
    model = _seeded(baseline(get_base_model("yolov8n")))
    first = deploy.export(model, "yolov8n", "onnxruntime", tmp_path, IMGSZ, 1, False, CPU)
    assert first.status == "ok" and not first.cached
    assert torch.get_num_threads() == 2  # Ultralytics' select_device changes it; PyTorch timings run after exports

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(deploy, "export_model", no_export)
    again = deploy.export(
        _seeded(baseline(get_base_model("yolov8n"))), "yolov8n", "onnxruntime", tmp_path, IMGSZ, 1, False, CPU
    )
    assert again.cached and again.path == first.path and again.seconds == first.seconds
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
    with torch.no_grad():
        model.model[0].conv.weight.mul_(2)  # other weights: another key, so a new export (refused here)
    other = deploy.export(model, "yolov8n", "onnxruntime", tmp_path, IMGSZ, 1, False, CPU)
    assert other.status == "failed: AssertionError: exported again" and not other.cached


@pytest.mark.parametrize(("hidden", "runtime"), [("openvino", "openvino"), ("onnxslim", "onnxruntime")])
def test_missing_runtime_is_one_line_naming_the_extra(tmp_path, monkeypatch, hidden, runtime):
    monkeypatch.setitem(sys.modules, hidden, None)  # `import <hidden>` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'yoloab\[deploy\]'"):
        deploy.check_runtimes(["torch", runtime], CPU)
    results = tmp_path / "results"
    args = ["profile", "--model", "yolov8n", "--runtime", runtime, "--no-latency", "--results", str(results)]
    result = runner.invoke(app, args)
    assert result.exit_code == 7 and result.stderr.count("\n") == 1, result.output
    assert hidden in result.stderr and "yoloab[deploy]" in result.stderr and "Traceback" not in result.stderr
    assert not results.exists()


def test_unknown_runtime_and_tensorrt_on_cpu(tmp_path):
    with pytest.raises(UnknownRuntimeError, match="nearest: onnxruntime"):
        deploy.check_runtimes(["onnxruntim"], CPU)
    chosen, skipped = deploy.check_runtimes(["torch", "tensorrt", "torch"], CPU)
    assert chosen == ["torch"] and skipped["tensorrt"].startswith("skipped: TensorRT needs a CUDA device")
    args = ["profile", "--model", "yolov8n", "--runtime", "tensorrt", "--no-latency", "--format", "json"]
    result = runner.invoke(app, [*args, "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["export_tensorrt"].startswith("skipped:")
    assert result.stderr.count("\n") == 1 and "tensorrt skipped" in result.stderr


def test_runtime_latency_is_timed_with_torch(tmp_path):
    timing = {"threads": 1, "warmup_s": 0.05, "rounds": 2, "round_s": 0.05}
    settings = ProfileSettings(imgsz=IMGSZ, batch=2, runtimes=("torch", "onnxruntime"), exports=tmp_path, **timing)
    (record,) = profile_variants([baseline(get_base_model("yolov8n"))], settings)
    assert record["runtimes"] == ["torch", "onnxruntime"] and record["threads"] == 1
    for suffix in ("", "_onnxruntime"):
        assert 0 < record[f"latency_ms{suffix}"] < 5_000 and record[f"latency_iqr_ms{suffix}"] >= 0
        assert record[f"throughput_ips{suffix}"] > 0
