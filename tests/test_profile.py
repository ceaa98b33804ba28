"""yoloab profile: FLOP counts against analytic counts and Ultralytics, the thop blind spot, CLI records."""

from __future__ import annotations

import contextlib
import copy
import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.flops import _MetaMemo, aten_flops, on_meta
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, profile_variants
from yoloab.registry import MODULES
from yoloab.variants import baseline, build, count_params, from_yaml, make_variant

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
    stored = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "profile").glob("*.json")}
    assert stored == {r["key"]: r for r in records}  # one file per record, named by its key


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


# --------------------------------------------------------------------------------------------------------------------
# the shortcuts of the profile run measure exactly what the plain way measures


def _catalog() -> list:
    base = get_base_model("yolov8n")
    return [baseline(base)] + [
        make_variant(base, e.name, "backbone" if e.role == "backbone" else "article") for e in MODULES if e.builtin
    ]


@pytest.fixture(scope="module")
def catalog_models():
    """The yolov8n catalog plus bases with attention (yolo12n) and a v10 head (yolov10n), built once."""
    variants = _catalog() + [baseline(get_base_model("yolo12n")), baseline(get_base_model("yolov10n"))]
    return {v.name: build(v) for v in variants}


def test_meta_memo_leaves_aten_counts_unchanged(catalog_models):
    # every catalog module, attention (yolo12n) and v10Detect: totals and per-layer counts identical (the memo path
    # also follows only the top-level layers, `_TopLayers`, instead of FlopCounterMode's tracker of every module)
    _MetaMemo.clear()
    for name, model in catalog_models.items():
        plain = aten_flops(model, 64, memo=False)
        assert aten_flops(model, 64) == plain, name  # the first call fills the cache
        assert aten_flops(model, 64) == plain, name  # the second one is served from it
    assert _MetaMemo._below and _MetaMemo._above  # the meta path ran (a model it cannot run falls back to real tensors)


def test_on_meta_puts_the_model_back_as_it_was(catalog_models):
    model = catalog_models["yolov8n"].eval()
    with torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))  # Detect now caches anchors for 64 px
    detect = model.model[-1]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = {m: dict(vars(m)) for m in model.modules()}
    with on_meta(model) as meta:
        assert all(p.device.type == "meta" for p in meta.parameters())
        assert all(b.device.type == "meta" for b in meta.buffers())
        assert detect.stride.device.type == "cpu" and detect.anchors.device.type == "meta"
        meta(torch.zeros(1, 3, 64, 64, device="meta"))
        assert detect.anchors.device.type == "meta"
    after = model.state_dict()
    assert list(after) == list(state)
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in state.items())
    assert all(dict(vars(m)) == a for m, a in attrs.items())  # the same objects in every attribute
    with torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))


def test_a_model_that_cannot_run_on_meta_is_counted_on_real_tensors_and_put_back(catalog_models, monkeypatch):
    model = catalog_models["yolov8n"]
    expected = aten_flops(model, 64)
    conv = model.model[1]
    real_forward = conv.forward

    def no_meta(x):
        if x.device.type == "meta":
            raise NotImplementedError("no meta kernel")  # like an op without one
        return real_forward(x)

    monkeypatch.setattr(conv, "forward", no_meta)
    assert aten_flops(model, 64) == expected
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(b.device.type == "cpu" for b in model.buffers())


def test_params_fused_equal_ultralytics_fuse_of_a_copy(catalog_models):
    # params_fused comes from an in-place fuse (no latency) or from the fused copies that latency times
    variants = _catalog()
    expected = {v.name: count_params(copy.deepcopy(catalog_models[v.name]).fuse(verbose=False)) for v in variants}
    fast = profile_variants(variants, FAST)
    assert {r["variant"]: r["params_fused"] for r in fast} == expected
    assert all(r["params_fused"] < r["params"] for r in fast)
    settings = ProfileSettings(imgsz=64, batch=1, threads=1, warmup_s=0.0, rounds=1, round_s=0.0)
    timed = profile_variants(variants[:2], settings)
    assert {r["variant"]: r["params_fused"] for r in timed} == {v.name: expected[v.name] for v in variants[:2]}
    measured = list(fast[0])[: list(fast[0]).index("params_fused") + 1]
    assert list(timed[0])[: len(measured)] == measured  # the same record layout with or without latency
    twice = profile_variants([variants[0], variants[0]], FAST)  # one model shared by both rows, fused after both
    assert [(r["params"], r["params_fused"]) for r in twice] == [(3_157_200, expected["yolov8n"])] * 2


def test_aten_flops_falls_back_to_the_plain_count_when_the_memo_breaks(monkeypatch):
    # the memo uses private torch dispatch internals; a torch that changed them must still get an exact count
    import yoloab.flops as flops

    model = build(baseline(get_base_model("yolov8n")))
    expected = aten_flops(model, 128, memo=False)

    def broken(self, *args, **kwargs):
        raise AttributeError("torch internals moved")

    monkeypatch.setattr(flops._MetaMemo, "__torch_dispatch__", broken)
    assert aten_flops(model, 128) == expected


