#!/usr/bin/env bash
# The committed models: each classifies its full test set with the accuracy recorded in
# docs/RESULTS.md, and the Fashion-MNIST one gives the same predictions encrypted (one batch of
# 200 images at the default, 128-bit parameters). MNIST needs ../shared/datasets/mnist; without
# it that part is skipped (exit 77 if nothing could run).
set -u
hecnn="$1" root="$2" shared="$3"
fail() { echo "FAIL: $*" >&2; exit 1; }
ran=0

check_plain() {  # model dataset expected-line [--data-dir dir]
  local model=$1 dataset=$2 expected=$3
  shift 3
  out=$("$hecnn" eval --model "$root/models/$model" --dataset "$dataset" "$@" 2>&1) || fail "$model: $out"
  grep -q "^accuracy: $expected " <<<"$out" || fail "$model: expected accuracy $expected, got: $out"
  echo "ok: $model $expected on $dataset"
  ran=1
}

if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || [ -n "${HECNN_DATA_DIR:-}" ]; then
  check_plain fashion-mnist-swish4.safetensors fashion-mnist "88.59 % (8859 / 10000)"
  out=$("$hecnn" eval --model "$root/models/fashion-mnist-swish4.safetensors" --dataset fashion-mnist \
        --encrypted --limit 200 2>&1) || fail "encrypted: $out"
  grep -q "agreement with plaintext predictions: 100.00 % (200 / 200)" <<<"$out" || fail "encrypted agreement: $out"
  grep -q "(128-bit secure)" <<<"$out" || fail "not the secure default parameters: $out"
  echo "ok: fashion-mnist-swish4 encrypted = plaintext on 200 images"
else
  echo "skip: Fashion-MNIST test set not installed (dataset-fashion-mnist)"
fi

if [ -d "$shared/datasets/mnist" ]; then
  check_plain mnist-swish4.safetensors mnist "98.85 % (9885 / 10000)" --data-dir "$shared/datasets/mnist"
else
  echo "skip: $shared/datasets/mnist not present"
fi
[ "$ran" = 1 ] || exit 77
