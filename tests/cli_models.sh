#!/usr/bin/env bash
# The committed models: each classifies its full test set with the accuracy recorded in
# docs/RESULTS.md (plaintext), and compiles for encrypted inference at the default, 128-bit secure
# parameters (the plan only: encrypted = plaintext is he_tests' and cli.client_server's part, at
# small parameters). MNIST needs ../shared/datasets/mnist; without it that part is skipped (exit 77
# if nothing could run).
set -u
hecnn="$1" root="$2" shared="$3"
fail() { echo "FAIL: $*" >&2; exit 1; }
ran=0

check_model() {  # model dataset expected-accuracy-line [--data-dir dir]
  local model=$1 dataset=$2 expected=$3
  shift 3
  out=$("$hecnn" eval --model "$root/models/$model" --dataset "$dataset" "$@" 2>&1) || fail "$model: $out"
  grep -q "^accuracy: $expected " <<<"$out" || fail "$model: expected accuracy $expected, got: $out"
  echo "ok: $model $expected on $dataset"
  out=$("$hecnn" plan -m "$root/models/$model" 2>&1) || fail "$model: plan: $out"
  grep -q "^encrypted computation: 5 stages, 7 levels$" <<<"$out" || fail "$model: unexpected plan: $out"
  grep -q "^parameters: N = 16384 (8192 images per batch), .*(128-bit secure)$" <<<"$out" ||
    fail "$model: not the secure default parameters: $out"
  echo "ok: $model compiles to 7 levels at N = 16384, 128-bit secure"
  ran=1
}

if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || [ -n "${HECNN_DATA_DIR:-}" ]; then
  check_model fashion-mnist-swish4.safetensors fashion-mnist "88.59 % (8859 / 10000)"
else
  echo "skip: Fashion-MNIST test set not installed (dataset-fashion-mnist)"
fi

if [ -d "$shared/datasets/mnist" ]; then
  check_model mnist-swish4.safetensors mnist "98.85 % (9885 / 10000)" --data-dir "$shared/datasets/mnist"
else
  echo "skip: $shared/datasets/mnist not present"
fi
[ "$ran" = 1 ] || exit 77
