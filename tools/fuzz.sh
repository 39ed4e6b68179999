#!/usr/bin/env bash
# Fuzzes nanobatch's parsers with libFuzzer (clang, ASan + UBSan; targets in runner/fuzz):
#   tools/fuzz.sh [--time SECONDS] [--smoke] [TARGET...]
# Each target runs for SECONDS (default 300; --smoke: 5) on its seed corpus (testdata/fuzz/NAME)
# plus a working corpus kept in .fuzz/NAME (not committed); then a line per target: executions,
# executions per second, coverage (edges) and features, corpus size, and the verdict. An input
# that crashes a target is copied to testdata/fuzz/NAME/regressions/ to become a regression test
# (the corpus replay test of the regular suite runs every file there), and the script exits 1.
# With --smoke the last line is "fuzz: N passed, M failed" for tools/test.sh to count.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=300
smoke=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) seconds=$2; shift 2 ;;
    --smoke) smoke=1; seconds=5; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all_targets=$(ls -d testdata/fuzz/*/ | xargs -n1 basename)
[ ${#targets[@]} -eq 0 ] && read -r -a targets <<<"$(echo $all_targets)"

labels=()
for target in "${targets[@]}"; do
  if ! echo "$all_targets" | grep -qx "$target"; then
    echo "fuzz.sh: no target $target (have: $(echo $all_targets))" >&2
    exit 2
  fi
  labels+=("//runner/fuzz:${target}_fuzzer")
done
if ! bazel build --config=fuzz "${labels[@]}" </dev/null >.fuzz-build.log 2>&1; then
  tail -n 30 .fuzz-build.log >&2
  echo "fuzz.sh: the fuzz build failed (clang and libclang-rt-14-dev: tools/setup.sh)" >&2
  [ "$smoke" = 1 ] && echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 1
fi
bin=$(bazel info --config=fuzz bazel-bin 2>/dev/null)/runner/fuzz

passed=0
failed=0
printf '%-16s %12s %10s %8s %9s %8s  %s\n' target executions exec/s edges features corpus result
for target in "${targets[@]}"; do
  corpus=.fuzz/$target
  crashes=.fuzz/crashes-$target
  mkdir -p "$corpus" "$crashes"
  log=.fuzz/$target.log
  # -rss_limit_mb: the journal target opens real journals; -timeout: one input, not the run.
  "$bin/${target}_fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=4096 -artifact_prefix="$crashes/" "$corpus" "testdata/fuzz/$target" \
    </dev/null >"$log" 2>&1
  status=$?
  executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
  rate=$(( ${executions:-0} / seconds ))
  edges=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$')
  features=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$')
  size=$(ls "$corpus" | wc -l)
  if [ "$status" -eq 0 ]; then
    result=ok
    passed=$((passed + 1))
  else
    result="CRASH (log: $log)"
    failed=$((failed + 1))
    mkdir -p "testdata/fuzz/$target/regressions"
    for crash in "$crashes"/*; do
      [ -f "$crash" ] || continue
      cp "$crash" "testdata/fuzz/$target/regressions/"
      result="$result; input: testdata/fuzz/$target/regressions/$(basename "$crash")"
    done
    grep -m 3 -E 'ERROR|invariant broken|SUMMARY' "$log" | sed 's/^/    /' >&2
  fi
  printf '%-16s %12s %10s %8s %9s %8s  %s\n' "$target" "${executions:-0}" "${rate:-0}" \
    "${edges:-?}" "${features:-?}" "$size" "$result"
done
if [ "$smoke" = 1 ]; then echo "fuzz: $passed passed, $failed failed"; fi
[ "$failed" -eq 0 ]
