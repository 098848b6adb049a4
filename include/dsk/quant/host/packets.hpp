// Packet ops the quant kernels need beyond dsk::simd (abs, the two roundings, code stores and nibble/byte
// decoders, int16 multiply-add), for simd::scalar and simd::avx2 with the same lane order, so that a kernel
// templated on the layer gives bit-identical results on both. Checked through the kernels in tests/quant
// (scalar and avx2 instantiations against quant/ref.hpp). Candidates for promotion into dsk/simd.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "dsk/core/config.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::quant::detail {
DSK_ISA_BEGIN

template <class S>
struct qx;

template <>
struct qx<simd::scalar> {
  using S = simd::scalar;
  using f32 = S::f32;
  using i32 = S::i32;
  struct i16 {
    std::int16_t v[16];
  };

  static f32 abs(f32 a) {
    for (float& e : a.v) e = std::fabs(e);
    return a;
  }
  static f32 round_even(f32 a) {
    for (float& e : a.v) e = std::nearbyint(e);
    return a;
  }
  // Ties away from zero: truncate, then step away when the (exact) remainder is at least one half.
  static f32 round_away(f32 a) {
    for (float& e : a.v) {
      const float t = std::trunc(e);
      e = std::fabs(e - t) >= 0.5f ? t + std::copysign(1.0f, e) : t;
    }
    return a;
  }
  // Lanes where a == b keep v, others become 0.
  static f32 select_eq(f32 a, f32 b, f32 v) {
    for (int i = 0; i < 8; ++i) v.v[i] = a.v[i] == b.v[i] ? v.v[i] : 0.0f;
    return v;
  }
  // Stores integral lanes in [-128, 127] as int8 / int16.
  static void store_i8(std::int8_t* p, f32 a, int n) {
    for (int i = 0; i < std::clamp(n, 0, 8); ++i) p[i] = static_cast<std::int8_t>(a.v[i]);
  }
  static void store_i16(std::int16_t* p, f32 a) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::int16_t>(a.v[i]);
  }
  // Integral lanes in [-8, 7] as 4 bytes of int4x2 (lane 2j low nibble, 2j+1 high nibble of byte j).
  static void store_i4(std::uint8_t* p, f32 a) {
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(a.v[2 * j]), hi = static_cast<int>(a.v[2 * j + 1]);
      p[j] = static_cast<std::uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
    }
  }
  // 8 int8 codes -> floats.
  static f32 load_i8_f32(const std::int8_t* p) {
    f32 r;
    for (int i = 0; i < 8; ++i) r.v[i] = static_cast<float>(p[i]);
    return r;
  }
  // 8 bytes of int4x2 -> the 8 even codes (low nibbles) and the 8 odd codes (high nibbles).
  static void load_i4_f32(const std::uint8_t* p, f32& even, f32& odd) {
    for (int i = 0; i < 8; ++i) {
      const int b = static_cast<std::int8_t>(p[i]);
      even.v[i] = static_cast<float>(static_cast<std::int8_t>(static_cast<std::uint8_t>(b << 4)) >> 4);
      odd.v[i] = static_cast<float>(b >> 4);
    }
  }
  static i16 load_i16(const std::int16_t* p) {
    i16 r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store_i16v(std::int16_t* p, i16 a) { std::memcpy(p, a.v, sizeof a.v); }
  // 16 int8 codes -> int16.
  static i16 load_i8_i16(const std::int8_t* p) {
    i16 r;
    for (int i = 0; i < 16; ++i) r.v[i] = p[i];
    return r;
  }
  // 16 bytes of int4x2 -> 16 even codes and 16 odd codes as int16.
  static void load_i4_i16(const std::uint8_t* p, i16& even, i16& odd) {
    for (int i = 0; i < 16; ++i) {
      const int b = static_cast<std::int8_t>(p[i]);
      even.v[i] = static_cast<std::int16_t>(static_cast<std::int8_t>(static_cast<std::uint8_t>(b << 4)) >> 4);
      odd.v[i] = static_cast<std::int16_t>(b >> 4);
    }
  }
  static void pin(i16&) {}
  // Lane j = the sum of the 8 lanes of a[j] (integer, so any order gives the same result).
  static i32 sum8(const i32 (&a)[8]) {
    i32 r{};
    for (int j = 0; j < 8; ++j)
      for (int l = 0; l < 8; ++l) r.v[j] += a[j].v[l];
    return r;
  }
  // acc[j] += a[2j] * b[2j] + a[2j+1] * b[2j+1] (the pairs cannot overflow int32 for |a|, |b| <= 127).
  static i32 madd(i32 acc, i16 a, i16 b) {
    for (int j = 0; j < 8; ++j)
      acc.v[j] += std::int32_t{a.v[2 * j]} * b.v[2 * j] + std::int32_t{a.v[2 * j + 1]} * b.v[2 * j + 1];
    return acc;
  }
};

#if defined(DSK_HOST_ISA_AVX2)
template <>
struct qx<simd::avx2> {
  using S = simd::avx2;
  using f32 = S::f32;
  using i32 = S::i32;
  struct i16 {
    __m256i v;
  };

