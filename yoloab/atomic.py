"""Atomic file writes: readers never see a partial file, and a failed write leaves the target as it was.

Kept apart from `yoloab.variants` so that the results store and the report, which write files but build no model,
do not import torch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "copy_atomic", "write_atomic"]


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import, before any thread starts
    os.umask(mask)
    return mask


_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file; mkstemp/mkdtemp make private 0600/0700 ones
DIR_MODE = 0o777 & ~_UMASK


def write_atomic(path: Path, text: str) -> None:
    """Write a text file so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; a results file should be as readable as any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy a file so that readers of `dst` never see a partial copy (temporary file in `dst`'s folder, renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
