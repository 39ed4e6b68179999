#!/usr/bin/env bash
# Installs, from Debian's packages, everything nanobatch needs to build, test and run.
# Idempotent: when everything is present it only checks (about a second) and installs nothing.
set -euo pipefail

packages=(
  bazel-bootstrap          # Bazel 4.2.3, WORKSPACE mode (see third_party/README.md)
  g++
  libboost1.81-dev         # Asio, Beast, JSON, URL headers (1.74 is too old for coroutines)
  libboost-json1.81-dev
  libboost-url1.81-dev
  libssl-dev               # OpenSSL 3: TLS, SHA-256
  libsimdjson-dev          # JSONL manifests
  libxxhash-dev            # XXH3 fingerprints of manifest lines
  libmimalloc-dev          # the nanobatch binary's allocator
  libyaml-cpp-dev          # YAML manifests and config
  libcli11-dev             # command line
  doctest-dev              # tests
  libsystemd-dev           # sd_notify for the systemd service
  libarchive-dev           # export --format webdataset: tar shards
  protobuf-compiler        # proto/ (protoc runs in a genrule)
  libprotobuf-dev
  libpng-dev               # the simulator's images
  libjpeg62-turbo-dev
  zlib1g-dev
  openssl                  # test certificates
  time                     # /usr/bin/time for tools/bench
  curl                     # an independent client for the simulator's tests
  systemd                  # systemd-analyze: the shipped unit is verified and rated in a test
  prometheus               # promtool: serve's /metrics is checked with Prometheus's own linter
  ca-certificates
  python3                  # tools/coroutine_lint.py (part of tools/test.sh), tools/bench
  python3-aiohttp          # tools/bench: the asyncio + aiohttp baseline
  jq                       # tools/bench: the xargs + curl baseline
  clang                    # tools/fuzz.sh: libFuzzer targets (clang 14)
  libclang-rt-14-dev       # libFuzzer, ASan and UBSan runtimes for clang
  clang-tidy               # tools/tidy.sh
  chromium                 # the gallery's test: the page in a real headless browser
  chromium-driver
  python3-selenium         # tools/gallery/gallery_check.py drives it
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -q
# libboost1.81-dev replaces Debian's default 1.74 headers if those are installed.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
