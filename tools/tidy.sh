#!/usr/bin/env bash
# clang-tidy over nanobatch's own C++ (every .cc under runner/ and tools/), with the checks in
# .clang-tidy (bugprone, performance, parts of the static analyzer; warnings are errors):
#   tools/tidy.sh [FILE...]
# Builds the generated protobuf headers first (the only generated sources), runs two files at a
# time, prints each finding, and ends with "tidy: N files, M with findings"; exits 1 on any.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1
bazel build //proto:journal_cc_proto </dev/null >/dev/null 2>&1 || {
  echo "tidy.sh: cannot build the generated headers (bazel build //proto:journal_cc_proto)" >&2
  exit 1
}
generated=$(bazel info bazel-bin 2>/dev/null)
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find runner tools -name '*.cc' | sort)
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%s\n' "${files[@]}" |
  xargs -P 2 -I{} sh -c 'clang-tidy --quiet "$1" -- -std=c++20 -I. -I"$2" -DNDEBUG \
      -DNANOBATCH_FUZZ_CORPUS="\"testdata/fuzz\"" >"$3/$(echo "$1" | tr / _).log" 2>&1' \
      _ {} "$generated" "$out"
# Findings in the project's files count; the analyzer's paths that end inside Boost's headers
# (Asio's coroutine frames, which it cannot model) are listed apart and do not.
cat "$out"/*.log | grep -E '(error|warning): ' | grep -v 'warnings generated' | sort -u >"$out/all"
grep -E '^(/[^:]*/)?(\./)?(runner|tools)/' "$out/all" >"$out/ours"
grep -vE '^(/[^:]*/)?(\./)?(runner|tools)/' "$out/all" >"$out/theirs"
cat "$out/ours"
if [ -s "$out/theirs" ]; then
  echo "tidy: $(wc -l <"$out/theirs") analyzer paths ending in library headers, not counted:"
  sed 's/^/  /' "$out/theirs"
fi
findings=$(wc -l <"$out/ours")
echo "tidy: ${#files[@]} files, $findings findings"
[ "$findings" -eq 0 ]
