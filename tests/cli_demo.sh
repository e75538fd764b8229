#!/usr/bin/env bash
# hecnn demo at seal-n8192 (scale 2^40 on 43/44-bit primes: 2^36 after the rescale): each printed
# precision against a floor 1 to 1.5 bits below the lowest of 30 runs (fresh 26.2-27.4 bits, after
# the multiplication 22.5-23.3, after the rotation 20.2-21.2; the rotation's key-switching error is
# ~5 times the rescale's at this scale, with a 44-bit special prime).
set -u
hecnn="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$hecnn" demo --params seal-n8192) || fail "demo exited non-zero: $out"
echo "$out"
# at_least LABEL VALUE FLOOR
at_least() {
  [ -n "$2" ] || fail "no $1 precision in the output"
  awk -v v="$2" -v f="$3" 'BEGIN { exit !(v >= f) }' || fail "$1 precision $2 bits, expected at least $3"
  echo "ok: $1 precision $2 >= $3 bits"
}
fresh=$(sed -n 's/^  fresh ciphertext precision: \([0-9.]*\) bits$/\1/p' <<<"$out")
mul=$(sed -n 's/^Multiply + relinearize + rescale: .*, level 3 -> 2, precision \([0-9.]*\) bits$/\1/p' <<<"$out")
rot=$(sed -n 's/^Rotate by 3: .*, precision \([0-9.]*\) bits$/\1/p' <<<"$out")
at_least fresh "$fresh" 25
at_least multiplication "$mul" 21.5
at_least rotation "$rot" 19

# demo --bootstrap at N = 4096 (the boot-n65536 chain, INSECURE at this degree): encrypt, compute
# down to level 0, bootstrap, compute again. Bootstrap precision 25.4-26.1 bits mean in the runs seen.
out=$("$hecnn" demo --bootstrap --ring-degree 4096 --allow-insecure) || fail "demo --bootstrap exited non-zero: $out"
echo "$out"
grep -q "INSECURE" <<<"$out" || fail "no INSECURE warning at N=4096"
boot=$(sed -n 's/^Bootstrap: *level 10, precision \([0-9.]*\) bits mean.*$/\1/p' <<<"$out")
at_least bootstrap "$boot" 22
grep -q "^Memory peak measured" <<<"$out" || fail "no measured memory"
# Below the preset's ring degree without --allow-insecure: refused with a clear message.
if err=$("$hecnn" demo --bootstrap --ring-degree 4096 2>&1); then fail "N=4096 bootstrapping ran without --allow-insecure"; fi
grep -q "security bound" <<<"$err" || fail "unclear refusal: $err"
echo "ok: bootstrap demo"
