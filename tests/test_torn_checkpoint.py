"""A disk that fills while a run trains (issue 21): once space is freed, the same sweep command finishes the run.

Real full disks: each case mounts a small tmpfs (root only), puts the results directory on it and fills it with a
file, so that a write of the run really fails for want of space:

- Ultralytics writes `last.pt` and `best.pt` in place, so a full disk leaves them torn (cut short);
- yoloab's own writes are atomic: a failed one leaves nothing, and the run is recorded failed.

The second command must resume from the last intact checkpoint (or train again cleanly when none is), keep each torn
file in `results/damaged/`, and end with an `ok` record.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import yoloab.callbacks
from yoloab.cli.app import app

runner = CliRunner()
TINY = ["--builtin-images", "8", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet"]
SWEEP = ["sweep", "--dataset", "builtin", *TINY, "--model", "yolov8n"]
TMPFS_SIZE = "256m"  # a whole 3-epoch run of yolov8n (4 checkpoints of ~30 MB at its peak) fits


def _mount(where: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real disk to fill) needs root")
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {where}: {(done.stderr or done.stdout).strip()}")


def _unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)  # busy: detach now, freed when let go


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of `TMPFS_SIZE`, unmounted after the test whatever happens."""
    where = tmp_path / "small"
    _mount(where)
    try:
        yield where
    finally:
        _unmount(where)


@pytest.fixture(scope="module")
def checkpoint_size(tmp_path_factory, monkeypatch_module) -> int:
    """Bytes of the run's checkpoint after its first epoch, as Ultralytics writes it (measured once, 1 epoch)."""
    sizes: list[int] = []
    copy = yoloab.callbacks.copy_atomic

    def measuring(src: Path, dst: Path) -> None:
        sizes.append(Path(src).stat().st_size)
        copy(src, dst)

    monkeypatch_module.setattr(yoloab.callbacks, "copy_atomic", measuring)
    results = tmp_path_factory.mktemp("measure") / "results"
    result = runner.invoke(app, [*SWEEP, "--epochs", "1", "--results", str(results)])
    monkeypatch_module.undo()
    assert result.exit_code == 0 and sizes, result.output
    return sizes[0]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _fill(disk: Path, leave: int) -> Path:
    """Take all the free space of `disk` but `leave` bytes, with one file; returns it."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, st.f_bavail * st.f_frsize - leave)
    return filler


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CASES = {
    # the first save: last.pt is cut short, nothing whole is left; the record cannot be written either
    "last.pt-torn-nothing-whole": ("before", lambda s: s // 2, ["last.pt"], None),
    # the first save: last.pt whole, then best.pt (the same bytes) cut short: mended from last.pt, resumed
    "best.pt-torn-last.pt-whole": ("before", lambda s: s + s // 2, ["best.pt"], 1),
    # the disk fills after epoch 1: epoch 2's in-place saves fit, its atomic resume state does not; recorded failed
    "full-after-epoch-1-recorded-failed": ("after-epoch-1", lambda s: s // 2, [], 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_run_cut_short_by_a_full_disk_is_finished_by_the_same_command(small_disk, checkpoint_size, monkeypatch, case):
    when, leave, torn, resumed_from = CASES[case]
    results = small_disk / "results"
    args = [*SWEEP, "--epochs", "3", "--results", str(results)]
    fillers: list[Path] = []
    if when == "before":
        fillers.append(_fill(small_disk, leave(checkpoint_size)))
    else:
        copy = yoloab.callbacks.copy_atomic

        def fill_after_first_save(src: Path, dst: Path) -> None:
            copy(src, dst)
            if not fillers:
                fillers.append(_fill(small_disk, leave(Path(src).stat().st_size)))

        monkeypatch.setattr(yoloab.callbacks, "copy_atomic", fill_after_first_save)

    first = runner.invoke(app, args)
    monkeypatch.undo()
    assert first.exit_code in (1, 6), first.output  # 6: the failed run's record could not be written either
    (weights,) = (results / "train").glob("*/weights")
    kept = {name: _sha(weights / name) for name in torn}
    assert all(not zipfile.is_zipfile(weights / name) for name in torn), "the disk did not tear the checkpoint"
    failed = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    assert failed or first.exit_code == 6, first.output  # recorded failed, or the record itself was lost

    fillers[0].unlink()  # space freed; the same command again
    second = runner.invoke(app, args)

    assert second.exit_code == 0, second.output
    (record,) = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    assert record["status"] == "ok" and record["epochs_done"] == 3, record
    assert record["resumed"] is (resumed_from is not None) and record["resumed_from_epoch"] == resumed_from, record
    damaged = {p.name.rpartition("-")[2]: _sha(p) for p in (results / "damaged").glob("*.pt")}
    assert damaged == kept  # each torn file kept as it was, never deleted; nothing whole moved aside
    assert not torn or "cut short" in second.output, second.output  # one warning line says where it went
    assert zipfile.is_zipfile(weights / "best.pt") and zipfile.is_zipfile(weights / "last.pt")
    # the first command said why: what lets the second resume a failed run rather than train it from scratch
    assert all(r["status"] == "failed" and r["error"].startswith("disk full: ") for r in failed), failed
