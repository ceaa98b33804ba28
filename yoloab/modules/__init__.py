"""The built-in module catalog, one module per file; importing a file registers its module."""

from __future__ import annotations

from .aconv import AConv
from .adown import ADown
from .akconv import AKConv
from .dwconv import DWConv
from .dynamic_bn_act import DynamicBnAct
from .dynamic_conv import DynamicConv
from .ghostconv import GhostConv
from .hwd import HWD
from .revcol import RevCol
from .scdown import SCDown
from .spdconv import SPDConv

__all__ = [
    "HWD",
    "ADown",
    "AConv",
    "AKConv",
    "DWConv",
    "DynamicBnAct",
    "DynamicConv",
    "GhostConv",
    "RevCol",
    "SCDown",
    "SPDConv",
]
