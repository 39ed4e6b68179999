#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite three ways, then
# prints "N passed, N failed" (test cases, summed over every doctest binary and pass):
#   1. the regular build (gcc -O2);
#   2. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer
#      (--config=asan; skip with NANOBATCH_SKIP_SANITIZERS=1 for a quick local run);
#   3. a smoke run of every fuzz target (tools/fuzz.sh --smoke: 5 s each, clang + libFuzzer),
#      each counted as one test case;
#   4. clang-tidy (tools/tidy.sh --changed: the files not recorded clean in tools/tidy.clean),
#      counted as one test case;
#   5. tools/coroutine_lint.py (a coroutine shape GCC 12.2 miscompiles), one test case.
# Exits non-zero on any failure, including a test target that did not build or did not report.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
status=0

# Adds up the doctest summaries of one `bazel test` run (its output in $1, its logs under $2).
count() {
  local output=$1 testlogs=$2 target verdict log summary p f
  # Each test target's final line in Bazel's summary: "//pkg:name   (cached) PASSED in 0.1s".
  while read -r target verdict; do
    log="$testlogs/$(echo "${target#//}" | tr ':' '/')/test.log"
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
}

output=$(mktemp)
trap 'rm -f "$output"' EXIT

echo "== test.sh: the suite" >&2
bazel test //... --keep_going 2>&1 </dev/null | tee "$output"
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1
count "$output" bazel-testlogs

if [ "${NANOBATCH_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== test.sh: the suite under ASan + UBSan + LSan" >&2
  start=$(date +%s)
  bazel test --config=asan //... --keep_going 2>&1 </dev/null | tee "$output"
  [ "${PIPESTATUS[0]}" -ne 0 ] && status=1
  count "$output" "$(bazel info --config=asan bazel-testlogs 2>/dev/null)"
  echo "test.sh: sanitizer pass took $(( $(date +%s) - start )) s" >&2

  echo "== test.sh: fuzz smoke run" >&2
  tools/fuzz.sh --smoke 2>&1 </dev/null | tee "$output"
  [ "${PIPESTATUS[0]}" -ne 0 ] && status=1
  fuzz=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed$' "$output" | tail -n 1)
  if [ -z "$fuzz" ]; then
    echo "test.sh: the fuzz smoke run did not report" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + $(echo "$fuzz" | sed -E 's/fuzz: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$fuzz" | sed -E 's/.* ([0-9]+) failed/\1/')))
  fi
fi

echo "== test.sh: clang-tidy" >&2
if tools/tidy.sh --changed </dev/null; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi

echo "== test.sh: coroutine lint" >&2
# A coroutine shape GCC 12.2 miscompiles (tools/coroutine_lint.py says which and why).
if python3 tools/coroutine_lint.py --self-test && python3 tools/coroutine_lint.py; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi

echo "$passed passed, $failed failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
