"""yoloab sweep: training through Ultralytics, skipping, resuming after SIGKILL and Ctrl-C, isolation, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.datasets import builtin_dataset, load_dataset
from yoloab.errors import DatasetError, SweepInputError, YoloabWarning
from yoloab.models import get_base_model
from yoloab.results import RUN_KEYS, load_runs, load_val_stats, read_epochs, runs_frame, store_run
from yoloab.significance import delta_intervals, resampled_map
from yoloab.sweep import RunLock, run_sweep
from yoloab.training import TrainSettings, model_hash, parse_train_args, plan_runs, run_key
from yoloab.variants import baseline, from_yaml, make_variant

runner = CliRunner()
TINY = ["--builtin-images", "16", "--imgsz", "64", "--batch", "8", "--workers", "0", "--quiet"]


def _sweep(*args: str):
    return runner.invoke(app, ["sweep", "--dataset", "builtin", *TINY, *args])


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


# --------------------------------------------------------------------------------------------------------------------
# the acceptance path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The issue's acceptance sweep (at a smaller dataset), run once for the tests that read it."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    result = runner.invoke(
        app,
        ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--module", "ADown", "--placement", "all"]
        + ["--epochs", "1", "--results", str(results), *TINY],
    )
    return results, result


def test_sweep_stores_one_ok_record_per_variant(two_runs):
    results, result = two_runs
    assert result.exit_code == 0, result.output
    records = _records(results)
    assert sorted(r["variant"] for r in records) == ["yolov8n", "yolov8n-ADown-all"]
    for r in records:
        assert r["status"] == "ok" and r["error"] is None
        assert set(r) == set(RUN_KEYS)
        for key in ("map50", "map50_95", "precision", "recall"):
            assert 0.0 <= r[key] <= 1.0
        assert r["epochs_done"] == 1 and r["best_epoch"] == 1 and r["nc"] == 3
        assert r["dataset"] == "builtin" and r["dataset_id"].startswith("builtin-shapes-v1-16x4-")
        assert Path(r["run_dir"], "weights", "best.pt").is_file()


def test_recorded_metrics_are_ultralytics_final_validation(two_runs):
    # independent check: validate the stored best.pt with Ultralytics ourselves and compare
    from ultralytics import YOLO

    results, _ = two_runs
    r = next(r for r in _records(results) if r["variant"] == "yolov8n-ADown-all")
    data = load_dataset("builtin", 16)
    metrics = YOLO(str(Path(r["run_dir"], "weights", "best.pt"))).val(
        data=str(data.yaml), imgsz=64, batch=8, workers=0, plots=False, verbose=False, project=str(results / "v")
    )
    assert r["map50_95"] == pytest.approx(metrics.results_dict["metrics/mAP50-95(B)"], abs=1e-6)
    assert r["map50"] == pytest.approx(metrics.results_dict["metrics/mAP50(B)"], abs=1e-6)


def _label_classes(label_file: Path) -> list[int]:
    return sorted(int(line.split()[0]) for line in label_file.read_text().splitlines() if line.strip())


def test_per_image_validation_statistics_are_stored_with_each_run(two_runs):
    import hashlib

    from ultralytics.utils.metrics import ap_per_class

    results, _ = two_runs
    root = load_dataset("builtin", 16).yaml.parent
    for r in _records(results):
        stats = load_val_stats(results, r["key"])
        assert stats is not None and (results / "runs" / f"{r['key']}.npz").is_file()
        # independent of the validator: the images and label files of the validation split
        images = [Path(p) for p in stats.images]
        assert sorted(p.name for p in images) == sorted(p.name for p in (root / "images" / "val").glob("*.png"))
        for i, image in enumerate(images):
            assert sorted(stats.target_cls[stats.target_image == i].astype(int)) == _label_classes(
                root / "labels" / "val" / f"{image.stem}.txt"
            )
            assert stats.image_sha256[i] == hashlib.sha256(image.read_bytes()).hexdigest()
        assert not stats.in_train.any()  # the built-in splits are separate draws
        assert stats.tp.shape == (len(stats.conf), 10) and len(stats.pred_image) == len(stats.conf)
        ap = ap_per_class(stats.tp, stats.conf, stats.pred_cls, stats.target_cls)[5]
        assert (ap[:, 0].mean(), ap.mean()) == (r["map50"], r["map50_95"]) == (stats.map50, stats.map50_95)
    # the sweep says the validation set is too small for tight intervals, and the intervals are there
    assert "only 4 validation images (fewer than 100)" in " ".join(two_runs[1].output.split())
    (iv,) = delta_intervals(_records(results), results, n_resamples=50)
    assert (iv.variant, iv.baseline, iv.method, iv.seeds) == ("yolov8n-ADown-all", "yolov8n", "bootstrap", [0])
    assert iv.columns["map50_95_delta_ci_low"] <= iv.intervals["map50_95"].delta <= iv.columns["map50_95_delta_ci_high"]


def test_recorded_costs_match_the_variant_at_the_dataset_nc(two_runs):
    # ADown all on yolov8n: 2,741,200 params at nc=80, 2,595,433 at nc=3; all 145,767 of the difference are in the
    # class branch. Per level (inputs ch = 64, 128, 256) it is Conv(ch, c3, 3), Conv(c3, c3, 3), Conv2d(c3, nc, 1),
    # with c3 = max(ch[0], min(nc, 100)) and ch[0] = make_divisible(min(256, 1024) * 0.25, 8) = 64 (the P3 width),
    # so c3 = 80 at nc=80 and 64 at nc=3: the last conv's (c3 + 1) * nc is not all that changes, since the middle
    # convs shrink too. Compare with Ultralytics' own build at nc=3 instead.
    from ultralytics.nn.tasks import DetectionModel

    results, _ = two_runs
    r = next(r for r in _records(results) if r["variant"] == "yolov8n-ADown-all")
    expected = sum(p.numel() for p in DetectionModel(r["yaml"], nc=3, verbose=False).parameters())
    assert r["params"] == expected
    assert r["flops_imgsz"] == 640 and r["gflops"] > 0 and r["gflops_aten"] > 0
    fused = DetectionModel(r["yaml"], nc=3, verbose=False).fuse(verbose=False)
    assert r["params_fused"] == sum(p.numel() for p in fused.parameters())  # the deployed model, counted too
    assert r["gmacs_fused"] == r["gflops_aten_fused"] / 2 and r["fuse_note"] is None  # one head: nothing dropped


def test_rerun_trains_nothing_and_says_so(two_runs):
    results, _ = two_runs
    before = {p: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    result = runner.invoke(
        app,
        ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--module", "ADown", "--placement", "all"]
        + ["--epochs", "1", "--results", str(results), *TINY],
    )
    assert result.exit_code == 0, result.output
    assert "Nothing to train: all 2 runs already have records" in result.output
    assert {p: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")} == before


def test_records_read_with_pandas(two_runs):
    frame = runs_frame(two_runs[0])
    assert len(frame) == 2 and list(frame.columns) == list(RUN_KEYS)
    assert set(frame["status"]) == {"ok"}


# --------------------------------------------------------------------------------------------------------------------
# keys


@pytest.fixture(scope="module")
def data():
    return builtin_dataset(16, 4)


def test_run_key_depends_on_what_decides_the_result(data, tmp_path):
    base = get_base_model("yolov8n")
    h = model_hash(baseline(base))
    s = TrainSettings(epochs=1, imgsz=64)
    key = run_key(h, data, s, 0)
    assert run_key(h, data, s, 1) != key
    assert run_key(h, data, TrainSettings(epochs=2, imgsz=64), 0) != key
    assert run_key(h, data, TrainSettings(epochs=1, imgsz=64, train_args={"lr0": 0.02}), 0) != key
    assert run_key(model_hash(make_variant(base, "ADown", "all")), data, s, 0) != key
    assert run_key(h, builtin_dataset(17, 4), s, 0) != key
    # where and how visibly it trains does not change what it learns
    assert run_key(h, data, TrainSettings(epochs=1, imgsz=64, device="cpu", workers=0, verbose=True), 0) == key
    assert run_key(h, data, TrainSettings(epochs=1, imgsz=64, train_args={"plots": True}), 0) == key


def test_model_hash_ignores_comments_and_header(tmp_path):
    from yoloab.variants import to_yaml

    v = make_variant(get_base_model("yolov8n"), "ADown", "all")
    text = to_yaml(v)
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text("# my own comment\n" + text.replace("yoloab 0.", "yoloab 9."))
    assert model_hash(from_yaml(tmp_path / "a.yaml")) == model_hash(from_yaml(tmp_path / "b.yaml")) == model_hash(v)


def test_plan_is_seed_major_and_deduplicated(data, tmp_path):
    base = get_base_model("yolov8n")
    variants = [baseline(base), make_variant(base, "ADown", "all"), baseline(base)]
    specs = plan_runs(variants, data, TrainSettings(epochs=1), [0, 1], tmp_path)
    assert [(s.variant.name, s.seed) for s in specs] == [
        ("yolov8n", 0),
        ("yolov8n-ADown-all", 0),
        ("yolov8n", 1),
        ("yolov8n-ADown-all", 1),
    ]


# --------------------------------------------------------------------------------------------------------------------
# the driver, with a stand-in executor (no training): skipping, failed retries, locks held by another process


class _Events:
    def __init__(self):
        self.log = []

    def __getattr__(self, name):
        return lambda *a: self.log.append((name, a[0].variant.name if a and hasattr(a[0], "variant") else None))


class _FakeExecutor:
    def __init__(self, status="ok"):
        self.trained, self.status = [], status

    def run(self, specs, events, stop):
        for spec in specs:
            self.trained.append(spec.key)
            yield spec, {"key": spec.key, "variant": spec.variant.name, "status": self.status, "seed": spec.seed}


def _specs(data, results):
    base = get_base_model("yolov8n")
    return plan_runs([baseline(base), make_variant(base, "ADown", "all")], data, TrainSettings(epochs=1), [0], results)


def test_driver_skips_ok_and_retries_failed(data, tmp_path):
    specs = _specs(data, tmp_path)
    store_run({"key": specs[0].key, "status": "ok", "variant": "yolov8n"}, tmp_path)
    store_run({"key": specs[1].key, "status": "failed", "variant": "yolov8n-ADown-all"}, tmp_path)
    (specs[1].run_dir / "weights").mkdir(parents=True)  # what the failed attempt left behind
    ex = _FakeExecutor()
    outcome = run_sweep(specs, _Events(), ex)
    assert ex.trained == [specs[1].key]
    assert not specs[1].run_dir.exists()  # retried from scratch, not resumed from the state that failed
    assert [r["key"] for r in outcome.skipped] == [specs[0].key]
    assert {r["key"]: r["status"] for r in load_runs(tmp_path)} == {specs[0].key: "ok", specs[1].key: "ok"}


def test_a_run_locked_by_another_sweep_is_waited_for_not_trained_twice(data, tmp_path):
    specs = _specs(data, tmp_path)
    # another process holds the first run's lock for a moment, writes its record, then lets go
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from yoloab.results import store_run
                from yoloab.sweep import RunLock
                lock = RunLock(Path({str(tmp_path)!r}), {specs[0].key!r})
                assert lock.acquire()
                print("locked", flush=True)
                time.sleep(2)
                store_run({{"key": {specs[0].key!r}, "status": "ok", "variant": "yolov8n"}}, {str(tmp_path)!r})
                lock.release()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    ex, events = _FakeExecutor(), _Events()
    outcome = run_sweep(specs, events, ex)
    holder.wait(timeout=30)
    assert ex.trained == [specs[1].key]
    assert ("waiting", "yolov8n") in events.log
    assert sorted(r["key"] for r in outcome.skipped) == [specs[0].key]
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2


def test_lock_is_exclusive_and_released(tmp_path):
    a, b = RunLock(tmp_path, "k"), RunLock(tmp_path, "k")
    assert a.acquire()
    # flock locks belong to open file descriptions: a second open in the same process conflicts as another would
    assert not b.acquire()
    a.release()
    assert b.acquire()
    b.release()


# --------------------------------------------------------------------------------------------------------------------
# failures are isolated

FAILING = '''
import torch
from torch import nn
from ultralytics.nn.modules import Conv
from yoloab import Placement, register_module


@register_module(role="downsample", channels="conv", paper="test", article=Placement("backbone", (8,)))
class BadDown(nn.Module):
    """Builds and runs in eval mode, then fails in training: {how}."""

    def __init__(self, c1, c2, k=3, s=2):
        super().__init__()
        self.cv1 = Conv(c1, c2, k, s)

    def forward(self, x):
        y = self.cv1(x)
        if self.training and x.requires_grad:
            {body}
        return y
'''


@pytest.mark.parametrize(
    "how, body, needle",
    [
        ("raises", 'raise RuntimeError("BadDown exploded")', "RuntimeError: BadDown exploded"),
        ("nan", "y = y * float('nan')", "NaN/Inf"),
    ],
    ids=["raises-in-forward", "nan-loss"],
)
def test_failing_variant_is_recorded_and_the_sweep_goes_on(tmp_path, clean_registry, how, body, needle):
    plugin = tmp_path / "bad.py"
    plugin.write_text(FAILING.format(how=how, body=body))
    results = tmp_path / "results"
    result = _sweep(
        "--model", "yolov8n", "--module", "BadDown", "--epochs", "1", "--results", str(results), "--plugin", str(plugin)
    )
    assert result.exit_code == 1, result.output
    records = {r["variant"]: r for r in _records(results)}
    assert records["yolov8n"]["status"] == "ok", records["yolov8n"]["error"]
    bad = records["yolov8n-BadDown-article"]
    assert bad["status"] == "failed" and needle in bad["error"] and bad["map50"] is None
    assert "1 of 2 runs failed" in result.output


# --------------------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing stored


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "does/not/exist.yaml"], "dataset 'does/not/exist.yaml' not found"),
        (["--dataset", "NAMELESS"], "has no 'names'"),
        (["--dataset", "builtin", "--train", "lr=0.1"], "not an Ultralytics trainer argument (nearest: lrf, lr0"),
        (["--dataset", "builtin", "--train", "epochs=3"], "use --epochs instead"),
        (["--dataset", "builtin", "--train", "nonsense"], "is not KEY=VALUE"),
        (["--dataset", "builtin", "--imgsz", "100"], "imgsz 100 is not a multiple"),
        (["--dataset", "builtin", "--module", "ADwn"], "nearest: ADown"),
        (["--dataset", "builtin", "--device", "cuda:7"], "not available"),
        (["--dataset", "builtin", "--epochs", "0"], "--epochs 0 must be at least 1"),
    ],
    ids=["missing-dataset", "no-names", "unknown-train-key", "reserved-train-key", "malformed-train", "imgsz", "module",
         "device", "epochs"],
)  # fmt: skip
def test_bad_input_is_one_line_and_stores_nothing(tmp_path, args, needle):
    nameless = tmp_path / "nameless.yaml"
    (tmp_path / "images").mkdir()
    nameless.write_text(f"path: {tmp_path}\ntrain: images\nval: images\n")
    args = [str(nameless) if a == "NAMELESS" else a for a in args]
    results = tmp_path / "results"
    result = runner.invoke(app, ["sweep", *args, "--builtin-images", "16", "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not results.exists()


def test_dataset_checks_sources(tmp_path):
    (tmp_path / "d.yaml").write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DatasetError, match="train source .* does not exist"):
        load_dataset(str(tmp_path / "d.yaml"))


def test_train_args_are_read_as_yaml_scalars():
    assert parse_train_args(["optimizer=SGD", "lr0=0.02", "mosaic=0", "cos_lr=true", "close_mosaic=0"]) == {
        "optimizer": "SGD",
        "lr0": 0.02,
        "mosaic": 0,
        "cos_lr": True,
        "close_mosaic": 0,
    }
    with pytest.raises(SweepInputError):
        parse_train_args(["=1"])


# --------------------------------------------------------------------------------------------------------------------
# crashes: SIGKILL and Ctrl-C in a real process


def _spawn(results: Path, epochs: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "yoloab", "sweep", "--dataset", "builtin", "--model", "yolov8n", "--module", "ADown"]
    cmd += ["--placement", "all", "--epochs", str(epochs), "--results", str(results), *TINY]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended early:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def _second_run_saved_an_epoch(results: Path) -> bool:
    return len(_records(results)) == 1 and any(
        p.is_file() for p in (results / "train").glob("yolov8n-ADown-all-*/weights/last.safe.pt")
    )


@pytest.mark.slow
def test_sigkill_during_second_run_then_rerun_gives_one_record_per_run(tmp_path):
    results = tmp_path / "results"
    env = dict(os.environ)
    proc = _spawn(results, 2, env)
    _wait_for(lambda: _second_run_saved_an_epoch(results), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = _records(results)
    assert len(first) == 1 and first[0]["variant"] == "yolov8n"
    assert not list((results / "runs").glob(".*"))  # no temporary half-written record left behind

    again = _spawn(results, 2, env)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    records = {r["variant"]: r for r in _records(results)}
    assert sorted(records) == ["yolov8n", "yolov8n-ADown-all"]
    assert records["yolov8n"] == first[0]  # the finished run was not trained again
    resumed = records["yolov8n-ADown-all"]
    assert resumed["status"] == "ok" and resumed["resumed"] == 1 and resumed["epochs_done"] == 2
    assert [int(r["epoch"]) for r in read_epochs(Path(resumed["run_dir"], "results.csv"))] == [1, 2]


@pytest.mark.slow
def test_ctrl_c_stops_after_saving_and_the_run_resumes(tmp_path):
    results = tmp_path / "results"
    env = dict(os.environ)
    proc = _spawn(results, 3, env)
    _wait_for(lambda: any((results / "train").glob("yolov8n-builtin-*/weights/last.safe.pt")), proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Re-run the same command to resume" in out
    assert _records(results) == []  # the stopped run has no record; its checkpoint stays
    assert any((results / "train").glob("yolov8n-builtin-*/weights/last.pt"))


@pytest.mark.slow
def test_builtin_dataset_is_learnable_in_five_cpu_epochs(tmp_path):
    from ultralytics.utils.metrics import ap_per_class

    # the bar: mAP50 clearly above chance (a detector guessing boxes scores ~0) after 5 epochs at imgsz 128
    results = tmp_path / "results"
    result = runner.invoke(
        app,
        ["sweep", "--dataset", "builtin", "--model", "yolov8n", "--epochs", "5", "--imgsz", "128", "--batch", "8"]
        + ["--workers", "0", "--quiet", "--results", str(results)],
    )
    assert result.exit_code == 0, result.output
    (record,) = _records(results)
    curve = [r["metrics/mAP50(B)"] for r in read_epochs(Path(record["run_dir"], "results.csv"))]
    print(f"\nbuilt-in dataset, yolov8n, 5 epochs at 128: mAP50 per epoch {[round(m, 3) for m in curve]}")
    assert record["map50"] > 0.1
    assert curve[-1] > curve[0]
    # the per-image statistics stored beside the record give back its (non-trivial) mAP
    stats = load_val_stats(results, record["key"])
    ap = ap_per_class(stats.tp, stats.conf, stats.pred_cls, stats.target_cls)[5]
    assert (ap[:, 0].mean(), ap.mean()) == (record["map50"], record["map50_95"])
    full = resampled_map(stats, np.ones((1, stats.n_images), dtype=int))
    assert (full[0][0], full[1][0]) == pytest.approx((record["map50"], record["map50_95"]), abs=1e-12)


def test_builtin_dataset_is_deterministic(tmp_path):
    from yoloab.datasets import make_shapes_dataset

    a = make_shapes_dataset(tmp_path / "a", n_train=6, n_val=2, imgsz=96, seed=3).parent
    b = make_shapes_dataset(tmp_path / "b", n_train=6, n_val=2, imgsz=96, seed=3).parent
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "data.yaml")
    assert len(files) == 16
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    labels = [line.split() for f in files if f.suffix == ".txt" for line in (a / f).read_text().splitlines()]
    sides = [float(w) * 96 for _, _, _, w, _ in labels]
    assert min(sides) < 12 and max(sides) > 20  # small objects and large ones


def test_checkpoint_state_on_disk(two_runs, tmp_path):
    import shutil
    from types import SimpleNamespace

    import torch

    from yoloab.training import _checkpoint

    results, _ = two_runs
    src = Path(next(r for r in _records(results) if r["variant"] == "yolov8n")["run_dir"])
    assert not (src / "weights" / "last.safe.pt").exists()  # removed once the run was recorded
    run = SimpleNamespace(run_dir=tmp_path / "run", settings=SimpleNamespace(epochs=1))
    shutil.copytree(src, run.run_dir)
    state, model = _checkpoint(run)
    assert state == "finished" and model.ckpt_path.endswith("best.pt")  # Ultralytics stripped it: validate only
    # a checkpoint saved after epoch 1, before Ultralytics' final strip (as last.safe.pt is): epoch 0, not -1
    last, safe = run.run_dir / "weights" / "last.pt", run.run_dir / "weights" / "last.safe.pt"
    ckpt = torch.load(last, weights_only=False)
    ckpt["epoch"] = 0
    torch.save(ckpt, safe)
    last.write_bytes(last.read_bytes()[:1000])  # last.pt cut short by a kill: the atomic safe copy takes over
    run.settings.epochs = 2
    with pytest.warns(YoloabWarning, match=r"last\.pt was cut short .* moved to .*damaged"):
        state, model = _checkpoint(run)
    assert state == "resume" and model.ckpt["epoch"] == 0
    assert last.read_bytes() == safe.read_bytes()
    # the same checkpoint when epoch 1 was the last one: training ended, only the final validation is left
    run.settings.epochs = 1
    state, model = _checkpoint(run)
    assert state == "finished" and model.ckpt_path.endswith("best.pt")
    # nothing usable at all: start clean
    for name in ("last.pt", "last.safe.pt"):
        (run.run_dir / "weights" / name).write_bytes(b"")
    with pytest.warns(YoloabWarning, match="cut short") as caught:
        assert _checkpoint(run) == ("new", None) and not run.run_dir.exists()
    assert sorted(str(w.message).split(" was cut short")[0].rsplit("/", 1)[1] for w in caught) == [
        "last.pt",
        "last.safe.pt",
    ]
