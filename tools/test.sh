#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite, then prints
# "N passed, N failed" (test cases, summed over every doctest binary). Exits non-zero on any
# failure, including a test target that did not build or did not report.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

output=$(mktemp)
trap 'rm -f "$output"' EXIT
bazel test //... --keep_going 2>&1 </dev/null | tee "$output"
bazel_status=${PIPESTATUS[0]}

passed=0
failed=0
# Each test target's final line in Bazel's summary: "//pkg:name   (cached) PASSED in 0.1s".
while read -r target verdict; do
  log="bazel-testlogs/$(echo "${target#//}" | tr ':' '/')/test.log"
  summary=$(grep -a '\[doctest\] test cases:' "$log" 2>/dev/null | tail -n 1)
  if [ "$verdict" != "PASSED" ] && [ "$verdict" != "FAILED" ] || [ -z "$summary" ]; then
    echo "test.sh: $target did not report its test cases ($verdict)" >&2
    failed=$((failed + 1))
    continue
  fi
  # "[doctest] test cases: 12 | 11 passed | 1 failed | 0 skipped"
  p=$(echo "$summary" | sed -E 's/.*\| *([0-9]+) passed.*/\1/')
  f=$(echo "$summary" | sed -E 's/.*\| *([0-9]+) failed.*/\1/')
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$verdict" = "FAILED" ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
done < <(grep -E '^//[^ ]+ +(\(cached\) +)?(PASSED|FAILED|NO STATUS|FAILED TO BUILD|TIMEOUT|FLAKY)' "$output" |
           sed -E 's/\(cached\) +//; s/FAILED TO BUILD/FAILED_TO_BUILD/; s/NO STATUS/NO_STATUS/' |
           awk '{ print $1, $2 }')

echo "$passed passed, $failed failed"
if [ "$bazel_status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
