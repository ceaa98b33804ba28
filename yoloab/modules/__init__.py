"""The built-in module catalog, one module per file; importing a file registers its module."""

from __future__ import annotations

from .adown import ADown
from .akconv import AKConv
from .dynamic_bn_act import DynamicBnAct
from .dynamic_conv import DynamicConv
from .revcol import RevCol

__all__ = ["ADown", "AKConv", "DynamicBnAct", "DynamicConv", "RevCol"]
