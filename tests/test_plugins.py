"""User modules from a plugin file or an entry point, and the registry's errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yoloab.cli.app import app
from yoloab.errors import DuplicateModuleError, PluginError, UnknownModuleError
from yoloab.models import get_base_model
from yoloab.plugins import load_plugin
from yoloab.variants import build, count_params, make_variant

PLUGIN = '''
"""A user's own downsampling module."""
from torch import nn
from ultralytics.nn.modules import Conv
from yoloab import Placement, register_module


@register_module(role="downsample", channels="conv", paper="mine", article=Placement("backbone", (8,)))
class TmpDown(nn.Module):
    def __init__(self, c1, c2, k=3, s=2):
        super().__init__()
        self.cv1 = Conv(c1, c2, k, s, g=1)
        self.cv2 = Conv(c2, c2, 1, 1)

    def forward(self, x):
        return self.cv2(self.cv1(x))
'''


@pytest.fixture
def plugin_file(tmp_path, clean_registry) -> Path:
    path = tmp_path / "my_modules.py"
    path.write_text(PLUGIN)
    return path


def test_plugin_module_builds_inside_a_yaml_placement(plugin_file):
    load_plugin(plugin_file)
    variant = make_variant(get_base_model("yolov8n"), "TmpDown", "article")
    assert variant.rows == [3]  # the plugin's own article placement: backbone P3
    # row 3 of yolov8n is Conv(32, 64, 3, 2): replaced by Conv(32, 64, 3, 2) + Conv(64, 64, 1)
    assert count_params(build(variant)) == 3_157_200 + (64 * 64 + 2 * 64)


def test_plugin_file_is_loaded_once(plugin_file):
    assert load_plugin(plugin_file) is load_plugin(plugin_file)


def test_plugin_works_through_the_cli(plugin_file, tmp_path):
    out = tmp_path / "v"
    result = CliRunner().invoke(
        app, ["variants", "--plugin", str(plugin_file), "--model", "yolov8n", "--module", "TmpDown", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "3,161,424" in result.output
    assert (out / "yolov8n-TmpDown-article.yaml").is_file()


def test_plugin_that_fails_to_import_is_one_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\nraise RuntimeError('boom in plugin')\n")
    with pytest.raises(PluginError, match=r"broken\.py failed to import: RuntimeError: boom in plugin"):
        load_plugin(bad)
    result = CliRunner().invoke(app, ["list", "--plugin", str(bad)])
    assert result.exit_code == 4
    assert result.stderr.strip().count("\n") == 0
    assert "broken.py" in result.stderr and "boom in plugin" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_while_a_plugin_imports_stops_instead_of_blaming_the_plugin(tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("raise KeyboardInterrupt  # Ctrl-C pressed while this file imports\n")
    with pytest.raises(KeyboardInterrupt):
        load_plugin(slow)
    assert not any("slow" in name for name in sys.modules)


def test_missing_plugin_file(tmp_path):
    result = CliRunner().invoke(app, ["list", "--plugin", str(tmp_path / "nope.py")])
    assert result.exit_code == 4 and "plugin file not found" in result.stderr


def test_registering_a_name_twice_names_both_places(plugin_file, tmp_path):
    load_plugin(plugin_file)
    twin = tmp_path / "twin.py"
    twin.write_text(PLUGIN)
    with pytest.raises(PluginError) as err:
        load_plugin(twin)
    msg = str(err.value)
    assert "'TmpDown' is registered twice" in msg and f"{plugin_file}:" in msg and f"{twin}:" in msg


def test_registering_a_builtin_name_twice_is_an_error(clean_registry):
    from torch import nn

    from yoloab import register_module

    with pytest.raises(DuplicateModuleError, match=r"'ADown' is registered twice: first at .*adown\.py:\d+, again at"):
        register_module(nn.Identity, name="ADown")


def test_unknown_module_suggests_nearest():
    with pytest.raises(UnknownModuleError, match=r"unknown module 'DynamicConvv' \(nearest: DynamicConv"):
        make_variant(get_base_model("yolov8n"), "DynamicConvv", "all")


def test_entry_point_plugin_is_registered_on_import(tmp_path):
    (tmp_path / "ep_modules.py").write_text(PLUGIN.replace("TmpDown", "EpDown"))
    dist = tmp_path / "ep_modules-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-modules\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[yoloab.modules]\nep = ep_modules\n")
    code = textwrap.dedent(
        """
        import yoloab
        from yoloab.models import get_base_model
        from yoloab.variants import build, count_params, make_variant
        print(yoloab.MODULES.get("EpDown").origin.split(":")[0].endswith("ep_modules.py"))
        print(count_params(build(make_variant(get_base_model("yolov8n"), "EpDown", "article"))))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", str(3_157_200 + 64 * 64 + 2 * 64)]