# --------------------------------------------------------------------------------------------------------------------
# training-time and deployed counts, multiply-adds


def _real_aten_flops(model: torch.nn.Module, imgsz: int) -> int:
    """FlopCounterMode on real tensors, no meta device and no memo: the plain reference."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    return counter.get_total_flops()


def _conv_macs(convs: list[torch.nn.Conv2d], cells: list[int]) -> int:
    """Closed form: output cells x output channels x (input channels per group x kernel area)."""
    return sum(
        n * c.out_channels * (c.in_channels // c.groups) * c.kernel_size[0] * c.kernel_size[1]
        for c, n in zip(convs, cells, strict=True)
    )


@contextlib.contextmanager
def _output_sizes(convs: list[torch.nn.Conv2d]):
    """Collect each conv's output cells (H x W) during a forward pass (each runs once), in the order of `convs`."""
    seen: dict[torch.nn.Module, int] = {}

    def hook(module, _, out):
        seen[module] = out.shape[-2] * out.shape[-1]  # DFL's conv runs on a (4, anchors) map: not square

    hooks = [c.register_forward_hook(hook) for c in convs]
    sizes: list[int] = []
    try:
        yield sizes
    finally:
        for h in hooks:
            h.remove()
    sizes.extend(seen[c] for c in convs)


