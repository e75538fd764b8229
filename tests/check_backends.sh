#!/usr/bin/env bash
# One interface per layout (he/backend.h): outside the back ends (src/he/batch, src/he/packed) and
# their registry (src/he/backend.cpp), no code switches on the layout, compares it with a given
# layout, or casts to a layout's types. Prints every violation and exits 1 if there is one.
set -euo pipefail
src="${1:?usage: check_backends.sh SRC_DIR}"
outside() { grep -rnE "$1" "$src" --include='*.cpp' --include='*.h' | grep -vE "^$src/he/(batch|packed)/|^$src/he/backend\.cpp:" || true; }
bad=0
report() {
  if [ -n "$2" ]; then
    printf '%s\n%s\n' "$1" "$2"
    bad=1
  fi
}
report "a switch on a layout outside the back ends:" "$(outside 'switch \(([a-z_]+(\.|->))?layout|case (he::)?Layout::')"
report "a layout compared outside the back ends:" "$(outside '[!=]= *(he::)?Layout::|(he::)?Layout::[A-Za-z]+ *[!=]=|\? *(he::)?Layout::')"
report "a cast to a layout's types outside the back ends:" "$(outside '(dynamic|static|reinterpret)_cast<[^>]*(batch|packed)::')"
[ "$bad" -eq 0 ] && echo "backends: ok"
exit "$bad"
