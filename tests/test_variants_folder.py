"""The repository's variants/ folder: up to date with its documented regeneration command, and buildable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ultralytics import YOLO

from yoloab.presets import article
from yoloab.registry import MODULES
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
    module = yaml.safe_load(path.read_text())["yoloab"]["module"]
    cls = MODULES.get(module).cls  # RevCol-tiny: the size suffix resolves to the class
    assert any(type(m) is cls for m in model.modules()), f"{path.name} builds no {cls.__name__}"
    plain = YOLO(f"{next(v.base for v in ARTICLE if v.name == path.stem)}.yaml").model
    assert not any(type(m) is cls for m in plain.modules()) or cls.__module__.startswith("ultralytics.")
    assert sorted(p.stem for p in FOLDER.glob("*.yaml")) == sorted(v.name for v in ARTICLE)


def _diff_rows(a: dict, b: dict) -> list[int]:
    rows_a, rows_b = a["backbone"] + a["head"], b["backbone"] + b["head"]
    return [i for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=True)) if x != y]


@pytest.mark.parametrize("variant", [v for v in ARTICLE if v.after is not None], ids=lambda v: v.name)
def test_insert_header_lists_the_inserted_rows_and_the_rest_are_the_base_rows(variant):
    from yoloab.models import get_base_model

    old, new = get_base_model(variant.base).config(), variant.config
    old_rows, new_rows = old["backbone"] + old["head"], new["backbone"] + new["head"]
    line = next(x for x in to_yaml(variant).splitlines() if x.startswith("# Insert:"))
    pairs = [tuple(map(int, p.split(" -> row "))) for p in line.split("after base rows ", 1)[1].split(", ")]
    inserted = [int(n) for _, n in pairs]
    assert all(new_rows[n] == [-1, 1, variant.module, []] and new_rows[n - 1][2] == old_rows[a][2] for a, n in pairs)
    kept = [r for i, r in enumerate(new_rows) if i not in inserted]
    assert [r[1:] for r in kept] == [r[1:] for r in old_rows]  # same repeats, module, args, in order


@pytest.mark.parametrize(
    "variant", [v for v in ARTICLE if not v.is_backbone_swap and v.after is None], ids=lambda v: v.name
)
def test_header_lists_exactly_the_rows_that_differ_from_the_base(variant):
    from yoloab.models import get_base_model

    changed = _diff_rows(get_base_model(variant.base).config(), variant.config)
    swap = next(line for line in to_yaml(variant).splitlines() if line.startswith("# Swap:"))
    listed = [int(part.split(" (")[0]) for part in swap.split(": rows ", 1)[1].split(", ")]
    assert listed == changed


@pytest.mark.parametrize("variant", [v for v in ARTICLE if v.is_backbone_swap], ids=lambda v: v.name)
def test_backbone_swap_header_names_the_replaced_and_the_kept_rows(variant):
    from yoloab.models import get_base_model

    old, new = get_base_model(variant.base).config(), variant.config
    old_rows, new_rows = old["backbone"] + old["head"], new["backbone"] + new["head"]
    k = len(variant.rows)  # the new backbone's own rows; every row after them is a base row, moved
    replaced = len(old_rows) - (len(new_rows) - k)
    assert [r[1:] for r in new_rows[k:]] == [r[1:] for r in old_rows[replaced:]]  # same repeats, module, args
    module = MODULES.get(variant.module).name  # RevCol, or timm for timm-fasternet_t0
    assert new_rows[0][2] == module and all(r[2] == "Index" for r in new_rows[1:k])
    built = {"RevCol": "RevCol(c1, size=tiny)", "timm": f"timm(c1, model_name={variant.module[5:]}, out_indices="}
    text = to_yaml(variant)
    assert f"rows 0-{k - 1}; row 0 builds {built[module]}" in text
    assert f"It replaces base rows 0-{replaced - 1}; base rows {replaced}-{len(old_rows) - 1} are rows {k}-" in text
