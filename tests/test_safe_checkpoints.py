"""A checkpoint never runs code when loaded: `--pretrained`, the trainer's own loads, the resume state.

Each malicious file here names `os.system` with a command that would create a marker file in the test's folder; the
marker must never appear. Real checkpoints must still load: yoloab catalog modules and a plugin's module here;
Ultralytics' own training output in tests/test_train_smoke.py and tests/test_transfer.py, whose runs train, validate
and seed through the same safe loaders.
"""

from __future__ import annotations

import os
import pickle
import random
import shlex
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.models import get_base_model
from yoloab.registry import MODULES
from yoloab.variants import baseline, build, make_variant

runner = CliRunner()
NC = 3


class _Payload:
    """Pickles as a call of `os.system` that creates `marker`: what a malicious checkpoint does on unpickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _evil(path: Path, marker: Path, fmt: str = "zip") -> Path:
    payload = {"model": _Payload(marker), "train_args": {}}
    if fmt == "plain-pickle":  # not torch's format at all: a pickle renamed .pt
        path.write_bytes(pickle.dumps(payload))
    else:  # torch's zip format, or its legacy one (which torch cannot scan for globals before loading)
        torch.save(payload, path, _use_new_zipfile_serialization=fmt == "zip")
    return path


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------------------
# --pretrained: refused before anything of it is unpickled


SWEEP = ["sweep", "--dataset", "builtin", "--builtin-images", "8", "--imgsz", "64", "--batch", "8", "--workers", "0"]
REFUSED = "holds objects that are not allowed in a checkpoint (posix.system)"


@pytest.mark.parametrize(
    ("verb", "fmt", "expect"),
    [
        (["profile", "--no-latency"], "zip", REFUSED),
        ([*SWEEP, "--epochs", "1", "--quiet"], "zip", REFUSED),
        (["profile", "--no-latency"], "legacy", REFUSED),
        (["profile", "--no-latency"], "plain-pickle", "not an Ultralytics checkpoint"),
    ],
    ids=["profile", "sweep", "profile-legacy-torch-format", "profile-plain-pickle"],
)
def test_malicious_pretrained_runs_nothing_and_is_one_line_exit_2(tmp_path, monkeypatch, verb, fmt, expect):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    _evil(tmp_path / "evil.pt", marker, fmt)
    results = tmp_path / "results"
    result = runner.invoke(app, [*verb, "--pretrained", "evil.pt", "--results", str(results)])
    assert not marker.exists(), "unpickling the checkpoint ran its command"
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.stderr)
    assert f"--pretrained {tmp_path / 'evil.pt'}: {expect}" in line
    assert "Traceback" not in result.output and not results.exists()


# --------------------------------------------------------------------------------------------------------------------
# the loads Ultralytics' trainer makes itself (resume, pretrained=init.pt, final strip and validation)


def test_ultralytics_loaders_are_safe_while_a_run_trains_and_restored_after(tmp_path):
    from ultralytics import YOLO
    from ultralytics.nn import tasks
    from ultralytics.utils import torch_utils

    from yoloab._ultralytics import safe_loading
    from yoloab.errors import UnsafeCheckpointError

    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "last.pt", marker)
    before = (tasks.torch_safe_load, torch_utils.torch_load)
    with safe_loading():
        with safe_loading():
            pass  # re-entrant: an inner block's exit leaves the outer one's loaders guarded
        with pytest.raises(UnsafeCheckpointError, match="posix.system"):
            tasks.load_checkpoint(evil)  # the trainer's pretrained=, resume= and final validation
        with pytest.raises(UnsafeCheckpointError):
            YOLO(str(evil))  # yoloab's own look at last.pt / best.pt
        assert torch_utils.strip_optimizer(evil) == {}  # the trainer's final step: skipped, with a warning
    assert not marker.exists(), "a trainer load ran the checkpoint's command"
    assert (tasks.torch_safe_load, torch_utils.torch_load) == before


def test_finished_run_with_a_malicious_best_pt_fails_without_running_it(tmp_path, tiny_data, checkpoint, monkeypatch):
    from yoloab import training
    from yoloab.datasets import load_dataset
    from yoloab.training import TrainSettings, plan_runs, train_run

    monkeypatch.setattr(training, "costs", lambda variant, nc: {})  # params and FLOPs: slow, and not under test

    v = baseline(get_base_model("yolov8n"))
    spec = plan_runs([v], load_dataset(tiny_data), TrainSettings(epochs=1, imgsz=64, batch=4), [0], tmp_path / "r")[0]
    weights = spec.run_dir / "weights"
    weights.mkdir(parents=True)
    # a stripped last.pt (epoch -1): the run finished, so its best.pt is validated, not trained again
    last = torch.load(checkpoint[0], weights_only=False)  # the suite's own yolov8n checkpoint (conftest)
    torch.save({**last, "epoch": -1}, weights / "last.pt")
    marker = tmp_path / "pwned"
    _evil(weights / "best.pt", marker)
    record = train_run(spec)
    assert not marker.exists(), "re-validating best.pt ran the checkpoint's command"
    assert record["status"] == "failed" and "best.pt" in record["error"]
    assert "UnsafeCheckpointError: best.pt holds objects that are not allowed" in record["error"]


# --------------------------------------------------------------------------------------------------------------------
# real checkpoints still load: catalog modules, a plugin's module; an unregistered class does not


def _checkpoint_of(model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    torch.save({"model": model, "train_args": {}}, path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _carries_every_tensor(source: nn.Module, target: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """The loaded model has the saved tensors, and they go into the variant's model name for name (strictly)."""
    loaded = source.state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    target.load_state_dict(loaded, strict=True)


