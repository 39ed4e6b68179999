#!/usr/bin/env bash
# End-to-end throughput of `nanobatch run` against the local simulator (loopback, verified TLS,
# real files and fsyncs), measured with /usr/bin/time -v:
#   tools/bench/engine_bench.sh [ITEMS] [PROCESSING_MS] [MAX_IN_FLIGHT]
# Prints tasks/s end to end, CPU seconds per 1,000 tasks and the runner's peak RSS.
# With PROCESSING_MS high enough, MAX_IN_FLIGHT tasks are all in flight at once (peak RSS then).
set -euo pipefail
cd "$(dirname "$0")/../.."
items=${1:-2000}
processing_ms=${2:-0}
in_flight=${3:-500}
bazel build -c opt //runner:nanobatch //tools/fake_api >/dev/null 2>&1 </dev/null
work=$(mktemp -d /tmp/nanobatch-bench.XXXXXX)
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$work"' EXIT
tools/fake_api/make_test_certs.sh "$work/certs"
awk -v n="$items" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"id\":\"b%d\",\"prompt\":\"benchmark prompt number %d\",\"resolution\":\"%s\"}\n", i, i,
         (i % 3 == 0 ? "1K" : (i % 3 == 1 ? "2K" : "4K")) }' > "$work/manifest.jsonl"
bazel-bin/tools/fake_api/fake_api --cert "$work/certs/server.pem" --key "$work/certs/server.key" \
  --port 0 --file-port 0 --port-file "$work/ports.json" --pending-ms 0 \
  --processing-ms "$processing_ms" --credits 100000000 2>"$work/fake_api.log" &
simulator=$!
for _ in $(seq 100); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
api_port=$(sed -E 's/.*"api_port": ([0-9]+).*/\1/' "$work/ports.json")
file_port=$(sed -E 's/.*"file_port": ([0-9]+).*/\1/' "$work/ports.json")
cat > "$work/config.yaml" <<YAML
polling: {first_poll_s: 0.05, max_interval_s: 1}
limits: {rate: 10000, burst: 1000, max_in_flight: $in_flight, max_downloads: 16}
log: {progress_interval_s: 5}
YAML
start=$(date +%s.%N)
AIVIDEOAPI_API_KEY=sk-test /usr/bin/time -v bazel-bin/runner/nanobatch run --config "$work/config.yaml" \
  --manifest "$work/manifest.jsonl" --out "$work/out" --base-url "https://127.0.0.1:$api_port" \
  --ca-file "$work/certs/ca.pem" --allow-download-host "localhost:$file_port" --allow-download-network 127.0.0.0/8 2>"$work/run.log" || true
end=$(date +%s.%N)
user=$(grep 'User time' "$work/run.log" | awk '{print $NF}')
sys=$(grep 'System time' "$work/run.log" | awk '{print $NF}')
rss=$(grep 'Maximum resident' "$work/run.log" | awk '{print $NF}')
done_count=$(wc -l < "$work/out/metadata.jsonl")
awk -v n="$done_count" -v s="$start" -v e="$end" -v u="$user" -v y="$sys" -v r="$rss" \
    -v items="$items" -v p="$processing_ms" -v f="$in_flight" 'BEGIN {
  printf "engine_bench: %d items (%d done), task latency %d ms, max_in_flight %d\n", items, n, p, f
  printf "  wall %.2f s  %.1f tasks/s  CPU %.2f s (user %.2f + sys %.2f) = %.2f CPU s per 1000 tasks  peak RSS %.1f MB\n",
         e - s, n / (e - s), u + y, u, y, (u + y) * 1000 / n, r / 1024 }'
grep -E 'run ended' "$work/run.log" | tail -1
