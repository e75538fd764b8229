#!/usr/bin/env bash
# Install what is missing, build, and run the test suite.
#   scripts/test.sh              Release build, every test
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build, CKKS and
#                                file-loading, polynomial and model tests (labels "ckks", "approx", "nn")
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
jobs="$(nproc 2>/dev/null || echo 2)"
if [ "${1:-}" = "--sanitize" ]; then
  build="$root/build-asan"
  bash "$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHECNN_SANITIZE=ON -DHECNN_BUILD_BENCH=OFF -DHECNN_BUILD_TRAIN=OFF
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  ctest --test-dir "$build" -L "ckks|approx|nn" --output-on-failure -j "$jobs"
else
  build="$root/build"
  bash "$root/scripts/build.sh" "$build"
  ctest --test-dir "$build" --output-on-failure -j "$jobs"
fi
