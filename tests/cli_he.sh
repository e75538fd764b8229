#!/usr/bin/env bash
# The client/server commands end to end at small insecure parameters (PP-CNN's MNIST model from
# ../shared), and their clear errors on bad input. Exits 77 (skipped) without ../shared.
set -u
hecnn="$1"
shared="$2"
structure="$shared/models/ppcnn-mnist/CKKS-swish_rg4_deg4-BN-DA_structure.json"
weights="$shared/models/ppcnn-mnist/CKKS-swish_rg4_deg4-BN-DA_weights.h5"
if [ ! -f "$structure" ] || [ ! -d "$shared/datasets/mnist" ]; then
  echo "skipped: $shared (PP-CNN model, MNIST) not present"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
small=(--log-n 11 --allow-insecure)
data=(--dataset mnist --data-dir "$shared/datasets/mnist")

"$hecnn" import-keras -s "$structure" -w "$weights" -o "$work/m.safetensors" >/dev/null || fail "import-keras"
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys" "${small[@]}" >"$work/keygen.txt" || fail "keygen"
grep -q "INSECURE" "$work/keygen.txt" || fail "keygen does not say the parameters are insecure"
[ "$(stat -c %a "$work/keys/secret.key")" = "600" ] || fail "secret.key is not private"
"$hecnn" encrypt -k "$work/keys" "${data[@]}" --limit 40 --offset 100 -o "$work/q.bin" 2>/dev/null >/dev/null || fail "encrypt"
# The server's key directory holds no secret key.
mkdir "$work/server" && cp "$work/keys/keys.json" "$work/keys/params.bin" "$work/keys/relin.key" "$work/server/"
"$hecnn" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/r.bin" -q 2>/dev/null >/dev/null ||
  fail "infer with evaluation keys only"
out=$("$hecnn" decrypt -k "$work/keys" -i "$work/r.bin" --labels mnist --data-dir "$shared/datasets/mnist") || fail "decrypt"
grep -q "decrypted 40 predictions; accuracy 100.00 %" <<<"$out" || fail "unexpected result: $out"

expect_error() {
  local pattern="$1"
  shift
  local msg
  if msg=$("$hecnn" "$@" 2>&1); then fail "'$*' should fail"; fi
  grep -qi -- "$pattern" <<<"$msg" || fail "'$*': message '$msg' does not mention '$pattern'"
}
# Wrong keys for the query; a query made with other parameters; a truncated query.
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys2" "${small[@]}" >/dev/null || fail "keygen 2"
expect_error "q.bin: made with other keys (key id" infer -m "$work/m.safetensors" -k "$work/keys2" -i "$work/q.bin" -o "$work/x.bin"
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys3" --log-n 11 --scale-bits 36 --allow-insecure >/dev/null || fail "keygen 3"
expect_error "other encryption parameters" infer -m "$work/m.safetensors" -k "$work/keys3" -i "$work/q.bin" -o "$work/x.bin"
head -c 200000 "$work/q.bin" >"$work/cut.bin"
expect_error "cut.bin: batch 1, ciphertext [0-9]*: ciphertext is truncated" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/cut.bin" -o "$work/x.bin"
expect_error "r.bin: not a hecnn query file (it is a result file)" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/r.bin" -o "$work/x.bin"
expect_error "q.bin: not a hecnn result file (it is a query file)" decrypt -k "$work/keys" -i "$work/q.bin"
expect_error "r.bin: made with other keys (key id" decrypt -k "$work/keys2" -i "$work/r.bin"
# A model whose input shape does not match the keys and query: 27 x 27 inputs give the same 4 x 4
# maps after the two stride-2 convolutions, so the same weights import.
sed 's/"batch_input_shape": \[null, 28, 28, 1\]/"batch_input_shape": [null, 27, 27, 1]/' "$structure" >"$work/s2.json"
grep -q '"batch_input_shape": \[null, 27, 27, 1\]' "$work/s2.json" || fail "could not change the model's input shape"
"$hecnn" import-keras -s "$work/s2.json" -w "$weights" -o "$work/m2.safetensors" >/dev/null || fail "import-keras 27x27"
expect_error "the query holds 1x28x28 images, the model expects 1x27x27" infer -m "$work/m2.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/x.bin"
expect_error "cannot open $work/nope/keys.json (not a key directory" infer -m "$work/m.safetensors" -k "$work/nope" -i "$work/q.bin" -o "$work/x.bin"
expect_error "scale-bits must be between 20 and 58" plan -m "$work/m.safetensors" --log-n 11 --allow-insecure --scale-bits 70
echo "cli_he: ok"