@pytest.mark.parametrize("name", ["yolov10n", "yolov10s"])
def test_yolov10_deployed_counts_drop_exactly_one_detection_branch(name):
    from ultralytics.nn.modules.block import RepVGGDW

    (record,) = profile_variants([baseline(get_base_model(name))], FAST)
    # hand-built deployed model: the one-to-many branch deleted by hand, nothing fused, counted on real tensors
    single = build(baseline(get_base_model(name)))
    head = single.model[-1]
    head.cv2 = head.cv3 = None
    # fuse() also merges each RepVGGDW's 3x3 depthwise conv into its 7x7 one: that conv's FLOPs leave too
    rep = [m.conv1.conv for m in single.modules() if isinstance(m, RepVGGDW)]
    with _output_sizes(rep) as rep_sizes:
        single_flops = _real_aten_flops(single, 64)
    merged = 2 * _conv_macs(rep, rep_sizes)
    assert record["gflops_aten_fused"] * 1e9 == pytest.approx(single_flops - merged, rel=0, abs=0.5)
    # training-time minus deployed: the second branch's convolutions, in closed form per level, and the merged convs
    convs, sizes = [], []
    for level, stride in enumerate(head.stride.tolist()):
        for branch in (head.one2one_cv2[level], head.one2one_cv3[level]):
            found = [m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)]
            convs += found
            sizes += [(64 // int(stride)) ** 2] * len(found)
    dropped = 2 * _conv_macs(convs, sizes) + merged
    assert (record["gflops_aten"] - record["gflops_aten_fused"]) * 1e9 == pytest.approx(dropped, rel=0, abs=1)
    assert record["gmacs"] == record["gflops_aten"] / 2 and record["gmacs_fused"] == record["gflops_aten_fused"] / 2
    assert abs(record["gflops_fused"] - record["gflops_aten_fused"]) / record["gflops_aten_fused"] < 0.05
    assert record["gflops_fused"] < record["gflops"] and record["params_fused"] < record["params"]
    assert "fuse() drops the one-to-one branch of row 23 (v10Detect)" in record["fuse_note"]
    assert "params_fused, gflops_fused" in record["fuse_note"]


def test_yolov10s_deployed_gflops_at_640_match_the_independent_count():
    # issue 16: fvcore, calflops and FlopCounterMode on real tensors agree on 21.70 GFLOPs for deployed yolov10s
    (record,) = profile_variants([baseline(get_base_model("yolov10s"))], ProfileSettings(imgsz=640, latency=False))
    assert round(record["gflops_aten_fused"], 2) == 21.70 and record["gflops_aten"] > 24.5


def test_gmacs_equal_a_hand_count_of_every_convolution():
    # yolov8n has convolutions only (no linear, no attention): MACs summed from each conv's real output shape
    model = build(baseline(get_base_model("yolov8n"))).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with _output_sizes(convs) as sizes, torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))
    (record,) = profile_variants([baseline(get_base_model("yolov8n"))], FAST)
    assert record["gmacs"] * 1e9 == pytest.approx(_conv_macs(convs, sizes), rel=0, abs=0.5)
    assert record["gmacs_fused"] == record["gmacs"]  # folding BatchNorm moves no multiply-add
    assert record["fuse_note"] is None and record["gflops_fused"] < record["gflops"]  # thop counted the BatchNorms


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_machine_formats_write_only_data_to_stdout(tmp_path, fmt):
    import csv
    import os
    import subprocess
    import sys
    from pathlib import Path

    yaml = tmp_path / "noscale.yaml"  # two scales and none chosen: Ultralytics warns "no model scale passed"
    yaml.write_text(
        "nc: 2\nscales:\n  n: [0.33, 0.25, 1024]\n  s: [0.33, 0.5, 1024]\nbackbone:\n"
        + "".join(f"  - [-1, 1, Conv, [{c}, 3, 2]]\n" for c in (16, 32, 32, 32, 32))
        + "head:\n  - [[2, 3, 4], 1, Detect, [nc]]\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    env["YOLO_VERBOSE"] = "True"  # the suite quiets Ultralytics; here its warnings must be there to be redirected
    args = [str(yaml), "--model", "yolov10n", "--imgsz", "64", "--no-latency", "--results", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, "-m", "yoloab", "profile", *args, "--format", fmt],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "no model scale passed" in done.stderr
    records = json.loads(done.stdout) if fmt == "json" else list(csv.DictReader(done.stdout.splitlines()))
    assert [r["variant"] for r in records] == ["yolov10n", "noscale"]
    v10 = records[0]
    assert float(v10["gflops_aten_fused"]) < float(v10["gflops_aten"]) and float(v10["gmacs"]) > 0


# --------------------------------------------------------------------------------------------------------------------
# CPU defaults, the batch pass, the record key

QUICK = {"imgsz": 32, "warmup_s": 0.0, "rounds": 2, "round_s": 0.0}


@pytest.mark.parametrize(
    ("given", "expected"),
    [((None, None), (1, 1)), ((3, None), (3, 1)), ((None, 4), (1, 4)), ((2, 8), (2, 8))],
    ids=["defaults", "threads-given", "batch-given", "both-given"],
)
def test_cpu_defaults_resolve_to_one_thread_and_batch_one(given, expected):
    from yoloab.profiling import resolve_settings

    threads, batch = given
    resolved = resolve_settings(ProfileSettings(device="cpu", threads=threads, batch=batch))
    assert (resolved.threads, resolved.batch) == expected


def test_cpu_defaults_are_recorded_and_the_thread_count_is_put_back():
    threads = torch.get_num_threads()
    seen = []
    (record,) = profile_variants(
        [baseline(get_base_model("yolov8n"))],
        ProfileSettings(**QUICK),
        on_step=lambda what, _: seen.append(torch.get_num_threads()),
    )
    assert (record["threads"], record["batch"]) == (1, 1)
    assert seen[-1] == 1  # the timing steps ran on one thread
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(("batch", "steps"), [(1, 2 + 2 * 3), (2, 2 + 2 * 2 * 3)], ids=["batch1", "batch2"])
def test_batch_one_skips_the_batch_pass(batch, steps):
    # closed form for 2 variants and 2 rounds: a count step each, then (warm-up + 2 slots) per variant and pass
    from yoloab.profiling import profile_steps

    base = get_base_model("yolov8n")
    variants = [baseline(base), make_variant(base, "ADown", "article")]
    settings = ProfileSettings(batch=batch, threads=1, **QUICK)
    names, plans = [], []
    records = profile_variants(variants, settings, lambda what, _: names.append(what), on_plan=plans.append)
    assert len(names) == steps == profile_steps(2, settings) and plans == [steps]
    assert any(n.startswith("batch ") for n in names) == (batch > 1)
    for r in records:
        assert r["batch"] == batch and r["throughput_ips"] > 0
        if batch == 1:  # from the latency pass itself: one image per median latency
            assert r["throughput_ips"] == pytest.approx(1000 / r["latency_ms"])


def _key(**changes):
    from yoloab.profiling import profile_key

    args = {
        "yaml_sha256": "a" * 64,
        "nc": 80,
        "imgsz": 320,
        "batch": 1,
        "device_name": "cpu",
        "threads": 1,
        "dtype": "float32",
        "latency": True,
        "runtimes": ("torch", "onnxruntime"),
        "pretrained_sha256": None,
        "torch_version": "2",
        "ultralytics_version": "8",
    }
    return profile_key(**{**args, **changes})


@pytest.mark.parametrize(
    "change",
    [{"imgsz": 640}, {"nc": 3}, {"threads": 2}, {"yaml_sha256": "b" * 64}, {"batch": 8}, {"latency": False}],
    ids=["imgsz", "nc", "threads", "yaml", "batch", "latency"],
)
def test_profile_key_changes_with_what_changes_the_measurement(change):
    key = _key()
    assert len(key) == 20 and int(key, 16) >= 0
    assert _key(**change) != key


def test_profile_key_ignores_order_of_runtimes_and_variants():
    assert _key(runtimes=("onnxruntime", "torch")) == _key()
    base = get_base_model("yolov8n")
    a, b = baseline(base), make_variant(base, "ADown", "article")
    keys = {r["variant"]: r["key"] for r in profile_variants([a, b], ProfileSettings(imgsz=32, latency=False))}
    again = {r["variant"]: r["key"] for r in profile_variants([b, a], ProfileSettings(imgsz=32, latency=False))}
    assert keys == again and keys[a.name] != keys[b.name]
    other = profile_variants([a], ProfileSettings(imgsz=64, latency=False))[0]["key"]
    assert other != keys[a.name]
    with_nc = profile_variants([a], ProfileSettings(imgsz=32, nc=3, latency=False))[0]
    assert with_nc["key"] != keys[a.name] and with_nc["nc"] == 3
