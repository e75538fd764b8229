#!/usr/bin/env bash
# hecnn serve and hecnn client end to end on loopback at small insecure parameters (the committed
# Fashion-MNIST model, PP-CNN's network, on Debian's Fashion-MNIST): a dataset range over TLS (a
# throwaway certificate made here) agreeing with the plaintext model and with encrypt/infer/
# decrypt image by image, PNG and PGM files written here, the refusal of plaintext on a
# non-loopback address, a server restarted under a client's load, a client started before its
# server, a log with no token, key or ciphertext bytes, and no file written by the server or by a
# client without --keys (TMPDIR, HOME and the working directory stay empty). Every wait is
# bounded. Exits 77 (skipped) without the Fashion-MNIST test set or openssl.
set -u
hecnn="$1"
root="${3:-$(cd "$(dirname "$0")/.." && pwd)}"
fmnist=/usr/share/datasets/fashion-mnist
if [ ! -f "$fmnist/t10k-images-idx3-ubyte.gz" ]; then
  echo "skipped: $fmnist (Debian's dataset-fashion-mnist) not present"
  exit 77
fi
command -v openssl >/dev/null || { echo "skipped: openssl not installed"; exit 77; }
work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/serve.out" ] && sed 's/^/  serve: /' "$work/serve.out" >&2
  exit 1
}
small=(--log-n 11 --allow-insecure)
mnist=(--dataset fashion-mnist --data-dir "$fmnist")
# The server and the clients that keep no keys run with these empty: nothing may appear in them.
mkdir "$work/tmp" "$work/home" "$work/cwd"
sandbox=(env TMPDIR="$work/tmp" HOME="$work/home")
client() { (cd "$work/cwd" && exec "${sandbox[@]}" "$hecnn" client "$@"); }

# start_server LOG ARGS...: starts hecnn serve on a free loopback port (or --listen in ARGS), sets
# server_pid and port.
start_server() {
  local log="$1"
  shift
  (cd "$work/cwd" && exec "${sandbox[@]}" "$hecnn" serve --models "$work/models" "${small[@]}" --threads 2 --log "$log" "$@") \
    >"$work/serve.out" 2>&1 &
  server_pid=$!
  port=""
  for _ in $(seq 1 300); do  # at most 30 s
    port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$work/serve.out")
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "hecnn serve exited"
    sleep 0.1
  done
  fail "hecnn serve did not start"
}

mkdir "$work/models"
cp "$root/models/fashion-mnist-swish4.safetensors" "$work/models/mnist.safetensors" || fail "no committed model"

# Plaintext on a non-loopback address is refused unless --insecure-plaintext.
if msg=$("$hecnn" serve --models "$work/models" "${small[@]}" --listen 0.0.0.0:0 2>&1); then fail "plaintext on 0.0.0.0 accepted"; fi
grep -q "refusing to listen in plaintext" <<<"$msg" || fail "plaintext refusal: $msg"

# TLS with a throwaway certificate for localhost / 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/tls.key" -out "$work/tls.crt" -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 || fail "openssl req"
start_server "$work/tls.log" --listen 127.0.0.1:0 --tls-cert "$work/tls.crt" --tls-key "$work/tls.key"
grep -q "TLS" "$work/serve.out" || fail "the server does not say it uses TLS"
tls=(--server "127.0.0.1:$port" --tls-ca "$work/tls.crt" --tls-name localhost)
client "${tls[@]}" --list >"$work/list.txt" 2>&1 || fail "client --list over TLS: $(cat "$work/list.txt")"
grep -q "^mnist: input 1x28x28, 10 outputs" "$work/list.txt" || fail "ListModels: $(cat "$work/list.txt")"
# Plaintext to a TLS server fails.
if "$hecnn" client --server "127.0.0.1:$port" --list --retry-seconds 0 >/dev/null 2>&1; then fail "a plaintext client reached the TLS server"; fi

# A dataset range in batch mode: the accuracy of hecnn eval --encrypted, full agreement with the
# plaintext model.
out=$("$hecnn" client "${tls[@]}" "${mnist[@]}" --limit 60 --offset 200 --mode batch --keys "$work/keys" -q \
  --compare-model "$work/models/mnist.safetensors" 2>"$work/client.err") || fail "client (batch): $(cat "$work/client.err")"
