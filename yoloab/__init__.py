"""yoloab: ablations and honest benchmarks of plug-in modules inside Ultralytics YOLO.

Importing yoloab registers its module catalog with Ultralytics, so yaml files naming ADown, DynamicConv,
DynamicBnAct, AKConv or RevCol build with `YOLO("x.yaml")`; modules that installed packages publish under the
`yoloab.modules` entry-point group are registered too.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import _ultralytics  # noqa: E402
from .registry import MODULES, ModuleEntry, Placement, register_module  # noqa: E402

_ultralytics.install()

from . import modules  # noqa: E402,F401  (registers the built-in catalog)
from .plugins import load_entry_points, load_plugin  # noqa: E402

load_entry_points()

__all__ = ["MODULES", "ModuleEntry", "Placement", "__version__", "load_plugin", "register_module"]
