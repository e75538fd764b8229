#!/usr/bin/env bash
# Installs the Debian packages hecnn needs. Idempotent: safe to run twice, and
# silent when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libsodium-dev      # CSPRNG for keys and encryption randomness
  libomp-dev         # OpenMP runtime headers (GCC uses libgomp; kept for clang builds)
  clang              # the libFuzzer harnesses (scripts/fuzz.sh)
  libgtest-dev googletest
  libbenchmark-dev
  libcli11-dev       # command-line parsing
  nlohmann-json3-dev # JSON output and model metadata
  zlib1g-dev
  libeigen3-dev      # dense least squares for polynomial fits
  gnuplot-nox        # hecnn approx --plot
  libhdf5-dev        # Keras weights import
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev  # hecnn serve / client (src/service/)
  libonnx-dev        # hecnn import-onnx / export-onnx (protobuf definitions, checker, shape inference)
  # python3-torch and python3-onnx are needed only to regenerate the ONNX test fixtures
  # (tests/fixtures/onnx/make_fixtures.py); the tests read the committed files without Python.
  libstb-dev         # hecnn client --image: PNG, JPEG, PGM/PPM decoding
  openssl            # the service tests make a throwaway TLS certificate
  libtorch-dev       # hecnn-train (src/train/ only)
  dataset-fashion-mnist  # the default dataset (/usr/share/datasets/fashion-mnist)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "hecnn setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "hecnn setup: done" >&2
