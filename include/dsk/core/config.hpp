// Build-wide switches of dsk: the host ISA this translation unit is compiled for, checked-mode access,
// and the macros that give every ISA-dependent definition an ISA-specific name.
// Host only; no backend-specific code lives here.
#pragma once

#include <cstddef>
#include <cstdint>

#define DSK_VERSION_MAJOR 0
#define DSK_VERSION_MINOR 1
#define DSK_VERSION_PATCH 0

// The best host ISA the compiler targets in this TU. Kernels pick their SIMD path from it at compile time.
// The name also goes into DSK_ISA_NAMESPACE so that two TUs built with different -march flags instantiate
// differently-named functions and never share (ODR-merge) a definition compiled for the wrong CPU.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__)
#define DSK_HOST_ISA_AVX512 1
#define DSK_HOST_ISA_AVX2 1
#define DSK_ISA_NAMESPACE isa_avx512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define DSK_HOST_ISA_AVX2 1
#define DSK_ISA_NAMESPACE isa_avx2
#elif defined(__ARM_NEON) && defined(__aarch64__)
#define DSK_HOST_ISA_NEON 1
#define DSK_ISA_NAMESPACE isa_neon
#else
#define DSK_HOST_ISA_SCALAR 1
#define DSK_ISA_NAMESPACE isa_scalar
#endif

// Wraps definitions whose generated code depends on the ISA flags (SIMD packets, host kernel entry points).
// Use inside a family namespace: namespace dsk::gemm { DSK_ISA_BEGIN ... DSK_ISA_END }
#define DSK_ISA_BEGIN inline namespace DSK_ISA_NAMESPACE {
#define DSK_ISA_END }

// GCC's loop-unroll hint for host kernels: DSK_GCC_UNROLL(4) before a loop. Empty under nvcc, whose front end
// also parses the host headers a .cu file includes and does not know the pragma.
#define DSK_PRAGMA(x) _Pragma(#x)
#if defined(__CUDACC__)
#define DSK_GCC_UNROLL(n)
#else
#define DSK_GCC_UNROLL(n) DSK_PRAGMA(GCC unroll n)
#endif

// Checked mode: bounds-checked element access and extra contract checks. On in debug builds (no NDEBUG),
// and whenever DSK_CHECKED=1 is defined explicitly.
#ifndef DSK_CHECKED
#ifdef NDEBUG
#define DSK_CHECKED 0
#else
#define DSK_CHECKED 1
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DSK_ALWAYS_INLINE inline __attribute__((always_inline))
#define DSK_RESTRICT __restrict__
#else
#define DSK_ALWAYS_INLINE inline
#define DSK_RESTRICT
#endif

// Functions usable from host and device code (views, dtype helpers) carry DSK_HD.
#if defined(__CUDACC__)
#define DSK_HD __host__ __device__
#else
#define DSK_HD
#endif

namespace dsk {

// Signed index type for extents, strides and loops: avoids signed/unsigned mixing in index arithmetic.
using index_t = std::int64_t;

// Alignment of owning host storage: one cache line, enough for any SIMD load on the supported ISAs.
inline constexpr std::size_t storage_alignment = 64;

}  // namespace dsk
