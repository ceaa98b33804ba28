"""Profile records in the results store: one file per key, the old list files, reuse and --reprofile."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

import yoloab.profiling as profiling
from yoloab.cli.app import app
from yoloab.errors import YoloabWarning
from yoloab.models import get_base_model
from yoloab.results import load_profile, load_profiles, store_profile
from yoloab.training import model_hash
from yoloab.variants import baseline, make_variant

runner = CliRunner()


def _record(key: str, profiled: str, variant: str = "yolov8n", **extra) -> dict:
    return {"kind": "profile", "key": key, "variant": variant, "profiled": profiled, "latency_ms": 1.0, **extra}


def test_store_round_trip_one_file_per_key(tmp_path):
    records = [_record("b" * 20, "2026-11-21T10:00:00+00:00"), _record("a" * 20, "2026-11-22T10:00:00+00:00")]
    paths = store_profile([*records, {**_record("c" * 20, "x"), "reused": True}], tmp_path)
    assert paths == [tmp_path / "profile" / f"{'b' * 20}.json", tmp_path / "profile" / f"{'a' * 20}.json"]
    assert [json.loads(p.read_text()) for p in paths] == records  # the reused one is already stored: not written
    assert load_profiles(tmp_path) == records  # by time measured, not by file name
    assert load_profile(tmp_path, "a" * 20) == records[1] and load_profile(tmp_path, "c" * 20) is None
    replaced = {**records[0], "latency_ms": 2.0}
    store_profile([replaced], tmp_path)
    assert load_profiles(tmp_path) == [replaced, records[1]]


def test_legacy_list_files_still_load_in_time_order(tmp_path):
    folder = tmp_path / "profile"
    folder.mkdir()
    old = [{"variant": "yolov8n", "latency_ms": 12.0}, {"variant": "yolov8n-ADown", "latency_ms": 11.0}]
    late = [{"variant": "yolov8n", "latency_ms": 9.0}]
    (folder / "20261120T100000Z-aaaa.json").write_text(json.dumps(old))
    (folder / "20261122T083000Z-bbbb.json").write_text(json.dumps(late))
    store_profile([_record("f" * 20, "2026-11-21T00:00:00+00:00", latency_ms=10.0)], tmp_path)
    loaded = load_profiles(tmp_path)
    assert [r["latency_ms"] for r in loaded] == [12.0, 11.0, 10.0, 9.0]
    assert [r["profiled"] for r in loaded] == [
        "2026-11-20T10:00:00+00:00",
        "2026-11-20T10:00:00+00:00",
        "2026-11-21T00:00:00+00:00",
        "2026-11-22T08:30:00+00:00",
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [('{"kind": "profile", "ke', "not JSON"), ('{"key": "x", "status": "ok"}', "not a profile record")],
    ids=["cut-short", "run-record"],
)
def test_damaged_per_key_file_is_moved_aside(tmp_path, text, why):
    good = _record("a" * 20, "2026-11-21T10:00:00+00:00")
    store_profile([good], tmp_path)
    bad = tmp_path / "profile" / f"{'d' * 20}.json"
    bad.write_text(text)
    with pytest.warns(YoloabWarning, match=why):
        assert load_profiles(tmp_path) == [good]
    assert not bad.exists() and (tmp_path / "damaged" / bad.name).read_text() == text
    bad.write_text(text)
    with pytest.warns(YoloabWarning, match="counts as not measured"):
        assert load_profile(tmp_path, "d" * 20) is None


# --------------------------------------------------------------------------------------------------------------------
# the CLI reuses stored records


@pytest.fixture
def quick(monkeypatch):
    """Profiles of a fraction of a second: the CLI's timing settings shortened (what is timed stays the same)."""
    resolve = profiling.resolve_settings

    def short(settings):
        return dataclasses.replace(resolve(settings), warmup_s=0.0, rounds=2, round_s=0.0)

    monkeypatch.setattr(profiling, "resolve_settings", short)


def _profile(results, *args):
    result = runner.invoke(app, ["profile", "--model", "yolov8n", "--imgsz", "32", "--results", str(results), *args])
    assert result.exit_code == 0, result.output
    return result


def _records(output: str) -> list[dict]:
    """`--format json` records without the stability flags the output adds (`latency_ms_unstable`, not stored)."""
    records = json.loads(output)
    assert all(isinstance(r.get("latency_ms_unstable", False), bool) for r in records)
    return [{k: v for k, v in r.items() if not k.endswith("_unstable")} for r in records]


def _stored(results) -> dict:
    return {p.name: p.read_text() for p in (results / "profile").glob("*.json")}


