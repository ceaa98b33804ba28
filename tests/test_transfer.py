"""--pretrained: which checkpoint tensors each variant receives, the counts recorded, bad checkpoints, run keys.

Counts are checked against independent counts over the checkpoint's own state_dict (keys outside the swapped rows),
and every transferred tensor against the checkpoint's value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.datasets import Dataset
from yoloab.models import get_base_model
from yoloab.training import TrainSettings, plan_runs, run_key
from yoloab.transfer import check_pretrained, seeded_model
from yoloab.variants import baseline, build, make_variant

runner = CliRunner()
NC = 3


def _row(key: str) -> int:
    return int(key.split(".")[1])


def test_baseline_from_its_own_checkpoint_transfers_every_tensor(checkpoint):
    path, source = checkpoint
    v = baseline(get_base_model("yolov8n"))
    model, moved = seeded_model(v, check_pretrained(path, [v]), NC)
    own = model.state_dict()
    assert moved.transferred_tensors == moved.total_tensors == len(source) == len(own)
    assert moved.transferred_params == moved.total_params == sum(p.numel() for p in model.parameters())
    assert moved.fresh_rows == [] and moved.partial_rows == []
    assert all(torch.equal(own[k], source[k]) for k in source)


def test_adown_all_fresh_rows_are_exactly_the_swapped_rows(checkpoint):
    path, source = checkpoint
    v = make_variant(get_base_model("yolov8n"), "ADown", "all")
    model, moved = seeded_model(v, check_pretrained(path, [v]), NC)
    assert moved.fresh_rows == v.rows == [1, 3, 5, 7, 16, 19] and moved.partial_rows == []
    kept = [k for k in source if _row(k) not in v.rows]  # independent: the checkpoint's keys outside swapped rows
    own = model.state_dict()
    assert moved.transferred_tensors == len(kept) and moved.total_tensors == len(own)
    params = dict(model.named_parameters())
    assert moved.transferred_params == sum(params[k].numel() for k in kept if k in params)
    assert all(torch.equal(own[k], source[k]) for k in kept)
    line = moved.line()
    assert line.startswith(f"yolov8n-ADown-all: {len(kept)}/{len(own)} tensors, ")
    assert line.endswith("parameters from yolov8n-trained.pt; fresh rows 1, 3, 5, 7, 16, 19")


def test_other_class_count_keeps_all_but_the_class_convs(checkpoint):
    path, source = checkpoint
    v = baseline(get_base_model("yolov8n"))
    model, moved = seeded_model(v, check_pretrained(path, [v]), 80)
    own = model.state_dict()
    # independent: name and shape equal, nothing else (the Detect cls branch is 80 wide instead of 64 for nc=3)
    same = [k for k in source if k in own and own[k].shape == source[k].shape]
    assert moved.transferred_tensors == len(same) < len(own)
    assert moved.fresh_rows == [] and moved.partial_rows == [22]
    assert all(k.startswith("model.22.cv3.") for k in own if k not in same)


@pytest.mark.slow
def test_revcol_head_rows_are_mapped_to_their_new_indices(checkpoint):
    path, source = checkpoint
    v = make_variant(get_base_model("yolov8n"), "RevCol", "backbone")
    model, moved = seeded_model(v, check_pretrained(path, [v]), NC)
    nb_old, nb_new = 10, len(v.config["backbone"])
    own = model.state_dict()
    head = {k: t for k, t in source.items() if _row(k) >= nb_old}
    carried = 0
    for k, t in head.items():
        new = f"model.{_row(k) - nb_old + nb_new}.{k.split('.', 2)[2]}"
        if own[new].shape == t.shape:
            assert torch.equal(own[new], t), new
            carried += 1
    detect = [k for k in head if _row(k) == 22]
    assert carried > len(detect) > 0  # the whole Detect head and most head rows came along
    assert 0 in moved.fresh_rows and model.model[0].__class__.__name__ == "RevCol"
    assert moved.transferred_tensors >= carried


def test_run_key_includes_the_checkpoint_only_when_given(checkpoint, tmp_path):
    path, _ = checkpoint
    v = baseline(get_base_model("yolov8n"))
    data = Dataset("d", tmp_path / "d.yaml", "id-1", ("a", "b", "c"), 8)
    settings = TrainSettings(epochs=1, imgsz=64, batch=2)
    plain = plan_runs([v], data, settings, [0], tmp_path)[0]
    seeded = plan_runs([v], data, settings, [0], tmp_path, pretrained=check_pretrained(path, [v]))[0]
    from yoloab.training import model_hash

    assert plain.key == run_key(model_hash(v), data, settings, 0)  # runs from scratch keep their keys
    assert seeded.key != plain.key and seeded.pretrained.sha256 in json.dumps(seeded.pretrained.record())


# --------------------------------------------------------------------------------------------------------------------
# bad checkpoints: one line, exit 2, nothing written


def _bad(tmp_path: Path, text: bytes | None = None) -> Path:
    path = tmp_path / "weights.pt"
    if text is not None:
        path.write_bytes(text)
    return path


@pytest.mark.parametrize("verb", ["sweep", "profile"])
@pytest.mark.parametrize(
    ("case", "expect"),
    [("text", "not an Ultralytics checkpoint"), ("missing", "no such file"), ("other-base", "another model")],
    ids=["not-a-checkpoint", "missing", "other-base"],
)
def test_bad_checkpoint_is_one_line_exit_2_nothing_written(checkpoint, tmp_path, tiny_data, verb, case, expect):
    if case == "text":
        path = _bad(tmp_path, b"this is not a checkpoint\n")
    elif case == "missing":
        path = _bad(tmp_path)
    else:
        path = checkpoint[0]
    model = "yolo11n" if case == "other-base" else "yolov8n"
    results = tmp_path / "results"
    args = [verb, "--model", model, "--module", "ADown", "--pretrained", str(path), "--results", str(results)]
    args += ["--dataset", tiny_data, "--epochs", "1", "--imgsz", "64"] if verb == "sweep" else ["--no-latency"]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not results.exists()


def test_profile_records_transfer_counts(checkpoint, tmp_path):
    path, source = checkpoint
    args = ["profile", "--model", "yolov8n", "--module", "ADown", "--placement", "all", "--nc", str(NC)]
    args += ["--pretrained", str(path), "--no-latency", "--imgsz", "64", "--results", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "yolov8n-ADown-all: " in result.output and "fresh rows 1, 3, 5, 7, 16, 19" in result.output
    stored = [json.loads(p.read_text()) for p in (tmp_path / "r" / "profile").glob("*.json")]
    records = {r["variant"]: r for r in stored}  # one record per file (`profile/<key>.json`)
    base = records["yolov8n"]
    assert base["transferred_tensors"] == base["total_tensors"] == len(source)
    assert base["transferred_params"] == base["params"] and base["fresh_rows"] == []
    assert records["yolov8n-ADown-all"]["fresh_rows"] == [1, 3, 5, 7, 16, 19]
    assert base["pretrained"]["path"] == str(path.resolve()) and len(base["pretrained"]["sha256"]) == 64


# --------------------------------------------------------------------------------------------------------------------
# the acceptance path: a checkpoint from one sweep seeds the next


@pytest.mark.slow
def test_sweep_from_a_trained_checkpoint_records_the_transfer(tmp_path):
    tiny = ["--dataset", "builtin", "--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0"]
    tiny += ["--epochs", "1", "--quiet", "--model", "yolov8n"]
    # seed 1 here, 0 below: the checkpoint's weights differ from the init the second sweep would draw by itself
    first = runner.invoke(app, ["sweep", *tiny, "--seed", "1", "--results", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    (trained,) = [json.loads(p.read_text()) for p in (tmp_path / "a" / "runs").glob("*.json")]
    best = Path(trained["run_dir"], "weights", "best.pt")
    assert trained["pretrained"] is None and trained["transferred_tensors"] is None

    results = tmp_path / "b"
    result = runner.invoke(
        app,
        ["sweep", *tiny, "--module", "ADown", "--placement", "all", "--pretrained", str(best)]
        + ["--results", str(results)],
    )
    assert result.exit_code == 0, result.output
    records = {r["variant"]: r for r in (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))}
    base, adown = records["yolov8n"], records["yolov8n-ADown-all"]
    assert base["transferred_tensors"] == base["total_tensors"] and base["transferred_params"] == base["params"]
    assert base["fresh_rows"] == [] and adown["fresh_rows"] == [1, 3, 5, 7, 16, 19]
    assert adown["transferred_tensors"] < adown["total_tensors"]
    assert base["pretrained"]["path"] == str(best.resolve())
    assert f"yolov8n-ADown-all: {adown['transferred_tensors']}/{adown['total_tensors']} tensors" in result.output

    # training started from the checkpoint: after one short epoch the stem is still next to it, far from a fresh one
    from ultralytics import YOLO

    source = YOLO(str(best)).model.state_dict()["model.0.conv.weight"]
    after = YOLO(str(Path(base["run_dir"], "weights", "last.pt"))).model.state_dict()["model.0.conv.weight"]
    fresh = build(baseline(get_base_model("yolov8n")), nc=NC).state_dict()["model.0.conv.weight"]
    assert (after - source).abs().mean() < 0.2 * (fresh - source).abs().mean()


def test_row_map_survives_the_generated_yaml(tmp_path):
    from yoloab.variants import from_yaml, write_yaml

    v = make_variant(get_base_model("yolov8n"), "RevCol", "backbone")
    assert v.row_map[9] == 4 and v.row_map[22] == 17  # SPPF and Detect, at their new indices
    assert from_yaml(write_yaml(v, tmp_path)).row_map == v.row_map
