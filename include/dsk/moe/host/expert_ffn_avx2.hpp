// SIMD tile kernels of the MoE host path: y[m, n] = sum_k x[m, k] * w[n, k] (x fp32, w fp32 / bf16 / f16 /
// int8 / int4 with a per-row scale), fp32 accumulation, over the packet layer S. Used by the gate logits and
// the grouped expert FFN; checked against dsk/moe/ref.hpp through tests/moe/expert_ffn.cpp and
// tests/moe/router.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/simd/simd.hpp"

#if defined(DSK_HOST_ISA_AVX2)
#include <immintrin.h>
#endif

namespace dsk::moe::detail {
DSK_ISA_BEGIN

// ---- packet ops the core layer lacks (candidates for promotion to dsk/simd) ------------------------------
// 8 int8 -> 8 floats (exact).
inline simd::scalar::f32 load_i8_f32(simd::scalar, const std::int8_t* p, int n) {
  simd::scalar::f32 r = simd::scalar::zero();
  for (int i = 0; i < n; ++i) r.v[i] = static_cast<float>(p[i]);
  return r;
}
// 8 packed int4 (element 2i = low nibble of byte i) -> 8 floats; `n` elements, the rest zero.
inline simd::scalar::f32 load_i4_f32(simd::scalar, const int4x2* p, int n) {
  simd::scalar::f32 r = simd::scalar::zero();
  for (int i = 0; i < n; ++i) r.v[i] = static_cast<float>(p[i / 2].get(i & 1));
  return r;
}
#if defined(DSK_HOST_ISA_AVX2)
inline simd::avx2::f32 load_i8_f32(simd::avx2, const std::int8_t* p, int n) {
  std::int64_t bits = 0;
  std::memcpy(&bits, p, static_cast<std::size_t>(n));
  return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)))};
}
inline simd::avx2::f32 load_i4_f32(simd::avx2, const int4x2* p, int n) {
  std::int32_t bits = 0;
  std::memcpy(&bits, p, static_cast<std::size_t>((n + 1) / 2));
  if (n & 1)
    bits &= static_cast<std::int32_t>((1u << (4 * n)) - 1u);  // an odd tail drops the next high nibble
  const __m128i b = _mm_cvtsi32_si128(bits);
  // Byte i goes to lanes 2i and 2i+1; a per-lane left shift puts the wanted nibble on top, an arithmetic
  // shift brings it back down sign-extended.
  const __m256i v = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
  const __m256i top = _mm256_sllv_epi32(v, _mm256_setr_epi32(28, 24, 28, 24, 28, 24, 28, 24));
  return {_mm256_cvtepi32_ps(_mm256_srai_epi32(top, 28))};
}
#endif

// Widening load of `n` (1..8) weights starting at column k of one row.
template <class S, class W>
DSK_ALWAYS_INLINE typename S::f32 load_w(const W* row, index_t k, int n) {
  if constexpr (std::is_same_v<W, std::int8_t>)
    return load_i8_f32(S{}, row + k, n);
  else if constexpr (std::is_same_v<W, int4x2>)
    return load_i4_f32(S{}, row + k / 2, n);
  else if (n == S::width)
    return S::load(row + k);
  else
    return S::load_partial(row + k, n);
}

// Bytes / elements of W between column 0 and column k of a row: int4 packs two per byte.
template <class W>
constexpr index_t w_offset(index_t k) {
  return std::is_same_v<W, int4x2> ? k / 2 : k;
}

// The MR x NR register block: rows x[0, MR) against weight rows w[0, NR), all K columns.
template <class S, int MR, int NR, class W>
DSK_ALWAYS_INLINE void tile(const float* x, index_t ldx, const W* const* w, index_t K, float* y, index_t ldy,
                            const float* scale) {
  constexpr int V = S::width;
  typename S::f32 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = S::zero();
  index_t k = 0;
  for (; k + V <= K; k += V) {
    typename S::f32 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_w<S>(w[j], k, V);
    for (int i = 0; i < MR; ++i) {
      const auto xv = S::load(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = S::fma(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    const int t = static_cast<int>(K - k);
    typename S::f32 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_w<S>(w[j], k, t);
    for (int i = 0; i < MR; ++i) {
      const auto xv = S::load_partial(x + i * ldx + k, t);
      for (int j = 0; j < NR; ++j) acc[i][j] = S::fma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      const float s = S::reduce_add(acc[i][j]);
      y[i * ldy + j] = scale ? s * scale[j] : s;
    }
}

inline constexpr int tile_m = 4, tile_n = 3;

template <class S, int MR, class W>
DSK_ALWAYS_INLINE void tile_rows(int nr, const float* x, index_t ldx, const W* const* w, index_t K, float* y,
                                 index_t ldy, const float* scale) {
  switch (nr) {
    case 3:
      tile<S, MR, 3>(x, ldx, w, K, y, ldy, scale);
      break;
    case 2:
      tile<S, MR, 2>(x, ldx, w, K, y, ldy, scale);
      break;
    default:
      tile<S, MR, 1>(x, ldx, w, K, y, ldy, scale);
      break;
  }
}

// y[m, n] = sum_k x[m, k] * W[n, k] * (scale ? scale[n] : 1) for n in [0, N): weight row n starts at
// w + n * ldw (ldw in elements of W; bytes for int4). Columns outer, rows inner: the NR weight rows of a
// block stay in L1 while the x rows stream from L2.
template <class S, class W>
void xwt(const float* x, index_t ldx, index_t M, const W* w, index_t ldw, index_t N, index_t K, float* y,
         index_t ldy, const float* scale) {
  for (index_t n = 0; n < N; n += tile_n) {
    const int nr = static_cast<int>(N - n < tile_n ? N - n : tile_n);
    const W* rows[tile_n];
    for (int j = 0; j < tile_n; ++j) rows[j] = w + (n + (j < nr ? j : 0)) * ldw;
    const float* sc = scale ? scale + n : nullptr;
    index_t m = 0;
    for (; m + tile_m <= M; m += tile_m)
      tile_rows<S, tile_m>(nr, x + m * ldx, ldx, rows, K, y + m * ldy + n, ldy, sc);
    switch (M - m) {
      case 3:
        tile_rows<S, 3>(nr, x + m * ldx, ldx, rows, K, y + m * ldy + n, ldy, sc);
        break;
      case 2:
        tile_rows<S, 2>(nr, x + m * ldx, ldx, rows, K, y + m * ldy + n, ldy, sc);
        break;
      case 1:
        tile_rows<S, 1>(nr, x + m * ldx, ldx, rows, K, y + m * ldy + n, ldy, sc);
        break;
      default:
        break;
    }
  }
}

// h[m, n] = silu(g[m, n]) * u[m, n] over rows of length N (row strides ldg, ldu, ldh).
template <class S>
void swiglu_rows(const float* g, index_t ldg, const float* u, index_t ldu, index_t M, index_t N, float* h,
                 index_t ldh) {
  constexpr int V = S::width;
  const auto one = S::broadcast(1.0f), zero = S::zero();
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; n += V) {
      const int t = static_cast<int>(N - n < V ? N - n : V);
      const auto gv = S::load_partial(g + m * ldg + n, t), uv = S::load_partial(u + m * ldu + n, t);
      const auto sig = S::div(one, S::add(one, S::exp(S::sub(zero, gv))));
      S::store_partial(h + m * ldh + n, S::mul(S::mul(gv, sig), uv), t);
    }
}

DSK_ISA_END
}  // namespace dsk::moe::detail
