"""Placements pick the reference rows in every detection family of the installed Ultralytics.

The expected rows below were read off the yaml files of the installed Ultralytics
(`ultralytics/cfg/models/{v5,v8,v9,v10,11,12,26}/*.yaml`) by hand, with their `# i-Pk/s` comments giving each row's
output stride, and agree with the spec's reference rows where it has them. They are written out here, not computed
by yoloab, so that the tests check the placement rules against the yaml files rather than against themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from yoloab.errors import PlacementError
from yoloab.models import get_base_model
from yoloab.placement import label, resolve, row_strides
from yoloab.registry import MODULES
from yoloab.roles.downsample import candidates
from yoloab.variants import make_variant


@dataclass(frozen=True)
class Reference:
    """The downsampling Conv rows of one base model, stems excluded, with each row's output stride.

    Attributes:
        backbone: candidate rows in the backbone.
        head: candidate rows in the head.
        strides: output stride of every candidate row (4 = P2 ... 32 = P5).
        outputs: the rows Detect reads (P3, P4, P5) and their strides, a check of the stride bookkeeping.
    """

    backbone: tuple[int, ...]
    head: tuple[int, ...]
    strides: dict[int, int]
    outputs: dict[int, int]

    @property
    def all(self) -> list[int]:
        """Every candidate row, in order."""
        return [*self.backbone, *self.head]


REFERENCES = {
    # spec reference rows: v8 0,1,3,5,7 / 16,19 (row 0 is the stem)
    "yolov8n": Reference((1, 3, 5, 7), (16, 19), {1: 4, 3: 8, 5: 16, 7: 32, 16: 16, 19: 32}, {15: 8, 18: 16, 21: 32}),
    "yolo11n": Reference((1, 3, 5, 7), (17, 20), {1: 4, 3: 8, 5: 16, 7: 32, 17: 16, 20: 32}, {16: 8, 19: 16, 22: 32}),
    # v5u: the stem is Conv [64, 6, 2, 2]; the head has two extra 1x1 Conv rows (10, 14) that are not candidates
    "yolov5nu": Reference((1, 3, 5, 7), (18, 21), {1: 4, 3: 8, 5: 16, 7: 32, 18: 16, 21: 32}, {17: 8, 20: 16, 23: 32}),
    "yolo12n": Reference((1, 3, 5, 7), (15, 18), {1: 4, 3: 8, 5: 16, 7: 32, 15: 16, 18: 32}, {14: 8, 17: 16, 20: 32}),
    # v10n: rows 5, 7 and 20 are SCDown, not Conv
    "yolov10n": Reference((1, 3), (17,), {1: 4, 3: 8, 17: 16}, {16: 8, 19: 16, 22: 32}),
    # v9t: P3-P5 and both head downsamplings are AConv; only the P2 conv is left
    "yolov9t": Reference((1,), (), {1: 4}, {15: 8, 18: 16, 21: 32}),
    "yolo26n": Reference((1, 3, 5, 7), (17, 20), {1: 4, 3: 8, 5: 16, 7: 32, 17: 16, 20: 32}, {16: 8, 19: 16, 22: 32}),
    # v9e: row 0 is nn.Identity; rows 1 and 15 are the stems of its two branches (both read the image, P1/2); the
    # P2 convs 2 and 17 are the only candidates, every other downsampling is ADown
    "yolov9e": Reference((2, 17), (), {2: 4, 17: 4}, {35: 8, 38: 16, 41: 32}),
}
MODELS = list(REFERENCES)


def _article(model: str, module: str) -> list[int]:
    """The article placement of the spec, applied to the hand-written reference rows."""
    ref = REFERENCES[model]
    if module == "ADown":  # all: every downsampling conv but the stem
        return ref.all
    if module in ("DynamicConv", "DynamicBnAct"):  # all minus the P2 conv: P3, P4, P5 in backbone and head
        return [r for r in ref.all if ref.strides[r] in (8, 16, 32)]
    if module == "AKConv":  # the backbone's downsampling convs at P2 and P3
        return [r for r in ref.backbone if ref.strides[r] in (4, 8)]
    raise AssertionError(module)


def _expected(model: str, placement: str, module: str) -> list[int]:
    ref = REFERENCES[model]
    if placement == "article":
        return _article(model, module)
    if placement in ("backbone", "head", "all"):
        return list(getattr(ref, placement))
    return [int(r) for r in placement.split(",")]


def _listed_rows(message: str) -> list[int]:
    """The candidate rows an error message lists (`1 (backbone P2), 3 (backbone P3), ...`)."""
    return [int(r) for r in re.findall(r"\b(\d+) \((?:backbone|head) P\d\)", message)]


def _cases() -> list:
    cases = []
    for model in MODELS:
        for placement in ("backbone", "head", "all", "1,3"):
            cases.append(pytest.param(model, placement, "ADown", id=f"{model}-{placement}"))
        for module in ("ADown", "DynamicConv", "DynamicBnAct", "AKConv"):
            cases.append(pytest.param(model, "article", module, id=f"{model}-article-{module}"))
    return cases


def _selects_nothing(model: str, placement: str, module: str) -> bool:
    expected = _expected(model, placement, module)
    return not expected or any(r not in REFERENCES[model].all for r in expected)


VALID = [c for c in _cases() if not _selects_nothing(*c.values)]
INVALID = [c for c in _cases() if _selects_nothing(*c.values)]


@pytest.mark.parametrize("model", MODELS)
def test_candidates_are_the_downsampling_convs_of_the_yaml(model):
    ref = REFERENCES[model]
    d = get_base_model(model).config()
    found = candidates(d)
    assert [c.row for c in found] == ref.all
    assert [c.row for c in found if c.section == "backbone"] == list(ref.backbone)
    assert [c.row for c in found if c.section == "head"] == list(ref.head)
    assert {c.row: c.stride for c in found} == ref.strides


@pytest.mark.parametrize("model", MODELS)
def test_row_strides_follow_the_yaml_levels(model):
    strides = row_strides(get_base_model(model).config())
    assert {r: strides[r] for r in REFERENCES[model].outputs} == REFERENCES[model].outputs
    assert {r: strides[r] for r in REFERENCES[model].strides} == REFERENCES[model].strides


@pytest.mark.parametrize(("model", "placement", "module"), VALID)
def test_placement_selects_the_reference_rows(model, placement, module):
    expected = _expected(model, placement, module)
    base = get_base_model(model)
    assert resolve(base.config(), placement, MODULES.get(module), model) == expected
    variant = make_variant(base, module, placement)
    assert variant.rows == expected
    assert variant.name == f"{model}-{module}-{label(placement)}"
    old = base.config()
    old_rows, new_rows = old["backbone"] + old["head"], variant.config["backbone"] + variant.config["head"]
    changed = [i for i, (a, b) in enumerate(zip(old_rows, new_rows, strict=True)) if a != b]
    assert changed == expected
    for r in expected:
        assert old_rows[r][2] == "Conv" and new_rows[r][2] == module
        assert new_rows[r][:2] == old_rows[r][:2]  # same inputs and repeats: only the module is swapped


@pytest.mark.parametrize(("model", "placement", "module"), INVALID)
def test_placement_selecting_no_valid_row_lists_the_candidates(model, placement, module):
    base = get_base_model(model)
    with pytest.raises(PlacementError) as err:
        resolve(base.config(), placement, MODULES.get(module), model)
    assert _listed_rows(str(err.value)) == REFERENCES[model].all
    with pytest.raises(PlacementError):
        make_variant(base, module, placement)


def test_the_invalid_cases_cover_the_interesting_families():
    # guards the generated case lists: these combinations must be among the rejected ones
    ids = {c.id for c in INVALID}
    assert {"yolov9t-head", "yolov9t-1,3", "yolov9e-head", "yolov9e-1,3", "yolov9t-article-DynamicConv"} <= ids
    assert not any(i.startswith(("yolov8n", "yolo11n", "yolov5nu", "yolo12n", "yolo26n")) for i in ids)


def test_spec_reference_article_rows_of_yolov8():
    # the spec's own numbers, written out once more without the helper above
    base = get_base_model("yolov8n")
    assert make_variant(base, "ADown", "article").rows == [1, 3, 5, 7, 16, 19]
    assert make_variant(base, "DynamicConv", "article").rows == [3, 5, 7, 16, 19]
    assert make_variant(base, "DynamicBnAct", "article").rows == [3, 5, 7, 16, 19]
    assert make_variant(base, "AKConv", "article").rows == [1, 3]


@pytest.mark.parametrize(
    ("model", "rows"),
    [
        pytest.param("yolov8n", "2", id="yolov8n-C2f-row"),
        pytest.param("yolov8n", "0", id="yolov8n-stem"),
        pytest.param("yolov8n", "1,2", id="yolov8n-one-bad-of-two"),
        pytest.param("yolov8n", "99", id="yolov8n-past-the-end"),
        pytest.param("yolov10n", "5", id="yolov10n-SCDown"),
        pytest.param("yolov9e", "1", id="yolov9e-branch-stem"),
        pytest.param("yolov9e", "15", id="yolov9e-second-stem"),
    ],
)
def test_explicit_rows_that_are_not_candidates_are_rejected(model, rows):
    with pytest.raises(PlacementError) as err:
        resolve(get_base_model(model).config(), rows, MODULES.get("ADown"), model)
    message = str(err.value)
    bad = [r for r in map(int, rows.split(",")) if r not in REFERENCES[model].all]
    assert f"row(s) {', '.join(map(str, bad))} of {model}" in message
    assert _listed_rows(message) == REFERENCES[model].all


@pytest.mark.parametrize(
    ("text", "rows"),
    [pytest.param("3,1", [1, 3], id="unsorted"), pytest.param("1, 3,3", [1, 3], id="spaces-and-duplicates")],
)
def test_explicit_rows_are_sorted_and_deduplicated(text, rows):
    base = get_base_model("yolov8n")
    variant = make_variant(base, "ADown", text)
    assert variant.rows == rows and variant.name == "yolov8n-ADown-rows1-3"


@pytest.mark.parametrize("text", ["nope", "1,x", "-1", ""], ids=["word", "non-integer", "negative", "empty"])
def test_malformed_placements_are_rejected(text):
    with pytest.raises(PlacementError, match="expected one of article, all, backbone, head, .* or row indices"):
        resolve(get_base_model("yolov8n").config(), text, MODULES.get("ADown"), "yolov8n")
