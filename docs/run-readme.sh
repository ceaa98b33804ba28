#!/usr/bin/env bash
# Run the README's main job (its first code block, after the install) and keep what each verb printed, for the
# README's tour: docs/tour/<n>-<verb>.txt (stdout and stderr, as the terminal showed them at 100 columns) and
# docs/tour/timing.txt (wall time of each command).
#
#   docs/run-readme.sh [WORK_DIR]
#
# WORK_DIR (default: a new temporary folder) is where `variants/`, `results/` and `report/` are written, so the
# project's own `variants/` is left alone. tests/test_docs_commands.py checks that the commands below are the
# README's. On a 2-core CPU it takes about 15 minutes; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
yoloab=${YOLOAB:-$root/.venv/bin/yoloab}
work=${1:-$(mktemp -d /tmp/yoloab-readme.XXXXXX)}
out=$root/docs/tour
mkdir -p "$work" "$out"
rm -f "$out"/*.txt
export COLUMNS=100 YOLO_CONFIG_DIR="$work/ultralytics-settings"
cd "$work"
# the README's main job, one command per line (keep in sync with README.md: the test compares them)
commands=(
    "yoloab list"
    "yoloab variants --preset article --out variants"
    "yoloab profile --model yolov8n --module all --imgsz 128 --nc 3"
    "yoloab sweep --dataset builtin --model yolov8n --module ADown --module DynamicConv --epochs 5 --imgsz 128 --batch 8 --quiet"
    "yoloab report --out report"
)
n=0
for command in "${commands[@]}"; do
    n=$((n + 1))
    verb=$(echo "$command" | cut -d' ' -f2)
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$yoloab" ${command#yoloab } >"$out/$n-$verb.txt" 2>&1 || echo "exit $? from: $command" | tee -a "$out/$n-$verb.txt"
    echo "$command: $(($(date +%s) - start)) s" | tee -a "$out/timing.txt"
done
cp report/report.md "$out/report.md"
echo "outputs in $out (work folder $work)"