def test_second_run_reuses_and_reprofile_measures_again(tmp_path, quick):
    results = tmp_path / "r"
    (first,) = _records(_profile(results, "-f", "json").stdout)
    assert first["kind"] == "profile" and (first["threads"], first["batch"]) == (1, 1)
    assert first["yaml_sha256"] == model_hash(baseline(get_base_model("yolov8n")))  # what sweep stores for runs
    path = results / "profile" / f"{first['key']}.json"
    stored = json.loads(path.read_text())
    assert stored == first and "reused" not in stored
    stored["profiled"] = stored["counted"] = "2020-01-02T03:04:05+00:00"  # older, to tell it from a new one
    path.write_text(json.dumps(stored))

    # the baseline is stored, the variant is new: one comparison group, so the baseline is timed again with it (its
    # counts reused) rather than compared with a timing from another session (issue 22)
    again = _profile(results, "--module", "ADown", "-f", "json")
    base, adown = _records(again.stdout)
    assert "reused" not in base and "reused" not in adown
    assert base["timing_session"] == adown["timing_session"] != stored["timing_session"]
    assert base["counted"] == "2020-01-02T03:04:05+00:00" and base["profiled"] > base["counted"]
    counts = ("params", "gflops", "gflops_aten", "gflops_fused", "gflops_published")
    assert {k: base[k] for k in counts} == {k: stored[k] for k in counts}
    assert "timed 1 stored record again (counted 2020-01-02 03:04:05 UTC)" in again.stderr
    assert "reused" not in again.stderr
    after = _stored(results)
    assert len(after) == 2 and json.loads(path.read_text()) == base  # rewritten with the new session

    table = _profile(results, "--module", "ADown")  # one stored session for the whole group: reused as it is
    assert "1 thread, batch 1)" in table.stdout and "reused 2 stored records (measured 20" in table.stderr
    assert "timed" not in table.stderr and _stored(results) == after

    redone = _records(_profile(results, "--reprofile", "-f", "json").stdout)[0]
    assert redone["key"] == first["key"] and "reused" not in redone
    assert redone["profiled"] > "2020-01-02T03:04:05+00:00" and redone["counted"] == redone["profiled"]
    assert json.loads(path.read_text()) == redone


def test_a_fully_reused_profile_builds_no_model(tmp_path, quick, monkeypatch):
    results = tmp_path / "r"
    for latency in ("--latency", "--no-latency"):
        _profile(results, "--module", "ADown", latency)

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(profiling, "build_seeded", no_build)
    for latency in ("--latency", "--no-latency"):
        result = _profile(results, "--module", "ADown", latency, "-f", "json")
        assert all(r["reused"] for r in _records(result.stdout))
        assert "reused 2 stored records" in result.stderr
    refused = runner.invoke(app, ["profile", "--imgsz", "32", "--results", str(results), "--module", "SCDown"])
    assert refused.exit_code != 0 and "a model was built" in str(refused.exception)  # a miss does build


def test_a_stored_record_without_latency_is_measured_again(tmp_path, quick):
    results = tmp_path / "r"
    (first,) = _records(_profile(results, "-f", "json").stdout)
    path = results / "profile" / f"{first['key']}.json"
    path.write_text(json.dumps({**first, "latency_ms": None, "profiled": "2020-01-01T00:00:00+00:00"}))
    result = _profile(results, "-f", "json")
    (record,) = _records(result.stdout)
    assert "reused" not in result.stderr and "reused" not in record and record["latency_ms"] > 0
    assert json.loads(path.read_text()) == record


def test_no_latency_profile_reuses_only_its_own_kind(tmp_path, quick):
    results = tmp_path / "r"
    timed = _records(_profile(results, "-f", "json").stdout)[0]
    counted = _records(_profile(results, "--no-latency", "-f", "json").stdout)[0]
    assert counted["key"] != timed["key"] and "reused" not in counted and counted.get("latency_ms") is None
    assert len(_stored(results)) == 2
    variants = [baseline(get_base_model("yolov8n")), make_variant(get_base_model("yolov8n"), "ADown", "article")]
    settings = profiling.ProfileSettings(imgsz=32, latency=False)
    records = profiling.profile_variants(variants, settings, stored=lambda key: load_profile(results, key))
    assert [r.get("reused") for r in records] == [True, None]


@pytest.mark.parametrize(
    ("record", "latency", "runtimes", "expected"),
    [
        ({"latency_ms": 5.0}, True, ["torch"], True),
        ({"latency_ms": None}, True, ["torch"], False),
        ({"latency_ms": None}, False, ["torch"], True),
        ({"latency_ms": 5.0, "latency_ms_onnxruntime": None}, True, ["torch", "onnxruntime"], False),
        ({"latency_ms": 5.0, "latency_ms_onnxruntime": 2.0}, True, ["torch", "onnxruntime"], True),
        ({"latency_ms": 5.0, "kind": "run"}, True, ["torch"], False),
        ({"latency_ms": 5.0, "key": "other"}, True, ["torch"], False),
    ],
    ids=["timed", "no-latency-stored", "counts-only", "runtime-missing", "runtime-timed", "run-record", "other-key"],
)
def test_reusable_needs_the_key_and_every_asked_latency(record, latency, runtimes, expected):
    assert profiling.reusable({"kind": "profile", "key": "k", **record}, "k", latency, runtimes) is expected
