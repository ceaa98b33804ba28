"""Damaged files of every kind (issue 21): records of the wrong types, per-image statistics, cached exports.

Each damaged file is moved to `damaged/` (kept byte for byte, never deleted) with one warning line, and the command
goes on: `report` leaves the run out, `sweep` trains it again, `profile` exports again. Stores are built by hand (as
tests/test_report.py does) or with a sweep whose executor trains nothing; one tiny model is really exported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_report import make_store
from test_significance import _improved, _store, synthetic
from typer.testing import CliRunner

import yoloab.deploy as deploy
import yoloab.executors
from yoloab.cli.app import app
from yoloab.errors import YoloabWarning
from yoloab.results import ValStats, load_runs, load_val_stats

runner = CliRunner()


def _warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def _moved_once(result, damaged: Path, originals: dict[Path, bytes], needle: str, gone: bool = True) -> None:
    """The command went on, said so in one warning line, and kept every damaged file as it was in `damaged/`.

    `gone`: the damaged files are no longer in their place (a sweep puts the record of the run trained again there).
    """
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    (line,) = _warnings(result)
    assert needle in line and "moved to" in line, line
    for path, content in originals.items():
        assert (damaged / path.name).read_bytes() == content  # kept byte for byte
        assert not (gone and path.exists())


# --------------------------------------------------------------------------------------------------------------------
# records of the wrong types


@pytest.mark.parametrize(
    ("field", "value"),
    [("map50", "abc"), ("gflops", "8.2"), ("train_args", "lr0=0.1"), ("params", [1, 2])],
    ids=["map50-text", "gflops-text", "train-args-text", "params-list"],
)
def test_report_leaves_out_a_run_record_of_the_wrong_types(tmp_path, field, value):
    results = make_store(tmp_path / "results")
    path = results / "runs" / "run02.json"  # shapes, yolov8n-ADown-all seed 0: the variant's only finished run
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    original = path.read_bytes()
    result = runner.invoke(app, ["report", "--results", str(results), "--format", "csv"])
    _moved_once(result, results / "damaged", {path: original}, f"{field} is {json.dumps(value)}")
    assert "run02.json" in _warnings(result)[0]
    rows = {(r["table"], r["variant"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    row = rows["shapes", "yolov8n-ADown-all"]  # its one finished run is left out; the failed seed is all that remains
    assert (row["n_ok"], row["n_failed"], row["map50_mean"]) == ("0", "1", "")
    again = runner.invoke(app, ["report", "--results", str(results)])
    assert again.exit_code == 0 and not _warnings(again), again.output


def test_report_leaves_out_a_profile_record_of_the_wrong_types(tmp_path):
    results = make_store(tmp_path / "results")
    path = results / "profile" / "20261121T100000Z-bbbb.json"  # an older layout: a list of records
    records = json.loads(path.read_text())
    records[0]["latency_ms"] = "fast"
    path.write_text(json.dumps(records))
    original = path.read_bytes()
    result = runner.invoke(app, ["report", "--results", str(results)])
    _moved_once(result, results / "damaged", {path: original}, 'latency_ms is "fast", not a number')


# --------------------------------------------------------------------------------------------------------------------
# per-image statistics (`runs/<key>.npz`)


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _not_a_zip(path: Path) -> None:
    path.write_bytes(b"\0" * 64)


def _corrupt_member(path: Path) -> None:
    """Flip bytes inside the largest array's compressed data: the zip's directory is intact, its checksum is not."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.compress_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = (
        int.from_bytes(data[info.header_offset + i : info.header_offset + i + 2], "little") for i in (26, 28)
    )
    middle = info.header_offset + 30 + name_len + extra_len + info.compress_size // 3
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _arrays_that_do_not_fit(path: Path) -> None:
    """A whole, readable zip whose per-image arrays are one image short: a file written by something else."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["pred_count"] = arrays["pred_count"][:-1]
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


DAMAGE = {
    "cut-short": _cut_short,
    "not-a-zip": _not_a_zip,
    "corrupt-member": _corrupt_member,
    "arrays-do-not-fit": _arrays_that_do_not_fit,
}


@pytest.fixture(scope="module")
def stats_store(tmp_path_factory) -> Path:
    """A baseline and a variant on dataset `d`, each with per-image statistics (the report gives the Δ an interval)."""
    results = tmp_path_factory.mktemp("stats") / "results"
    base = synthetic(60, 3, skill=0.4)
    _store(results, "b0", "yolov8n", 0, base, module=None, kind="run")
    _store(results, "v0", "yolov8n-ADown", 0, ValStats(**{**base.__dict__, **_improved(base)}), kind="run")
    return results


@pytest.mark.parametrize("damage", DAMAGE)
def test_report_moves_damaged_statistics_aside_with_their_record(stats_store, tmp_path, damage):
    results = tmp_path / "results"
    shutil.copytree(stats_store, results)
    npz, record = results / "runs" / "v0.npz", results / "runs" / "v0.json"
    DAMAGE[damage](npz)
    originals = {npz: npz.read_bytes(), record: record.read_bytes()}
    result = runner.invoke(app, ["report", "--results", str(results)])
    _moved_once(result, results / "damaged", originals, "damaged per-image statistics")
    assert "v0.npz" in _warnings(result)[0] and "v0.json" in _warnings(result)[0]
    again = runner.invoke(app, ["report", "--results", str(results)])
    assert again.exit_code == 0 and not _warnings(again), again.output
    assert "yolov8n-ADown" not in again.stdout and "| yolov8n |" in again.stdout  # the run is left out, not the store


def test_statistics_damaged_inside_are_caught_where_they_are_read(stats_store, tmp_path):
    """A corrupt member passes the cheap check on every record read; reading the arrays finds it."""
    results = tmp_path / "results"
    shutil.copytree(stats_store, results)
    _corrupt_member(results / "runs" / "v0.npz")
    assert [r["key"] for r in load_runs(results)] == ["b0", "v0"]
    with pytest.warns(YoloabWarning, match=r"damaged per-image statistics .*v0\.npz \((BadZipFile|error)") as caught:
        assert load_val_stats(results, "v0") is None
    assert len(caught) == 1
    assert [r["key"] for r in load_runs(results)] == ["b0"]  # its record went with it: the run counts as not done


# --------------------------------------------------------------------------------------------------------------------
# sweep: a damaged record or statistics file means the run is trained again

SWEEP = ["sweep", "--dataset", "builtin", "--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0"]
SWEEP += ["--model", "yolov8n", "--epochs", "1", "--quiet"]


class _Executor:
    """Trains nothing: hands back an `ok` record per run, as a finished training would, and remembers the keys."""

    def __init__(self) -> None:
        self.trained: list[str] = []

    def run(self, specs, events, stop):
        for spec in specs:
            self.trained.append(spec.key)
            record = {"key": spec.key, "kind": "run", "variant": spec.variant.name, "seed": spec.seed}
            yield spec, {**record, "status": "ok", "map50": 0.5, "map50_95": 0.3, "dataset": "builtin"}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, str]:
    """A results directory where a sweep recorded its one run, with per-image statistics beside the record."""
    results = tmp_path_factory.mktemp("swept") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(yoloab.executors, "make_executor", lambda *a, **k: _Executor())
        result = runner.invoke(app, [*SWEEP, "--results", str(results)])
    assert result.exit_code == 0, result.output
    (record,) = (results / "runs").glob("*.json")
    synthetic(8, 0).save(record.with_suffix(".npz"))
    return results, record.stem


@pytest.mark.parametrize("damage", ["record-map50-text", "npz-cut-short", "npz-not-a-zip"])
def test_sweep_trains_a_run_with_a_damaged_file_again(swept, tmp_path, monkeypatch, damage):
    results = tmp_path / "results"
    shutil.copytree(swept[0], results)
    record, npz = results / "runs" / f"{swept[1]}.json", results / "runs" / f"{swept[1]}.npz"
    if damage == "record-map50-text":
        record.write_text(json.dumps({**json.loads(record.read_text()), "map50": "abc"}))
    else:
        DAMAGE[damage.removeprefix("npz-")](npz)
    originals = {record: record.read_bytes(), npz: npz.read_bytes()}  # a run's record and statistics go together
    executor = _Executor()
    monkeypatch.setattr(yoloab.executors, "make_executor", lambda *a, **k: executor)
    result = runner.invoke(app, [*SWEEP, "--results", str(results)])
    assert executor.trained == [swept[1]]  # counted as not done
    needle = "damaged record" if "record" in damage else "damaged per-image statistics"
    _moved_once(result, results / "damaged", originals, needle, gone=False)
    assert [r["status"] for r in load_runs(results)] == ["ok"]


# --------------------------------------------------------------------------------------------------------------------
# cached exports

IMGSZ = 64
PROFILE = ["profile", "--model", "yolov8n", "--runtime", "onnxruntime", "--no-latency", "--imgsz", str(IMGSZ)]
PROFILE += ["--format", "json"]


def _profile(results: Path, *extra: str):
    result = runner.invoke(app, [*PROFILE, "--results", str(results), *extra])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    (record,) = json.loads(result.stdout)
    return result, record


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    results = tmp_path_factory.mktemp("exported") / "results"
    _, record = _profile(results)
    assert record["export_onnxruntime"] == "ok" and not record["export_cached_onnxruntime"]
    return results


@pytest.mark.parametrize("made", ["with-checksums", "before-checksums"])
def test_a_truncated_cached_export_is_moved_aside_and_exported_again(exported, tmp_path, made):
    results = tmp_path / "results"
    shutil.copytree(exported, results)
    (folder,) = (results / "exports").iterdir()
    if made == "before-checksums":  # a cache entry written before export.json kept sizes and checksums
        meta = json.loads((folder / "export.json").read_text())
        (folder / "export.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "files"}))
    artifact = folder / "yolov8n.onnx"
    artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
    cut = artifact.read_bytes()
    result, record = _profile(results, "--reprofile")
    (line,) = _warnings(result)
    assert line.startswith(f"warning: damaged export {folder} (") and "exported again" in line, line
    assert record["export_onnxruntime"] == "ok" and record["export_cached_onnxruntime"] is False
    assert record["parity_onnxruntime"] < 1e-3
    assert (results / "damaged" / folder.name / "yolov8n.onnx").read_bytes() == cut  # kept, not deleted
    assert artifact.stat().st_size > 2 * len(cut) - 2


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stub_export(model, fmt, stem, imgsz, batch, half, device) -> Path:
    """Stands in for Ultralytics' exporter where only the cache's bookkeeping is under test."""
    path = stem.with_suffix(".onnx")
    path.write_bytes(b"onnx")
    return path


def test_leftover_temporary_export_folders_are_removed_by_the_next_run(tmp_path, monkeypatch):
    import socket

    root = tmp_path / "exports"
    dead, host = _dead_pid(), socket.gethostname()
    killed = root / f".tmp-yolov8n-onnx-b1-0123456789abcdef@{host}.{dead}"
    older = root / f".tmp-yolov8n-onnx-b1-fedcba9876543210-{dead}"  # named before the host was part of the name
    running = root / f".tmp-yolov8n-onnx-b8-0123456789abcdef@{host}.{os.getppid()}"  # a live process's export
    elsewhere = root / f".tmp-yolov8n-onnx-b1-0123456789abcdef@other-{host}.{dead}"  # another machine's, shared dir
    for folder in (killed, older, running, elsewhere):
        folder.mkdir(parents=True)
        (folder / "yolov8n.onnx").write_bytes(b"partial")
    monkeypatch.setattr(deploy, "export_model", _stub_export)
    made = deploy.export(torch.nn.Conv2d(3, 3, 1), "tiny", "onnxruntime", root, IMGSZ, 1, False, torch.device("cpu"))
    assert made.status == "ok"
    assert sorted(p.name for p in root.iterdir()) == sorted([running.name, elsewhere.name, Path(made.path).parent.name])


def test_an_interrupted_export_leaves_no_temporary_folder(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy, "export_model", interrupted)
    root = tmp_path / "exports"
    with pytest.raises(KeyboardInterrupt):
        deploy.export(torch.nn.Conv2d(3, 3, 1), "tiny", "onnxruntime", root, IMGSZ, 1, False, torch.device("cpu"))
    assert list(root.iterdir()) == []
