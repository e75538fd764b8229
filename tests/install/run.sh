#!/usr/bin/env bash
# hecnn as a library: installs the build tree into a temporary prefix, then builds and runs a small
# program outside the tree against it, with find_package(hecnn) and with pkg-config.
#   tests/install/run.sh BUILD_DIR SOURCE_DIR CMAKE_COMMAND
set -euo pipefail
build="$1"
src="$2"
cmake="$3"
here="$src/tests/install"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1; }

version=$(cache_value CMAKE_PROJECT_VERSION)
cxx=$(cache_value CMAKE_CXX_COMPILER)
generator=$(cache_value CMAKE_GENERATOR)
make_program=$(cache_value CMAKE_MAKE_PROGRAM)
libdir=$(cache_value CMAKE_INSTALL_LIBDIR)
[ -n "$version" ] || fail "no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt"
prefix="$work/prefix"
case "$libdir" in /*) ;; *) libdir="$prefix/${libdir:-lib}" ;; esac

echo "== cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "install"; }
for f in include/hecnn/version.h include/hecnn/ckks/ckks.h include/hecnn/ring/ntt.h include/hecnn/common/error.h \
         include/hecnn/approx/polynomial.h include/hecnn/nn/model.h include/hecnn/he/plan.h; do
  [ -f "$prefix/$f" ] || fail "$f not installed"
done
config=$(find "$prefix" -name hecnnConfig.cmake | head -n 1)
pcfile=$(find "$prefix" -name hecnn.pc | head -n 1)
[ -n "$config" ] || fail "hecnnConfig.cmake not installed"
[ -f "$(dirname "$config")/hecnnConfigVersion.cmake" ] || fail "hecnnConfigVersion.cmake not installed"
[ -n "$pcfile" ] || fail "hecnn.pc not installed"
grep -q "HECNN_VERSION \"$version\"" "$prefix/include/hecnn/version.h" || fail "version.h does not say $version"

# Only the installed package: no package registry, no source tree.
common_args=(-G "$generator" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx"
             -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
             -DHECNN_EXPECTED_VERSION="$version")
[ -n "$make_program" ] && common_args+=(-DCMAKE_MAKE_PROGRAM="$make_program")

echo "== find_package(hecnn $version REQUIRED COMPONENTS ckks): configure, build, run"
"$cmake" -S "$here/consumer" -B "$work/consumer" "${common_args[@]}" -DHECNN_COMPONENTS=ckks >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "configuring the consumer (components ckks)"; }
grep -q "hecnn $version from $(dirname "$config")" "$work/configure.log" ||
  { cat "$work/configure.log"; fail "the consumer did not find the hecnn just installed"; }
"$cmake" --build "$work/consumer" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building the consumer"; }
out=$(OMP_NUM_THREADS=1 "$work/consumer/consumer") || { echo "$out"; fail "the consumer failed"; }
echo "$out"
grep -q "^hecnn $version " <<<"$out" || fail "the consumer does not print version $version"

echo "== find_package(hecnn $version REQUIRED): configure (every component)"
"$cmake" -S "$here/consumer" -B "$work/consumer-all" "${common_args[@]}" >"$work/configure-all.log" 2>&1 ||
  { cat "$work/configure-all.log"; fail "configuring the consumer (every component)"; }
"$cmake" -S "$here/consumer" -B "$work/consumer-nojson" "${common_args[@]}" -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON \
  >"$work/configure-nojson.log" 2>&1 && fail "find_package(hecnn REQUIRED) succeeded without nlohmann_json"
grep -q "hecnn::nn and hecnn::he need nlohmann_json" "$work/configure-nojson.log" ||
  { cat "$work/configure-nojson.log"; fail "no clear message when nlohmann_json is missing"; }
major=${version%%.*}
if "$cmake" -S "$here/consumer" -B "$work/consumer-next" "${common_args[@]}" \
     -DHECNN_EXPECTED_VERSION="$((major + 1)).0" >"$work/configure-next.log" 2>&1; then
  fail "find_package(hecnn $((major + 1)).0) accepted version $version"
fi

echo "== pkg-config"
export PKG_CONFIG_PATH="$(dirname "$pcfile")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
[ "$(pkg-config --modversion hecnn)" = "$version" ] || fail "pkg-config --modversion hecnn is not $version"
flags=$(pkg-config --cflags --libs hecnn) || fail "pkg-config --cflags --libs hecnn"
echo "pkg-config --cflags --libs hecnn: $flags"
for want in "-I$prefix/include" "-I$prefix/include/hecnn" "-L$libdir" -lhecnn_ckks -lhecnn_he -lsodium; do
  grep -q -- "$want\( \|$\)" <<<"$flags" || fail "'$want' missing from pkg-config --cflags --libs hecnn"
done
ckks_flags=$(pkg-config --cflags --libs hecnn-ckks) || fail "pkg-config --cflags --libs hecnn-ckks"
grep -q -- "-lhecnn_nn\|-lhdf5\|-lz\( \|$\)" <<<"$ckks_flags" && fail "hecnn-ckks.pc drags in more than the scheme: $ckks_flags"
# shellcheck disable=SC2086  # word splitting of the flags is wanted
"$cxx" -std=c++20 -O1 "$here/consumer/main.cpp" -o "$work/consumer-pc" $flags || fail "compiling with pkg-config hecnn"
out=$(OMP_NUM_THREADS=1 "$work/consumer-pc") || { echo "$out"; fail "the pkg-config consumer failed"; }
echo "$out"
grep -q "^ok$" <<<"$out" || fail "the pkg-config consumer did not say ok"
echo "ok"
