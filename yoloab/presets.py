"""Named sets of variants; `article` is what the repository's `variants/` folder holds.

Regenerate that folder with `yoloab variants --preset article --out variants`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads PRESETS for its help text: no torch before a preset is built
    from .variants import Variant

# (base model, module, placement): the configurations of the source articles, then one or two per newer role.
ARTICLE: list[tuple[str, str, str]] = [
    ("yolov8n", "ADown", "all"),
    ("yolov8n", "ADown", "backbone"),
    ("yolo11n", "ADown", "all"),
    ("yolov8n", "DynamicConv", "article"),
    ("yolov8n", "DynamicBnAct", "article"),
    ("yolov10s", "AKConv", "article"),
    ("yolov8n", "RevCol", "backbone"),
    ("yolo11n", "RevCol", "backbone"),
    # timm backbones: the four families the field's catalogs swap in most, at their smallest size
    ("yolov8n", "timm-fasternet_t0", "backbone"),
    ("yolov8n", "timm-starnet_s050", "backbone"),
    ("yolov8n", "timm-repvit_m0_9", "backbone"),
    ("yolov8n", "timm-efficientvit_b0", "backbone"),
    # the other roles, as the field's catalogs use them (no YOLO article came with these modules)
    ("yolov8n", "Faster", "all"),  # C2f-Faster
    ("yolo11n", "Faster", "all"),  # C3k2-Faster, C3k's Bottlenecks included
    ("yolov8n", "CBAM", "sppf"),
    ("yolov8n", "EMA", "backbone"),
    ("yolov8n", "DySample", "all"),
    ("yolov8n", "SPPF_LSKA", "all"),
]


def article() -> list[Variant]:
    """The article configurations."""
    from .models import get_base_model
    from .variants import make_variant

    return [make_variant(get_base_model(b), m, p) for b, m, p in ARTICLE]


PRESETS: dict[str, Callable[[], list[Variant]]] = {"article": article}
