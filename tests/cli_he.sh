#!/usr/bin/env bash
# The client/server commands end to end at small insecure parameters (the committed Fashion-MNIST
# model, PP-CNN's network, on Debian's Fashion-MNIST), and their clear errors on bad input. The
# Keras import beside a symbolic link runs only with PP-CNN's Keras files in ../shared. Exits 77
# (skipped) only without the Fashion-MNIST test set (apt-get install dataset-fashion-mnist).
set -u
hecnn="$1"
shared="$2"
root="${3:-$(cd "$(dirname "$0")/.." && pwd)}"
fmnist=/usr/share/datasets/fashion-mnist
structure="$shared/models/ppcnn-mnist/CKKS-swish_rg4_deg4-BN-DA_structure.json"
weights="$shared/models/ppcnn-mnist/CKKS-swish_rg4_deg4-BN-DA_weights.h5"
if [ ! -f "$fmnist/t10k-images-idx3-ubyte.gz" ]; then
  echo "skipped: $fmnist (Debian's dataset-fashion-mnist) not present"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
small=(--log-n 11 --allow-insecure)
data=(--dataset fashion-mnist --data-dir "$fmnist")
# check_predictions OUT LIMIT OFFSET: the predictions decrypt --print gave (OUT) are the plaintext
# model's for test images OFFSET..OFFSET+LIMIT-1, image by image.
check_predictions() {
  "$hecnn" eval -m "$work/m.safetensors" "${data[@]}" --limit "$(($2 + $3))" --predictions "$work/plain.txt" >/dev/null 2>&1 ||
    fail "eval --predictions"
  local want got
  want=$(awk -v lo="$3" '$1 >= lo { print $1 ": " $2 }' "$work/plain.txt")
  got=$(grep -E '^[0-9]+: [0-9]+' <<<"$1" | cut -d' ' -f1-2)
  [ "$(wc -l <<<"$got")" = "$2" ] || fail "expected $2 predictions: $1"
  [ "$want" = "$got" ] || fail "the encrypted predictions differ from the plaintext model's: $(diff <(echo "$want") <(echo "$got"))"
}

cp "$root/models/fashion-mnist-swish4.safetensors" "$work/m.safetensors" || fail "no committed model"
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys" --mode batch "${small[@]}" >"$work/keygen.txt" || fail "keygen"
grep -q "INSECURE" "$work/keygen.txt" || fail "keygen does not say the parameters are insecure"
[ "$(stat -c %a "$work/keys/secret.key")" = "600" ] || fail "secret.key is not private"
[ "$(stat -c %a "$work/keys")" = "700" ] || fail "the key directory is not private"
ls -A "$work/keys" | grep -q '\.tmp-' && fail "temporary files left in the key directory"
"$hecnn" encrypt -k "$work/keys" "${data[@]}" --limit 40 --offset 100 -o "$work/q.bin" 2>"$work/err.txt" >/dev/null || fail "encrypt"
grep -q "WARNING: INSECURE parameters" "$work/err.txt" || fail "encrypt does not warn about insecure parameters"
# The server's key directory holds no secret key.
mkdir "$work/server" && cp "$work/keys/keys.json" "$work/keys/params.bin" "$work/keys/relin.key" "$work/server/"
"$hecnn" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/r.bin" -q 2>"$work/err.txt" >/dev/null ||
  fail "infer with evaluation keys only"
grep -q "WARNING: INSECURE parameters" "$work/err.txt" || fail "infer does not warn about insecure parameters"
out=$("$hecnn" decrypt -k "$work/keys" -i "$work/r.bin" --labels fashion-mnist --data-dir "$fmnist" --print 2>"$work/err.txt") || fail "decrypt"
grep -q "decrypted 40 predictions; accuracy" <<<"$out" || fail "unexpected result: $out"
check_predictions "$out" 40 100
grep -q "WARNING: INSECURE parameters" "$work/err.txt" || fail "decrypt does not warn about insecure parameters"

