"""The repository's variants/ folder: up to date with its documented regeneration command, and buildable."""

from __future__ import annotations

from pathlib import Path

import pytest
from ultralytics import YOLO

from yoloab.presets import article
from yoloab.variants import to_yaml

FOLDER = Path(__file__).resolve().parents[1] / "variants"
ARTICLE = article()


@pytest.mark.parametrize("variant", ARTICLE, ids=lambda v: v.name)
def test_committed_yaml_matches_regeneration(variant):
    path = FOLDER / f"{variant.name}.yaml"
    assert path.is_file(), "run: yoloab variants --preset article --out variants"
    assert path.read_text() == to_yaml(variant), "stale: run yoloab variants --preset article --out variants"


@pytest.mark.parametrize("path", sorted(FOLDER.glob("*.yaml")), ids=lambda p: p.stem)
def test_committed_yaml_builds_with_yolo(path):
    model = YOLO(str(path)).model
    assert any(type(m).__module__.startswith(("yoloab.", "ultralytics.nn.modules.block")) for m in model.modules())
    assert sorted(p.stem for p in FOLDER.glob("*.yaml")) == sorted(v.name for v in ARTICLE)
