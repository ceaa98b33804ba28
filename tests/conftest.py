"""Shared fixtures: an isolated Ultralytics settings folder, a tiny generated dataset, a clean registry."""

from __future__ import annotations

import os
import tempfile

# Ultralytics reads these at import: keep its settings out of the user's home and never reach the network.
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yoloab-ultra-"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
# the built-in dataset is generated once per test session, outside the user's cache
os.environ.setdefault("YOLOAB_CACHE_DIR", tempfile.mkdtemp(prefix="yoloab-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

import yoloab  # noqa: E402
from yoloab.datasets import make_shapes_dataset  # noqa: E402
from yoloab.registry import MODULES  # noqa: E402

torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """A handful of generated 64 px images with boxes, as an Ultralytics data yaml."""
    return str(make_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_train=8, n_val=4, imgsz=64, seed=0))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A yolov8n checkpoint (nc=3) whose every tensor differs from a fresh build, and its state_dict."""
    from yoloab.models import get_base_model
    from yoloab.variants import baseline, build

    torch.manual_seed(123)
    model = build(baseline(get_base_model("yolov8n")), nc=3)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) + 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "yolov8n-trained.pt"
    torch.save({"model": model, "train_args": {}}, path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def clean_registry():
    """Forget modules a test registers (plugins), so tests do not leak names into each other."""
    before = set(MODULES.names())
    yield MODULES
    for name in set(MODULES.names()) - before:
        MODULES.remove(name)


__all__ = ["yoloab"]
