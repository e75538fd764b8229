#!/usr/bin/env bash
# The main job: install what is missing, build, and run the walkthrough (`hecnn demo`).
# Extra arguments go to `hecnn demo` (see `build/src/hecnn demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh" "$root/build"
exec "$root/build/src/hecnn" demo "$@"
