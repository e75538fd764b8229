#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan, coverage) into build-fuzz/, writes the seed
# corpus, and runs every harness (or those named) for a while.
#   scripts/fuzz.sh                       every harness for 10 s (what .ci/run does)
#   scripts/fuzz.sh --seconds 600 stream  one harness for 10 minutes
#   scripts/fuzz.sh --runs 1000000        every harness for 10^6 executions (the long run)
# Limits per input: 1 GiB of allocation (-malloc_limit_mb), 2 GiB resident, 10 s. Findings (crash,
# leak, timeout, out-of-memory) are written to build-fuzz/findings/ and fail the run. The corpus
# grows in build-fuzz/corpus/<harness>/ (not committed; regenerated from the seeds).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=10 runs="" harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
all=(ckks_objects stream keys_json key_bundle safetensors architecture idx cifar keras_structure onnx)
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")
bash "$root/scripts/setup.sh"
build="$root/build-fuzz"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHECNN_FUZZ=ON >/dev/null
cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)" >/dev/null
cd "$root"  # the harnesses find ../shared from here
"$build/fuzz/make_corpus" "$build/seeds" "$root" >/dev/null
mkdir -p "$build/findings"
# The harnesses hand inputs to the loaders as files: keep them in memory where possible.
[ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for h in "${harnesses[@]}"; do
  mkdir -p "$build/corpus/$h"
  limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit=(-runs="$runs")
  log="$build/findings/$h.log"
  if "$build/fuzz/fuzz_$h" "${limit[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=131072 \
      -artifact_prefix="$build/findings/$h-" -print_final_stats=1 "$build/corpus/$h" "$build/seeds/$h" >"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz $h: ok, $execs executions, $cov"
  else
    echo "fuzz $h: FAILED (see $log)"; tail -30 "$log"; status=1
  fi
done
exit "$status"
