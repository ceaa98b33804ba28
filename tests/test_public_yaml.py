"""Other people's yaml builds what they meant, or says why not (issue 24).

Three public YOLOv8 tutorial yaml files (re-typed equivalents under `tests/data/`, sources in their headers) are
profiled as written: their AKConv and Down_wt (HWD) rows build with the parameter count of the tutorials' own
modules, computed here in closed form per row, and their SPDConv `[c2]` rows, which the tutorial's module reads as a
1x1 conv, build yoloab's 3x3 conv with one warning line saying so. Rows that do not fit a module's row form (a
Conv-style `[c2, k, s]` for a module without a stride, a missing or mistyped argument) are one line naming the
file, the row, the form found and the form expected, exit 3; every catalog module's row form is checked.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from yoloab._ultralytics import validate_rows
from yoloab.cli.app import app
from yoloab.errors import ModelConfigError, RowFormError, UnknownModuleError, YoloabWarning
from yoloab.registry import MODULES

runner = CliRunner()
DATA = Path(__file__).parent / "data"

# yolov8n at nc=80, Ultralytics' published figure (yolov8.yaml: "YOLOv8n summary: ... 3157200 parameters"), which the
# tutorials' yaml headers repeat
YOLOV8N_PARAMS = 3_157_200
# (c1, c2) of the six stride-2 Conv rows every tutorial replaces (backbone 1, 3, 5, 7; head 16, 19) at scale n:
# width 0.25 of [128, 256, 512, 1024] in the backbone, each reading the previous row; the head rows read C2f [256]
# -> 64 and C2f [512] -> 128 channels and write 64 and 128
ROWS = [(16, 32), (32, 64), (64, 128), (128, 256), (64, 64), (128, 128)]


def conv_row(c1: int, c2: int) -> int:
    """Ultralytics' Conv(c1, c2, 3, 2): 3x3 conv without bias, BatchNorm (weight and bias)."""
    return 9 * c1 * c2 + 2 * c2


def down_wt(c1: int, c2: int) -> int:
    """The tutorial's Down_wt (apple1986/HWD): Haar DWT (no weights), Conv2d(4 c1, c2, 1) with bias, BatchNorm."""
    return 4 * c1 * c2 + c2 + 2 * c2


def akconv(c1: int, c2: int, n: int = 3) -> int:
    """The tutorial's AKConv(c1, c2, N): (N, 1) conv without bias + BN, 3x3 offset conv c1 -> 2N with bias."""
    return n * c1 * c2 + 2 * c2 + 9 * c1 * 2 * n + 2 * n


def spdconv(c1: int, c2: int, k: int) -> int:
    """SPDConv: space-to-depth (no weights), then a k x k conv 4 c1 -> c2 without bias, BatchNorm."""
    return 4 * c1 * c2 * k * k + 2 * c2


def expected(module_params) -> int:
    """yolov8n with each of the six rows' Conv replaced by a module of the given per-row parameter count."""
    return YOLOV8N_PARAMS - sum(conv_row(*r) for r in ROWS) + sum(module_params(*r) for r in ROWS)


def profile(paths: list[Path], results: Path):
    """`yoloab profile PATH... --no-latency --format json` (at a small image size: counts do not depend on it)."""
    args = ["profile", *map(str, paths), "--no-latency", "--format", "json", "--imgsz", "64", "--results", str(results)]
    return runner.invoke(app, args)


