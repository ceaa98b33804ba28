"""Checkpoints loaded without running code (part of `yoloab._ultralytics`).

Ultralytics 8.4 unpickles a checkpoint with `torch.load(weights_only=False)` unless `ULTRALYTICS_SAFE_LOAD` was set
before it was imported, and unpickling a file can call anything the file names (`os.system`). Its safe mode
(`tasks.torch_safe_load(..., safe_only=True)`, `tasks._SafeLoad`) uses torch's `weights_only` unpickler, which
rebuilds only the classes on an allow-list: Ultralytics' and torch's model classes. yoloab reuses it and adds to the
allow-list, before each load, the classes the checkpoint names that come from:

- yoloab's catalog (`yoloab.modules`) and the timm layers and models it is built from (`timm.layers`,
  `timm.models`: a `timm-<model>` backbone holds the model's own blocks);
- the package (or `--plugin` file) of every registered module, once registered;

and only `nn.Module` subclasses or dataclasses defined there, found among the modules already imported: a name in
a checkpoint never makes yoloab import anything. A file that names anything else is refused, unloaded
(`UnsafeCheckpointError`, naming what it holds).

`safe_loading()` routes the loads Ultralytics' trainer makes on its own (`load_checkpoint` for `pretrained=`,
`resume=`, the final validation and the reload after training; `strip_optimizer`'s `torch_load` at the end) through
the same loader while a run trains, and puts Ultralytics' loaders back afterwards.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import pickle
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UltralyticsCompatError, UnsafeCheckpointError

# Module prefixes whose classes a checkpoint of a yoloab variant holds besides Ultralytics' and torch's.
CATALOG_PREFIXES = ("yoloab.modules", "timm.layers", "timm.models")
# Packages never trusted whole because a module registered from them: Ultralytics' and torch's classes are for
# Ultralytics' own allow-list to judge, and yoloab's are trusted under CATALOG_PREFIXES only.
_ULTRALYTICS_OWN = ("ultralytics", "torch", "yoloab")

_lock = threading.RLock()
_state: dict[str, Any] = {"depth": 0, "saved": None, "checked": False}


def _ultralytics_loaders() -> tuple[Any, Any]:
    """`ultralytics.nn.tasks` and `ultralytics.utils.torch_utils`, checked to have the safe mode relied on.

    Raises:
        UltralyticsCompatError: the safe mode is missing or torch cannot load with an allow-list (torch < 2.6), so a
            checkpoint could only be unpickled in a way that runs code.
    """
    from ultralytics.nn import tasks
    from ultralytics.utils import torch_utils

    if not _state["checked"]:
        from . import check_compatibility

        check_compatibility()
        safe = getattr(tasks, "_SafeLoad", None)
        load = getattr(tasks, "torch_safe_load", None)
        problems = []
        if safe is None or not callable(getattr(safe, "loading", None)):
            problems.append("tasks._SafeLoad.loading")
        elif not getattr(safe, "SUPPORTED", False):
            problems.append(f"torch>=2.6 for weights_only loading with an allow-list (torch {torch.__version__})")
        if not callable(load) or "safe_only" not in inspect.signature(load).parameters:
            problems.append("tasks.torch_safe_load(weight, safe_only)")
        if not callable(getattr(torch_utils, "torch_load", None)):
            problems.append("torch_utils.torch_load")
        if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
            problems.append("torch.serialization.get_unsafe_globals_in_checkpoint")
        if problems:
            raise UltralyticsCompatError(
                f"cannot load checkpoints safely: could not find {', '.join(problems)}; "
                "install torch>=2.6 and ultralytics>=8.4,<8.5"
            )
        _state["checked"] = True
    return tasks, torch_utils


def _globals_lock() -> Any:
    """Ultralytics' lock around `add_safe_globals`, which rebinds a process-wide set: shared so no entry is lost."""
    from ultralytics.nn.tasks import _SafeLoad

    return getattr(_SafeLoad, "_lock", None) or _lock


def _trusted_prefixes() -> tuple[str, ...]:
    """The catalog's module prefixes and the package of every registered module outside Ultralytics/torch/yoloab."""
    from ..registry import MODULES

    packages = {entry.cls.__module__.partition(".")[0] for entry in MODULES}  # also loads the catalog on first use
    return CATALOG_PREFIXES + tuple(sorted(p for p in packages if p not in _ULTRALYTICS_OWN))


def _resolve(name: str, prefixes: tuple[str, ...]) -> type | None:
    """The class a checkpoint's global `module.Name` stands for, when it is one yoloab allows, else None."""
    module, _, attr = name.rpartition(".")
    if not any(module == p or module.startswith(p + ".") for p in prefixes):
        return None
    loaded = sys.modules.get(module)  # never imported here: a file must not choose what gets imported
    obj = getattr(loaded, attr, None) if loaded is not None else None
    if not isinstance(obj, type) or obj.__module__ != module or obj.__qualname__ != attr:
        return None  # only classes defined where the name says, not anything re-exported there
    return obj if issubclass(obj, nn.Module) or dataclasses.is_dataclass(obj) else None


