#!/usr/bin/env bash
# ISA-leak check: fails when an object file exports (global or weak, i.e. mergeable across TUs) a function of
# dsk's whose mangled name has no ISA namespace (isa_avx2, isa_avx512, isa_neon, isa_scalar) but whose code uses
# AVX registers (ymm/zmm). The linker keeps one copy of such a weak symbol for the whole program: linked with a
# TU built for baseline x86-64, the AVX copy can win and crash a CPU without AVX (DESIGN.md: everything whose
# code depends on -march sits in DSK_ISA_BEGIN/END). Skipped: the tests' own helpers (dsk::test), the scalar
# oracles (dsk::<family>::ref) and the SIMT emulation (dsk::simt and the emulated CUDA kernels, simt_emu): code
# that only test binaries compile, all with one -march; they are not (yet) in ISA namespaces.
#   tools/isa-leak-check.sh OBJECT...     (needs binutils' objdump, nm and c++filt)
# DSK_ISA_LEAK_STRICT=1 also counts VEX-encoded xmm instructions (vmovss, vaddps %xmm...: scalar and 128-bit
# code compiled with -mavx is just as unrunnable without AVX); the default looks for ymm/zmm registers only.
set -euo pipefail
# (An argument may hold several paths separated by ';', as CMake's $<TARGET_OBJECTS:...> gives them.)
objects=()
for arg in "$@"; do
  IFS=';' read -ra parts <<<"$arg"
  objects+=("${parts[@]}")
done
[ ${#objects[@]} -gt 0 ] || { echo "usage: $0 OBJECT..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
leaks=$(
  for obj in "${objects[@]}"; do
    # Global/weak defined text symbols of dsk, outside any ISA namespace.
    "${NM:-nm}" --defined-only "$obj" | awk '$2 ~ /^[TWi]$/ {print $3}' |
      grep -E '^_ZZ?NK?3dsk' | grep -vE '[0-9]isa_(avx2|avx512|neon|scalar)' | grep -vE '^_ZZ?NK?3dsk4test|3ref[0-9]|4simt[0-9]|8simt_emu' | sort -u >"$tmp/syms" || true
    [ -s "$tmp/syms" ] || continue
    # Disassemble only the sections that hold those symbols (objdump of a whole test object takes seconds to
    # tens of seconds): an inline or template function's own COMDAT section .text.<symbol>, and .text for the rest.
    "${OBJDUMP:-objdump}" -h "$obj" | awk '$2 ~ /^\.text\./ {print substr($2, 7)}' | sort -u >"$tmp/own"
    objdump_sections=()
    while read -r sym; do objdump_sections+=(-j ".text.$sym"); done < <(comm -12 "$tmp/syms" "$tmp/own")
    [ -z "$(comm -23 "$tmp/syms" "$tmp/own")" ] || objdump_sections+=(-j .text)
    # Functions whose disassembly touches a ymm or zmm register.
    "${OBJDUMP:-objdump}" -d --no-show-raw-insn "${objdump_sections[@]}" "$obj" | awk -v strict="${DSK_ISA_LEAK_STRICT:-0}" '
      /^[0-9a-f]+ <.*>:$/ { sym = substr($2, 2, length($2) - 3); next }
      sym != "" && (/%[yz]mm[0-9]/ || (strict == 1 && $2 ~ /^v/ && /%xmm[0-9]/)) { print sym; sym = "" }' |
      sort -u >"$tmp/avx"
    comm -12 "$tmp/syms" "$tmp/avx"
  done | sort -u
)
if [ -n "$leaks" ]; then
  n=$(printf '%s\n' "$leaks" | wc -l)
  echo "dsk ISA leak: $n exported dsk function(s) outside an ISA namespace contain AVX code (ymm/zmm$([ "${DSK_ISA_LEAK_STRICT:-0}" = 1 ] && echo ", VEX xmm")):" >&2
  printf '%s\n' "$leaks" | c++filt | sed 's/^/  /' >&2
  echo "Put their definitions (or the kernel code they inline) inside DSK_ISA_BEGIN/DSK_ISA_END." >&2
  exit 1
fi
echo "dsk ISA leak check: no exported dsk function outside an ISA namespace uses AVX registers (${#objects[@]} objects)"
