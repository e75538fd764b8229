#!/usr/bin/env bash
# hecnn train without hecnn-train next to hecnn (or from a build without libtorch): a clear message
# and a non-zero exit.
set -u
hecnn="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cp "$hecnn" "$work/hecnn"
err=$("$work/hecnn" train --help 2>&1) && fail "exited zero without hecnn-train"
grep -q "hecnn-train, which is missing" <<<"$err" || fail "unexpected message: $err"
grep -q "libtorch-dev" <<<"$err" || fail "the message does not say what to install: $err"
"$work/hecnn" --help | grep -q "^  train " || fail "train is not listed in hecnn --help"
echo "ok"
