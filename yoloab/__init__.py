"""yoloab: ablations and honest benchmarks of plug-in modules inside Ultralytics YOLO.

Importing yoloab registers its module catalog with Ultralytics, so yaml files naming ADown, DynamicConv,
DynamicBnAct, AKConv or RevCol build with `YOLO("x.yaml")`; modules that installed packages publish under the
`yoloab.modules` entry-point group are registered too. Both happen on first need (`yoloab.activation`): the
import itself loads neither torch nor Ultralytics, which keeps `yoloab --help` fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import activation  # noqa: E402
from .plugins import load_plugin  # noqa: E402
from .registry import MODULES, ModuleEntry, Placement, register_module  # noqa: E402

MODULES.on_first_use = activation.load_catalog
activation.arm()

__all__ = ["MODULES", "ModuleEntry", "Placement", "__version__", "load_plugin", "register_module"]
