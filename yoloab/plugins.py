"""User modules: plugin files (`--plugin my_modules.py`) and the `yoloab.modules` entry-point group.

A plugin registers its modules with the same decorator as the built-in catalog:

    from yoloab import register_module

    @register_module(role="downsample", channels="conv", paper="...", article=Placement("backbone"))
    class MyDown(nn.Module): ...

and its box losses (`--loss MyIoU`) with `yoloab.losses.register_loss`: a function of predicted and target boxes
(xyxy, pixels) returning the per-box IoU (`returns="iou"`) or loss term. A plugin file is pickled by value for DDP
children and loaded again by every worker, so its losses are registered wherever a run trains.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .errors import PluginError, YoloabError

ENTRY_POINT_GROUP = "yoloab.modules"
_loaded_files: dict[Path, ModuleType] = {}


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"yoloab_plugin_{stem}_{digest}"


def load_plugin(path: str | Path) -> ModuleType:
    """Import a plugin file once per process, registering the modules it defines.

    Args:
        path: a Python file.

    Returns:
        The imported module.

    Raises:
        PluginError: the file is missing, is a directory, or raises on import; the message names the file and the
            error.
    """
    path = Path(path).expanduser().resolve()
    if path in _loaded_files:
        return _loaded_files[path]
    if path.is_dir():  # a package folder, say: importing its __init__.py would be a guess
        raise PluginError(f"plugin {path} is a directory; a plugin must be a .py file that calls register_module")
    if not path.is_file():
        raise PluginError(f"plugin file not found: {path} (expected a Python file that calls register_module)")
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path} cannot be imported: expected a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except YoloabError as err:
        sys.modules.pop(name, None)
        raise PluginError(f"plugin {path} failed to import: {err}") from err
    except KeyboardInterrupt:  # Ctrl-C while it imports: the user stopping, not a broken plugin
        sys.modules.pop(name, None)
        raise
    except BaseException as err:  # a plugin may raise anything, SystemExit included; report it as one line
        sys.modules.pop(name, None)
        raise PluginError(f"plugin {path} failed to import: {type(err).__name__}: {err}") from err
    _pickle_by_value(module)
    _loaded_files[path] = module
    return module


def _pickle_by_value(module: ModuleType) -> None:
    # Ultralytics' DDP launcher cloudpickles the model; a plugin file is not importable by name in the children.
    try:
        import cloudpickle
    except ImportError:
        return
    cloudpickle.register_pickle_by_value(module)


def load_entry_points() -> list[str]:
    """Load every `yoloab.modules` entry point of the installed packages.

    Returns:
        The names of the entry points loaded.

    Raises:
        PluginError: an entry point fails to load; the message names it and its package.
    """
    from importlib.metadata import entry_points  # costs more than the rest of `import yoloab`: only when loading

    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:
            dist = getattr(ep.dist, "name", "?")
            raise PluginError(
                f"entry point '{ep.name} = {ep.value}' of package {dist} failed to load: {type(err).__name__}: {err}"
            ) from err
        loaded.append(ep.name)
    return loaded
