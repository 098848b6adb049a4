#!/usr/bin/env bash
# Checks the Debian packages dsk's build, tests, examples and benchmarks need. Run as root, it installs the
# missing ones with apt-get; otherwise it prints the exact command to run and exits 1.
set -euo pipefail

# libpcre2-dev:arm64 (Debian multiarch) is dsk::io's PCRE2 for the AArch64 cross build (tools/test.sh aarch64);
# the cross build's other dependencies are header-only and come from the host packages. valgrind runs the
# tokenizer's PCRE2 tests under memcheck (test_io_valgrind); clang-14, libclang-rt-14-dev (libFuzzer and the
# sanitizer runtimes) and libomp-14-dev (clang's OpenMP) build the fuzz harnesses (tools/fuzz.sh) and the
# sanitizer build (tools/test.sh asan).
packages=(g++ cmake ninja-build pkg-config catch2 libfmt-dev libbenchmark-dev libopenblas-dev libeigen3-dev
          nlohmann-json3-dev libcli11-dev libpcre2-dev g++-aarch64-linux-gnu qemu-user libpcre2-dev:arm64
          valgrind clang-14 libclang-rt-14-dev libomp-14-dev libopenmpi-dev openmpi-bin)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "dsk: missing packages: ${missing[*]} (this is not a Debian-like system: install their equivalents)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "dsk: missing Debian packages. Install them with:" >&2
  if printf '%s\n' "${missing[@]}" | grep -q ':arm64$'; then
    echo "    sudo dpkg --add-architecture arm64   # multiarch, for the AArch64 cross build's PCRE2" >&2
  fi
  echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if [ "$(dpkg --print-architecture)" != arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  for p in "${missing[@]}"; do
    if [[ $p == *:arm64 ]]; then
      echo "dsk: enabling Debian multiarch for arm64 (for ${p}, used by the AArch64 cross build)"
      dpkg --add-architecture arm64
      break
    fi
  done
fi
echo "dsk: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