acc=$(grep "^encrypted:" <<<"$out") || fail "no accuracy: $out"
grep -q "agreement with plaintext predictions: 100.00 % (60 / 60)" <<<"$out" || fail "agreement: $out"
[ ! -e "$work/keys/secret.key" ] || [ "$(stat -c %a "$work/keys/secret.key")" = 600 ] || fail "secret.key is not private"
# Image by image, the same predictions as the file-based commands (encrypt, infer, decrypt).
"$hecnn" encrypt -k "$work/keys" "${mnist[@]}" --limit 60 --offset 200 -o "$work/q.bin" >/dev/null 2>&1 || fail "encrypt"
mkdir "$work/server-keys" && cp "$work/keys/keys.json" "$work/keys/params.bin" "$work/keys/relin.key" "$work/server-keys/"
"$hecnn" infer -m "$work/models/mnist.safetensors" -k "$work/server-keys" -i "$work/q.bin" -o "$work/r.bin" -q >/dev/null 2>&1 || fail "infer"
"$hecnn" decrypt -k "$work/keys" -i "$work/r.bin" --print >"$work/files.txt" 2>/dev/null || fail "decrypt"
"$hecnn" client "${tls[@]}" "${mnist[@]}" --limit 60 --offset 200 --keys "$work/keys" -q --print >"$work/remote.txt" 2>/dev/null ||
  fail "client --print"
diff <(grep -E '^[0-9]+: [0-9]+' "$work/files.txt" | cut -d' ' -f1-2) <(grep -E '^[0-9]+: [0-9]+' "$work/remote.txt" | cut -d' ' -f1-2) >/dev/null ||
  fail "the service's predictions differ from the file-based commands'"
[ "$(grep -cE '^[0-9]+: [0-9]+' "$work/remote.txt")" = 60 ] || fail "expected 60 predictions"
echo "service: $acc"

# The user's own images: test images 0 and 1 as a 2x RGB PNG and a PGM, classified as the same
# images from the dataset are.
out=$(client "${tls[@]}" "${mnist[@]}" --limit 2 --mode packed --print -q 2>"$work/client.err") || fail "client (2 images): $(cat "$work/client.err")"
p0=$(sed -n 's/^0: \([0-9]*\) (label [0-9]*)$/\1/p' <<<"$out")
p1=$(sed -n 's/^1: \([0-9]*\) (label [0-9]*)$/\1/p' <<<"$out")
[ -n "$p0" ] && [ -n "$p1" ] || fail "client (2 images): $out"
python3 - "$fmnist/t10k-images-idx3-ubyte.gz" "$work" <<'PY' || fail "python3 writing images"
import gzip, struct, sys, zlib
raw = gzip.open(sys.argv[1]).read()
def image(i):
    return [raw[16 + 784 * i + 28 * r: 16 + 784 * i + 28 * (r + 1)] for r in range(28)]
def png(path, rows, width):
    def chunk(t, d):
        c = t + d
        return struct.pack(">I", len(d)) + c + struct.pack(">I", zlib.crc32(c) & 0xffffffff)
    data = b"".join(b"\x00" + r for r in rows)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))
rows = []
for r in image(0):
    wide = b"".join(bytes([p, p, p]) * 2 for p in r)  # RGB, twice as wide
    rows += [wide, wide]                              # and twice as high
png(sys.argv[2] + "/seven.png", rows, 56)
open(sys.argv[2] + "/two.pgm", "wb").write(b"P5\n28 28\n255\n" + b"".join(image(1)))
PY
out=$(client "${tls[@]}" --image "$work/seven.png" --image "$work/two.pgm" --print -q 2>"$work/client.err") ||
  fail "client --image: $(cat "$work/client.err")"
