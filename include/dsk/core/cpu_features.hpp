// Runtime CPU feature detection: what the machine can run, next to what this TU was compiled for.
// Host only.
#pragma once

#include <string>
#include <string_view>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"

namespace dsk {

struct cpu_features {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512_vnni = false, avx512_bf16 = false;
  bool avx_vnni = false;
  bool neon = false;

  std::string to_string() const {
    std::string s;
    auto add = [&](bool b, const char* name) {
      if (b) s += (s.empty() ? "" : " "), s += name;
    };
    add(sse42, "sse4.2");
    add(avx, "avx");
    add(avx2, "avx2");
    add(fma, "fma");
    add(f16c, "f16c");
    add(avx512f, "avx512f");
    add(avx512bw, "avx512bw");
    add(avx512vl, "avx512vl");
    add(avx512_vnni, "avx512vnni");
    add(avx512_bf16, "avx512bf16");
    add(avx_vnni, "avxvnni");
    add(neon, "neon");
    return s.empty() ? "none" : s;
  }
};

// Features of the CPU this process runs on.
inline cpu_features detect_cpu_features() {
  cpu_features f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.sse42 = __builtin_cpu_supports("sse4.2");
  f.avx = __builtin_cpu_supports("avx");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
  // f16c, avx-vnni and avx512-bf16 are not names every GCC accepts in __builtin_cpu_supports: read CPUID.
  unsigned r[4];  // eax, ebx, ecx, edx
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(1), "c"(0));
  f.f16c = (r[2] >> 29) & 1u;
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(7), "c"(1));
  f.avx_vnni = (r[0] >> 4) & 1u;
  f.avx512_bf16 = (r[0] >> 5) & 1u;
#elif defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64
#endif
  return f;
}

// The host ISA the including TU was compiled for: "avx512", "avx2", "neon" or "scalar".
constexpr std::string_view compiled_isa() {
#if defined(DSK_HOST_ISA_AVX512)
  return "avx512";
#elif defined(DSK_HOST_ISA_AVX2)
  return "avx2";
#elif defined(DSK_HOST_ISA_NEON)
  return "neon";
#else
  return "scalar";
#endif
}

// Whether this CPU runs what compiled_isa() needs.
inline bool cpu_supports_compiled_isa(const cpu_features& f = detect_cpu_features()) {
#if defined(DSK_HOST_ISA_AVX512)
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma && f.f16c;
#elif defined(DSK_HOST_ISA_AVX2)
  return f.avx2 && f.fma && f.f16c;
#elif defined(DSK_HOST_ISA_NEON)
  return f.neon;
#else
  (void)f;
  return true;
#endif
}

// Throws dsk::unsupported when the binary was built for an ISA this CPU lacks (call it early in main, before
// any kernel runs into an illegal instruction).
inline void require_compiled_isa() {
  const cpu_features f = detect_cpu_features();
  if (!cpu_supports_compiled_isa(f))
    fail_unsupported("dsk: this program was compiled for the ", compiled_isa(),
                     " ISA, but the CPU only offers: ", f.to_string());
}

}  // namespace dsk
