#!/usr/bin/env bash
# hecnn approx: prints the paper's fit, writes a real PNG with --plot, and rejects bad arguments
# with a clear message and a non-zero exit.
set -u
hecnn="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$hecnn" approx --fn swish --degree 4 --range 4) || fail "approx exited non-zero"
grep -q "0.0334711 + 0.5\*x + 0.1956605\*x^2 - 0.005074974\*x^4" <<<"$out" || fail "unexpected fit: $out"

"$hecnn" approx --fn gelu --degree 8 --range 6 --method minimax --plot "$work/gelu.png" >/dev/null ||
  fail "--plot exited non-zero"
[ -s "$work/gelu.png" ] || fail "no image written"
[ "$(head -c 8 "$work/gelu.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "not a PNG file"
size=$(stat -c %s "$work/gelu.png")
[ "$size" -gt 10000 ] || fail "image suspiciously small ($size bytes)"

json=$("$hecnn" approx --fn relu --degree 2 --range 4 --json) || fail "--json exited non-zero"
grep -q '"method": "lsq"' <<<"$json" || fail "json lacks the method: $json"

expect_error() {
  local pattern="$1"
  shift
  local msg
  if msg=$("$hecnn" approx "$@" 2>&1); then fail "'approx $*' should fail"; fi
  grep -qi -- "$pattern" <<<"$msg" || fail "'approx $*': message '$msg' does not mention '$pattern'"
}
expect_error "unknown activation function 'swsh'" --fn swsh
expect_error "known: swish" --fn swsh
expect_error "degree 0 is out of range" --fn swish --degree 0
expect_error "degree 99 is out of range" --fn swish --degree 99
expect_error "range r must be a positive number" --fn swish --range 0
expect_error "range r must be a positive number" --fn swish --range -3
expect_error "unknown fit method" --fn swish --method spline
expect_error "--fn is required" --degree 4
expect_error "Could not convert: --degree = four" --fn swish --degree four

# A --plot name never reaches gnuplot's command language. A line break would have started a new
# gnuplot command (here system(), which would create $work/pwned): the name is refused and nothing runs.
evil="$work/x.png"$'\n'"system(\"touch $work/pwned\")"$'\n'"set output '$work/y.png"
expect_error "control character" --fn swish --degree 2 --plot "$evil"
[ ! -e "$work/pwned" ] || fail "an injected gnuplot command ran"
[ ! -e "$work/y.png" ] || fail "an injected gnuplot command ran (y.png written)"
# Quotes are ordinary characters of the name.
odd="it's \"odd\"; system('touch pwned2').png"
(cd "$work" && "$hecnn" approx --fn swish --degree 2 --plot "$odd" >/dev/null) || fail "--plot with quotes in the name"
[ -s "$work/$odd" ] || fail "no image written under the name with quotes"
[ ! -e "$work/pwned2" ] || fail "a gnuplot command in a quoted name ran"
# A plot never replaces a key file; a symbolic link at the name is replaced, its target untouched.
printf 'HCKS\002\000\005\000xxxxxxxxxxxxxxxx' >"$work/fake-secret.key"
expect_error "holds a secret key" --fn swish --degree 2 --plot "$work/fake-secret.key"
echo precious >"$work/victim"
ln -s "$work/victim" "$work/link.png"
"$hecnn" approx --fn swish --degree 2 --plot "$work/link.png" >/dev/null || fail "--plot over a symbolic link"
[ "$(cat "$work/victim")" = precious ] || fail "--plot wrote through a symbolic link"
[ ! -L "$work/link.png" ] && [ -s "$work/link.png" ] || fail "the link was not replaced by the image"
echo "cli_approx: ok"