grep -q "seven.png: $p0$" <<<"$out" || fail "seven.png: $out (image 0: $p0)"
grep -q "two.pgm: $p1$" <<<"$out" || fail "two.pgm: $out (image 1: $p1)"
echo not-an-image >"$work/bad.png"
if msg=$("$hecnn" client "${tls[@]}" --image "$work/bad.png" 2>&1); then fail "a bad image was accepted"; fi
grep -q "not a PNG, JPEG or PGM/PPM image" <<<"$msg" || fail "bad image: $msg"
stop_server

# The log: one line per event; never the TLS key, key bytes or ciphertext bytes.
grep -q "event=session_opened" "$work/tls.log" && grep -q "event=query_done" "$work/tls.log" || fail "events missing from the log"
if grep -qiE "secret|BEGIN|token=" "$work/tls.log"; then fail "the log holds a key or token: $(grep -iE 'secret|BEGIN|token=' "$work/tls.log")"; fi
for f in "$work/keys/relin.key" "$work/q.bin"; do
  piece=$(od -An -tx1 -j 4096 -N 16 "$f" | tr -d ' \n')
  if grep -q "$piece" "$work/tls.log"; then fail "bytes of $f (hex) in the log"; fi
done

# A server stopped and restarted while a client's queries run: the client reopens a session and
# resubmits; every prediction arrives once and right.
start_server "$work/load.log" --listen 127.0.0.1:0
load_port=$port
client --server "127.0.0.1:$load_port" "${mnist[@]}" --limit 16 --mode packed --window 2 -q --print \
  --compare-model "$work/models/mnist.safetensors" --retry-seconds 60 >"$work/load.txt" 2>"$work/load.err" &
client_pid=$!
for _ in $(seq 1 300); do  # until the server has answered a query (at most 30 s)
  grep -q "event=query_done" "$work/load.log" && break
  sleep 0.1
done
stop_server
sleep 0.5
start_server "$work/load2.log" --listen "127.0.0.1:$load_port"
wait "$client_pid" || fail "client under restart: $(cat "$work/load.err")"
# (16 queries of ~0.2 s: the server stops after the first one, long before the last)
grep -q "opening a new session and resubmitting" "$work/load.err" || fail "the client did not see the restart: $(cat "$work/load.err")"
[ "$(grep -cE '^[0-9]+: [0-9]+ \(label [0-9]+\)$' "$work/load.txt")" = 16 ] || fail "restart: $(cat "$work/load.txt")"
[ "$(grep -E '^[0-9]+: ' "$work/load.txt" | cut -d: -f1 | sort -n | uniq | wc -l)" = 16 ] || fail "restart: duplicated or lost images"
grep -q "agreement with plaintext predictions: 100.00 % (16 / 16)" "$work/load.txt" || fail "restart: $(cat "$work/load.txt")"
stop_server

# A client started before its server: it retries ListModels (connection refused) until the
# server is up, within --retry-seconds.
client --server "127.0.0.1:$load_port" "${mnist[@]}" --limit 2 --mode packed --print --retry-seconds 60 \
  >"$work/early.txt" 2>"$work/early.err" &
client_pid=$!
sleep 1
kill -0 "$client_pid" 2>/dev/null || fail "the client did not wait for the server: $(cat "$work/early.err")"
start_server "$work/early.log" --listen "127.0.0.1:$load_port"
wait "$client_pid" || fail "client started first: $(cat "$work/early.err")"
grep -q "ListModels: UNAVAILABLE.*retrying" "$work/early.err" || fail "the client did not retry: $(cat "$work/early.err")"
[ "$(grep -cE '^[0-9]+: [0-9]+ \(label [0-9]+\)$' "$work/early.txt")" = 2 ] || fail "client started first: $(cat "$work/early.txt")"
if "$hecnn" client --server "127.0.0.1:1" --list --retry-seconds 0.5 >/dev/null 2>"$work/none.err"; then fail "a client reached no server"; fi
grep -q "gave up retrying after --retry-seconds" "$work/none.err" || fail "no server: $(cat "$work/none.err")"
stop_server

# Neither the server nor a client without --keys wrote a file: keys live in memory.
leftover=$(find "$work/tmp" "$work/home" "$work/cwd" -mindepth 1)
[ -z "$leftover" ] || fail "files written outside --keys: $leftover"
echo "cli_service: ok"
