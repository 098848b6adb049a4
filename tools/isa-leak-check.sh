#!/usr/bin/env bash
# ISA-leak check: fails when an object file exports (global or weak, i.e. mergeable across TUs) a function of
# dsk's whose mangled name has no ISA namespace (isa_avx2, isa_avx512, isa_neon, isa_scalar) but whose code uses
# AVX registers (ymm/zmm). The linker keeps one copy of such a weak symbol for the whole program: linked with a
# TU built for baseline x86-64, the AVX copy can win and crash a CPU without AVX (DESIGN.md: everything whose
# code depends on -march sits in DSK_ISA_BEGIN/END). Skipped: the tests' own helpers (dsk::test), the scalar
# oracles (dsk::<family>::ref) and the SIMT emulation (dsk::simt and the emulated CUDA kernels, simt_emu): code
# that only test binaries compile, all with one -march; they are not (yet) in ISA namespaces. Also skipped: the
# vocabulary types of include/dsk/core (tensor, mdview, extents, layouts, bf16/f16, thread_pool...): their source
# has no ISA-dependent code (the check fails if their headers name an ISA macro or intrinsics header), so
# no namespace can make them ISA-specific; their out-of-line copies get whatever the compiler auto-vectorizes for
# the TU's -march (at -O2, g++ 12 writes the 56-byte mdview<layout_stride> default constructor with ymm stores),
# exactly like libstdc++'s inline code (std::vector<float>). A link that mixes -march TUs can merge such a copy;
# only per-ISA symbol localization (runtime ISA dispatch) removes that, not this check.
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
# The exemption holds only while those types' headers stay free of ISA-dependent code.
core_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/include/dsk/core"
core_headers=(tensor view extents layout dtype packed_int4 thread_pool parallel)
core_names=(tensor mdview extents layout_right layout_stride aligned_buffer aligned_free bf16 f16 int4x2
  packed_int4_view thread_pool thread_count_scope make_dims uninitialized_t)
core_files=()
for h in "${core_headers[@]}"; do core_files+=("$core_dir/$h.hpp"); done
if grep -nE '__(AVX|SSE|F16C|FMA|ARM_NEON)|DSK_HOST_ISA|DSK_ISA_BEGIN|intrin\.h|arm_neon\.h' "${core_files[@]}" >&2; then
  echo "dsk ISA leak: the headers above hold ISA-dependent code, so the core types they define cannot be exempt" >&2
  exit 1
fi
core_alternatives=$(for n in "${core_names[@]}"; do printf '%s%s|' "${#n}" "$n"; done)
core_skip="^_ZZ?NK?3dsk(${core_alternatives%|})"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
leaks=$(
  for obj in "${objects[@]}"; do
    # Global/weak defined text symbols of dsk, outside any ISA namespace.
    "${NM:-nm}" --defined-only "$obj" | awk '$2 ~ /^[TWi]$/ {print $3}' |
      grep -E '^_ZZ?NK?3dsk' | grep -vE '[0-9]isa_(avx2|avx512|neon|scalar)' | grep -vE '^_ZZ?NK?3dsk4test|3ref[0-9]|4simt[0-9]|8simt_emu' |
      grep -vE "$core_skip" | sort -u >"$tmp/syms" || true
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
