#!/usr/bin/env bash
# Hostile and absurd inputs to every command-line reader (issue 14): model files, architectures,
# activation specifications, IDX gzip bombs, special files, short CIFAR-10 files, key files and
# option values. Each command runs under a memory limit and a time limit and must fail cleanly:
# exit code 1 with "error:" and a message naming the problem (a refused option: the usage exit
# code 2, with the option named), never a crash, out of memory (3), an "unexpected error" (4) or
# a timeout. Uses the committed Fashion-MNIST model and Debian's Fashion-MNIST; exits 77
# (skipped) without that test set or python3.
set -u
hecnn="$1"
root="${3:-$(cd "$(dirname "$0")/.." && pwd)}"
fmnist=/usr/share/datasets/fashion-mnist
if [ ! -f "$fmnist/t10k-images-idx3-ubyte.gz" ]; then
  echo "skipped: $fmnist (Debian's dataset-fashion-mnist) not present"
  exit 77
fi
if ! command -v python3 >/dev/null; then
  echo "skipped: python3 (to write the hostile files) not found"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Limits for every run: what a command here needs (well under 1 GiB of address space with two
# threads) plus 2 GiB, and 60 s. Two threads and two malloc arenas keep the address space
# independent of the machine's core count.
export OMP_NUM_THREADS=2 MALLOC_ARENA_MAX=2 OMP_WAIT_POLICY=passive
mem_kib=$((3 * 1024 * 1024))
run() { (ulimit -v "$mem_kib" && exec timeout 60 "$hecnn" "$@") 2>&1; }

# A clean refusal: exit code 1, "error:", the pattern.
expect_error() {
  local pattern="$1"
  shift
  local msg rc
  msg=$(run "$@")
  rc=$?
  [ "$rc" -eq 1 ] || fail "'$*': exit code $rc (expected 1): $msg"
  grep -q "error:" <<<"$msg" || fail "'$*': no 'error:' in '$msg'"
  grep -qi -- "$pattern" <<<"$msg" || fail "'$*': message '$msg' does not mention '$pattern'"
}
# A refused option: the usage exit code 2 (or 1), never 0, 3, 4 or a signal or timeout.
expect_refused_option() {
  local pattern="$1"
  shift
  local msg rc
  msg=$(run "$@")
  rc=$?
  { [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ]; } || fail "'$*': exit code $rc: $msg"
  grep -qi -- "$pattern" <<<"$msg" || fail "'$*': message '$msg' does not mention '$pattern'"
}

cp "$root/models/fashion-mnist-swish4.safetensors" "$work/m.safetensors" || fail "no committed model"
model="$work/m.safetensors"
data=(--dataset fashion-mnist --data-dir "$fmnist")
# The Keras importer reads the structure (JSON) before it opens the weights file.
echo '{}' >"$work/structure.json"
structure="$work/structure.json"
weights="$model"

# --- option values ------------------------------------------------------------------------------
expect_refused_option "--extra-levels" plan -m "$model" --extra-levels 1000000
expect_refused_option "--extra-levels" plan -m "$model" --extra-levels -2
expect_refused_option "--log-n" plan -m "$model" --log-n 1000000
expect_refused_option "--log-n" plan -m "$model" --log-n -1
expect_refused_option "--scale-bits" plan -m "$model" --scale-bits 70
expect_refused_option "--limit" eval -m "$model" "${data[@]}" --limit -1
expect_refused_option "--offset" encrypt -k "$work/none" "${data[@]}" --offset -1 -o "$work/q.bin"
expect_refused_option "--threads" eval -m "$model" "${data[@]}" --threads 100000
expect_refused_option "--threads" eval -m "$model" "${data[@]}" --threads -1
expect_refused_option "--dataset" eval -m "$model" --dataset foo
expect_error "points" approx --fn gelu --degree 32 --range 8 --points 10000000
expect_error "degree 100000 is out of range" approx --fn swish --degree 100000
# The insecure extreme that is allowed still finishes quickly: 63 levels at N = 2^12.
run plan -m "$model" --log-n 12 --scale-bits 30 --allow-insecure --extra-levels 56 >/dev/null ||
  fail "plan with the most levels allowed"

# --- hostile files ------------------------------------------------------------------------------
python3 - "$work" <<'PY' || fail "python3 could not write the hostile files"
import gzip, json, os, struct, sys
w = sys.argv[1]

def safetensors(path, header, data=b""):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)

def f32(values):
    return struct.pack("<%df" % len(values), *values)