# Packed mode: the same round trip with rotation keys (galois.key), several images per ciphertext.
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/pkeys" --mode packed "${small[@]}" >"$work/pkeygen.txt" || fail "keygen --mode packed"
grep -q "packed layout:" "$work/pkeygen.txt" || fail "keygen --mode packed does not describe the packed layout"
grep -q "galois.key" "$work/pkeygen.txt" || fail "keygen --mode packed writes no rotation keys"
"$hecnn" encrypt -k "$work/pkeys" "${data[@]}" --limit 5 --offset 100 -o "$work/pq.bin" 2>/dev/null >/dev/null || fail "encrypt (packed)"
mkdir "$work/pserver" && cp "$work/pkeys/keys.json" "$work/pkeys/params.bin" "$work/pkeys/relin.key" "$work/pserver/"
msg=$("$hecnn" infer -m "$work/m.safetensors" -k "$work/pserver" -i "$work/pq.bin" -o "$work/pr.bin" -q 2>&1) &&
  fail "infer without the rotation keys should fail"
grep -q "rotation keys are missing" <<<"$msg" || fail "infer without galois.key: '$msg'"
cp "$work/pkeys/galois.key" "$work/pserver/"
"$hecnn" infer -m "$work/m.safetensors" -k "$work/pserver" -i "$work/pq.bin" -o "$work/pr.bin" -q 2>/dev/null >/dev/null ||
  fail "infer (packed)"
out=$("$hecnn" decrypt -k "$work/pkeys" -i "$work/pr.bin" --labels fashion-mnist --data-dir "$fmnist" --print 2>/dev/null) || fail "decrypt (packed)"
grep -q "decrypted 5 predictions; accuracy" <<<"$out" || fail "unexpected packed result: $out"
check_predictions "$out" 5 100

expect_error() {
  local pattern="$1"
  shift
  local msg
  if msg=$("$hecnn" "$@" 2>&1); then fail "'$*' should fail"; fi
  grep -qi -- "$pattern" <<<"$msg" || fail "'$*': message '$msg' does not mention '$pattern'"
}
# Wrong keys for the query; a query made with other parameters; a truncated query.
# One auto policy (eval, keygen, client): keys for a few images are packed, for many batch.
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/auto1" "${small[@]}" >/dev/null || fail "keygen (auto, 1 image)"
grep -qE '"layout": ?"packed"' "$work/auto1/keys.json" || fail "keygen auto for one image did not choose the packed layout"
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/auto2" --images 5000 "${small[@]}" >/dev/null || fail "keygen --images 5000"
grep -qE '"layout": ?"batch"' "$work/auto2/keys.json" || fail "keygen auto for 5000 images did not choose the batch layout"
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys2" "${small[@]}" >/dev/null || fail "keygen 2"
expect_error "q.bin: made with other keys (key id" infer -m "$work/m.safetensors" -k "$work/keys2" -i "$work/q.bin" -o "$work/x.bin"
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys3" --log-n 11 --scale-bits 36 --allow-insecure >/dev/null || fail "keygen 3"
expect_error "other encryption parameters" infer -m "$work/m.safetensors" -k "$work/keys3" -i "$work/q.bin" -o "$work/x.bin"
head -c 200000 "$work/q.bin" >"$work/cut.bin"
expect_error "cut.bin: truncated or corrupted (the checksum of the file does not match)" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/cut.bin" -o "$work/x.bin"
expect_error "r.bin: not a hecnn query file (it is a result file)" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/r.bin" -o "$work/x.bin"
expect_error "q.bin: not a hecnn result file (it is a query file)" decrypt -k "$work/keys" -i "$work/q.bin"
expect_error "r.bin: made with other keys (key id" decrypt -k "$work/keys2" -i "$work/r.bin"
# A model whose input shape does not match the keys and query: 27 x 27 inputs give the same 4 x 4
# maps after the two stride-2 convolutions, so the same weights fit (the architecture in the
# model file's metadata edited).
python3 - "$work/m.safetensors" "$work/m2.safetensors" <<'PY' || fail "could not change the model's input shape"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
header = json.loads(b[8:8 + n])
arch = json.loads(header["__metadata__"]["hecnn.architecture"])
assert arch["input"] == [1, 28, 28], arch["input"]
arch["input"] = [1, 27, 27]
header["__metadata__"]["hecnn.architecture"] = json.dumps(arch)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b[8 + n:])
PY
"$hecnn" inspect "$work/m2.safetensors" >/dev/null || fail "the 27x27 model does not load"
expect_error "keys were made for another model (the keys are for 1x28x28 inputs, this model takes 1x27x27)" infer -m "$work/m2.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/x.bin"
# Outputs: never the command's own input, a key, or a file of a key directory; a symbolic link at
# the output name is replaced, never followed.
cp "$work/q.bin" "$work/q.copy"
expect_error "same file as the input" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/q.bin"
cmp -s "$work/q.bin" "$work/q.copy" || fail "infer --in X --out X changed the query"
cp "$work/keys/secret.key" "$work/secret.copy"
expect_error "refusing to overwrite" encrypt -k "$work/keys" "${data[@]}" --limit 4 -o "$work/keys/secret.key"
cmp -s "$work/keys/secret.key" "$work/secret.copy" || fail "encrypt --out keys/secret.key changed the key"
cp -p "$work/keys/secret.key" "$work/elsewhere.key"
expect_error "holds a secret key" encrypt -k "$work/keys" "${data[@]}" --limit 4 -o "$work/elsewhere.key"
expect_error "refusing to overwrite" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/server/relin.key"
echo '{}' >"$work/structure.json"
expect_error "same file as the input" import-keras -s "$work/structure.json" -w "$work/m.safetensors" -o "$work/m.safetensors"
echo precious >"$work/victim"
ln -s "$work/victim" "$work/r-link.bin"
"$hecnn" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/r-link.bin" -q >/dev/null 2>&1 || fail "infer into a link"
[ "$(cat "$work/victim")" = precious ] && [ ! -L "$work/r-link.bin" ] || fail "infer wrote through a symbolic link"
# import-keras used to write NAME.tmp, following a link there (PP-CNN's Keras files: ../shared).
if [ -f "$structure" ] && [ -f "$weights" ]; then
  "$hecnn" import-keras -s "$structure" -w "$weights" -o "$work/m4.safetensors" >/dev/null || fail "import-keras"
  ln -s "$work/victim" "$work/m5.safetensors.tmp"
  "$hecnn" import-keras -s "$structure" -w "$weights" -o "$work/m5.safetensors" >/dev/null || fail "import-keras beside a link"
  [ "$(cat "$work/victim")" = precious ] || fail "import-keras wrote through a symbolic link"
  cmp -s "$work/m4.safetensors" "$work/m5.safetensors" || fail "import-keras wrote another model"
