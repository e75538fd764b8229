#!/usr/bin/env bash
# Load benchmark of the network service: one `hecnn serve` at the default 128-bit parameters on
# loopback, CLIENTS concurrent `hecnn client`s, each classifying QUERIES MNIST test images of its own
# range one query at a time (packed mode: one image per query; batch mode: one batch). Every client
# checks its predictions against the plaintext model (agreement must be 100 %). Prints the
# throughput and the percentiles of the query latency over all queries (encryption to decrypted
# result, as each client measures it). Not a test: it takes minutes and wants an idle machine.
#   scripts/bench_service.sh [CLIENTS=8] [QUERIES=5] [MODE=packed] [MODEL=models/mnist-swish4.safetensors]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
clients="${1:-8}" queries="${2:-5}" mode="${3:-packed}" model="${4:-$root/models/mnist-swish4.safetensors}"
hecnn="$root/build/src/hecnn"
[ -x "$hecnn" ] || { echo "bench_service.sh: build first (bash scripts/build.sh)" >&2; exit 1; }
cd "$root"
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/models"
cp "$model" "$work/models/"
name="$(basename "$model" .safetensors)"
"$hecnn" serve --models "$work/models" --listen 127.0.0.1:0 --max-sessions $((clients + 2)) --max-queries $((2 * clients)) \
  --concurrent 2 --log "$work/server.log" >"$work/serve.txt" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 600); do
  port=$(sed -nE 's/.*\(port ([0-9]+)\).*/\1/p' "$work/serve.txt" | head -1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.txt" >&2; exit 1; }
  sleep 0.2
done
[ -n "$port" ] || { echo "bench_service.sh: the server did not start" >&2; exit 1; }
echo "server on port $port; $clients clients x $queries queries ($mode layout), $(uptime)"
start=$(date +%s.%N)
pids=()
for c in $(seq 1 "$clients"); do
  "$hecnn" client --server "127.0.0.1:$port" --model "$name" --dataset mnist --limit "$queries" \
    --offset $(((c - 1) * queries)) --mode "$mode" --window 1 --compare-model "$model" -q \
    --latencies "$work/latency.$c" >"$work/client.$c.txt" 2>&1 &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
end=$(date +%s.%N)
for c in $(seq 1 "$clients"); do
  if [ "$failed" = 1 ] || ! grep -q "agreement with plaintext predictions: 100.00 %" "$work/client.$c.txt"; then
    echo "client $c:" >&2
    cat "$work/client.$c.txt" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
sort -k2 -g "$work"/latency.* | awk -v start="$start" -v end="$end" '
  function at(q) { k = int(q * n) + 1; return lat[k > n ? n : k] }
  { images += $1; lat[++n] = $2 }
  END {
    secs = end - start
    printf "%d queries, %d images in %.1f s: %.2f images/s, %.2f queries/s\n", n, images, secs, images / secs, n / secs
    printf "query latency: p50 %.3f s, p90 %.3f s, p99 %.3f s, max %.3f s\n", at(0.5), at(0.9), at(0.99), lat[n]
  }'
echo "every prediction agreed with the plaintext model"