  static f32 abs(f32 a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
  static f32 round_even(f32 a) {
    return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  static f32 round_away(f32 a) {
    const __m256 t = _mm256_round_ps(a.v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(a.v, _mm256_set1_ps(-0.0f));
    const __m256 rem = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(a.v, t));
    const __m256 step = _mm256_and_ps(_mm256_cmp_ps(rem, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                      _mm256_or_ps(_mm256_set1_ps(1.0f), sign));
    return {_mm256_add_ps(t, step)};
  }
  static f32 select_eq(f32 a, f32 b, f32 v) {
    return {_mm256_and_ps(_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ), v.v)};
  }
  static void store_i8(std::int8_t* p, f32 a, int n) {
    const __m256i i = _mm256_cvtps_epi32(a.v);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    const __m128i b = _mm_packs_epi16(w, w);
    if (n >= 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
    } else {
      alignas(16) std::int8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
      std::memcpy(p, tmp, static_cast<std::size_t>(std::max(n, 0)));
    }
  }
  static void store_i16(std::int16_t* p, f32 a) {
    const __m256i i = _mm256_cvtps_epi32(a.v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1)));
  }
  static void store_i4(std::uint8_t* p, f32 a) {
    // Per 64-bit pair (even code in the low dword, odd in the high): low byte = even | odd << 4.
    const __m256i i = _mm256_and_si256(_mm256_cvtps_epi32(a.v), _mm256_set1_epi32(0xf));
    const __m256i pair = _mm256_or_si256(i, _mm256_srli_epi64(i, 28));
    const __m256i bytes = _mm256_shuffle_epi8(
        pair, _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, -1, -1, -1,
                               -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    const std::uint32_t lo =
        static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm256_castsi256_si128(bytes))) & 0xffffu;
    const std::uint32_t hi =
        static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(bytes, 1))) & 0xffffu;
    const std::uint32_t v = lo | (hi << 16);
    std::memcpy(p, &v, 4);
  }
  static f32 load_i8_f32(const std::int8_t* p) {
    return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))};
  }
  // No shifts or int->float conversions (they share two of Zen 3's four FP pipes, which made this decode the
  // bottleneck of the int4 GEMV): each nibble is masked in place into the mantissa of a float with a fixed
  // exponent, its sign bit flipped (nibble ^ 8 = code + 8 for a two's-complement nibble), and the bias
  // subtracted exactly. Low nibble: 2^23 + (lo ^ 8) - (2^23 + 8); high nibble (mantissa bits 4-7 under an
  // exponent of 2^19, where one unit of bit 4 is 1): 2^19 + (hi ^ 8) - (2^19 + 8). The xor pattern and the
  // bias are the same bits (0x4b000008 is 2^23 + 8, 0x49000080 is 2^19 + 8), so four constants stay in
  // registers next to the accumulators.
  static void load_i4_f32(const std::uint8_t* p, f32& even, f32& odd) {
    const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    __m256i k_lo = _mm256_set1_epi32(0x4b000008), k_hi = _mm256_set1_epi32(0x49000080);
#if defined(__GNUC__)
    // Hide the values from the optimizer, which would otherwise turn x - k into x + (-k), a fifth and sixth
    // constant register, and spill accumulators of the 1 x 4 GEMV tile.
    __asm__("" : "+x"(k_lo), "+x"(k_hi));
#endif
    const __m256i lo = _mm256_xor_si256(_mm256_and_si256(b, _mm256_set1_epi32(0x0f)), k_lo);
    const __m256i hi = _mm256_xor_si256(_mm256_and_si256(b, _mm256_set1_epi32(0xf0)), k_hi);
    even.v = _mm256_sub_ps(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(k_lo));
    odd.v = _mm256_sub_ps(_mm256_castsi256_ps(hi), _mm256_castsi256_ps(k_hi));
  }
  static i16 load_i16(const std::int16_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
  }
  static void store_i16v(std::int16_t* p, i16 a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a.v); }
  static i16 load_i8_i16(const std::int8_t* p) {
    return {_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  static void load_i4_i16(const std::uint8_t* p, i16& even, i16& odd) {
    const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    even.v = _mm256_srai_epi16(_mm256_slli_epi16(b, 12), 12);
    odd.v = _mm256_srai_epi16(b, 4);
  }
  static i32 madd(i32 acc, i16 a, i16 b) { return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(a.v, b.v))}; }
  // Makes a loaded operand opaque to the optimizer so that it stays in a register: GCC otherwise folds the
  // load into every vpmaddwd that uses it (re-loading each token vector once per weight row in the W8A8
  // tile).
  static void pin([[maybe_unused]] i16& a) {
#if defined(__GNUC__)
    __asm__("" : "+x"(a.v));
#endif
  }
  // Transpose-and-add: 6 hadds and 2 cross-lane permutes instead of 8 separate horizontal reductions.
  static i32 sum8(const i32 (&a)[8]) {
    const __m256i h01 = _mm256_hadd_epi32(a[0].v, a[1].v), h23 = _mm256_hadd_epi32(a[2].v, a[3].v);
    const __m256i h45 = _mm256_hadd_epi32(a[4].v, a[5].v), h67 = _mm256_hadd_epi32(a[6].v, a[7].v);
    const __m256i lo = _mm256_hadd_epi32(h01, h23), hi = _mm256_hadd_epi32(h45, h67);
    return {
        _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31))};
  }
};
#endif

DSK_ISA_END
}  // namespace dsk::quant::detail
