#!/usr/bin/env bash
# clang-tidy over nanobatch's own C++ (every .cc under runner/ and tools/), with the checks in
# .clang-tidy (bugprone, performance, parts of the static analyzer; warnings are errors):
#   tools/tidy.sh [--changed] [FILE...]
# Builds the generated protobuf headers first (the only generated sources), runs two files at a
# time, prints each finding, and ends with "tidy: N files, M findings"; exits 1 on any.
#
# A clean run over every file records what it checked in tools/tidy.clean: a key (the hash of
# .clang-tidy, this script and every header) and the hash of each .cc. With --changed (what
# tools/test.sh runs) only the .cc files not recorded clean under the same key are checked: after
# a header or the configuration changes, everything is. Commit tools/tidy.clean with the code.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1

changed=0
if [ "${1:-}" = "--changed" ]; then
  changed=1
  shift
fi
record=tools/tidy.clean
key=$( (cat .clang-tidy tools/tidy.sh; find runner tools -name '*.h' | sort | xargs cat) |
      sha256sum | cut -c1-64)
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find runner tools -name '*.cc' | sort)
fi
all_files=("${files[@]}")
if [ "$changed" = 1 ] && [ -f "$record" ] && [ "$(head -n 1 "$record")" = "key $key" ]; then
  pending=()
  for file in "${files[@]}"; do
    grep -qx "$(sha256sum "$file" | cut -c1-64) $file" "$record" || pending+=("$file")
  done
  files=("${pending[@]+"${pending[@]}"}")
fi

findings=0
if [ ${#files[@]} -gt 0 ]; then
  bazel build //proto:journal_cc_proto </dev/null >/dev/null 2>&1 || {
    echo "tidy.sh: cannot build the generated headers (bazel build //proto:journal_cc_proto)" >&2
    exit 1
  }
  generated=$(bazel info bazel-bin 2>/dev/null)
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  printf '%s\n' "${files[@]}" |
    xargs -P 2 -I{} sh -c 'clang-tidy --quiet "$1" -- -std=c++20 -I. -I"$2" -DNDEBUG \
        -DNANOBATCH_FUZZ_CORPUS="\"testdata/fuzz\"" >"$3/$(echo "$1" | tr / _).log" 2>&1' \
        _ {} "$generated" "$out"
  # Findings in the project's files count; the analyzer's paths that end inside Boost's headers
  # (Asio's coroutine frames, which it cannot model) are listed apart and do not.
  cat "$out"/*.log | grep -E '(error|warning): ' | grep -v 'warnings generated' |
    sort -u >"$out/all"
  grep -E '^(/[^:]*/)?(\./)?(runner|tools)/' "$out/all" >"$out/ours"
  grep -vE '^(/[^:]*/)?(\./)?(runner|tools)/' "$out/all" >"$out/theirs"
  cat "$out/ours"
  if [ -s "$out/theirs" ]; then
    echo "tidy: $(wc -l <"$out/theirs") analyzer paths ending in library headers, not counted:"
    sed 's/^/  /' "$out/theirs"
  fi
  findings=$(wc -l <"$out/ours")
fi
echo "tidy: ${#files[@]} files checked ($(( ${#all_files[@]} - ${#files[@]} )) recorded clean), $findings findings"
# A clean run over the whole tree (checked now or recorded clean) is recorded.
if [ "$findings" -eq 0 ] && [ $# -eq 0 ]; then
  {
    echo "key $key"
    for file in "${all_files[@]}"; do echo "$(sha256sum "$file" | cut -c1-64) $file"; done
  } >"$record"
fi
[ "$findings" -eq 0 ]
