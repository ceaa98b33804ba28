"""Ultralytics' exporter and AutoBackend, kept from installing anything (part of `yoloab._ultralytics`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import quiet_logs


@contextmanager
def _no_auto_install() -> Iterator[None]:
    """Keep Ultralytics from pip-installing anything while active.

    Its exporter calls `check_requirements`, which installs what is missing; that function returns at once when
    `ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS` is set (read at call time). yoloab checks the packages itself first
    (`yoloab.deploy.check_runtimes`), so a missing one is an error naming the extra, never a download.
    """
    import os

    key = "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def export_model(model: nn.Module, fmt: str, stem: Path, imgsz: int, batch: int, half: bool, device: str) -> Path:
    """Export a built model with Ultralytics' own `Exporter`, as `YOLO(...).export(...)` would, into a folder.

    The model is not changed: the exporter works on its own fused copy. `task` and `pt_path` are set on the model for
    the call (the `YOLO` wrapper sets the first; the second decides where the exporter writes), then removed.

    Args:
        model: an Ultralytics detection model (unfused).
        fmt: Ultralytics' format name (`onnx`, `openvino`, `engine`).
        stem: artifact path without suffix; its folder must exist.
        imgsz: square input size.
        batch: static batch size of the artifact.
        half: fp16 (Ultralytics' `quantize=16`).
        device: Ultralytics' device string (`cpu`, `0`, ...).

    Returns:
        The exported file or folder.

    Raises:
        Exception: whatever the exporter raised.
    """
    import warnings

    from ultralytics.engine.exporter import Exporter
    from ultralytics.utils import LOGGER

    overrides = {
        "format": fmt,
        "imgsz": imgsz,
        "batch": batch,
        "quantize": 16 if half else None,
        "device": device,
        "dynamic": False,
        "simplify": True,
        "nms": False,
        "verbose": False,
        "data": None,
        "mode": "export",
    }
    saved = {k: model.__dict__[k] for k in ("task", "pt_path") if k in model.__dict__}
    model.task, model.pt_path = "detect", str(stem.with_suffix(".pt"))
    level = LOGGER.level
    # the exporter's select_device sets torch's thread count to cpu_count - 1 and leaves it: every later PyTorch
    # timing would run on other threads than the profile records
    threads = torch.get_num_threads()
    try:
        with _no_auto_install(), quiet_logs(True), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            LOGGER.setLevel(logging.CRITICAL)  # the exporter logs its failures; yoloab records them as one line
            return Path(Exporter(overrides=overrides)(model=model))
    finally:
        torch.set_num_threads(threads)
        LOGGER.setLevel(level)
        for k in ("task", "pt_path"):
            model.__dict__.pop(k, None)
        model.__dict__.update(saved)


def tensorrt_runner(path: Path, device: Any, half: bool) -> Any:
    """Load a TensorRT engine written by Ultralytics' exporter (metadata header and all) with its `AutoBackend`.

    Returns:
        A callable taking a torch tensor on `device` and returning the first output.
    """
    from ultralytics.nn.autobackend import AutoBackend

    threads = torch.get_num_threads()
    with _no_auto_install(), quiet_logs(True):
        backend = AutoBackend(str(path), device=device, fp16=half, verbose=False)
    torch.set_num_threads(threads)

    def run(x: Any) -> Any:
        y = backend(x)
        return y[0] if isinstance(y, (list, tuple)) else y

    return run
