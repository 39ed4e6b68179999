#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts the project's API simulator on loopback
# (throwaway TLS certificates, a separate file host), and runs a real batch against it:
# images land in demo-out/images/ with metadata.jsonl. Estimates it first, then shows
# `nanobatch status` and writes demo-out/images/index.html, a gallery to open in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
bazel build //runner:nanobatch //tools/fake_api </dev/null

work=demo-out
rm -rf "$work"
mkdir -p "$work"
tools/fake_api/make_test_certs.sh "$work/certs"
bazel-bin/tools/fake_api/fake_api --cert "$work/certs/server.pem" --key "$work/certs/server.key" \
  --port 0 --file-port 0 --port-file "$work/ports.json" \
  --pending-ms 200 --processing-ms 600 --latency-jitter 0.5 --image-scale 0.25 \
  --p-poll-5xx 0.05 --p-reset 0.1 --seed 42 --api-key sk-demo-local \
  2>"$work/fake_api.log" &
simulator=$!
trap 'kill "$simulator" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
api_port=$(sed -E 's/.*"api_port": ([0-9]+).*/\1/' "$work/ports.json")
file_port=$(sed -E 's/.*"file_port": ([0-9]+).*/\1/' "$work/ports.json")

echo "== nanobatch validate"
bazel-bin/runner/nanobatch validate testdata/manifests/demo.jsonl --config configs/demo.yaml
echo "== nanobatch estimate (what the run will pay and take; nothing is sent)"
bazel-bin/runner/nanobatch estimate --config configs/demo.yaml
echo "== nanobatch run (against the simulator on https://127.0.0.1:$api_port)"
status=0
AIVIDEOAPI_API_KEY=sk-demo-local \
  bazel-bin/runner/nanobatch run --config configs/demo.yaml \
  --base-url "https://127.0.0.1:$api_port" --ca-file "$work/certs/ca.pem" \
  --allow-download-host "localhost:$file_port" --allow-download-network 127.0.0.0/8 || status=$?
echo "== nanobatch status"
bazel-bin/runner/nanobatch status --out "$work/images"
echo "== nanobatch gallery"
bazel-bin/runner/nanobatch gallery --out "$work/images"
echo "== images"
ls -l "$work/images"
exit "$status"
