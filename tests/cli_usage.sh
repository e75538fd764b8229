#!/usr/bin/env bash
# Exit codes of the command line (src/common/exit_codes.h): an option the parser refuses exits 2
# (usage) with the option named, --help and --version 0; OMP_NUM_THREADS is bounded like --threads
# (exit 1, the variable named), never thousands of threads.
set -u
hecnn="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # code pattern command...
  local code="$1" pattern="$2" msg rc
  shift 2
  msg=$(timeout 60 "$@" 2>&1 </dev/null)
  rc=$?
  [ "$rc" -eq "$code" ] || fail "'$*': exit code $rc (expected $code): $msg"
  grep -q -- "$pattern" <<<"$msg" || fail "'$*': message does not mention '$pattern': $msg"
}
expect 2 "--no-such-option" "$hecnn" params --no-such-option
expect 2 "" "$hecnn" --no-such-option
expect 2 "subcommand" "$hecnn" nope
expect 2 "A subcommand is required" "$hecnn"
expect 2 "--threads" "$hecnn" eval -m x --threads 100000
expect 2 "--limit" "$hecnn" eval -m x --limit -1
expect 2 "--model is required" "$hecnn" eval
expect 0 "Usage" "$hecnn" --help
expect 0 "hecnn" "$hecnn" --version
echo "ok: usage errors exit 2"
expect 1 "OMP_NUM_THREADS='100000' is not a thread count" env OMP_NUM_THREADS=100000 "$hecnn" params
expect 1 "OMP_NUM_THREADS='abc' is not a thread count" env OMP_NUM_THREADS=abc "$hecnn" params
expect 1 "OMP_NUM_THREADS='0' is not a thread count" env OMP_NUM_THREADS=0 "$hecnn" params
expect 0 "" env OMP_NUM_THREADS=2 "$hecnn" params
echo "ok: OMP_NUM_THREADS bounded"
