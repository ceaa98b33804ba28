"""A thin, fast shell: `--help` loads no heavy library, completion works, and `import yoloab` stays cheap yet
registers the catalog; the registry and the Ultralytics adapter import each other in one direction only.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import yoloab

ROOT = Path(yoloab.__file__).resolve().parents[1]
HEAVY = ("torch", "ultralytics", "pandas", "matplotlib", "ray", "numpy")
VERBS = ("list", "variants", "profile", "sweep", "report")


def _python(code: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}  # this checkout, not an installed copy
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("argv", [["--help"], *([verb, "--help"] for verb in VERBS)], ids=["top", *VERBS])
def test_help_imports_no_heavy_library(argv):
    code = textwrap.dedent(
        f"""
        import sys
        from yoloab.cli.app import main
        sys.argv = ["yoloab", *{argv!r}]
        try:
            main()
        except SystemExit as e:
            assert e.code in (0, None), e.code
        print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
        """
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert "Usage: yoloab" in out.stdout
    assert lines[-1] == "[]", f"--help imported {lines[-1]}"


def test_report_runs_without_importing_torch(tmp_path):
    # a profile-only store: one record written as the profile verb writes it, read back and rendered by `report`
    record = {
        "kind": "profile", "key": "0123456789abcdef0123", "variant": "yolov8n", "base": "yolov8n", "module": None,
        "placement": None, "nc": 80, "imgsz": 640, "params": 3157200, "gflops": 8.86, "gflops_aten": 8.74,
        "profiled": "2026-12-02T00:00:00+00:00",
    }  # fmt: skip
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / f"{record['key']}.json").write_text(json.dumps(record))
    code = textwrap.dedent(
        f"""
        import sys
        from yoloab.cli.app import main
        sys.argv = ["yoloab", "report", "--results", {str(tmp_path)!r}, "--format", "csv"]
        try:
            main()
        except SystemExit as e:
            assert e.code in (0, None), e.code
        print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "ultralytics", "torchvision"}}))
        """
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "yolov8n" in out.stdout and "3157200" in out.stdout  # the record was read and rendered
    assert out.stdout.strip().splitlines()[-1] == "[]", "report imported torch or Ultralytics"


def test_import_yoloab_is_cheap_and_still_registers_the_catalog_with_ultralytics(tmp_path):
    yaml = tmp_path / "adown.yaml"
    yaml.write_text(
        "nc: 3\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, ADown, [32]]\n"
        "head:\n  - [[-1], 1, Detect, [nc]]\n"
    )
    code = textwrap.dedent(
        f"""
        import sys
        import yoloab
        print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
        from ultralytics import YOLO
        model = YOLO({str(yaml)!r}).model
        print(type(model.model[1]).__name__, "ADown" in yoloab.MODULES)
        """
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "ADown True"]


def test_ultralytics_imported_first_is_wrapped_when_yoloab_is_imported():
    code = "from ultralytics.nn import tasks\nimport yoloab\nprint(hasattr(tasks.parse_model, '__yoloab_original__'))"
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True"]


def test_completion_installs_and_completes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    code = "import sys\nfrom yoloab.cli.app import main\nsys.argv = ['yoloab', *sys.argv[1:]]\nmain()"
    # Typer's --install-completion is a flag that finds the shell among the caller's parent processes (shellingham;
    # $SHELL only counts for a login shell), so pytest started without a shell above it got "Shell None is not
    # supported". Typer's own switch turns the flag into --install-completion SHELL: the test names bash itself.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(home),
        "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1",
    }
    run = [sys.executable, "-c", code]
    out = subprocess.run([*run, "--install-completion", "bash"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.startswith("bash completion installed in"), out.stdout
    script = home / ".bash_completions" / "yoloab.sh"
    assert "_YOLOAB_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (home / ".bashrc").read_text()
    env |= {"_YOLOAB_COMPLETE": "complete_bash", "COMP_WORDS": "yoloab pro", "COMP_CWORD": "1"}
    out = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["profile"], out.stderr[-2000:]


def _imports(path: Path) -> set[str]:
    """Every module a top-level yoloab file imports, deferred imports too (`from . import x` is `yoloab.x`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(f"yoloab.{node.module}")
        elif isinstance(node, ast.ImportFrom):
            names |= {f"yoloab.{a.name}" for a in node.names}
    return names


def test_registry_and_ultralytics_adapter_import_in_one_direction():
    registry = _imports(ROOT / "yoloab" / "registry.py")
    adapter = _imports(ROOT / "yoloab" / "_ultralytics" / "__init__.py")
    assert "yoloab._ultralytics" not in registry
    assert "yoloab.registry" in adapter


@pytest.mark.benchmark
@pytest.mark.parametrize("argv", [["--help"], ["profile", "--help"]], ids=["top", "profile"])
def test_help_answers_under_half_a_second(argv):
    """Median of 5 runs under 0.5 s of CPU (user + system) of the child, wall time printed beside it.

    CPU time is what the command costs; on a shared machine the wall time also counts the wait for a free core.
    """
    walls, cpus = [], []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "yoloab", *argv], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert out.returncode == 0
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"\nyoloab {' '.join(argv)}: median {cpu:.2f} s CPU, {wall:.2f} s wall (load {os.getloadavg()[0]:.1f})")
    assert cpu < 0.5


def _runtime_imports(path: Path, package: str) -> set[str]:
    """The yoloab modules a file imports at run time (deferred imports too; `if TYPE_CHECKING:` blocks left out)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level else ""
        module = ".".join(p for p in (base, node.module or "") if p)
        names |= {module} | {f"{module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("yoloab")}


def test_no_import_circle_among_modules():
    # packages' __init__ files are left out: they import their own submodules by design
    files = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts): p
        for p in (ROOT / "yoloab").rglob("*.py")
        if p.name != "__init__.py"
    }
    graph = {m: _runtime_imports(p, m.rsplit(".", 1)[0]) & set(files) - {m} for m, p in files.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    circles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not circles, f"modules that import each other (directly or through others): {circles}"
