#!/usr/bin/env bash
# Regenerate docs/report-example.md and docs/img/*.png from a results store.
#
#   docs/make-report-example.sh [RESULTS_DIR]
#
# With no argument it first builds a small store in /tmp/yoloab-docs-results (CPU, about 25 minutes on 2 cores):
# yolov8n, yolov8n-ADown-article and yolov8n-DynamicConv-article, 5 epochs on the built-in dataset at imgsz 128,
# seeds 0 and 1, then their latency at imgsz 320 (nc 3, as trained). Point it at a real sweep's results directory
# to skip that; STORE_NOTE then says in one sentence what the store holds.
set -euo pipefail
cd "$(dirname "$0")/.."
yoloab=${YOLOAB:-.venv/bin/yoloab}
results=${1:-}
note=${STORE_NOTE:-"the results directory \`$results\`"}
if [[ -z "$results" ]]; then
    results=/tmp/yoloab-docs-results
    models=(--model yolov8n --module ADown --module DynamicConv)
    "$yoloab" sweep --dataset builtin "${models[@]}" --epochs 5 --imgsz 128 --seed 0 --seed 1 --device cpu \
        --results "$results"
    "$yoloab" profile "${models[@]}" --nc 3 --imgsz 320 --results "$results" --format md >/dev/null
    note="a small store made by this script: yolov8n, yolov8n-ADown-article and yolov8n-DynamicConv-article trained \
5 epochs on the built-in shapes dataset at imgsz 128 with seeds 0 and 1 on a CPU, and profiled at imgsz 320 \
(5 epochs show the format, not the modules' merit)"
fi
rm -f docs/img/*.png
"$yoloab" report --results "$results" --format md --out docs/img
{
    echo "# Example report"
    echo
    echo "Produced by \`yoloab report --results $results --format md --out docs/img\` from $note."
    echo "Regenerate with \`docs/make-report-example.sh [RESULTS_DIR]\`."
    echo
    # the report's headings move one level down, its image links into img/
    sed -e '1,2d' -e 's/^## /### /' -e 's/](\([^)]*\.png\))/](img\/\1)/' docs/img/report.md
} > docs/report-example.md
rm docs/img/report.md
echo "wrote docs/report-example.md and $(ls docs/img | wc -l) plots in docs/img"
