"""The meta device for shape-only builds, entered only once Ultralytics' model modules are imported.

Ultralytics' `Detect` and `RTDETRDecoder` hold class-level tensors (`anchors`, `strides`, `valid_mask`) made when
`ultralytics.nn.modules.head` is imported. Imported for the first time under `torch.device("meta")` (yoloab imports
Ultralytics lazily, so the first build may be a meta one), they stay meta for the rest of the process, and the next
real model cannot be moved to a device ("Cannot copy out of meta tensor"). timm and yoloab's own modules hold no such
tensors (checked by importing them all under the meta device).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_PRELOAD = ("ultralytics.nn.tasks",)  # imports ultralytics.nn.modules.head


@contextmanager
def meta_device() -> Iterator[None]:
    """`torch.device("meta")`, after importing the Ultralytics modules whose import makes tensors."""
    for name in _PRELOAD:
        importlib.import_module(name)
    with torch.device("meta"):
        yield
