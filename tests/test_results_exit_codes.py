"""Exit codes for output places (issue 21): `report --out`, `variants --out` and `profile`'s exports.

A path that is a file (or lies under one) is bad input: one line, exit code 2. A read-only place or a full disk is
the results directory's fault: one line, exit code 6. Either way nothing half-written is left. Read-only places and
full disks are real: a tmpfs remounted read-only, and a tiny tmpfs filled by a filler file (root only).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_report import make_store
from typer.testing import CliRunner

from yoloab.cli.app import app

runner = CliRunner()
VARIANTS = ["variants", "--model", "yolov8n", "--module", "ADown", "--module", "SCDown", "--no-build"]


def _one_line(result, code: int, needle: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr


def _fill(where: Path, room: int = 0) -> None:
    """Fill a file system up to `room` free bytes with a filler file."""
    st = os.statvfs(where)
    with open(where / "filler", "wb") as fh:
        fh.write(b"\0" * (st.f_bavail * st.f_frsize - room))


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[..., Path]]:
    """Mount small tmpfs folders (read-only if asked); every one is unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only or full file system needs root")
    mounted: list[Path] = []

    def mount(name: str, *, read_only: bool = False, size: str = "256k") -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("exit-codes") / "results")


# --------------------------------------------------------------------------------------------------------------------
# a path that is a file: 2


@pytest.mark.parametrize("under", [False, True], ids=["out-is-a-file", "out-under-a-file"])
@pytest.mark.parametrize("verb", ["report", "variants"])
def test_out_onto_a_file_is_bad_input(store, tmp_path, verb, under):
    (tmp_path / "afile").write_text("mine")
    out = tmp_path / "afile" / "sub" if under else tmp_path / "afile"
    args = ["report", "--results", str(store)] if verb == "report" else VARIANTS
    result = runner.invoke(app, [*args, "--out", str(out)])
    _one_line(result, 2, "lies under a file" if under else "is a file; expected a folder")
    assert _files(tmp_path) == {tmp_path / "afile": b"mine"}


# --------------------------------------------------------------------------------------------------------------------
# read-only places and full disks: 6


@pytest.mark.parametrize("where", ["new-folder", "existing-folder"])
@pytest.mark.parametrize("verb", ["report", "variants"])
def test_out_onto_a_read_only_place(store, tmpfs, verb, where):
    ro = tmpfs("ro", read_only=True)
    out = ro / "out" if where == "new-folder" else ro
    args = ["report", "--results", str(store)] if verb == "report" else VARIANTS
    result = runner.invoke(app, [*args, "--out", str(out)])
    _one_line(result, 6, f"--out {out} cannot be {'created' if where == 'new-folder' else 'written'}: ")
    assert "read-only file system" in result.stderr.lower()
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("verb", ["report", "variants"])
def test_out_onto_a_full_disk_leaves_nothing_half_written(store, tmpfs, verb):
    """Room for the first file only: neither that one nor the folder made for it is left; older files are kept."""
    full = tmpfs("full")
    older = full / "older"
    older.mkdir()
    (older / ("report.md" if verb == "report" else "yolov8n-ADown-article.yaml")).write_text("older")
    _fill(full, room=3 * 4096 if verb == "report" else 4096)  # report.md (4.4 kB) or one yaml (1.6 kB) fits, no more
    before = _files(full)
    for out in (full / "new" / "out", older):
        args = ["report", "--results", str(store)] if verb == "report" else VARIANTS
        result = runner.invoke(app, [*args, "--out", str(out)])
        _one_line(result, 6, "no space left on the device; nothing was written")
        assert _files(full) == before and not (full / "new").exists()


def test_profile_export_onto_a_full_disk(tmpfs):
    pytest.importorskip("onnxruntime")
    full = tmpfs("full", size="1m")
    _fill(full)
    results = full / "results"
    args = ["profile", "--model", "yolov8n", "--runtime", "onnxruntime", "--no-latency", "--imgsz", "64"]
    result = runner.invoke(app, [*args, "--results", str(results)])
    _one_line(result, 6, "cannot export yolov8n for onnxruntime into")
    assert "no space left on the device" in result.stderr
    assert _files(results) == {} and not list(results.rglob(".tmp-*"))  # no export, no record, no temporary folder
