#!/usr/bin/env bash
# The default --memory-limit (issue 22): the least of MemAvailable, the cgroup's memory.max less
# memory.current (HECNN_CGROUP_DIR names the cgroup directory to read), ulimit -v less VmSize and
# ulimit -d less VmData. A run that cannot fit is refused before any key is made, with exit code 1
# and a message naming the limit and where it comes from, never "out of memory" (3) after minutes.
# MNIST from ../shared, or Debian's Fashion-MNIST without it; exits 77 (skipped) with neither.
set -u
hecnn="$1" root="$2" shared="$3"
mnist="$shared/datasets/mnist"
if [ -f "$mnist/t10k-images-idx3-ubyte.gz" ]; then
  model="$root/models/mnist-swish4.safetensors" data=(--dataset mnist --data-dir "$mnist")
elif [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  model="$root/models/fashion-mnist-swish4.safetensors" data=(--dataset fashion-mnist)
else
  echo "skipped: neither $mnist nor Debian's Fashion-MNIST (dataset-fashion-mnist) is present"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Two threads and two malloc arenas keep the address space (ulimit -v) independent of the machine.
export OMP_NUM_THREADS=2 MALLOC_ARENA_MAX=2 OMP_WAIT_POLICY=passive
unset HECNN_CGROUP_DIR
run_eval=(eval -m "$model" "${data[@]}" --encrypted --limit 1 --mode batch)

# A refusal: exit code 1, the limit and its source, before key generation.
expect_refusal() {  # pattern command...
  local pattern="$1" msg rc
  shift
  msg=$("$@" 2>&1)
  rc=$?
  [ "$rc" -eq 1 ] || fail "'$*': exit code $rc (expected 1): $msg"
  grep -q -- "$pattern" <<<"$msg" || fail "'$*': message does not mention '$pattern': $msg"
  ! grep -q "time: keygen" <<<"$msg" || fail "'$*': refused only after running: $msg"
}

# cgroup v2: 100 MiB left of memory.max.
mkdir "$work/v2"
echo $((300 << 20)) >"$work/v2/memory.max"
echo $((200 << 20)) >"$work/v2/memory.current"
expect_refusal "exceeds the memory limit of 0.10 GiB (cgroup $work/v2/memory.max)" \
  env HECNN_CGROUP_DIR="$work/v2" timeout 120 "$hecnn" "${run_eval[@]}"
echo "ok: cgroup v2 memory.max - memory.current"

# cgroup v1: 50 MiB left of memory.limit_in_bytes.
mkdir "$work/v1"
echo $((150 << 20)) >"$work/v1/memory.limit_in_bytes"
echo $((100 << 20)) >"$work/v1/memory.usage_in_bytes"
expect_refusal "exceeds the memory limit of 0.05 GiB (cgroup $work/v1/memory.limit_in_bytes)" \
  env HECNN_CGROUP_DIR="$work/v1" timeout 120 "$hecnn" "${run_eval[@]}"
echo "ok: cgroup v1 memory.limit_in_bytes - memory.usage_in_bytes"

# A directory that is no cgroup, and a malformed value.
expect_refusal "HECNN_CGROUP_DIR: '$work' holds neither memory.max" env HECNN_CGROUP_DIR="$work" "$hecnn" "${run_eval[@]}"
echo "1G" >"$work/v2/memory.max"
expect_refusal "memory.max: '1G' is not a byte count" env HECNN_CGROUP_DIR="$work/v2" "$hecnn" "${run_eval[@]}"
echo "ok: HECNN_CGROUP_DIR errors"

# ulimit -v 1.2 GiB: the batch layout (about 1.5 GiB) is refused up front, naming ulimit -v.
expect_refusal "exceeds the memory limit of [0-9.]* GiB (ulimit -v)" \
  bash -c 'ulimit -v $((1200 * 1024)) && exec timeout 120 "$@"' _ "$hecnn" "${run_eval[@]}"
echo "ok: ulimit -v"
# ulimit -d likewise.
expect_refusal "exceeds the memory limit of [0-9.]* GiB (ulimit -d)" \
  bash -c 'ulimit -d $((1000 * 1024)) && exec timeout 120 "$@"' _ "$hecnn" "${run_eval[@]}"
echo "ok: ulimit -d"

# An explicit --memory-limit is its own source; and a run that fits goes through (small insecure
# parameters), with the cgroup's limit as the one printed.
expect_refusal "exceeds the memory limit of 0.10 GiB (--memory-limit)" "$hecnn" "${run_eval[@]}" --memory-limit 100M
echo $((3 << 30)) >"$work/v2/memory.max"
echo 0 >"$work/v2/memory.current"
out=$(HECNN_CGROUP_DIR="$work/v2" timeout 120 "$hecnn" eval -m "$model" "${data[@]}" --encrypted \
        --limit 2 --mode packed --log-n 11 --allow-insecure -q 2>&1) || fail "a run within the cgroup's limit: $out"
grep -q "; limit 3.00 GiB (cgroup $work/v2/memory.max)" <<<"$out" || fail "the cgroup's limit is not the one printed: $out"
echo "ok: a run within the limit"