@pytest.mark.parametrize(
    ("module", "placement"),
    [
        pytest.param("ADown", "all", id="ADown"),
        pytest.param("DynamicConv", "all", id="DynamicConv-timm-CondConv2d"),
        pytest.param("EMA", "all", id="EMA"),
        # 32M parameters: its build takes longer than the rest of this file
        pytest.param("RevCol", "backbone", id="RevCol-dataclass-config", marks=pytest.mark.slow),
    ],
)
def test_catalog_module_checkpoint_loads_and_transfers(tmp_path, module, placement):
    from yoloab._ultralytics import read_checkpoint

    torch.manual_seed(0)
    model = build(make_variant(get_base_model("yolov8n"), module, placement), nc=NC)
    saved = _checkpoint_of(model, tmp_path / f"{module}.pt")
    source = read_checkpoint(tmp_path / f"{module}.pt")
    assert any(isinstance(m, MODULES.get(module).cls) for m in source.modules())
    _carries_every_tensor(source, model, saved)


PLUGIN = """
from torch import nn
from ultralytics.nn.modules import Conv
from yoloab import Placement, register_module


class Inner(nn.Module):  # not registered: allowed as a class of the plugin's own file
    def __init__(self, c):
        super().__init__()
        self.cv = Conv(c, c, 1, 1)

    def forward(self, x):
        return self.cv(x)


@register_module(role="downsample", channels="conv", paper="mine", article=Placement("backbone", (8,)))
class SafeDown(nn.Module):
    def __init__(self, c1, c2, k=3, s=2):
        super().__init__()
        self.cv1 = Conv(c1, c2, k, s)
        self.inner = Inner(c2)

    def forward(self, x):
        return self.inner(self.cv1(x))
"""


def test_plugin_module_checkpoint_loads_once_registered(tmp_path, clean_registry):
    from yoloab._ultralytics import read_checkpoint
    from yoloab.plugins import load_plugin

    plugin = tmp_path / "safe_plugin.py"
    plugin.write_text(PLUGIN)
    load_plugin(plugin)
    model = build(make_variant(get_base_model("yolov8n"), "SafeDown", "article"), nc=NC)
    saved = _checkpoint_of(model, tmp_path / "plugin.pt")
    source = read_checkpoint(tmp_path / "plugin.pt")
    assert {type(m).__name__ for m in source.modules()} >= {"SafeDown", "Inner"}
    _carries_every_tensor(source, model, saved)


def test_class_that_no_registered_module_comes_from_is_refused(tmp_path, checkpoint, monkeypatch):
    from yoloab._ultralytics import read_checkpoint
    from yoloab.errors import UnsafeCheckpointError

    # an imported module that registered nothing: importing a module does not make its classes loadable
    stray = types.ModuleType("yoloab_test_stray")
    monkeypatch.setitem(sys.modules, stray.__name__, stray)
    Stray = type("Stray", (nn.Identity,), {"__module__": stray.__name__})  # noqa: N806 - a class
    stray.Stray = Stray
    ckpt = torch.load(checkpoint[0], weights_only=False)  # the suite's own yolov8n checkpoint (conftest)
    ckpt["model"].model[0].act = Stray()
    torch.save(ckpt, tmp_path / "stray.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"yoloab_test_stray\.Stray") as err:
        read_checkpoint(tmp_path / "stray.pt")
    assert err.value.names == ["yoloab_test_stray.Stray"]


# --------------------------------------------------------------------------------------------------------------------
# the resume state (weights/rng.pt)


class _Model:
    """What `add_callbacks` needs of a YOLO model: it collects the callbacks."""

    def __init__(self) -> None:
        self.callbacks: dict[str, object] = {}

    def add_callback(self, event: str, fn: object) -> None:
        self.callbacks[event] = fn


def _resume_start(tmp_path: Path) -> tuple[dict, types.SimpleNamespace]:
    """Call the run's `on_train_epoch_start` as the first epoch of a run resumed after epoch 1; returns `restored`."""
    from yoloab.callbacks import add_callbacks
    from yoloab.training import RunHooks

    trainer = types.SimpleNamespace(
        epoch=1,
        start_epoch=1,
        model=nn.Linear(2, 2),
        ema=None,
        train_loader=types.SimpleNamespace(sampler=None, num_workers=0),
    )
    restored: dict = {"from": 1}
    model = _Model()
    add_callbacks(model, types.SimpleNamespace(run_dir=tmp_path, label="run"), RunHooks(), restored)
    model.callbacks["on_train_epoch_start"](trainer)
    return restored, trainer


@pytest.mark.parametrize("case", ["malicious", "real"], ids=["malicious-rng-pt", "real-rng-pt"])
def test_resume_state_file_is_plain_data_only(tmp_path, case):
    from yoloab._ultralytics import rng_state

    (tmp_path / "weights").mkdir()
    path = tmp_path / "weights" / "rng.pt"
    marker = tmp_path / "pwned"
    if case == "malicious":
        torch.save({"epoch": 0, "python": _Payload(marker)}, path)
        try:
            restored, _ = _resume_start(tmp_path)
        finally:  # checked first: a state that ran its command may also crash the restore
            assert not marker.exists(), "loading rng.pt ran its command"
        assert restored["parts"] == []  # nothing put back from a file that is not plain data
        return
    saved_trainer = types.SimpleNamespace(
        epoch=0, model=nn.Linear(2, 2), ema=None, train_loader=types.SimpleNamespace(sampler=None, num_workers=0)
    )
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    state = rng_state(saved_trainer)  # the generators and weights a real run saves (NumPy arrays included)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    torch.save(state, path)
    restored, trainer = _resume_start(tmp_path)
    assert restored["parts"] == ["model", "python", "numpy", "torch"]
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    assert torch.equal(trainer.model.weight, saved_trainer.model.weight)
