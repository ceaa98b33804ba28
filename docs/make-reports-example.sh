#!/usr/bin/env bash
# Regenerate the measured examples of docs/reports.md (about 3 minutes on 2 CPU cores).
#
#   docs/make-reports-example.sh [RESULTS_DIR] > /tmp/reports-example.txt
#
# Profiles yolov8n with ADown in one session, then with DWConv and GhostConv in another (yolov8n is timed again with
# them), prints the report's profile table (Markdown and the terminal at 100 columns), then the P95/P99 columns and
# the onnxruntime export status of a fresh profile.
set -euo pipefail
cd "$(dirname "$0")/.."
yoloab=${YOLOAB:-.venv/bin/yoloab}
python=${PYTHON:-.venv/bin/python}
results=${1:-/tmp/yoloab-docs-reports}
rm -rf "$results"
run() { echo "\$ $*"; "$@"; echo; }
run "$yoloab" profile --model yolov8n --module ADown --imgsz 64 --results "$results" --format md
run "$yoloab" profile --model yolov8n --module DWConv --module GhostConv --imgsz 64 --results "$results" --format md
run "$yoloab" report --results "$results" --format md
echo "\$ COLUMNS=100 yoloab report --results $results   # on a terminal"
"$python" - "$results" <<'PY'
import sys

from rich.console import Console

from yoloab.report import load_report, rich_report

console = Console(width=100, color_system=None)
for table in rich_report(load_report(sys.argv[1])):
    console.print(table)
PY
echo
run "$yoloab" profile --model yolov8n --module ADown --imgsz 64 --results "$results" --reprofile \
    --runtime torch --runtime onnxruntime --columns params,latency_ms,latency_p95_ms,latency_p99_ms,latency_ms_onnxruntime \
    --format md
