#!/usr/bin/env bash
# Builds and runs the demo: the DeepSeek-V2 reference model (examples/v2) on its tiny preset with built-in
# deterministic random weights: prefill, decode with the latent KV cache, timing per kernel family. Extra
# arguments go to the runner (e.g. --greedy, --max-new-tokens 16, --weights int4; --model DIR for a real
# checkpoint). Installs missing Debian packages first (as root) or says which to install.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target dsk_v2 dsk_demo -j "$(nproc)"
build/release/examples/demo/dsk_demo
echo
exec build/release/examples/v2/dsk_v2 "$@"
