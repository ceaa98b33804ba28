"""`yoloab report --require-seeds N`: exit 1, every missing run named with the command that trains exactly it, and
nothing written. The store is built from real run records (the sweep's own record fields, real keys), not trained."""

from __future__ import annotations

import copy
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import yoloab.sweep
from yoloab.cli.app import app
from yoloab.datasets import load_dataset
from yoloab.errors import MissingSeedsError
from yoloab.models import get_base_model
from yoloab.report import load_report
from yoloab.results import store_run
from yoloab.seeds import missing_runs, require_seeds
from yoloab.training import TrainSettings, base_record, plan_runs
from yoloab.variants import baseline, make_variant, to_yaml

runner = CliRunner()
IMAGES = 8  # --builtin-images of the store's sweep
SETTINGS = TrainSettings(epochs=3, imgsz=64, batch=4, workers=0, device="cpu", train_args={"lr0": 0.02})
# the sweep that made the store: yoloab sweep --dataset builtin --builtin-images 8 --module ADown --epochs 3
#   --imgsz 64 --batch 4 --workers 0 --device cpu --train lr0=0.02 --seed ... --results <store>


def _variants(custom: bool = False):
    base = get_base_model("yolov8n")
    adown = make_variant(base, "ADown", "article")
    if custom:  # a definition the catalog no longer builds under its name (the catalog changed): only its yaml remains
        config = copy.deepcopy(adown.config)
        config["backbone"][0][-1] = [48, 3, 2]  # the stem conv narrower: another model, another hash
        adown = replace(adown, config=config, command="")
    return [baseline(base), adown]


def _record(spec, status: str = "ok", error: str | None = None) -> dict:
    record = base_record(spec)
    ok = status == "ok"
    record.update(status=status, error=error, started="2026-01-01T10:00:00+00:00", finished="2026-01-01T11:00:00+00:00")
    record.update(map50=0.5 if ok else None, map50_95=0.3 if ok else None, precision=0.5, recall=0.4)
    record.update(best_epoch=3, epochs_done=3, train_time_s=10.0, images_per_s=2.0, params=1, gflops=1.0)
    return record


def _store(results: Path, have: dict[str, dict[int, str]], custom: bool = False) -> dict[tuple[str, int], str]:
    """Store records for the (variant, seed) pairs of `have` (status per seed); returns every planned run's key."""
    data = load_dataset("builtin", IMAGES)
    specs = plan_runs(_variants(custom), data, SETTINGS, [0, 1, 2], results.resolve())
    for spec in specs:
        status = have.get(spec.variant.name, {}).get(spec.seed)
        if status is not None:
            if not spec.yaml_path.is_file():
                spec.yaml_path.parent.mkdir(parents=True, exist_ok=True)
                spec.yaml_path.write_text(to_yaml(spec.variant))
            store_run(_record(spec, status, "ValueError: loss is NaN" if status == "failed" else None), results)
    return {(s.variant.name, s.seed): s.key for s in specs}


def _planned_keys(command: str, monkeypatch) -> list[str]:
    """The run keys the printed `yoloab sweep` command would train (the sweep itself stubbed out)."""
    seen: list[str] = []

    def fake_run_sweep(specs, events, executor=None):
        seen.extend(s.key for s in specs)
        return yoloab.sweep.SweepOutcome()

    monkeypatch.setattr(yoloab.sweep, "run_sweep", fake_run_sweep)
    args = shlex.split(command)
    assert args[:2] == ["yoloab", "sweep"]
    result = runner.invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    return seen


def test_one_missing_and_one_failed_seed_exit_1_naming_both_and_nothing_written(tmp_path, monkeypatch):
    results = tmp_path / "results"
    # ADown lacks seed 1; the baseline's seed 2 failed
    keys = _store(results, {"yolov8n": {0: "ok", 1: "ok", 2: "failed"}, "yolov8n-ADown-article": {0: "ok", 2: "ok"}})
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--results", str(results), "--require-seeds", "3", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert not out.exists() and sorted(p.name for p in results.iterdir()) == ["runs", "variants"]  # nothing written
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: --require-seeds 3: 2 run(s) missing on dataset builtin")
    named = {line.split(":")[0].strip(): line for line in lines[1:]}
    assert set(named) == {"yolov8n-ADown-article seed 1", "yolov8n seed 2 (failed"}, lines
    assert "(failed: ValueError: loss is NaN)" in named["yolov8n seed 2 (failed"]
    # each command trains exactly the missing run: the key a sweep of the store's settings gives that seed
    for (variant, seed), line in (
        (("yolov8n-ADown-article", 1), named["yolov8n-ADown-article seed 1"]),
        (("yolov8n", 2), named["yolov8n seed 2 (failed"]),
    ):
        command = line[line.index("yoloab sweep") :]
        assert "--module ADown" in command if "ADown" in variant else "--module" not in command
        assert keys[(variant, seed)] in _planned_keys(command, monkeypatch)


def test_enough_seeds_reports_as_usual(tmp_path):
    results = tmp_path / "results"
    _store(results, {"yolov8n": {0: "ok", 1: "ok", 2: "failed"}, "yolov8n-ADown-article": {0: "ok", 2: "ok"}})
    result = runner.invoke(app, ["report", "--results", str(results), "--require-seeds", "2", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "yolov8n-ADown-article" in result.output


@pytest.mark.parametrize(
    ("have", "want"),
    [
        # seeds the other rows finished come first, so that rows pair by seed
        ({"yolov8n": {0: "ok", 1: "ok", 2: "ok"}, "yolov8n-ADown-article": {1: "ok"}}, {("ADown", 0), ("ADown", 2)}),
        # a variant whose every run failed still counts (baseline included), its failed seed first
        ({"yolov8n": {2: "failed"}, "yolov8n-ADown-article": {0: "ok", 1: "ok", 2: "ok"}}, {("yolov8n", 2)}),
    ],
    ids=["paired-seeds-first", "all-failed-row"],
)
def test_which_seeds_are_named(tmp_path, have, want):
    results = tmp_path / "results"
    _store(results, have)
    missing = missing_runs(load_report(results), 3 if len(want) == 2 else 1, results)
    assert {("ADown" if "ADown" in m.variant else m.variant, m.seed) for m in missing} == want


def test_a_definition_the_catalog_no_longer_builds_is_named_by_its_stored_yaml(tmp_path, monkeypatch):
    results = tmp_path / "results"
    keys = _store(results, {"yolov8n": {0: "ok", 1: "ok"}, "yolov8n-ADown-article": {0: "ok"}}, custom=True)
    with pytest.raises(MissingSeedsError) as err:
        require_seeds(load_report(results), 2, results)
    (missing,) = err.value.missing
    assert (missing.variant, missing.seed) == ("yolov8n-ADown-article", 1)
    assert "--module" not in missing.command and "/variants/yolov8n-ADown-article-" in missing.command
    assert keys[("yolov8n-ADown-article", 1)] in _planned_keys(missing.command, monkeypatch)