def model(path, arch, tensors):
    header, data = {"__metadata__": {"hecnn.architecture": json.dumps(arch)}}, b""
    for name, (shape, values) in tensors.items():
        raw = f32(values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    safetensors(path, header, data)

# 2,000 tensors of 1M floats, all on the same 4 MiB (8 GiB if decoded one by one).
header = {"t%d" % i: {"dtype": "F32", "shape": [1 << 20], "data_offsets": [0, 4 << 20]} for i in range(2000)}
safetensors(w + "/overlap.safetensors", header, bytes(4 << 20))
# 256 KiB declaring a 65,536-filter convolution; 4,096 filters (within the filter bound, 3.2 M values).
for name, filters in (("wide", 65536), ("wide2", 4096)):
    model(w + "/%s.safetensors" % name, {"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": filters, "kernel": 1}]},
          {"0.weight": ([filters, 1, 1, 1], [0.01] * filters)})
# A tensor index beyond 64 bits.
model(w + "/index.safetensors", {"input": [1, 28, 28], "layers": [{"type": "flatten"}]},
      {"99999999999999999999999999.weight": ([1], [1.0])})
# A negative batch-normalization variance; a NaN weight.
dense = {"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}, {"type": "batchnorm"}]}
params = {"1.weight": ([10, 784], [0.001] * 7840), "1.bias": ([10], [0.0] * 10), "2.weight": ([10], [1.0] * 10),
          "2.bias": ([10], [0.0] * 10), "2.running_mean": ([10], [0.0] * 10), "2.running_var": ([10], [1.0] * 9 + [-0.5])}
model(w + "/negvar.safetensors", dense, params)
params["2.running_var"] = ([10], [1.0] * 10)
params["1.weight"] = ([10, 784], [0.001] * 7839 + [float("nan")])
model(w + "/nan.safetensors", dense, params)
# An activation specification that would be refitted on 10^7 points at every load.
model(w + "/spec.safetensors", {"input": [1, 28, 28],
      "layers": [{"type": "activation", "fn": "gelu:deg32:range8:points10000000"}]}, {})
# 100,000 layers; integers beyond int.
model(w + "/layers.safetensors", {"input": [1, 4, 4], "layers": [{"type": "activation", "fn": "square"}] * 100000}, {})
model(w + "/wrap.safetensors", {"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 4294967297, "kernel": 1}]}, {})
# A deeply nested header; a header length beyond the file.
deep = b"[" * 200000
with open(w + "/deep.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(deep)) + deep)
with open(w + "/hugeheader.safetensors", "wb") as f:
    f.write(struct.pack("<Q", 1 << 62) + b"{}")
# A model deeper than the keys will be (for infer).
sw = {"type": "activation", "fn": "swish:deg8:range4"}
model(w + "/deeper.safetensors", {"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}, sw,
      {"type": "dense", "units": 10}, sw, {"type": "dense", "units": 10}]},
      {"1.weight": ([10, 784], [0.001] * 7840), "3.weight": ([10, 10], [0.1] * 100), "5.weight": ([10, 10], [0.1] * 100)})

# IDX: a gzip bomb (10 images declared, 64 MiB inflated); a header declaring 2^31 pixels.
def idx_images(n, rows, cols):
    return struct.pack(">IIII", 0x803, n, rows, cols)
labels = struct.pack(">II", 0x801, 10) + bytes(range(10))
for d in ("bomb", "huge", "urandom", "fifo", "dir", "loop"):
    os.makedirs(w + "/" + d)
with gzip.open(w + "/bomb/t10k-images-idx3-ubyte.gz", "wb", 9) as f:
    f.write(idx_images(10, 28, 28))
    for _ in range(64):
        f.write(bytes(1 << 20))
with gzip.open(w + "/huge/t10k-images-idx3-ubyte.gz", "wb", 9) as f:
    f.write(idx_images(1000000, 1024, 1024) + bytes(1 << 20))
for d in ("bomb", "huge"):
    open(w + "/" + d + "/t10k-labels-idx1-ubyte", "wb").write(labels)
for d in ("urandom", "fifo", "dir", "loop"):
    with gzip.open(w + "/" + d + "/t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(idx_images(10, 28, 28) + bytes(7840))
os.symlink("/dev/urandom", w + "/urandom/t10k-labels-idx1-ubyte")
os.mkfifo(w + "/fifo/t10k-labels-idx1-ubyte")
os.makedirs(w + "/dir/t10k-labels-idx1-ubyte")
os.symlink("t10k-labels-idx1-ubyte.gz", w + "/loop/t10k-labels-idx1-ubyte.gz")
# CIFAR-10: a "test batch" of 3 records and part of a fourth.
os.makedirs(w + "/cifar")
open(w + "/cifar/test_batch.bin", "wb").write(b"".join(bytes([i]) + bytes(3072) for i in range(3)) + bytes(100))
# Keras: a structure nested 200,000 deep.
open(w + "/deep.json", "w").write("[" * 200000)
PY

expect_error "overlap.safetensors.*overlaps" inspect "$work/overlap.safetensors"
expect_error "filters 65536 is out of range" plan -m "$work/wide.safetensors"
expect_error "filters 65536 is out of range" eval -m "$work/wide.safetensors" "${data[@]}"
expect_error "values" plan -m "$work/wide2.safetensors"
expect_error "index.safetensors: tensor '99999999999999999999999999.weight' does not belong" inspect "$work/index.safetensors"
expect_error "tensor '2.running_var' holds a negative variance" eval -m "$work/negvar.safetensors" "${data[@]}" --limit 10
expect_error "tensor '1.weight' holds a non-finite value" eval -m "$work/nan.safetensors" "${data[@]}" --limit 10
expect_error "spec.safetensors.*points 10000000 is out of range" inspect "$work/spec.safetensors"
expect_error "100000 layers" inspect "$work/layers.safetensors"
expect_error "'filters' must be an integer" inspect "$work/wrap.safetensors"
expect_error "deep.safetensors.*nested" inspect "$work/deep.safetensors"
expect_error "header length" inspect "$work/hugeheader.safetensors"
expect_error "/dev/zero is a character device" inspect /dev/zero
expect_error "is a directory" inspect "$work"
expect_error "cannot open model file" inspect "$work/missing.safetensors"

expect_error "more data than its header (10 images of 28x28)" eval -m "$model" --data-dir "$work/bomb"
expect_error "pixels (at most" eval -m "$model" --data-dir "$work/huge"
expect_error "t10k-labels-idx1-ubyte is a character device, not a regular file" eval -m "$model" --data-dir "$work/urandom"
expect_error "FIFO" eval -m "$model" --data-dir "$work/fifo"
expect_error "t10k-labels-idx1-ubyte is a directory" eval -m "$model" --data-dir "$work/dir"
expect_error "loop/t10k-labels-idx1-ubyte.gz: a loop of symbolic links" eval -m "$model" --data-dir "$work/loop"
expect_error "not a whole number of CIFAR-10 records" eval -m "$model" --dataset cifar10 --data-dir "$work/cifar"

mkdir "$work/structure-dir"
expect_error "structure-dir is a directory" import-keras -s "$work/structure-dir" -w "$weights" -o "$work/x.safetensors"
expect_error "deep.json.*nested" import-keras -s "$work/deep.json" -w "$weights" -o "$work/x.safetensors"
expect_error "Keras weights file /dev/null is a character device" import-keras -s "$structure" -w /dev/null -o "$work/x.safetensors"
expect_error "structure-dir is a directory" import-onnx "$work/structure-dir" -o "$work/x.safetensors"
expect_error "ONNX model /dev/zero is a character device" import-onnx /dev/zero -o "$work/x.safetensors"
mkfifo "$work/model.onnx.fifo"
expect_error "FIFO" import-onnx "$work/model.onnx.fifo" -o "$work/x.safetensors"
truncate -s 600M "$work/huge.onnx"  # sparse: refused by its size before a byte is read
expect_error "huge.onnx: 629145600 bytes, more than the 536870912 an ONNX model may have" import-onnx "$work/huge.onnx" -o "$work/x.safetensors"
python3 -c 'import random, sys; random.seed(15); sys.stdout.buffer.write(random.randbytes(100000))' >"$work/random.onnx"
expect_error "random.onnx" import-onnx "$work/random.onnx" -o "$work/x.safetensors"

# --- keys ---------------------------------------------------------------------------------------
"$hecnn" keygen -m "$model" -o "$work/keys" --log-n 11 --allow-insecure >/dev/null || fail "keygen"
expect_error "this model needs .* hecnn keygen" infer -m "$work/deeper.safetensors" -k "$work/keys" -i "$work/q.bin" -o "$work/r.bin"
run infer -m "$work/deeper.safetensors" -k "$work/keys" -i "$work/q.bin" -o "$work/r.bin" | grep -q -- "--log-n" &&
  fail "infer suggests --log-n, an option it does not have"
python3 - "$work/keys/keys.json" <<'PY' || fail "editing keys.json"
import json, sys
k = json.load(open(sys.argv[1]))
k["spec"]["batch_size"] = 0
json.dump(k, open(sys.argv[1], "w"))
PY
expect_error "'batch_size' must be an integer from 1" encrypt -k "$work/keys" "${data[@]}" --limit 10 -o "$work/q.bin"
echo "cli_hostile: ok"
