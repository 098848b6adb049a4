#!/usr/bin/env bash
# Builds and runs all of dsk's tests (Release; CUDA code compiled too when nvcc is found, its logic run under the
# SIMT emulation). Installs missing Debian packages first (as root) or says which to install.
#   tools/test.sh          the release build (build/release)
#   tools/test.sh asan     Debug + AddressSanitizer + UBSan (build/asan)
#   tools/test.sh aarch64  every family's tests cross-compiled for AArch64 (static) and run under qemu-aarch64
#                          (build/aarch64; families: DSK_AARCH64_TEST_FAMILIES in tests/CMakeLists.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
tools/setup-deps.sh
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)"
