#!/usr/bin/env bash
# Issue 8's polling scenario: how close `nanobatch run` comes to the ideal wall time when it can
# only poll (no webhooks). Task latency uniform 2-6 s (simulator: processing 4000 ms ± 50 %),
# a server limited to 25 requests/s, the runner at --rate 20 --max-in-flight 64:
#   tools/bench/poll_bench.sh [ITEMS] [--callbacks] [EXTRA RUN FLAGS...]
# Prints wall time, the ideal bound max(items*2/rate, items*mean/max_in_flight) + max latency,
# their ratio, and polls per item as the server counted them. With --callbacks the simulator
# POSTs each task's callback to the runner's receiver (polls are then only a safety net).
set -euo pipefail
cd "$(dirname "$0")/../.."
items=${1:-300}
shift || true
callback_flags=()
if [ "${1:-}" = "--callbacks" ]; then
  shift
  receiver_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  callback_flags=(--callback-url "http://127.0.0.1:$receiver_port/hooks"
                  --callback-listen "127.0.0.1:$receiver_port")
fi
rate=20 in_flight=64 mean_s=4 max_s=6
bazel build -c opt //runner:nanobatch //tools/fake_api >/dev/null 2>&1 </dev/null
work=$(mktemp -d /tmp/nanobatch-pollbench.XXXXXX)
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$work"' EXIT
tools/fake_api/make_test_certs.sh "$work/certs"
awk -v n="$items" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"id\":\"p%d\",\"prompt\":\"poll benchmark prompt %d\"}\n", i, i }' > "$work/manifest.jsonl"
bazel-bin/tools/fake_api/fake_api --cert "$work/certs/server.pem" --key "$work/certs/server.key" \
  --port 0 --file-port 0 --port-file "$work/ports.json" --pending-ms 0 --processing-ms 4000 \
  --latency-jitter 0.5 --rate 25 --burst 25 --credits 100000000 \
  2>"$work/fake_api.log" &
simulator=$!
for _ in $(seq 100); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
api_port=$(sed -E 's/.*"api_port": ([0-9]+).*/\1/' "$work/ports.json")
file_port=$(sed -E 's/.*"file_port": ([0-9]+).*/\1/' "$work/ports.json")
start=$(date +%s.%N)
AIVIDEOAPI_API_KEY=sk-test bazel-bin/runner/nanobatch run --manifest "$work/manifest.jsonl" \
  --out "$work/out" --base-url "https://127.0.0.1:$api_port" --ca-file "$work/certs/ca.pem" \
  --allow-download-host "localhost:$file_port" --allow-download-network 127.0.0.0/8 --rate "$rate" --burst 4 --max-in-flight "$in_flight" \
  "${callback_flags[@]}" "$@" \
  2>"$work/run.log" || { tail -5 "$work/run.log"; exit 1; }
end=$(date +%s.%N)
stats=$(curl -s --cacert "$work/certs/ca.pem" "https://127.0.0.1:$api_port/_stats" || true)
queries=$(sed -nE 's/.*"queries":([0-9]+).*/\1/p' <<<"$stats")
accepted=$(sed -nE 's/.*"callbacks_accepted":([0-9]+).*/\1/p' <<<"$stats")
awk -v n="$items" -v s="$start" -v e="$end" -v r="$rate" -v f="$in_flight" -v m="$mean_s" \
    -v x="$max_s" -v q="${queries:-0}" -v c="${accepted:-0}" 'BEGIN {
  a = n * 2 / r; b = n * m / f; ideal = (a > b ? a : b) + x
  printf "poll_bench: %d items, latency uniform 2-6 s, --rate %d --max-in-flight %d, server 25 req/s\n", n, r, f
  printf "  wall %.1f s  ideal %.1f s  ratio %.2f  polls per item %.2f  callbacks accepted %d\n", e - s, ideal, (e - s) / ideal, q / n, c }'
