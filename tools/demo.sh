#!/usr/bin/env bash
# Builds and runs the demo: the reference models on their tiny presets with built-in deterministic random
# weights: DeepSeek-V2 (examples/v2: prefill, decode with the latent KV cache), then DeepSeek-V1
# (examples/v1: encode with dynamic block attention, decode with the NSA cache), then DeepSeek-Lite
# (examples/lite: int4 codes mapped from the file, shared blocks, tied head), each with timing per kernel
# family.
# Extra arguments go to the V2 runner (e.g. --greedy, --max-new-tokens 16, --weights int4; --model DIR for a
# real checkpoint). Installs missing Debian packages first (as root) or says which to install.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target dsk_v1 dsk_v2 dsk_lite dsk_demo -j "$(nproc)"
build/release/examples/demo/dsk_demo
echo
echo "== DeepSeek-V2 (tiny preset, random weights): build/release/examples/v2/dsk_v2 $* =="
build/release/examples/v2/dsk_v2 "$@"
echo
echo "== DeepSeek-V1 (tiny preset, random weights): build/release/examples/v1/dsk_v1 --max-new-tokens 16 --source-len 300 =="
build/release/examples/v1/dsk_v1 --max-new-tokens 16 --source-len 300
echo
echo "== DeepSeek-Lite (tiny preset, random int4 weights): build/release/examples/lite/dsk_lite --max-new-tokens 16 =="
exec build/release/examples/lite/dsk_lite --max-new-tokens 16
