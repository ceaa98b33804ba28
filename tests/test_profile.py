"""yoloab profile: FLOP counts against analytic counts and Ultralytics, the thop blind spot, CLI records."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, aten_flops, profile_variants
from yoloab.variants import baseline, build, from_yaml, make_variant

runner = CliRunner()
FAST = ProfileSettings(imgsz=64, latency=False)


def test_aten_flops_of_a_one_conv_model_equal_the_analytic_count(tmp_path):
    # one Conv(3, 16, 3, 2) feeding a Detect head would add head FLOPs; compare layer 0 alone, exactly
    path = tmp_path / "one.yaml"
    path.write_text(
        textwrap.dedent(
            """
            nc: 1
            backbone:
              - [-1, 1, Conv, [16, 3, 2]]
              - [-1, 1, Conv, [32, 3, 2]]
              - [-1, 1, Conv, [32, 3, 2]]
              - [-1, 1, Conv, [32, 3, 2]]
              - [-1, 1, Conv, [32, 3, 2]]
            head:
              - [[4], 1, Detect, [nc]]
            """
        )
    )
    model = build(from_yaml(path))
    total, per_layer = aten_flops(model, 128)
    # 2 FLOPs per multiply-add: out 64x64 cells x 16 channels x (3 * 3 * 3) MACs
    assert per_layer[0] * 1e9 == pytest.approx(2 * 64 * 64 * 16 * 27, rel=0, abs=0.5)
    assert per_layer[1] * 1e9 == pytest.approx(2 * 32 * 32 * 32 * (16 * 9), rel=0, abs=0.5)
    assert total >= sum(per_layer.values()) - 1e-12


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n", "yolov10n", "yolov5nu"])
def test_baseline_gflops_equal_ultralytics_summary(name):
    from ultralytics.utils.torch_utils import get_flops

    record = profile_variants([baseline(get_base_model(name))], ProfileSettings(imgsz=640, latency=False))[0]
    assert record["gflops"] == pytest.approx(get_flops(build(baseline(get_base_model(name))), 640))
    assert not record["flops_flag"], record["flops_note"]
    assert abs(record["gflops"] - record["gflops_aten"]) / record["gflops_aten"] < 0.05


def test_dynamic_conv_is_flagged_because_thop_misses_condconv():
    base = get_base_model("yolov8n")
    records = profile_variants([baseline(base), make_variant(base, "DynamicConv", "article")], FAST)
    b, v = records
    assert v["gflops"] < b["gflops"] and v["gflops_aten"] > b["gflops_aten"]
    assert v["flops_flag"] and not b["flops_flag"]
    assert "rows 3, 5, 7, 16, 19 (DynamicConv)" in v["flops_note"] and "F.conv2d" in v["flops_note"]


def _json(args):
    result = runner.invoke(app, ["profile", *args, "--no-latency", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_json_records_adown_all(tmp_path):
    records = _json(["--model", "yolov8n", "--module", "ADown", "--placement", "all", "--results", str(tmp_path)])
    assert [r["variant"] for r in records] == ["yolov8n", "yolov8n-ADown-all"]
    assert [r["params"] for r in records] == [3_157_200, 2_741_200]
    for key in ("variant", "base", "module", "placement", "nc", "imgsz", "params", "gflops", "gflops_aten"):
        assert all(key in r for r in records)
    stored = list((tmp_path / "profile").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == records


def test_cli_acceptance_yolov8s_dynamic_conv(tmp_path):
    args = ["--model", "yolov8s", "--module", "DynamicConv", "--placement", "article", "--nc", "3"]
    b, v = _json([*args, "--results", str(tmp_path)])
    assert (b["variant"], v["variant"]) == ("yolov8s", "yolov8s-DynamicConv-article")
    assert b["nc"] == v["nc"] == 3
    assert v["gflops"] < b["gflops"] and v["gflops_aten"] > b["gflops_aten"] and v["flops_flag"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--imgsz", "100"], "imgsz 100 is not a multiple of yolov8n's stride 32; nearest: 96, 128"),
        (["--device", "cuda:7"], "device 'cuda:7' is not available"),
        (["--device", "tpu"], "device 'tpu'"),
        (["--module", "Nope"], "unknown module 'Nope'"),
    ],
    ids=["imgsz", "cuda-missing", "device-unknown", "module"],
)
def test_profile_bad_input_writes_nothing(tmp_path, args, needle):
    results = tmp_path / "results"
    result = runner.invoke(app, ["profile", "--model", "yolov8n", *args, "--no-latency", "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and result.stderr.count("\n") == 1
    assert not results.exists()


def test_cpu_latency_fields_and_threads_recorded(tmp_path):
    settings = ProfileSettings(imgsz=64, batch=2, threads=1, warmup_s=0.05, rounds=2, round_s=0.05)
    (record,) = profile_variants([baseline(get_base_model("yolov8n"))], settings)
    assert record["threads"] == 1 and record["batch"] == 2 and record["device"] == "cpu"
    assert 0 < record["latency_ms"] < 5_000 and record["latency_iqr_ms"] >= 0 and record["throughput_ips"] > 0
    assert record["mem_infer_mb"] is None  # CUDA-only measurement, never a made-up number on CPU
