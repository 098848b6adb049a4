// AVX2 + FMA + F16C packet layer: 8 float lanes, 32 int8 lanes. Same interface, lane order and reduction
// order as dsk::simd::scalar, which is its oracle (tests/simd/avx2.cpp compares every op, every tail length).
// Only defined when the TU is compiled with -mavx2 -mfma -mf16c (e.g. -march=x86-64-v3).
#pragma once

#include "dsk/core/config.hpp"

#if defined(DSK_HOST_ISA_AVX2)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "dsk/core/dtype.hpp"

namespace dsk::simd {
DSK_ISA_BEGIN

struct avx2 {
  static constexpr std::string_view name = "avx2";
  static constexpr int width = 8;
  static constexpr int width_i8 = 32;

  struct f32 {
    __m256 v;
  };
  struct i32 {
    __m256i v;
  };
  struct i8 {
    __m256i v;
  };
  struct i16 {
    __m256i v;
  };

  // ---- float packets --------------------------------------------------------------------------------
  static f32 zero() { return {_mm256_setzero_ps()}; }
  static f32 broadcast(float x) { return {_mm256_set1_ps(x)}; }
  static f32 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  // maskload suppresses faults on masked lanes: never touches p[n..7].
  static f32 load_partial(const float* p, int n) { return {_mm256_maskload_ps(p, tail_mask(n))}; }
  static void store(float* p, f32 a) { _mm256_storeu_ps(p, a.v); }
  static void store_partial(float* p, f32 a, int n) { _mm256_maskstore_ps(p, tail_mask(n), a.v); }

  static f32 load(const bf16* p) {
    return {widen_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  static f32 load_partial(const bf16* p, int n) { return {widen_bf16(load_partial_u16(p, n))}; }
  static f32 load(const f16* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  static f32 load_partial(const f16* p, int n) { return {_mm256_cvtph_ps(load_partial_u16(p, n))}; }

  static void store(bf16* p, f32 a) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow_bf16(a.v)); }
  static void store_partial(bf16* p, f32 a, int n) { store_partial_u16(p, narrow_bf16(a.v), n); }
  static void store(f16* p, f32 a) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(a.v, _MM_FROUND_TO_NEAREST_INT));
  }
  static void store_partial(f16* p, f32 a, int n) {
    store_partial_u16(p, _mm256_cvtps_ph(a.v, _MM_FROUND_TO_NEAREST_INT), n);
  }

  static f32 add(f32 a, f32 b) { return {_mm256_add_ps(a.v, b.v)}; }
  static f32 sub(f32 a, f32 b) { return {_mm256_sub_ps(a.v, b.v)}; }
  static f32 mul(f32 a, f32 b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static f32 div(f32 a, f32 b) { return {_mm256_div_ps(a.v, b.v)}; }
  static f32 max(f32 a, f32 b) { return {_mm256_max_ps(a.v, b.v)}; }
  static f32 min(f32 a, f32 b) { return {_mm256_min_ps(a.v, b.v)}; }
  static f32 fma(f32 a, f32 b, f32 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }

  static float reduce_add(f32 a) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
  }
  static float reduce_max(f32 a) {
    const __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    const __m128 s2 = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
  }