def _named_globals(path: Path) -> list[str]:
    """The globals a checkpoint names beyond torch's own safe types (read without unpickling anything)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint, unreadable: the load itself says what is wrong
        return []


def _allow_classes(path: Path) -> None:
    """Add to torch's allow-list the yoloab, timm-layer and plugin classes this checkpoint names."""
    prefixes = _trusted_prefixes()
    found = [obj for obj in (_resolve(name, prefixes) for name in _named_globals(path)) if obj is not None]
    if found:
        with _globals_lock():
            torch.serialization.add_safe_globals(found)


def _allowed_names() -> set[str]:
    names = set()
    for entry in torch.serialization.get_safe_globals():
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', '')}")
    return names


def refused_globals(path: str | Path, err: BaseException | None = None) -> list[str]:
    """The globals a checkpoint names that the safe unpickler does not allow (after a load registered the rest).

    Args:
        path: the checkpoint.
        err: the error its load raised: for a file torch cannot scan (its legacy format), the global named in the
            unpickler's refusal.
    """
    allowed = _allowed_names()
    names = {name for name in _named_globals(Path(path)) if name not in allowed}
    while err is not None and not names:
        if isinstance(err, pickle.UnpicklingError):
            names = {m for m in re.findall(r"GLOBAL ([A-Za-z_][\w.]*)", str(err)) if m not in allowed}
        err = err.__cause__ or err.__context__
    return sorted(names)


def _refuse(path: Path, err: BaseException) -> None:
    """Raise `UnsafeCheckpointError` when a failed load failed on globals outside the allow-list."""
    names = refused_globals(path, err)
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise UnsafeCheckpointError(
            # the name only: callers say where (a --pretrained path, a run's weights folder), in a record's short line
            f"{path.name} holds objects that are not allowed in a checkpoint ({shown}); not loaded, since unpickling "
            "them could run code",
            path=path,
            names=names,
        ) from err


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    """Ultralytics' `torch_safe_load`, always in its safe mode, with yoloab's classes allowed for each file."""

    def torch_safe_load(weight: Any, safe_only: bool | None = None) -> Any:  # signature of the original
        file = Path(str(weight))
        local = file.is_file()
        if local:
            _allow_classes(file)
        try:
            return original(weight, safe_only=True)
        except Exception as err:
            if local:
                _refuse(file, err)
            raise

    torch_safe_load.__yoloab_original__ = original
    torch_safe_load.__doc__ = original.__doc__
    return torch_safe_load


def _weights_only_load(file: Any, *args: Any, **kwargs: Any) -> Any:
    """Ultralytics' `torch_load` (used by `strip_optimizer`), loading with `weights_only=True` and the allow-list."""
    from ultralytics.nn.tasks import _SafeLoad

    kwargs["weights_only"] = True
    if not isinstance(file, (str, os.PathLike)) or not Path(file).is_file():
        return torch.load(file, *args, **kwargs)
    _allow_classes(Path(file))
    try:
        with _SafeLoad.loading(file):  # registers the Ultralytics and torch classes this file names
            return torch.load(file, *args, **kwargs)
    except Exception as err:
        _refuse(Path(file), err)
        raise


@contextmanager
def safe_loading() -> Iterator[None]:
    """Route every checkpoint load of Ultralytics (`load_checkpoint`, `strip_optimizer`) through the safe loader.

    Re-entrant and process-wide while active (the trainer loads from inside its own code, out of yoloab's reach); the
    original loaders are back once the outermost block exits.

    Raises:
        UltralyticsCompatError: this Ultralytics or torch cannot load with an allow-list.
    """
    tasks, torch_utils = _ultralytics_loaders()
    with _lock:
        if _state["depth"] == 0:
            _state["saved"] = (tasks.torch_safe_load, torch_utils.torch_load)
            tasks.torch_safe_load = _guarded(tasks.torch_safe_load)
            torch_utils.torch_load = _weights_only_load
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                tasks.torch_safe_load, torch_utils.torch_load = _state["saved"]
                _state["saved"] = None


def safe_load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Ultralytics' `load_checkpoint` (EMA first, FP32, eval mode) under the safe unpickler, installing nothing.

    Returns:
        The model and the checkpoint dict.

    Raises:
        UnsafeCheckpointError: the file names objects outside the allow-list; nothing of it was unpickled.
        Exception: whatever Ultralytics raises for a file that is not a checkpoint (missing, damaged, other format).
    """
    from ultralytics.nn import tasks

    from .export import _no_auto_install  # a QAT key in a file must not make Ultralytics pip-install its package

    with safe_loading(), _no_auto_install(), warnings.catch_warnings():
        # torch warns about a plain pickle's protocol before refusing it: the refusal is the one line to show
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return tasks.load_checkpoint(str(path))


def _allow_numpy() -> None:
    """Allow NumPy arrays (a generator's state), under both of NumPy's module paths; registered for the process."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    rebuild = core.multiarray._reconstruct
    entries: list[Any] = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    entries += [(rebuild, f"{m}.multiarray._reconstruct") for m in ("numpy.core", "numpy._core")]
    with _globals_lock():
        torch.serialization.add_safe_globals(entries)


def read_state(path: str | Path) -> Any:
    """A state file of plain data (tensors, numbers, tuples, NumPy arrays), loaded with `weights_only=True`.

    Raises:
        Exception: the file is missing, damaged, or names anything else (`pickle.UnpicklingError`); nothing runs.
    """
    _ultralytics_loaders()  # torch >= 2.6: allow-list entries under another module path (NumPy's two)
    _allow_numpy()
    return torch.load(path, map_location="cpu", weights_only=True)
