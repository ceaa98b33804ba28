"""Profile cost against the bare Ultralytics loop, and a fully reused profile (issue 23), run on request:
`python -m pytest -m benchmark -s tests/test_profile_speed.py` (about 5 minutes on a shared 2-core machine).

Whole processes, run alternately in the same minutes, compared by CPU time (`getrusage(RUSAGE_CHILDREN)`): on a
shared machine a ratio of interleaved runs holds where absolute seconds do not. Figures go to docs/timing.md.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

ROOT = Path(__file__).resolve().parent.parent
PAIRS = 2
# Ultralytics first, as a user's script would: it sets OMP_NUM_THREADS=1 before torch loads; then yoloab, whose import
# registers the catalog's modules with Ultralytics' yaml parser
BARE = """
import sys
from pathlib import Path
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops
import yoloab
for y in ["yolov8n.yaml", *sorted(str(p) for p in Path(sys.argv[1]).glob("*.yaml"))]:
    get_flops(YOLO(y).model, 640)
"""


# what any profile process pays before its first variant: the imports and the catalog's variants
STARTUP = """
import yoloab.cli.profile, yoloab.profiling, yoloab.report, yoloab.results
from yoloab.variants import select_request
select_request(["yolov8n"], ["all"])
"""


def _run(cmd: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one child process."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-3000:]
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def _profile(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "yoloab", "profile", "--model", "yolov8n", "--module", "all", "--no-latency"] + [
        "--results",
        str(results),
        "-f",
        "json",
        *extra,
    ]


@pytest.fixture(scope="module")
def yamls(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("yamls")
    _run([sys.executable, "-m", "yoloab", "variants", "--model", "yolov8n", "--module", "all", "--out", str(out)])
    assert len(list(out.glob("*.yaml"))) >= 12
    return out


def test_profile_counts_cost_at_most_one_and_a_half_bare_loops(tmp_path, yamls):
    bare, ours = [], []
    for i in range(PAIRS):
        bare.append(_run([sys.executable, "-c", BARE, str(yamls)]))
        ours.append(_run(_profile(tmp_path / f"r{i}")))  # a new folder: every variant built and counted
        print(f"pair {i}: bare {bare[-1][0]:.1f} s CPU ({bare[-1][1]:.1f} s wall), profile {ours[-1][0]:.1f} s CPU "
              f"({ours[-1][1]:.1f} s wall)")  # fmt: skip
    cpu = sum(c for c, _ in ours) / sum(c for c, _ in bare)
    wall = sum(w for _, w in ours) / sum(w for _, w in bare)
    print(f"profile --module all --no-latency / bare YOLO(yaml) + get_flops loop: {cpu:.2f}x CPU, {wall:.2f}x wall")
    assert cpu <= 1.5


def test_a_fully_reused_profile_costs_its_start_up_and_builds_nothing(tmp_path):
    results = tmp_path / "r"
    first = _run(_profile(results))
    reused, startup = [], []
    for _ in range(PAIRS):
        reused.append(_run(_profile(results)))
        startup.append(_run([sys.executable, "-c", STARTUP]))
    of_first = sum(c for c, _ in reused) / len(reused) / first[0]
    of_startup = sum(c for c, _ in reused) / sum(c for c, _ in startup)
    print(
        f"first run {first[0]:.1f} s CPU ({first[1]:.1f} s wall); fully reused "
        + ", ".join(f"{c:.1f} s CPU ({w:.1f} s wall)" for c, w in reused)
        + f" = {of_first:.2f}x the first run; start-up alone "
        + ", ".join(f"{c:.1f} s CPU" for c, _ in startup)
        + f": reused = {of_startup:.2f}x start-up"
    )
    assert of_startup <= 1.3  # beyond the start-up only the plan, 21 records read and the table: no model built