  static void transpose8(f32 (&r)[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i].v, r[i + 1].v);
      t[i + 1] = _mm256_unpackhi_ps(r[i].v, r[i + 1].v);
    }
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; ++i) {
      r[i].v = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
      r[i + 4].v = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
  }

  // e^x; the same operation sequence as scalar::exp1, lane by lane.
  static f32 exp(f32 a) {
    const __m256 x = a.v, hi = _mm256_set1_ps(88.7228394f), lo = _mm256_set1_ps(-87.3365479f);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693359375f), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    res = _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    res = _mm256_blendv_ps(res, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    return {_mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q))};
  }

  // ---- int8 packets ---------------------------------------------------------------------------------
  static i8 load_i8(const std::int8_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
  }
  static i8 load_i8_partial(const std::int8_t* p, int n) {
    alignas(32) std::int8_t tmp[32] = {};
    std::memcpy(tmp, p, static_cast<std::size_t>(std::clamp(n, 0, width_i8)));
    return {_mm256_load_si256(reinterpret_cast<const __m256i*>(tmp))};
  }
  static i32 zero_i32() { return {_mm256_setzero_si256()}; }
  // acc[j] += sum_{k<4} a[4j+k] * b[4j+k], for a, b in [-127, 127]: |a| * (b * sign a) through maddubs
  // (u8 x s8 -> pairs in s16) and madd (pairs -> s32).
  static i32 dot_i8(i32 acc, i8 a, i8 b) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(a.v, a.v), _mm256_sign_epi8(b.v, a.v));
    return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))};
  }
  // Two maddubs (u8 x s8 -> pairs in s16: 2 * 15 * 128 per lane), their sum (4 * 15 * 128 < 2^15) and one
  // madd against ones (pairs -> s32).
  static i32 dot_u4s8(i32 acc, i8 ulo, i8 slo, i8 uhi, i8 shi) {
    const __m256i pairs =
        _mm256_add_epi16(_mm256_maddubs_epi16(ulo.v, slo.v), _mm256_maddubs_epi16(uhi.v, shi.v));
    return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))};
  }
  static i32 load_i32(const std::int32_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
  }
  static i32 add_i32(i32 a, i32 b) { return {_mm256_add_epi32(a.v, b.v)}; }
  static std::int32_t reduce_add(i32 a) {
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a.v), _mm256_extracti128_si256(a.v, 1));
    const __m128i s2 = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    return _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1)));
  }
  static f32 to_f32(i32 a) { return {_mm256_cvtepi32_ps(a.v)}; }

  // ---- rounding, masks and code conversions (quantization; semantics in scalar.hpp) --------------------
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
    // t + 0 turns a -0 truncation into +0; or-ing the sign back keeps scalar's -0 (a no-op on other lanes,
    // whose sign already is a's).
    return {_mm256_or_ps(_mm256_add_ps(t, step), sign)};
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
  // Flipping bit 3 of each nibble (xor 0x88) turns a two's-complement nibble into code + 8; the high nibbles
  // come down with a 16-bit shift, whose bits from the neighbouring byte the mask clears.
  static void load_u4(const std::uint8_t* p, i8& lo, i8& hi) {
    const __m256i b =
        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), _mm256_set1_epi8(-0x78));
    const __m256i m = _mm256_set1_epi8(0x0f);
    lo.v = _mm256_and_si256(b, m);
    hi.v = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
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

  // ---- int16 packets ----------------------------------------------------------------------------------
  static i16 load_i16(const std::int16_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
  }
  static void store_i16(std::int16_t* p, i16 a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a.v); }
  static i16 load_i8_i16(const std::int8_t* p) {
    return {_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  static void load_i4_i16(const std::uint8_t* p, i16& even, i16& odd) {
    const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    even.v = _mm256_srai_epi16(_mm256_slli_epi16(b, 12), 12);
    odd.v = _mm256_srai_epi16(b, 4);
  }
  static i32 madd_i16(i32 acc, i16 a, i16 b) {
    return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(a.v, b.v))};
  }
  // Makes a loaded operand opaque to the optimizer so that it stays in a register: GCC otherwise folds the
  // load into every vpmaddwd that uses it (re-loading each token vector once per weight row in the W8A8
  // tile).
  static void pin([[maybe_unused]] i16& a) {
#if defined(__GNUC__)
    __asm__("" : "+x"(a.v));
#endif
  }
  // Transpose-and-add: 6 hadds and 2 cross-lane permutes instead of 8 separate horizontal reductions.
  static i32 reduce_add8(const i32 (&a)[8]) {
    const __m256i h01 = _mm256_hadd_epi32(a[0].v, a[1].v), h23 = _mm256_hadd_epi32(a[2].v, a[3].v);
    const __m256i h45 = _mm256_hadd_epi32(a[4].v, a[5].v), h67 = _mm256_hadd_epi32(a[6].v, a[7].v);
    const __m256i lo = _mm256_hadd_epi32(h01, h23), hi = _mm256_hadd_epi32(h45, h67);
    return {
        _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31))};
  }
  static void reduce_add8_halves(const i32 (&a)[8], i32& lo, i32& hi) {
    const __m256i h01 = _mm256_hadd_epi32(a[0].v, a[1].v), h23 = _mm256_hadd_epi32(a[2].v, a[3].v);
    const __m256i h45 = _mm256_hadd_epi32(a[4].v, a[5].v), h67 = _mm256_hadd_epi32(a[6].v, a[7].v);
    const __m256i l = _mm256_hadd_epi32(h01, h23), h = _mm256_hadd_epi32(h45, h67);
    lo.v = _mm256_permute2x128_si256(l, h, 0x20);
    hi.v = _mm256_permute2x128_si256(l, h, 0x31);
  }
  static void reduce_add4(f32 a, f32 b, f32 c, f32 d, float* out) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a.v, b.v), _mm256_hadd_ps(c.v, d.v));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
  }

 private:
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static __m256 widen_bf16(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  // Round to nearest even on the low 16 bits; NaN becomes a quiet NaN with the same sign and top payload.
  static __m128i narrow_bf16(__m256 a) {
    const __m256i u = _mm256_castps_si256(a);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256i is_nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, is_nan);
    // packus works per 128-bit lane: gather the two useful 64-bit halves into the low 128 bits.
    const __m256i packed = _mm256_packus_epi32(r, r);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
  }
  template <class H>
  static __m128i load_partial_u16(const H* p, int n) {
    alignas(16) std::uint16_t tmp[8] = {};
    std::memcpy(tmp, p, sizeof(H) * static_cast<std::size_t>(std::clamp(n, 0, width)));
    return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
  }
  template <class H>
  static void store_partial_u16(H* p, __m128i h, int n) {
    alignas(16) std::uint16_t tmp[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), h);
    std::memcpy(p, tmp, sizeof(H) * static_cast<std::size_t>(std::clamp(n, 0, width)));
  }
};

DSK_ISA_END
}  // namespace dsk::simd

#endif  // DSK_HOST_ISA_AVX2
