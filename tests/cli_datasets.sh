#!/usr/bin/env bash
# Datasets on the command line (issue 22): CIFAR-10 files of any whole number of records (the
# shared 500-image sample, small synthetic files; a partial record or an empty file refused), the
# image count printed where a dataset is loaded, and eval --offset K (plaintext and --encrypted)
# with --predictions giving the true image indices. Parts whose ../shared data is missing are
# skipped (exit 77 if nothing could run).
set -u
hecnn="$1" root="$2" shared="$3"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
ran=0
expect_error() {  # pattern command... (leaves the output in msg)
  local pattern="$1" rc
  shift
  msg=$(timeout 60 "$@" 2>&1)
  rc=$?
  [ "$rc" -eq 1 ] || fail "'$*': exit code $rc (expected 1): $msg"
  grep -q -- "$pattern" <<<"$msg" || fail "'$*': message does not mention '$pattern': $msg"
}
# CIFAR-10 records: label r % 10, then 3072 pixel bytes of value r.
records() {  # first count
  local r
  for ((r = $1; r < $1 + $2; r++)); do
    printf "\\x$(printf %02x $((r % 10)))"
    head -c 3072 /dev/zero | tr '\0' "\\$(printf %03o $((r % 256)))"
  done
}

cifar_model="$shared/models/ppcnn-cifar10/CKKS-swish_rg4_deg4-BN-DA"
sample="$shared/datasets/cifar10-test-500"
if [ -f "${cifar_model}_structure.json" ] && [ -f "$sample/test_batch.bin" ]; then
  "$hecnn" import-keras -s "${cifar_model}_structure.json" -w "${cifar_model}_weights.h5" -o "$work/cifar.safetensors" \
    >/dev/null || fail "import-keras (PP-CNN CIFAR-10)"
  ev=(eval -m "$work/cifar.safetensors" --dataset cifar10 --data-dir "$sample" -q)
  out=$("$hecnn" "${ev[@]}" --limit 8 --predictions "$work/all.txt" 2>&1) || fail "eval on the 500-image sample: $out"
  grep -q "^CIFAR-10 test set: 500 images$" <<<"$out" || fail "no image count: $out"
  grep -q "^accuracy: .* (. / 8) " <<<"$out" || fail "not 8 images: $out"
  # --offset 3 --limit 4: images 3..6, reported as such, with the same logits as in the full run.
  out=$("$hecnn" "${ev[@]}" --offset 3 --limit 4 --predictions "$work/off.txt" 2>&1) || fail "eval --offset: $out"
  grep -q "^dataset cifar10 (test split): 4 images from index 3$" <<<"$out" || fail "eval --offset: $out"
  [ "$(cut -d' ' -f1 "$work/off.txt" | tr '\n' ' ')" = "3 4 5 6 " ] || fail "--predictions indices: $(cat "$work/off.txt")"
  cmp -s "$work/off.txt" <(sed -n 4,7p "$work/all.txt") || fail "--offset predictions differ from the full run's"
  # To the end of the set, and beyond it.
  out=$("$hecnn" "${ev[@]}" --offset 497 2>&1) || fail "eval --offset 497: $out"
  grep -q "^accuracy: .* (. / 3) " <<<"$out" || fail "--offset 497: not the last 3 images: $out"
  expect_error "offset 500 is beyond the 500 images of the CIFAR-10 set" "$hecnn" "${ev[@]}" --offset 500
  echo "ok: the 500-image CIFAR-10 sample, eval --offset and --predictions"
  ran=1
else
  echo "skip: $sample or the PP-CNN CIFAR-10 model not present"
fi

# Synthetic CIFAR-10 files: 7 records are a test set of 7 (the model does not matter for a refusal
# of its shape, which comes after the dataset is read).
mkdir "$work/c"
records 0 7 >"$work/c/test_batch.bin"
model="$root/models/mnist-swish4.safetensors"
expect_error "the model expects 1x28x28 inputs" "$hecnn" eval -m "$model" --dataset cifar10 --data-dir "$work/c" --encrypted
grep -q "^CIFAR-10 test set: 7 images$" <<<"$msg" || fail "7 records: $msg"
{ records 0 7; head -c 100 /dev/zero; } >"$work/c/test_batch.bin"
expect_error "21611 bytes is not a whole number of CIFAR-10 records (7 records and 100 bytes" \
  "$hecnn" eval -m "$model" --dataset cifar10 --data-dir "$work/c"
: >"$work/c/test_batch.bin"
expect_error "test_batch.bin: empty" "$hecnn" eval -m "$model" --dataset cifar10 --data-dir "$work/c"
echo "ok: synthetic CIFAR-10 files"
ran=1

# eval --encrypted --offset (small insecure parameters): true indices, the plaintext classes.
mnist="$shared/datasets/mnist" name=""
if [ -f "$mnist/t10k-images-idx3-ubyte.gz" ]; then
  name=mnist data=(--dataset mnist --data-dir "$mnist")
elif [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then  # Debian's, without ../shared
  name=fashion-mnist data=(--dataset fashion-mnist) model="$root/models/fashion-mnist-swish4.safetensors"
fi
if [ -n "$name" ]; then
  m=(-m "$model" "${data[@]}" --offset 5 --limit 3 -q)
  "$hecnn" eval "${m[@]}" --predictions "$work/plain.txt" >/dev/null 2>&1 || fail "eval --offset (MNIST)"
  out=$("$hecnn" eval "${m[@]}" --encrypted --log-n 11 --allow-insecure --predictions "$work/enc.txt" 2>&1) ||
    fail "eval --encrypted --offset: $out"
  grep -q "3 test images of $name from index 5" <<<"$out" || fail "eval --encrypted --offset: $out"
  [ "$(cut -d' ' -f1 "$work/enc.txt" | tr '\n' ' ')" = "5 6 7 " ] || fail "encrypted --predictions indices: $(cat "$work/enc.txt")"
  cmp -s <(cut -d' ' -f1,2 "$work/enc.txt") <(cut -d' ' -f1,2 "$work/plain.txt") ||
    fail "encrypted classes differ from the plaintext ones: $(cat "$work/enc.txt") vs $(cat "$work/plain.txt")"
  expect_error "offset 10000 is beyond the 10000 images of the" \
    "$hecnn" eval -m "$model" "${data[@]}" --offset 10000 --encrypted
  echo "ok: eval --encrypted --offset"
  ran=1
fi
[ "$ran" = 1 ] || exit 77
