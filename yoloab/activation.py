"""When the catalog registers, so that `import yoloab` costs no torch or Ultralytics import.

`import yoloab` promises two things: the registry lists the built-in modules and the entry-point plugins, and
Ultralytics' `parse_model` resolves their names in yaml rows. Both happen on first need instead of at import:

- the registry calls `load_catalog` the first time it is read or written (`yoloab.registry.Registry`);
- `arm` wraps `parse_model` (`yoloab._ultralytics.install`) at once if `ultralytics.nn.tasks` is already imported,
  else right after it is, through a `sys.meta_path` finder that only watches for that one name.

So a script that does `import yoloab` and then `YOLO("x.yaml")` works as before, and `yoloab --help` answers
without loading torch. Ultralytics itself is touched only in `yoloab._ultralytics`.
"""

from __future__ import annotations

import importlib.machinery
import sys
from types import ModuleType
from typing import Any

PARSER_MODULE = "ultralytics.nn.tasks"
_state = {"catalog": "no"}


def load_catalog() -> None:
    """Register the built-in modules and the entry-point plugins, once per process."""
    if _state["catalog"] != "no":  # 'loading': a catalog file registering itself reads the registry
        return
    _state["catalog"] = "loading"
    try:
        from . import modules  # noqa: F401  (each file registers its module)
        from .plugins import load_entry_points

        load_entry_points()
    except BaseException:
        _state["catalog"] = "no"
        raise
    _state["catalog"] = "yes"


def install_parser() -> None:
    """Wrap Ultralytics' `parse_model` (idempotent)."""
    from . import _ultralytics

    _ultralytics.install()


class _AfterExec:  # a loader; not an importlib.abc subclass, whose import costs more than this module
    """Runs the real loader, then installs the wrapper; everything else is the real loader's."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._loader  # inspect/linecache see the real loader
        install_parser()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _ParserWatcher:  # a meta-path finder
    """Finds nothing itself; wraps the loader of `ultralytics.nn.tasks` the first time it is imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != PARSER_MODULE:
            return None
        disarm()
        for finder in sys.meta_path:  # the finders that would have found it without us, in their order
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _AfterExec(spec.loader)
                return spec
        return None


_WATCHER = _ParserWatcher()


def arm() -> None:
    """Install the parser wrapper now if Ultralytics' parser is imported, else when it is."""
    if PARSER_MODULE in sys.modules:
        install_parser()
    elif _WATCHER not in sys.meta_path:
        sys.meta_path.insert(0, _WATCHER)


def disarm() -> None:
    """Stop watching (the wrapper is installed, or about to be)."""
    if _WATCHER in sys.meta_path:
        sys.meta_path.remove(_WATCHER)
