"""Bad command lines are one line on stderr: option values, click's own usage errors, `--columns`, `--plugin DIR`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_report import make_store
from typer.testing import CliRunner

from yoloab.cli.app import app

runner = CliRunner()
YOLOAB = [sys.executable, "-m", "yoloab"]


def _one_line(result, code: int, *needles: str) -> str:
    """The single stderr line of a refused command (CliRunner result), checked for its exit code and words."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output and "Warning" not in result.output
    return lines[0]


# --------------------------------------------------------------------------------------------------------------------
# --nc below 1


@pytest.mark.parametrize("nc", ["0", "-3"], ids=["zero", "negative"])
@pytest.mark.parametrize("build", ["--build", "--no-build"], ids=["build", "no-build"])
def test_variants_refuses_nc_below_one_in_one_line(tmp_path, nc, build):
    out = tmp_path / "out"
    args = ["variants", "--model", "yolov8n", "--module", "ADown", "--nc", nc, build, "--out", str(out)]
    result = runner.invoke(app, args)
    _one_line(result, 2, f"--nc {nc} must be at least 1")
    assert not out.exists()  # no yaml written with a class count no model can have


# --------------------------------------------------------------------------------------------------------------------
# click's usage errors

USAGE_ERRORS = [
    (["profile", "--imgsz", "abc"], "Invalid value for '--imgsz'"),
    (["profile", "--nope"], "No such option: --nope"),
    (["profile", "--imgsz"], "Option '--imgsz' requires an argument"),
    (["sweep", "--model", "yolov8n"], "Missing option '--dataset'"),
    (["nope"], "No such command 'nope'"),
    (["--nope"], "No such option: --nope"),
]
USAGE_IDS = ["not-an-int", "unknown-option", "missing-value", "missing-required", "unknown-command", "root-option"]


@pytest.mark.parametrize(("args", "needle"), USAGE_ERRORS, ids=USAGE_IDS)
def test_usage_errors_are_one_line_in_a_real_process(args, needle):
    done = subprocess.run([*YOLOAB, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr  # one line, nothing before or after it
    assert done.stderr.startswith("error: ") and needle in done.stderr, done.stderr
    assert "Usage:" not in done.stderr and "Try " not in done.stderr


@pytest.mark.parametrize(("args", "needle"), USAGE_ERRORS, ids=USAGE_IDS)
def test_usage_errors_are_one_line_in_the_test_runner(args, needle):
    _one_line(runner.invoke(app, args), 2, needle)


def test_help_is_still_clicks_help():
    # the one-line errors must not swallow help: --help, and a bare `yoloab`, still print click's usage and options
    for args, code in ((["profile", "--help"], 0), (["--help"], 0), ([], 2)):
        done = subprocess.run([*YOLOAB, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        shown = done.stdout + done.stderr
        assert shown.startswith("Usage: yoloab") and "Options:" in shown and "error:" not in shown, shown
    # and the usage errors were one line (this test runs them too, so that it can fail without them)
    assert subprocess.run([*YOLOAB, "profile", "--nope"], capture_output=True, text=True).stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------------------------------
# report --columns


@pytest.mark.parametrize(
    "columns",
    ["", " , ", "params,params", "map50, params ,map50"],
    ids=["empty", "only-commas", "duplicate", "duplicate-spaced"],
)
def test_report_columns_empty_or_repeated_are_refused(tmp_path, columns):
    store = make_store(tmp_path / "store")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["report", "--results", str(store), "--format", "latex", "--columns", columns, "--out", str(out)]
    )
    line = _one_line(result, 2, "--columns")
    assert "params, gflops" in line and "map50_95" in line  # names the metric keys it takes
    assert not out.exists()


# --------------------------------------------------------------------------------------------------------------------
# --plugin DIR


@pytest.mark.parametrize("verb", ["variants", "profile"])
def test_a_plugin_directory_is_said_to_be_a_directory(tmp_path, verb):
    folder = tmp_path / "my_modules"
    folder.mkdir()
    result = runner.invoke(app, [verb, "--plugin", str(folder), "--results" if verb == "profile" else "--no-build"]
                           + ([str(tmp_path / "results")] if verb == "profile" else []))  # fmt: skip
    line = _one_line(result, 4, str(folder), "is a directory", ".py file")
    assert "not found" not in line
    assert not (tmp_path / "results").exists()
