"""`yoloab report` wiring: mAP Δ intervals from stored per-image statistics, per-runtime latency columns."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from test_significance import _improved, _store, synthetic

from yoloab.report import load_report, profile_markdown, profile_table, report_csv, report_markdown
from yoloab.results import ValStats, store_run
from yoloab.results import store_profile as _store_records
from yoloab.significance import paired_bootstrap


def store_profile(records: list[dict], results) -> list:
    """Store hand-built profile records, each given the `kind`, `key` and `profiled` that `yoloab profile` sets."""
    return _store_records(
        [
            {"kind": "profile", "key": f"{i:020x}", "profiled": f"2026-11-20T10:00:{i:02d}+00:00", **r}
            for i, r in enumerate(records)
        ],
        results,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One baseline and one variant (seed 0) with statistics; a second variant without any."""
    results = tmp_path_factory.mktemp("wiring")
    base = synthetic(120, 7, skill=0.4)
    better = ValStats(**{**base.__dict__, **_improved(base)})
    _store(results, "b0", "yolov8n", 0, base, module=None, kind="run")
    _store(results, "v0", "yolov8n-ADown", 0, better, kind="run")
    plain = {"kind": "run", "key": "c0", "variant": "yolov8n-C2f", "base": "yolov8n", "module": "C2f", "seed": 0}
    plain |= {"status": "ok"}
    plain |= {"dataset": "d", "dataset_id": "d-1", "epochs": 1, "imgsz": 64, "batch": 8, "train_args": {}}
    store_run({**plain, "map50": 0.1, "map50_95": 0.05, "run_dir": None}, results)  # no .npz: no interval
    return results, base, better


def _csv_rows(results) -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO(report_csv(load_report(results))))
    return {r["variant"]: r for r in rows if r["table"] == "d"}


def test_csv_interval_columns_equal_an_independent_paired_bootstrap(store):
    results, base, better = store
    row = _csv_rows(results)["yolov8n-ADown"]
    boot = paired_bootstrap([better], [base])  # the report's defaults: 1000 resamples, seed 0, 95%
    for m in ("map50_95", "map50"):
        low, high = np.percentile(boot[m], [2.5, 97.5])
        assert float(row[f"{m}_delta_ci_low"]) == pytest.approx(low)
        assert float(row[f"{m}_delta_ci_high"]) == pytest.approx(high)
        assert row[f"{m}_delta_significant"] == str(low > 0 or high < 0)
    assert float(row["map50_95_delta_ci_low"]) > 0  # better ranking of the same detections: a real gain


def test_rows_without_statistics_have_empty_interval_cells(store):
    rows = _csv_rows(store[0])
    for variant in ("yolov8n-C2f", "yolov8n"):
        assert rows[variant]["map50_95_delta_ci_low"] == rows[variant]["map50_95_delta_significant"] == ""
    assert rows["yolov8n-C2f"]["d_map50_95"] != ""  # the Δ itself is still there


def test_markdown_shows_the_interval_the_mark_and_the_method(store):
    results, base, better = store
    report = load_report(results)
    md = report_markdown(report)
    low, high = np.percentile(paired_bootstrap([better], [base])["map50_95"], [2.5, 97.5])
    d = better.map50_95 - base.map50_95
    assert f"{d:+.3f} ({100 * d / base.map50_95:+.1f}%) [{low:+.3f}, {high:+.3f}]*" in md
    assert "95% interval by paired bootstrap over validation images (bootstrap;" in md
    c2f = next(line for line in md.splitlines() if line.startswith("| yolov8n-C2f"))
    assert "[" not in c2f and "*" not in c2f


