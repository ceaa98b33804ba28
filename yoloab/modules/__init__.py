"""The built-in module catalog, one module per file; importing a file registers its module.

By role (`yoloab.roles`): downsample (ADown, AConv, AKConv/LDConv, DWConv, DynamicBnAct, DynamicConv, GhostConv,
HWD, SCDown, SPDConv), block (Faster), attention (SE, ECA, CBAM, CoordAtt, SimAM, EMA), upsample (DySample),
sppf (SPPF_LSKA) and backbone (RevCol, and any timm model as `timm-<model_name>`).
"""

from __future__ import annotations

from .aconv import AConv
from .adown import ADown
from .akconv import AKConv
from .cbam import CBAM
from .coord_attention import CoordAtt
from .dwconv import DWConv
from .dynamic_bn_act import DynamicBnAct
from .dynamic_conv import DynamicConv
from .dysample import DySample
from .eca import ECA
from .ema_attention import EMA
from .faster_block import FasterBlock
from .ghostconv import GhostConv
from .hwd import HWD
from .revcol import RevCol
from .scdown import SCDown
from .se import SE
from .simam import SimAM
from .spdconv import SPDConv
from .sppf_lska import SPPF_LSKA
from .timm_backbone import TimmBackbone

__all__ = [
    "CBAM",
    "ECA",
    "EMA",
    "HWD",
    "SE",
    "SPPF_LSKA",
    "ADown",
    "AConv",
    "AKConv",
    "CoordAtt",
    "DWConv",
    "DySample",
    "DynamicBnAct",
    "DynamicConv",
    "FasterBlock",
    "GhostConv",
    "RevCol",
    "SCDown",
    "SPDConv",
    "SimAM",
    "TimmBackbone",
]