def copy_to(tmp_path: Path, name: str, rewrite=None) -> Path:
    """The tutorial file under a fresh path (each row-note warning shows once per process and path)."""
    text = (DATA / name).read_text(encoding="utf-8")
    target = tmp_path / name
    target.write_text(rewrite(text) if rewrite else text, encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------------------------------
# the three tutorials, profiled as written (one command: the yolov8n baseline row is measured once)

SPD_C2_1 = (
    "yolov8-SPDConv-tutorial-c2-1.yaml"  # the SPDConv tutorial with its rows written [c2, 1], as the warning says
)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> tuple[Path, dict[str, int], str]:
    """The folder of the copies, params by variant, and stderr of one `yoloab profile` of the four files."""
    folder = tmp_path_factory.mktemp("public")
    names = [name for name, _, _ in TUTORIALS[:3]]
    paths = [copy_to(folder, name) for name in names]
    k1 = re.sub(r"SPDConv, \[(\d+)\]", r"SPDConv, [\1, 1]", (DATA / names[2]).read_text(encoding="utf-8"))
    (folder / SPD_C2_1).write_text(k1, encoding="utf-8")
    result = profile([*paths, folder / SPD_C2_1], folder / "results")
    assert result.exit_code == 0, result.output
    return folder, {r["variant"]: r["params"] for r in json.loads(result.stdout)}, result.stderr


TUTORIALS = [
    ("yolov8-AKConv-tutorial.yaml", expected(akconv), None),
    ("yolov8-Down_wt-tutorial.yaml", expected(down_wt), None),
    ("yolov8-SPDConv-tutorial.yaml", expected(lambda c1, c2: spdconv(c1, c2, 3)), "SPDConv rows 1, 3, 5, 7, 16, 19"),
    (SPD_C2_1, expected(lambda c1, c2: spdconv(c1, c2, 1)), None),
]


@pytest.mark.parametrize(
    ("name", "params", "warned"), TUTORIALS, ids=["AKConv", "Down_wt-is-HWD", "SPDConv-c2", "SPDConv-c2-1"]
)
def test_tutorial_yaml_builds_its_parameter_count_or_says_what_differs(profiled, name, params, warned):
    folder, built, stderr = profiled
    assert built[Path(name).stem] == params
    shown = [line for line in stderr.splitlines() if line.startswith("warning:") and str(folder / name) in line]
    if warned is None:
        assert shown == [], shown
    else:
        assert len(shown) == 1, shown  # one line for all six rows
        assert warned in shown[0] and "3x3" in shown[0] and "1x1" in shown[0] and "[c2, 1]" in shown[0], shown[0]


def test_the_spdconv_warning_advice_builds_the_tutorials_2_84m_model(profiled):
    """`[c2, 1]` builds the tutorial's 1x1 SPDConv: the issue's 2.84M, against 4.89M for yoloab's 3x3 reading."""
    _, built, _ = profiled
    assert built["yolov8n"] == YOLOV8N_PARAMS  # the baseline row the profile adds, against the published figure
    assert built[Path(SPD_C2_1).stem] == 2_837_200
    assert built["yolov8-SPDConv-tutorial"] == 4_885_200


# --------------------------------------------------------------------------------------------------------------------
# rows that do not fit the module's row form: one line, exit 3


def test_a_conv_style_spdconv_row_is_one_line_exit_3(tmp_path):
    """The issue's case through the command line: `[c2, 3, 2]` named with its file, row and both forms."""
    path = copy_to(
        tmp_path, "yolov8-SPDConv-tutorial.yaml", lambda t: t.replace("SPDConv, [128]", "SPDConv, [128, 3, 2]")
    )
    result = profile([path], tmp_path / "results")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in (str(path), "row 1 (backbone) SPDConv [128, 3, 2]", "row form [c2, k=3]", "SPDConv [c2, k]"):
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output and "TypeError" not in result.output
    assert not list((tmp_path / "results").rglob("*.json"))


BAD_ROWS = [
    ("SPDConv", [128, 3, 2], "[c2, k=3]", "3 arguments where SPDConv takes at most 2; a Conv row [c2, k, s] becomes"),
    ("HWD", [128, 3, 2], "[c2]", "3 arguments where HWD takes at most 1; a Conv row [c2, k, s] becomes HWD [c2]"),
    ("Down_wt", [128, 3], "[c2]", "2 arguments where HWD takes at most 1"),
    ("ADown", [128, 3, 2], "[c2]", "3 arguments where ADown takes at most 1"),
    ("AKConv", [128], "[c2, num_param, stride=1, bias=None, impl=None]", "no num_param, which AKConv needs"),
    ("AKConv", [128, 3, 2.5], "[c2, num_param, stride=1, bias=None, impl=None]", "stride is 2.5 where an int belongs"),
]


@pytest.mark.parametrize(
    ("module", "args", "form", "why"),
    BAD_ROWS,
    ids=["SPDConv-conv-style", "HWD-conv-style", "Down_wt-two-args", "ADown-conv-style", "AKConv-no-N", "AKConv-float"],
)
def test_a_row_off_its_form_names_file_row_and_both_forms(module, args, form, why):
    with pytest.raises(RowFormError) as err:
        validate_rows(model_dict(module, args, "mine.yaml"))
    name = MODULES.get(module).name  # an alias is refused under the module's own name
    assert str(err.value).startswith(
        f"mine.yaml: row 1 (backbone) {module} {args} does not fit {name}'s row form {form}: "
    )
    assert why in str(err.value), str(err.value)
    assert isinstance(err.value, ModelConfigError)  # exit 3, the model-config code


# --------------------------------------------------------------------------------------------------------------------
# every catalog module's row form


def model_dict(module: str, args: list, where: str = "x.yaml") -> dict:
    return {"yaml_file": where, "backbone": [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, module, args]], "head": []}


FORMS = {
    "ADown": "[c2]",
    "AConv": "[c2]",
    "HWD": "[c2]",
    "SPDConv": "[c2, k=3]",
    "AKConv": "[c2, num_param, stride=1, bias=None, impl=None]",
    "DynamicConv": "[c2, k=1, s=1, p=None, g=1, d=1, act=True, num_experts=4]",
    "SCDown": "[c2, k, s]",
    "SE": "[reduction=16, bias=True]",
    "ECA": "[k_size=None, gamma=2, b=1]",
    "CBAM": "[reduction=16, kernel_size=7]",
    "CoordAtt": "[reduction=32]",
    "SimAM": "[e_lambda=0.0001]",
    "EMA": "[factor=32]",
    "DySample": "[scale=2, style='lp', groups=4, dyscope=False]",
    "SPPF_LSKA": "[c2, k=5, lska_k=11]",
    "Faster": "[c2, shortcut=True, n_div=4, mlp_ratio=2.0, drop_path=0.0, layer_scale_init_value=0.0, act='relu', "
    "pconv_fw_type='split_cat']",
    "RevCol": "[size='tiny', save_memory=False, drop_path=None]",
}