def test_runtime_latency_is_a_column_in_md_and_csv(tmp_path):
    common = {"base": "yolov8n", "imgsz": 64, "params": 3_000_000, "gflops": 8.0, "latency_ms": 10.0}
    common["timing_session"] = "s1"  # timed together: the latency Δ is shown
    records = [
        {"variant": "yolov8n", "module": None, **common, "latency_ms_onnxruntime": 4.0, "export_onnxruntime": "ok"},
        {"variant": "yolov8n-ADown", "module": "ADown", **common, "latency_ms_onnxruntime": 5.0},
    ]
    store_profile(records, tmp_path)
    report = load_report(tmp_path)
    assert "| latency onnxruntime (ms) | Δ |" in report_markdown(report)
    row = next(r for r in csv.DictReader(io.StringIO(report_csv(report))) if r["variant"] == "yolov8n-ADown")
    assert float(row["latency_ms_onnxruntime"]) == 5.0 and float(row["d_latency_ms_onnxruntime"]) == 1.0
    assert "| 5.00 | +1.00 (+25.0%) |" in profile_markdown(profile_table(records))


def test_a_failed_export_shows_its_status_instead_of_a_latency(tmp_path):
    common = {"base": "yolov8n", "imgsz": 64, "params": 3_000_000, "gflops": 8.0, "latency_ms": 10.0}
    records = [
        {"variant": "yolov8n", "module": None, **common, "latency_ms_openvino": 4.0, "export_openvino": "ok"},
        {
            "variant": "yolov8n-X",
            "module": "X",
            **common,
            "latency_ms_openvino": None,
            "export_openvino": "failed: op Y",
        },
    ]
    # issue 22: the status is ✓ or ✗ with a numbered footnote, in place of the word 'failed'
    for md in (profile_markdown(profile_table(records)), report_markdown(_stored(records, tmp_path))):
        assert "| ✗1 |" in md
        assert "✗1 yolov8n-X: latency openvino (ms): export failed: op Y" in md
    assert "| ✓ 4.00 |" in profile_markdown(profile_table(records[:1]))  # an ok export: ✓ and its number


def _stored(records, results):
    store_profile(records, results)
    return load_report(results)


def test_run_table_joins_the_runtime_latency_of_the_variants_profile(store):
    results = store[0]
    common = {"base": "yolov8n", "imgsz": 64, "latency_ms": 10.0, "timing_session": "s1"}
    records = [
        {"variant": "yolov8n", "module": None, **common, "latency_ms_onnxruntime": 4.0},
        {"variant": "yolov8n-ADown", "module": "ADown", **common, "latency_ms_onnxruntime": 3.0},
    ]
    stored = store_profile(records, results)
    try:
        rows = _csv_rows(results)
        assert float(rows["yolov8n-ADown"]["latency_ms_onnxruntime"]) == 3.0
        assert float(rows["yolov8n-ADown"]["d_latency_ms_onnxruntime"]) == -1.0
        assert rows["yolov8n-C2f"]["latency_ms_onnxruntime"] == ""  # never profiled
    finally:
        for path in stored:
            path.unlink()  # the module's other tests see the store without profiles


def test_export_status_marks_stay_out_of_latex(tmp_path):
    common = {"base": "yolov8n", "imgsz": 64, "params": 3_000_000, "gflops": 8.0, "latency_ms": 10.0}
    records = [
        {"variant": "yolov8n", "module": None, **common, "latency_ms_openvino": 4.0, "export_openvino": "ok"},
        {"variant": "yolov8n-X", "module": "X", **common, "latency_ms_openvino": None},
    ]
    records[1]["export_openvino"] = "failed: op Y"
    store_profile(records, tmp_path)
    report = load_report(tmp_path, columns=["latency_ms", "latency_ms_openvino"])
    from yoloab.report import render_report

    tex = render_report(report, "latex", columns=["latency_ms", "latency_ms_openvino"])
    assert "✓" not in tex and "✗" not in tex  # pdflatex has no such glyphs; the cell says 'failed', a note why
    assert "failed" in tex and "yolov8n-X: latency openvino (ms): export failed: op Y" in tex
