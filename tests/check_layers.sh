#!/usr/bin/env bash
# The ladder of the source tree: each folder includes only itself and the folders below it
#   common <- ring <- ckks <- approx <- circuits <- nn <- he <- service <- cli   (train: common, approx, nn)
# and nothing above the scheme reaches into its internals (ckks::detail, ckks/polyops.h, raw ring
# kernels). The generated "hecnn/version.h" and protocol code ("hecnn/v1/...") may be included
# anywhere. Prints every violation and
# exits 1 if there is one.
set -euo pipefail
src="${1:?usage: check_layers.sh SRC_DIR}"
declare -A allowed=(
  [common]="common"
  [ring]="common ring"
  [ckks]="common ring ckks"
  [approx]="common ckks approx"
  [circuits]="common ckks approx circuits"
  [nn]="common approx nn"
  [he]="common ckks approx circuits nn he"
  [train]="common approx nn train"
  [service]="common ckks approx circuits nn he service"
  [cli]="common ckks approx circuits nn he service cli"
)
bad=0
for dir in "${!allowed[@]}"; do
  [ -d "$src/$dir" ] || { echo "missing folder src/$dir"; bad=1; continue; }
  while IFS= read -r line; do
    file="${line%%:*}"
    target="$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$line")"
    if [ "$target" != hecnn ] && ! grep -qw -- "$target" <<<"${allowed[$dir]}"; then
      echo "upward or sideways include in ${file#"$src"/}: $target/ (src/$dir may include: ${allowed[$dir]})"
      bad=1
    fi
  done < <(grep -rE '^#include "[a-z_]+/' "$src/$dir" || true)
done
# Above the scheme: no scheme internals, no raw limbs.
for dir in approx circuits nn he train service cli; do
  if grep -rnE 'ckks::detail|"ckks/polyops.h"|"ring/kernels.h"|"ring/scratch.h"|\.limb\(' "$src/$dir"; then
    echo "src/$dir reaches into the scheme's internals (lines above)"
    bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "layers: ok"
exit "$bad"
