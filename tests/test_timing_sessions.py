"""Timing sessions, tail percentiles and thread counts of `profile` (issues 22 and 23).

- A comparison group (same base model and nc within one command) is never timed in two sessions: a group whose rows
  do not all come from one stored session is timed again whole, its stored counts reused.
- P95 and P99 come from the very samples of the median and IQR, for torch and for each deployed runtime.
- Builds, counts and latency run on the thread count asked for, whatever the process had, which is put back after.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import yoloab.profiling as profiling
import yoloab.timing as timing
from yoloab.cli.app import app
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, plan_profile, profile_variants
from yoloab.variants import baseline, make_variant

runner = CliRunner()
QUICK = {"imgsz": 32, "warmup_s": 0.0, "rounds": 2, "round_s": 0.0}


@pytest.fixture
def quick(monkeypatch):
    """Profiles of a fraction of a second: the CLI's timing settings shortened (what is timed stays the same)."""
    resolve = profiling.resolve_settings
    monkeypatch.setattr(profiling, "resolve_settings", lambda s: dataclasses.replace(resolve(s), **QUICK))


def _profile_json(results, *args) -> list[dict]:
    result = runner.invoke(app, ["profile", "--imgsz", "32", "--results", str(results), "-f", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _on_disk(results) -> dict[str, dict]:
    return {r["key"]: r for r in (json.loads(p.read_text()) for p in (results / "profile").glob("*.json"))}


# The acceptance runs `--module all` second: 21 models, 131 s wall (42 s CPU) here at 32 px with 2 rounds and
# the busy loop on a shared 2-core machine. The same workflow with 2 then 2 + 4 modules tests the same rule.
FIRST = ["--module", "ADown", "--module", "SCDown"]
MORE = ["--module", "GhostConv", "--module", "DWConv", "--module", "ECA", "--module", "SimAM"]


@pytest.mark.slow  # two CLI profiles, the second beside a busy loop: ~15-40 s on a shared 2-core machine
def test_a_wider_profile_under_load_times_every_row_of_the_group_in_one_session(tmp_path, quick):
    results = tmp_path / "r"
    first = _profile_json(results, "--model", "yolov8n", *FIRST)
    assert len({r["timing_session"] for r in first}) == 1 and first[0]["timing_session"]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # another process loading one core
    try:
        second = _profile_json(results, "--model", "yolov8n", *FIRST, *MORE)
    finally:
        busy.kill()
        busy.wait()
    sessions = {r["timing_session"] for r in second}
    assert len(second) > len(first) and len(sessions) == 1 and None not in sessions
    assert sessions != {first[0]["timing_session"]}  # the stored rows were timed again, not reused
    again = {r["variant"]: r for r in second}
    for old in first:  # their counts reused (as stored, and said), their timing new
        new = again[old["variant"]]
        assert "reused" not in new and new["counted"] == old["profiled"] and new["profiled"] >= old["profiled"]
        assert {k: new[k] for k in ("params", "gflops", "gflops_aten", "gflops_fused")} == {
            k: old[k] for k in ("params", "gflops", "gflops_aten", "gflops_fused")
        }
    stored = _on_disk(results)
    assert {r["timing_session"] for r in stored.values()} == sessions  # the store says the same as the table


@pytest.mark.parametrize(
    ("stored_sessions", "expected_reused"),
    [
        ({"yolov8n": "s1", "ADown": "s1", "SCDown": "s1"}, {"yolov8n", "ADown", "SCDown"}),
        ({"yolov8n": "s1", "ADown": "s1"}, set()),  # SCDown is measured now: the whole group is timed with it
        ({"yolov8n": "s1", "ADown": "s2", "SCDown": "s1"}, set()),  # two sessions
        ({"yolov8n": None, "ADown": None, "SCDown": None}, set()),  # records from before sessions existed
        ({}, set()),
    ],
    ids=["one-session", "one-missing", "two-sessions", "no-session", "nothing-stored"],
)
def test_plan_reuses_a_group_only_when_it_comes_from_one_stored_session(stored_sessions, expected_reused):
    base = get_base_model("yolov8n")
    variants = [baseline(base), make_variant(base, "ADown"), make_variant(base, "SCDown")]
    short = {"yolov8n": "yolov8n", "ADown": "yolov8n-ADown-article", "SCDown": "yolov8n-SCDown-article"}
    settings = ProfileSettings(device="cpu", **QUICK)
    keys = plan_profile(variants, settings).keys
    store = {
        keys[short[n]]: {"kind": "profile", "key": keys[short[n]], "latency_ms": 1.0, "timing_session": s}
        for n, s in stored_sessions.items()
    }
    plan = plan_profile(variants, settings, store.get)
    assert set(plan.reused) == {short[n] for n in expected_reused}
    assert set(plan.retimed) == {short[n] for n in stored_sessions} - set(plan.reused)
    timed = 3 - len(expected_reused)  # closed form: a step per row, then (warm-up + 2 slots) per timed row
    assert plan.steps == 3 + timed * (1 + 2)
    counts_only = plan_profile(variants, dataclasses.replace(settings, latency=False), lambda key: None)
    assert not counts_only.retimed


def test_groups_are_decided_apart_by_base_model():
    v8, v11 = get_base_model("yolov8n"), get_base_model("yolo11n")
    variants = [baseline(v8), make_variant(v8, "ADown"), baseline(v11), make_variant(v11, "ADown")]
    settings = ProfileSettings(device="cpu", **QUICK)
    keys = plan_profile(variants, settings).keys
    sessions = {"yolov8n": "a", "yolov8n-ADown-article": "a", "yolo11n": "b"}  # yolo11n's ADown row is new
    store = {
        keys[n]: {"kind": "profile", "key": keys[n], "latency_ms": 1.0, "timing_session": s}
        for n, s in sessions.items()
    }
    plan = plan_profile(variants, settings, store.get)
    assert set(plan.reused) == {"yolov8n", "yolov8n-ADown-article"} and set(plan.retimed) == {"yolo11n"}


def test_a_stored_group_from_one_session_is_reused_without_timing_and_a_mixed_one_is_retimed(tmp_path):
    base = get_base_model("yolov8n")
    a, b, c = baseline(base), make_variant(base, "ADown"), make_variant(base, "SCDown")
    settings = ProfileSettings(device="cpu", **QUICK)
    store: dict[str, dict] = {}
    first = profile_variants([a, b], settings)
    store.update({r["key"]: r for r in first})
    steps: list[str] = []
    same = profile_variants([a, b], settings, lambda what, _: steps.append(what), store.get)
    assert [r.get("reused") for r in same] == [True, True] and steps == [f"reused {a.name}", f"reused {b.name}"]
    mixed = profile_variants([a, b, c], settings, stored=store.get)
    assert len({r["timing_session"] for r in mixed}) == 1 and mixed[0]["timing_session"] != first[0]["timing_session"]
    assert not any(r.get("reused") for r in mixed)
    assert [r["counted"] for r in mixed[:2]] == [r["profiled"] for r in first]  # counts from the store
    assert mixed[2]["counted"] == mixed[2]["profiled"]
    assert "timed 2 stored records again" in profiling.reuse_note(mixed)


# --------------------------------------------------------------------------------------------------------------------
# P95 and P99


def test_percentiles_come_from_the_same_samples_as_median_and_iqr(monkeypatch):
    ticks = iter(np.arange(1, 1000) * 1e-3)  # each timed call "takes" 1 ms more than the one before

    def fake_timer(device):
        return lambda fn: (fn(), next(ticks))[1]

    monkeypatch.setattr(timing, "_timer", fake_timer)
    (record,) = profile_variants([baseline(get_base_model("yolov8n"))], ProfileSettings(device="cpu", **QUICK))
    samples = np.arange(1, 7.0)  # 2 rounds x 3 calls (round_s 0: the minimum), in ms
    expected = {
        "latency_ms": np.median(samples),
        "latency_iqr_ms": np.percentile(samples, 75) - np.percentile(samples, 25),
        "latency_p95_ms": np.percentile(samples, 95),
        "latency_p99_ms": np.percentile(samples, 99),
    }
    assert {k: record[k] for k in expected} == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow  # one ONNX export at 32 px (~5-15 s)
def test_percentiles_per_runtime_and_the_plan_counts_runtime_steps(tmp_path, monkeypatch):
    seen: dict = {}
    real = profiling.interleaved_samples

    def spy(runners, device, settings, on_step=None):
        out = real(runners, device, settings, on_step)
        seen.setdefault("pass", out)  # the batch-1 pass comes first
        return out

    monkeypatch.setattr(profiling, "interleaved_samples", spy)
    settings = ProfileSettings(device="cpu", runtimes=("torch", "onnxruntime"), exports=tmp_path, **QUICK)
    plans, steps = [], []
    (record,) = profile_variants(
        [baseline(get_base_model("yolov8n"))], settings, lambda w, _: steps.append(w), on_plan=plans.append
    )
    assert plans == [len(steps)] == [1 + 2 * (1 + 2)]  # the total, known before the build, counts both runtimes
    for rt, suffix in (("torch", ""), ("onnxruntime", "_onnxruntime")):
        ms = np.array(seen["pass"][("yolov8n", rt)]) * 1e3
        assert record[f"latency_ms{suffix}"] == pytest.approx(np.median(ms), rel=1e-9)
        assert record[f"latency_p95_ms{suffix}"] == pytest.approx(np.percentile(ms, 95), rel=1e-9)
        assert record[f"latency_p99_ms{suffix}"] == pytest.approx(np.percentile(ms, 99), rel=1e-9)


# --------------------------------------------------------------------------------------------------------------------
# thread counts


@pytest.mark.parametrize("threads", [1, 2], ids=["one-thread", "two-threads"])
def test_builds_counts_and_latency_run_on_the_threads_asked_and_the_callers_count_comes_back(monkeypatch, threads):
    seen: dict[str, set[int]] = {"build": set(), "count": set(), "timing": set()}
    build, count = profiling.build_seeded, profiling.flop_counts

    def counted_build(*args, **kwargs):
        seen["build"].add(torch.get_num_threads())
        return build(*args, **kwargs)

    def counted_flops(*args, **kwargs):
        seen["count"].add(torch.get_num_threads())
        return count(*args, **kwargs)

    monkeypatch.setattr(profiling, "build_seeded", counted_build)
    monkeypatch.setattr(profiling, "flop_counts", counted_flops)
    caller = 3 if threads != 3 else 2  # what the process had: neither the default nor the asked count
    torch.set_num_threads(caller)
    try:
        (record,) = profile_variants(
            [baseline(get_base_model("yolov8n"))],
            ProfileSettings(device="cpu", threads=threads, **QUICK),
            on_step=lambda what, _: seen["timing"].add(torch.get_num_threads()) if what.startswith("latency") else 0,
        )
        assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(2)  # conftest's count
    assert seen == {"build": {threads}, "count": {threads}, "timing": {threads}}
    assert (record["count_threads"], record["threads"]) == (threads, threads)
