#!/usr/bin/env bash
# Builds and runs dsk's demo program (Release). Installs missing Debian packages first (as root) or says which.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target dsk_demo -j "$(nproc)"
exec build/release/examples/demo/dsk_demo "$@"