@pytest.mark.parametrize(("module", "form"), FORMS.items(), ids=list(FORMS))
def test_row_form_is_read_from_the_constructor(module, form):
    assert MODULES.get(module).row_form_text == form


FITS = [
    ("SPDConv", [128, 3], [128, True]),
    ("AKConv", [128, 5, 2], [128, "five"]),
    ("DynamicConv", [256, 3, 2], [256, 3, 2, None, 1, 1, True, 4, 9]),
    ("DynamicBnAct", [256, 3, 2], [256, 3, "two"]),
    ("CBAM", [], [16, 7, 3]),
    ("EMA", [8], ["eight"]),
    ("ECA", [None], [3.5]),
    ("DySample", [2, "lp"], ["lp"]),
    ("SPPF_LSKA", [1024, 5, 7], [1024, 5, 11, 3]),
    ("Faster", [128, True], [128, 4]),
    ("RevCol", ["tiny", True], ["tiny", "yes"]),
]


@pytest.mark.parametrize(("module", "good", "bad"), FITS, ids=[f[0] for f in FITS])
def test_rows_that_fit_pass_and_rows_that_do_not_are_refused(module, good, bad):
    validate_rows(model_dict(module, good))
    with pytest.raises(RowFormError, match=re.escape(f"row 1 (backbone) {module} {bad}")):
        validate_rows(model_dict(module, bad))


def test_the_rows_yoloab_writes_fit_every_catalog_module():
    """What each role writes (a downsample row keeps conv_args of [c2, k, s]) fits the module's own row form."""
    role_rows = {"block": [128, True], "attention": [], "upsample": [2], "sppf": [1024, 5], "backbone": []}
    for entry in (e for e in MODULES if e.builtin):
        assert entry.row_form is not None, entry.name
        row = [128, 3, 2][: entry.conv_args] if entry.role == "downsample" else role_rows[entry.role]
        assert entry.row_mismatch(row) is None, (entry.name, row, entry.row_mismatch(row))


# --------------------------------------------------------------------------------------------------------------------
# public names and public readings


def test_public_names_are_aliases_of_the_catalog_modules():
    assert MODULES.get("Down_wt") is MODULES.get("HWD")
    assert MODULES.get("LDConv") is MODULES.get("AKConv")
    assert "Down_wt" in MODULES.aliases() and "Down_wt" not in MODULES.names()  # listed once, under HWD


@pytest.mark.parametrize("typo", ["Down_WT", "DownWt"], ids=["case", "no-underscore"])
def test_an_unknown_name_suggests_aliases(typo):
    with pytest.raises(UnknownModuleError, match="nearest: .*Down_wt"):
        MODULES.get(typo)
    with pytest.raises(UnknownModuleError, match=r"row 1 \(backbone\) names unknown module .*nearest: .*Down_wt"):
        validate_rows(model_dict(typo, [128]))


@pytest.mark.parametrize("module", ["EMA", "CoordAtt", "SE", "SimAM"])
def test_an_attention_row_given_a_channel_count_warns_once(tmp_path, module):
    where = str(tmp_path / f"{module}.yaml")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        validate_rows(model_dict(module, [256], where))
        validate_rows(model_dict(module, [256], where))  # a model is built several times: still one line
        validate_rows(model_dict(module, [8], where))  # a hyper-parameter: no warning
    notes = [str(w.message) for w in seen if issubclass(w.category, YoloabWarning)]
    assert len(notes) == 1, notes
    assert notes[0].startswith(f"{where}: {module} row 1 ([256]): yoloab builds {module} on the input's channels")


def test_a_constructor_refusal_names_the_file_the_row_and_the_form(tmp_path):
    """`_build_real` turns a ValueError into one line with the place (DySample groups that do not divide c1)."""
    from ultralytics.nn.tasks import DetectionModel

    d = yaml.safe_load((DATA / "yolov8-Down_wt-tutorial.yaml").read_text(encoding="utf-8"))
    d["head"][0] = [-1, 1, "DySample", [2, "lp", 3]]  # row 10, reading 256 channels
    d["yaml_file"] = "mine.yaml"
    with pytest.raises(ModelConfigError) as err:
        DetectionModel(d, verbose=False)
    message = str(err.value)
    assert message.startswith("mine.yaml: row 10 (head) DySample(256, 2, 'lp', 3) cannot be built"), message
    assert message.endswith("(row form [scale=2, style='lp', groups=4, dyscope=False])"), message
