#!/usr/bin/env bash
# The main job: install what is missing, build, and classify one full batch of encrypted test
# images with a committed model: key generation, encryption, encrypted inference, decryption, then
# accuracy, agreement with the plaintext model and timings.
#   MNIST (models/mnist-swish4.safetensors) where the MNIST test set is present
#   (../shared/datasets/mnist or data/mnist), otherwise Fashion-MNIST (Debian's
#   dataset-fashion-mnist, installed by setup.sh) with models/fashion-mnist-swish4.safetensors.
# Extra arguments go to `hecnn eval` (e.g. --limit 1000, --threads 2, --log-n 15).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh" "$root/build"
hecnn="$root/build/src/hecnn"
cd "$root"
if [ -f models/mnist-swish4.safetensors ] && { [ -d ../shared/datasets/mnist ] || [ -d data/mnist ]; }; then
  model=models/mnist-swish4.safetensors dataset=mnist
elif [ -f models/fashion-mnist-swish4.safetensors ]; then
  model=models/fashion-mnist-swish4.safetensors dataset=fashion-mnist
else
  echo "run.sh: no MNIST test set found (../shared/datasets/mnist or data/mnist; download it from" >&2
  echo "https://yann.lecun.com/exdb/mnist/ into data/mnist) and no Fashion-MNIST model committed yet" >&2
  echo "(train one: build/src/hecnn train --dataset fashion-mnist --arch mnist-paper" >&2
  echo "--activation swish:deg4:range4 --out models/fashion-mnist-swish4.safetensors)" >&2
  exit 1
fi
echo "== encrypted classification: $model on the $dataset test set"
# One full batch unless the caller chose another --limit (an option given twice is an error).
limit=(--limit 8192)
for a in "$@"; do
  case "$a" in --limit | --limit=* | -n) limit=() ;; esac
done
exec "$hecnn" eval --model "$model" --dataset "$dataset" --encrypted "${limit[@]}" "$@"
