#!/usr/bin/env bash
# `nanobatch validate` on a generated JSONL manifest, under /usr/bin/time -v:
#   tools/bench/validate_bench.sh [LINES]
# Prints the command's own summary, its wall time, lines/s, MB/s and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-1000000}
bazel build -c opt //runner:nanobatch >/dev/null 2>&1 </dev/null
work=$(mktemp -d /tmp/nanobatch-validate.XXXXXX)
trap 'rm -rf "$work"' EXIT
awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"id\":\"img-%d\",\"prompt\":\"a photorealistic portrait of a lighthouse keeper number %d, golden hour\",\"resolution\":\"2K\"}\n", i, i }' \
  > "$work/manifest.jsonl"
bytes=$(stat -c %s "$work/manifest.jsonl")
/usr/bin/time -v bazel-bin/runner/nanobatch validate "$work/manifest.jsonl" 2>"$work/time.log"
wall=$(grep 'Elapsed (wall clock)' "$work/time.log" | awk -F': ' '{print $2}' | awk -F: '{print $(NF-1)*60 + $NF}')
rss=$(grep 'Maximum resident' "$work/time.log" | awk '{print $NF}')
awk -v l="$lines" -v b="$bytes" -v w="$wall" -v r="$rss" 'BEGIN {
  printf "validate_bench: %d lines, %.1f MB in %.2f s: %.0f lines/s, %.1f MB/s, peak RSS %.1f MB\n",
         l, b / 1e6, w, l / w, b / 1e6 / w, r / 1024 }'