else
  echo "note: $shared (PP-CNN's Keras files) not present: import-keras beside a symbolic link not checked"
fi

# Edited files: a shifted image index in the query header, a result for another dataset, key files
# from two key generations.
python3 - "$work/q.bin" "$work/q-edited.bin" <<'PY' || fail "python3 edit"
import sys
b = open(sys.argv[1], "rb").read()
assert b.count(b'"first":100') == 1
open(sys.argv[2], "wb").write(b.replace(b'"first":100', b'"first":101'))
PY
expect_error "header is corrupted or was edited" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q-edited.bin" -o "$work/x.bin"
expect_error "dataset, not 'mnist'" decrypt -k "$work/keys" -i "$work/r.bin" --labels mnist
mkdir -m 700 "$work/mixed" && cp -p "$work/keys/"* "$work/mixed/" && cp -p "$work/keys2/secret.key" "$work/mixed/secret.key"
expect_error "different key generations" decrypt -k "$work/mixed" -i "$work/r.bin"
cp -p "$work/keys/"* "$work/mixed/" && chmod 644 "$work/mixed/secret.key"
expect_error "chmod 600" decrypt -k "$work/mixed" -i "$work/r.bin"

# keygen: an existing key directory only with --force; never through a symbolic link.
expect_error "not empty" keygen -m "$work/m.safetensors" -o "$work/keys2" "${small[@]}"
id=$(grep key_id "$work/keys2/keys.json")
"$hecnn" keygen -m "$work/m.safetensors" -o "$work/keys2" "${small[@]}" --force >/dev/null || fail "keygen --force"
[ "$(grep key_id "$work/keys2/keys.json")" != "$id" ] || fail "keygen --force kept the old keys"
mkdir "$work/k5" && ln -s "$work/victim" "$work/k5/secret.key"
expect_error "not empty" keygen -m "$work/m.safetensors" -o "$work/k5" "${small[@]}"
expect_error "symbolic link" keygen -m "$work/m.safetensors" -o "$work/k5" "${small[@]}" --force
[ "$(cat "$work/victim")" = precious ] || fail "keygen wrote through a symbolic link"

