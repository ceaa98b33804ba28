"""Content hashes: of files (checkpoints, exports, dataset images, read in 1 MiB blocks) and of model definitions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .variants import Variant


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_hash(variant: Variant) -> str:
    """SHA-256 of a variant's model definition: its rows and scales, without comments or the yoloab header."""
    d = {k: v for k, v in variant.config.items() if k not in ("yoloab", "yaml_file", "nc", "scale")}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()
