"""No path under the results directory is followed through a symlink (issue 21): each is refused with one line.

Real symlinks in `tmp_path`, each pointing outside the results directory at files that must come through untouched:
the run directory a sweep would empty and train into, the log it would append to, the model yaml it would train, the
folders records, locks, profiles, exports and damaged files go to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.datasets import load_dataset
from yoloab.errors import UnsafePathError
from yoloab.models import get_base_model
from yoloab.training import RunSpec, TrainSettings, plan_runs
from yoloab.variants import baseline, to_yaml

runner = CliRunner()
TINY = ["--builtin-images", "8", "--imgsz", "64", "--batch", "8", "--workers", "0", "--epochs", "1", "--quiet"]
SWEEP = ["sweep", "--dataset", "builtin", *TINY, "--model", "yolov8n"]


def _spec(results: Path) -> RunSpec:
    """The one run `SWEEP` plans, to name its paths."""
    settings = TrainSettings(epochs=1, imgsz=64, batch=8, workers=0)
    (spec,) = plan_runs([baseline(get_base_model("yolov8n"))], load_dataset("builtin", 8), settings, [0], results)
    return spec


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (links not followed), with the bytes of regular files."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}  # fmt: skip


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the results directory holding a file nothing may delete, change or write beside."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me\n")
    return folder


# where the link goes under the results directory, and what it points at (relative to `outside`; "" = the folder)
SWEEP_LINKS = {
    "run-directory": (lambda s: s.run_dir, ""),
    "run-log": (lambda s: s.log_path, "precious.txt"),
    "model-yaml": (lambda s: s.yaml_path, "model.yaml"),
    "train-folder": (lambda s: s.run_dir.parent, ""),
    "runs-folder": (lambda s: s.results_dir / "runs", ""),
    "locks-folder": (lambda s: s.results_dir / "locks", ""),
    "variants-folder": (lambda s: s.yaml_path.parent, ""),
}


@pytest.mark.parametrize("where", list(SWEEP_LINKS), ids=list(SWEEP_LINKS))
def test_a_sweep_refuses_a_symlink_in_one_line_and_touches_nothing(tmp_path, outside, where):
    results = (tmp_path / "results").resolve()
    spec = _spec(results)
    (outside / "model.yaml").write_text(to_yaml(spec.variant))  # a model the sweep would train if it followed
    at, target = SWEEP_LINKS[where]
    link = at(spec)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / target if target else outside)
    before_out, before_res = _tree(outside), _tree(results)

    result = runner.invoke(app, [*SWEEP, "--results", str(results)])

    assert result.exit_code == 6, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "symlink" in lines[0] and "Traceback" not in result.output, result.output
    assert _tree(outside) == before_out  # precious.txt whole, nothing written beside it or through the link
    assert _tree(results) == before_res  # nothing written (no record, no lock, no run directory) before the refusal


def test_a_record_is_not_stored_through_a_symlinked_runs_folder(tmp_path, outside):
    from yoloab.results import store_run

    results = tmp_path / "results"
    results.mkdir()
    (results / "runs").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="runs"):
        store_run({"key": "k", "status": "ok", "variant": "v"}, results)
    assert _tree(outside) == {"precious.txt": b"keep me\n"}


def test_a_profile_record_is_not_stored_through_a_symlinked_profile_folder(tmp_path, outside):
    from yoloab.results import store_profile

    results = tmp_path / "results"
    results.mkdir()
    (results / "profile").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="profile"):
        store_profile([{"kind": "profile", "key": "k", "variant": "v"}], results)
    assert _tree(outside) == {"precious.txt": b"keep me\n"}


def test_a_damaged_record_is_not_moved_through_a_symlinked_damaged_folder(tmp_path, outside):
    from yoloab.results import load_run

    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "runs" / "k.json").write_text("{not json")
    (results / "damaged").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="damaged"):
        load_run(results, "k")
    assert _tree(outside) == {"precious.txt": b"keep me\n"}
    assert (results / "runs" / "k.json").read_text() == "{not json"  # left where it was


@pytest.mark.parametrize("where", ["exports-folder", "export"])
def test_an_export_is_not_made_or_read_through_a_symlink(tmp_path, outside, monkeypatch, where):
    import torch

    import yoloab.deploy as deploy

    def fake_export(model, fmt, stem, *args):  # the exporter is not under test: only where its files land
        out = Path(f"{stem}.onnx")
        out.write_bytes(b"onnx")
        return out

    monkeypatch.setattr(deploy, "export_model", fake_export)
    results = tmp_path / "results"
    root = results / "exports"
    cpu = torch.device("cpu")
    if where == "exports-folder":
        results.mkdir()
        root.symlink_to(outside)
    else:  # a cached export that is a link to someone else's folder
        root.mkdir(parents=True)
        key = deploy.export_key("d", "onnxruntime", 64, 1, False, cpu)
        (root / f"v-onnx-b1-{key}").symlink_to(outside)
        (outside / "export.json").write_text(json.dumps({"status": "ok", "path": "precious.txt"}))
    before = _tree(outside)
    with pytest.raises(UnsafePathError, match="export"):
        deploy.export(None, "v", "onnxruntime", root, 64, 1, False, cpu, digest="d")
    assert _tree(outside) == before
