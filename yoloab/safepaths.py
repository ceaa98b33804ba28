"""Paths under the results directory that yoloab creates, deletes or writes: never followed through a symlink.

A symlink left under `--results` (a run directory, a run's log, a model yaml, the records folder) would have yoloab
empty, write or train what it points at, outside the results directory. Every such path is checked here before it is
used: it must lie inside the results directory, and neither it nor a folder between it and that directory may be a
symlink. The results directory itself may be one: the user named it. Checking and using are two steps, so this
guards against links left in a results directory, not against another process swapping one in while yoloab runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UnsafePathError

_ADVICE = "yoloab follows no symlink under the results directory; remove it and run again (nothing written through it)"


def inside(results_dir: str | Path, path: str | Path, what: str) -> Path:
    """Check that `path` lies inside `results_dir` and that no part of it below `results_dir` is a symlink.

    Args:
        results_dir: the results directory (it may itself be a symlink).
        path: a path under it, absolute or relative to the working directory; it need not exist yet.
        what: what the path is, for the message (`run directory`, `run log`).

    Returns:
        `path`, unchanged, so that a call can wrap the path where it is used.

    Raises:
        UnsafePathError: the path or a folder between it and the results directory is a symlink, or the path leads
            outside the results directory.
    """
    target = Path(os.path.abspath(path))  # `..` folded away without following anything
    # the results directory as named or as resolved: callers hold either (a RunSpec's run_dir is under the resolved)
    for root in (Path(os.path.abspath(results_dir)), Path(os.path.realpath(results_dir))):
        if target == root or root in target.parents:
            break
    else:
        raise UnsafePathError(f"{what} {path} is outside the results directory {results_dir}; refused")
    here = root
    for part in target.relative_to(root).parts:
        here = here / part
        if here.is_symlink():
            where = "is a symlink" if here == target else f"lies under the symlink {here}"
            raise UnsafePathError(f"{what} {path} {where}; {_ADVICE}")
    return Path(path)


def tree_inside(results_dir: str | Path, folder: str | Path, what: str) -> Path:
    """`inside`, and no symlink anywhere within `folder` either (a run directory that Ultralytics writes into).

    Returns:
        `folder`, unchanged.

    Raises:
        UnsafePathError: as `inside`, or a file or folder within `folder` is a symlink.
    """
    inside(results_dir, folder, what)
    for top, dirs, files in os.walk(folder):  # a link to a folder is listed among `dirs`, never entered
        for name in dirs + files:
            if os.path.islink(os.path.join(top, name)):
                raise UnsafePathError(f"{what} {folder} holds the symlink {os.path.join(top, name)}; {_ADVICE}")
    return Path(folder)
