"""`yoloab profile --train-step` (yoloab.train_step): the synthetic batch, the real loss, interleaved timing, the key.

Models are tiny yaml files (five to ten convs, imgsz 64-128) so that every step takes milliseconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from yoloab.profiling import ProfileSettings, plan_profile, profile_key, profile_variants
from yoloab.train_step import (
    BOXES_PER_IMAGE,
    CPU_MEMORY_NOTE,
    step_runner,
    synthetic_batch,
    table_columns,
    trainable_copy,
)
from yoloab.variants import build, from_yaml

# five stride-2 convs (P3, P4, P5 feed Detect); `double` follows each with a same-shape stride-1 conv: 2x the convs
STAGES = [32, 64, 64, 64, 64]


def tiny_yaml(path: Path, double: bool) -> Path:
    rows, outs = [], []
    for i, c in enumerate(STAGES):
        rows.append(f"  - [-1, 1, Conv, [{c}, 3, 2]]")
        if double:
            rows.append(f"  - [-1, 1, Conv, [{c}, 3, 1]]")
        if i >= 2:
            outs.append(len(rows) - 1)
    text = "nc: 3\nbackbone:\n" + "\n".join(rows) + f"\nhead:\n  - [{outs}, 1, Detect, [nc]]\n"
    path.write_text(text)
    return path


@pytest.fixture
def pair(tmp_path):
    return [from_yaml(tiny_yaml(tmp_path / "single.yaml", False)), from_yaml(tiny_yaml(tmp_path / "double.yaml", True))]


FAST = {"warmup_s": 0.05, "rounds": 5, "round_s": 0.05}


# ---------------------------------------------------------------- the batch and the step


@pytest.mark.parametrize("batch, imgsz, nc", [(1, 64, 3), (3, 96, 80)], ids=["b1-64-nc3", "b3-96-nc80"])
def test_synthetic_batch_is_what_the_loss_reads(batch, imgsz, nc):
    b = synthetic_batch(batch, imgsz, nc, torch.device("cpu"))
    n = batch * BOXES_PER_IMAGE
    assert b["img"].shape == (batch, 3, imgsz, imgsz) and 0 <= b["img"].min() and b["img"].max() <= 1
    assert b["batch_idx"].tolist() == [i for i in range(batch) for _ in range(BOXES_PER_IMAGE)]
    assert b["cls"].shape == (n, 1) and set(b["cls"].flatten().tolist()) <= set(map(float, range(nc)))
    xy, wh = b["bboxes"][:, :2], b["bboxes"][:, 2:]
    assert b["bboxes"].shape == (n, 4)
    assert (wh > 0).all() and (xy - wh / 2 >= 0).all() and (xy + wh / 2 <= 1).all()  # every box inside its image
    again = synthetic_batch(batch, imgsz, nc, torch.device("cpu"))
    assert all(torch.equal(b[k], again[k]) for k in b)


def test_step_is_ultralytics_detection_loss_and_reaches_every_parameter(tmp_path):
    from ultralytics.utils.loss import v8DetectionLoss

    model = build(from_yaml(tiny_yaml(tmp_path / "m.yaml", False)))
    twin = trainable_copy(model, torch.device("cpu"))
    batch = synthetic_batch(2, 64, 3, torch.device("cpu"))
    loss = step_runner(twin, batch)()
    # the same loss computed here from Ultralytics' criterion on another copy, with the trainer's default gains
    other = trainable_copy(model, torch.device("cpu"))
    assert (other.args.box, other.args.cls, other.args.dfl) == (7.5, 0.5, 1.5)
    expected, _ = v8DetectionLoss(other)(other(batch["img"]), batch)
    assert loss.item() == pytest.approx(expected.sum().item(), rel=1e-6)
    assert loss.item() > 0
    trained = {name for name, p in twin.named_parameters() if p.requires_grad}
    assert {name for name, _ in twin.named_parameters()} - trained == {"model.5.dfl.conv.weight"}  # as the trainer
    reached = {name for name, p in twin.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == trained
    # the counted model is untouched: no gradients, no criterion, still in the mode it was built in
    assert all(p.grad is None for p in model.parameters())
    assert getattr(model, "criterion", None) is None


# ---------------------------------------------------------------- profile --train-step


def test_train_step_is_recorded_interleaved_and_costs_more_with_twice_the_convs(pair):
    steps = []
    settings = ProfileSettings(imgsz=128, device="cpu", latency=False, train_step=True, **FAST)
    records = profile_variants(pair, settings, on_step=lambda what, record: steps.append(what))
    single, double = records
    for r in records:
        assert r["train_step_ms"] > 0 and r["train_step_iqr_ms"] >= 0
        assert r["train_step_batch"] == 1 and r["batch"] == 1
        assert r["mem_train_step_mb"] is None and r["train_step_note"] == CPU_MEMORY_NOTE
        assert r["timing_session"] and "train_step_error" not in r
    assert single["timing_session"] == double["timing_session"]
    # warm-ups in order, then rounds whose order rotates: neither variant is always timed first
    timed = [s.removeprefix("train step ") for s in steps if s.startswith("train step ")]
    assert timed == ["single", "double"] + ["single", "double", "double", "single"] * 2 + ["single", "double"]
    ratio = double["train_step_ms"] / single["train_step_ms"]
    print(f"\ntrain step, 2x the convs / base: {ratio:.2f}")
    assert ratio > 1.15


def test_profile_steps_count_the_train_step_pass(pair):
    seen, planned = [], []
    settings = ProfileSettings(imgsz=64, device="cpu", latency=True, train_step=True, **FAST)
    profile_variants(pair, settings, on_step=lambda what, record: seen.append(what), on_plan=planned.append)
    assert planned and planned[-1] == len(seen) == 2 + 2 * 2 * (1 + FAST["rounds"])  # counts, latency, train step


def test_a_failing_step_is_recorded_not_raised(pair, monkeypatch):
    import yoloab.train_step as ts

    def broken(model, batch, half=False):
        def run():
            raise RuntimeError("CUDA out of memory\nsecond line")

        return run

    monkeypatch.setattr(ts, "step_runner", broken)
    settings = ProfileSettings(imgsz=64, device="cpu", latency=False, train_step=True, **FAST)
    records = profile_variants(pair[:1], settings)
    assert records[0]["train_step_ms"] is None
    assert records[0]["train_step_error"] == "RuntimeError: CUDA out of memory"


# ---------------------------------------------------------------- identity and reuse


def key_fields(**overrides):
    fields = dict(
        yaml_sha256="ab" * 32,
        nc=3,
        imgsz=64,
        batch=1,
        device_name="cpu",
        threads=1,
        dtype="float32",
        latency=True,
        runtimes=["torch"],
        pretrained_sha256=None,
        torch_version="2",
        ultralytics_version="8",
    )
    fields.update(overrides)
    return fields


def test_key_without_train_step_is_unchanged_and_with_it_differs():
    from yoloab.profiling import PROFILE_KEY_FORMAT

    f = key_fields()
    payload = {
        "format": PROFILE_KEY_FORMAT,
        "model": f["yaml_sha256"],
        "nc": 3,
        "imgsz": 64,
        "batch": 1,
        "device_name": "cpu",
        "threads": 1,
        "dtype": "float32",
        "latency": True,
        "runtimes": ["torch"],
        "pretrained": None,
        "torch": "2",
        "ultralytics": "8",
    }
    before = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    assert profile_key(**f) == before  # stores written before --train-step existed keep their keys
    assert profile_key(**f, train_step=True) != before


def test_a_record_without_train_step_is_not_reused_for_a_train_step_request(pair):
    plain = ProfileSettings(imgsz=64, device="cpu", latency=False, **FAST)
    stored = {r["key"]: r for r in profile_variants(pair[:1], plain)}
    asked = ProfileSettings(imgsz=64, device="cpu", latency=False, train_step=True, **FAST)
    plan = plan_profile(pair[:1], asked, stored.get)
    assert not plan.reused and plan.keys[pair[0].name] not in stored
    again = plan_profile(pair[:1], plain, stored.get)
    assert pair[0].name in again.reused  # the same request still reuses it


def test_table_shows_train_step_columns_only_when_measured():
    from yoloab.report import profile_table

    base = {"variant": "m", "base": "m", "module": None, "placement": None, "imgsz": 64, "params": 1, "gflops": 1.0}
    plain = [dict(base, gflops_aten=1.0, latency_ms=2.0, latency_iqr_ms=0.1)]
    assert table_columns(plain, None) is None
    assert table_columns(plain, ["params"]) == ["params"]
    trained = [dict(plain[0], train_step_ms=9.0, train_step_iqr_ms=0.5, mem_train_step_mb=None)]
    keys = [m.key for m in profile_table(trained, "t", table_columns(trained, None)).metrics]
    assert "train_step_ms" in keys and "latency_ms" in keys
    assert "mem_train_step_mb" not in keys  # no value: left out like the other memory columns


def test_akconv_choice_by_environment_is_part_of_the_key(tmp_path, monkeypatch):
    # the yaml does not say which AKConv formulation an environment variable chose: the key must, or a timing of one
    # would be reused for the other
    import yoloab.modules.akconv  # noqa: F401  registers YOLOAB_AKCONV as a build variable

    yaml = tiny_yaml(tmp_path / "ak.yaml", False)
    yaml.write_text(yaml.read_text().replace("Conv, [64, 3, 2]]", "AKConv, [64, 3, 2]]", 1))
    variant = from_yaml(yaml)
    settings = ProfileSettings(imgsz=64, device="cpu", latency=False)
    monkeypatch.delenv("YOLOAB_AKCONV", raising=False)
    unset = plan_profile([variant], settings).keys[variant.name]
    monkeypatch.setenv("YOLOAB_AKCONV", "fast")
    fast = plan_profile([variant], settings).keys[variant.name]
    monkeypatch.setenv("YOLOAB_AKCONV", "faithful")
    faithful = plan_profile([variant], settings).keys[variant.name]
    assert len({unset, fast, faithful}) == 3