expect_error "cannot open $work/nope/keys.json (not a key directory" infer -m "$work/m.safetensors" -k "$work/nope" -i "$work/q.bin" -o "$work/x.bin"
expect_error "scale-bits: must be a whole number 0 (the default) or from 20 to 58" plan -m "$work/m.safetensors" --log-n 11 --allow-insecure --scale-bits 70
# Memory is planned: a run that cannot fit the limit is refused before anything is encrypted.
expect_error "exceeds the memory limit of 0.06 GiB" eval -m "$work/m.safetensors" "${data[@]}" --limit 2 --encrypted --mode batch "${small[@]}" --memory-limit 64M
expect_error "exceeds the memory limit" infer -m "$work/m.safetensors" -k "$work/server" -i "$work/q.bin" -o "$work/x.bin" --memory-limit 64M
# Batch mode streams in tiles: whole stages (--tile 4096) do not fit 400M, the suggestion is a
# smaller tile that does; with --spill-dir the run fits a limit its tiles alone do not, gives the
# plaintext predictions, and leaves nothing in the directory (nor does a refused run).
expect_error "try --tile 1" eval -m "$work/m.safetensors" "${data[@]}" --limit 2 --encrypted --mode batch "${small[@]}" --tile 4096 --memory-limit 400M
mkdir -p "$work/spill"
expect_error "with --spill-dir one step alone needs" eval -m "$work/m.safetensors" "${data[@]}" --limit 2 --encrypted --mode batch "${small[@]}" --memory-limit 64M --spill-dir "$work/spill"
"$hecnn" eval -m "$work/m.safetensors" "${data[@]}" --limit 4 --encrypted --mode batch "${small[@]}" --tile 1 --memory-limit 370M \
  --spill-dir "$work/spill" -q >"$work/spill.txt" 2>&1 || fail "eval --spill-dir: $(cat "$work/spill.txt")"
grep -q "spilled to $work/spill" "$work/spill.txt" || fail "eval --spill-dir did not plan a spill: $(cat "$work/spill.txt")"
grep -q "agreement with plaintext predictions: 100.00 %" "$work/spill.txt" || fail "eval --spill-dir: $(cat "$work/spill.txt")"
[ -z "$(ls -A "$work/spill")" ] || fail "spill files left behind: $(ls -A "$work/spill")"
expect_error "is not a directory" eval -m "$work/m.safetensors" "${data[@]}" --limit 2 --encrypted --mode batch "${small[@]}" --tile 1 --memory-limit 370M --spill-dir "$work/spill/none"
expect_error "--memory-limit: '12Q' is not a memory size" eval -m "$work/m.safetensors" "${data[@]}" --limit 2 --encrypted --memory-limit 12Q
expect_error "--memory-limit: '1K' is not a memory size" eval -m "$work/m.safetensors" "${data[@]}" --limit 2 --encrypted --memory-limit 1K
# plan prints both layouts with their predicted memory; eval says which layout it chose.
out=$("$hecnn" plan -m "$work/m.safetensors" --mode both "${small[@]}") || fail "plan --mode both"
[ "$(grep -c "predicted peak memory of the server" <<<"$out")" = 2 ] || fail "plan --mode both does not predict both layouts' memory: $out"
out=$("$hecnn" eval -m "$work/m.safetensors" "${data[@]}" --limit 3 --encrypted "${small[@]}" -q 2>/dev/null) || fail "eval --encrypted (auto)"
grep -q "mode: packed" <<<"$out" || fail "auto mode does not choose the packed layout for 3 images: $out"
grep -q "agreement with plaintext predictions: 100.00 % (3 / 3)" <<<"$out" || fail "packed eval disagrees: $out"
echo "cli_he: ok"
