#!/usr/bin/env bash
# Memory and start-up of `nanobatch run` on a large manifest (issue 8: 1,000,000 items under
# 256 MiB with max_in_flight 1000, on first start and on resume):
#   tools/bench/memory_bench.sh [ITEMS] [SECONDS] [FIRST_SECONDS]
# Generates ITEMS realistic prompts (~200 bytes each), runs against the simulator for
# FIRST_SECONDS (default SECONDS; then SIGTERM, or until it ends), then resumes the same output
# directory for SECONDS. Prints, for each, the peak RSS (/usr/bin/time -v), the seconds until the
# first submission reached the server, how many tasks were submitted, and the items done.
set -euo pipefail
cd "$(dirname "$0")/../.."
items=${1:-1000000}
seconds=${2:-20}
first_seconds=${3:-$seconds}
bazel build -c opt //runner:nanobatch //tools/fake_api >/dev/null 2>&1 </dev/null
work=$(mktemp -d /tmp/nanobatch-memory.XXXXXX)
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$work"' EXIT
tools/fake_api/make_test_certs.sh "$work/certs"
awk -v n="$items" 'BEGIN {
  split("a lighthouse keeper|an old fisherman|a red fox|a tea house|a mountain village|a cyberpunk alley|a violin maker|a desert caravan", subject, "|")
  split("golden hour, 35mm film, shallow depth of field|watercolour on rough paper, soft edges|isometric 3D render, pastel colours|oil painting in the style of the Dutch masters", style, "|")
  for (i = 0; i < n; i++)
    printf "{\"id\":\"item-%07d\",\"prompt\":\"%s number %d, seen from a low angle on a quiet morning, with detailed textures, gentle light and a calm mood; %s\",\"resolution\":\"%s\",\"aspect_ratio\":\"16:9\"}\n",
           i, subject[i % 8 + 1], i, style[i % 4 + 1], (i % 3 == 0 ? "1K" : (i % 3 == 1 ? "2K" : "4K"))
}' > "$work/manifest.jsonl"
manifest_mb=$(awk -v b="$(stat -c %s "$work/manifest.jsonl")" 'BEGIN { printf "%.0f", b / 1e6 }')
bazel-bin/tools/fake_api/fake_api --cert "$work/certs/server.pem" --key "$work/certs/server.key" \
  --port 0 --file-port 0 --port-file "$work/ports.json" --pending-ms 100 --processing-ms 400 \
  --credits 100000000000 2>"$work/fake_api.log" &
simulator=$!
for _ in $(seq 100); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
api_port=$(sed -E 's/.*"api_port": ([0-9]+).*/\1/' "$work/ports.json")
file_port=$(sed -E 's/.*"file_port": ([0-9]+).*/\1/' "$work/ports.json")
submissions() {
  curl -s --cacert "$work/certs/ca.pem" "https://127.0.0.1:$api_port/_stats" |
    sed -nE 's/.*"submissions":([0-9]+).*/\1/p'
}
cat > "$work/config.yaml" <<YAML
polling: {first_poll_s: 0.5, max_interval_s: 2}
limits: {rate: 2000, burst: 200, max_in_flight: 1000, max_downloads: 64}
log: {progress_interval_s: 5}
YAML
for phase in first-start resume; do
  before=$(submissions)
  start=$(date +%s.%N)
  AIVIDEOAPI_API_KEY=sk-test /usr/bin/time -v bazel-bin/runner/nanobatch run \
    --config "$work/config.yaml" --manifest "$work/manifest.jsonl" --out "$work/out" \
    --base-url "https://127.0.0.1:$api_port" --ca-file "$work/certs/ca.pem" \
    --allow-download-host "localhost:$file_port" --allow-download-network 127.0.0.0/8 2>"$work/run-$phase.log" &
  runner=$!
  first=""
  phase_seconds=$seconds
  [ "$phase" = first-start ] && phase_seconds=$first_seconds
  deadline=$(awk -v s="$start" -v d="$phase_seconds" 'BEGIN { printf "%.3f", s + d }')
  while kill -0 "$runner" 2>/dev/null; do
    now=$(date +%s.%N)
    if [ -z "$first" ] && [ "$(submissions)" -gt "$before" ]; then
      first=$(awk -v s="$start" -v n="$now" 'BEGIN { printf "%.1f", n - s }')
    fi
    if awk -v n="$now" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
      pkill -TERM -P "$runner" nanobatch 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$runner" || true
  rss=$(grep 'Maximum resident' "$work/run-$phase.log" | awk '{print $NF}')
  elapsed=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.0f", n - s }')
  done_items=$(wc -l < "$work/out/metadata.jsonl" 2>/dev/null || echo 0)
  printf "memory_bench %s: %d items (%s MB manifest), max_in_flight 1000: peak RSS %.1f MiB, first submission after %s s, %d submitted in %s s, %d items done in all\n" \
    "$phase" "$items" "$manifest_mb" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" \
    "${first:-never}" "$(( $(submissions) - before ))" "$elapsed" "$done_items"
done
