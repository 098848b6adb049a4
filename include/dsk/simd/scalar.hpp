// Portable packet layer: the same interface as dsk::simd::avx2 on plain arrays, with the same lane count and
// the same reduction order, so that a kernel written against the interface gives bit-identical results on
// either (FMA is std::fma). Used as the fallback on CPUs without a SIMD path and as the oracle of the SIMD
// tests.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/simd/exp_lane.hpp"

namespace dsk::simd {
DSK_ISA_BEGIN

struct scalar {
  static constexpr std::string_view name = "scalar";
  static constexpr int width = 8;      // float lanes of f32
  static constexpr int width_i8 = 32;  // int8 lanes of i8

  struct f32 {
    float v[8];
  };
  struct i32 {
    std::int32_t v[8];
  };
  struct i8 {
    std::int8_t v[32];
  };
  struct i16 {  // 16 int16 lanes (the quantized kernels' code and activation packets)
    std::int16_t v[16];
  };

  // ---- float packets --------------------------------------------------------------------------------
  static f32 zero() { return broadcast(0.0f); }
  static f32 broadcast(float x) {
    f32 r;
    for (float& e : r.v) e = x;
    return r;
  }
  static f32 load(const float* p) {
    f32 r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  // Lanes [0, n) from p, the rest zero; never reads p[n..7]. n is clamped to [0, 8].
  static f32 load_partial(const float* p, int n) {
    f32 r = zero();
    for (int i = 0; i < clamp_n(n); ++i) r.v[i] = p[i];
    return r;
  }
  static void store(float* p, f32 a) { std::memcpy(p, a.v, sizeof a.v); }
  static void store_partial(float* p, f32 a, int n) {
    for (int i = 0; i < clamp_n(n); ++i) p[i] = a.v[i];
  }

  // Widening loads and narrowing stores (round to nearest even) for the 16-bit float types.
  template <class H>
  requires(std::is_same_v<H, bf16> || std::is_same_v<H, f16>) static f32 load(const H* p) {
    return load_partial(p, width);
  }
  template <class H>
  requires(std::is_same_v<H, bf16> || std::is_same_v<H, f16>) static f32 load_partial(const H* p, int n) {
    f32 r = zero();
    for (int i = 0; i < clamp_n(n); ++i) r.v[i] = static_cast<float>(p[i]);
    return r;
  }
  template <class H>
  requires(std::is_same_v<H, bf16> || std::is_same_v<H, f16>) static void store(H* p, f32 a) {
    store_partial(p, a, width);
  }
  template <class H>
  requires(std::is_same_v<H, bf16> || std::is_same_v<H, f16>) static void store_partial(H* p, f32 a, int n) {
    for (int i = 0; i < clamp_n(n); ++i) p[i] = H(a.v[i]);
  }

  static f32 add(f32 a, f32 b) {
    return map(a, b, [](float x, float y) { return x + y; });
  }
  static f32 sub(f32 a, f32 b) {
    return map(a, b, [](float x, float y) { return x - y; });
  }
  static f32 mul(f32 a, f32 b) {
    return map(a, b, [](float x, float y) { return x * y; });
  }
  static f32 div(f32 a, f32 b) {
    return map(a, b, [](float x, float y) { return x / y; });
  }
  // max/min follow the x86 rule: when either operand is NaN the SECOND operand is returned.
  static f32 max(f32 a, f32 b) {
    return map(a, b, [](float x, float y) { return x > y ? x : y; });
  }
  static f32 min(f32 a, f32 b) {
    return map(a, b, [](float x, float y) { return x < y ? x : y; });
  }
  // a * b + c with one rounding.
  static f32 fma(f32 a, f32 b, f32 c) {
    f32 r;
    for (int i = 0; i < width; ++i) r.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
    return r;
  }
  // Pairwise tree: (v0+v4 + v2+v6) + (v1+v5 + v3+v7), the order of the AVX2 reduction.
  static float reduce_add(f32 a) {
    float t[4];
    for (int i = 0; i < 4; ++i) t[i] = a.v[i] + a.v[i + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
  }
  static float reduce_max(f32 a) {
    float t[4];
    for (int i = 0; i < 4; ++i) t[i] = a.v[i] > a.v[i + 4] ? a.v[i] : a.v[i + 4];
    const float u0 = t[0] > t[2] ? t[0] : t[2], u1 = t[1] > t[3] ? t[1] : t[3];
    return u0 > u1 ? u0 : u1;
  }

  // r[i].v[j] <- r[j].v[i] (an 8 x 8 transpose).
  static void transpose8(f32 (&r)[8]) {
    f32 t[8];
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) t[i].v[j] = r[j].v[i];
    for (int i = 0; i < 8; ++i) r[i] = t[i];
  }

  // e^x for x in [-87.3, 88.7] with a relative error of a few ulp; below the range 0, above +Inf, NaN -> NaN.
  // Range reduction x = n ln2 + r and a degree-6 polynomial; the op sequence matches avx2::exp exactly.
  static f32 exp(f32 a) {
    f32 r;
    for (int i = 0; i < width; ++i) r.v[i] = exp1(a.v[i]);
    return r;
  }

  // ---- int8 packets ---------------------------------------------------------------------------------
  static i8 load_i8(const std::int8_t* p) {
    i8 r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static i8 load_i8_partial(const std::int8_t* p, int n) {
    i8 r{};
    for (int i = 0; i < std::clamp(n, 0, width_i8); ++i) r.v[i] = p[i];
    return r;
  }
  static i32 zero_i32() { return i32{}; }
  // acc[j] += sum_{k<4} a[4j+k] * b[4j+k]. Contract: a and b in [-127, 127] (the AVX2 path forms pairs of
  // products in int16, which overflow only for (-128) * (-128) + (-128) * (-128)).
  static i32 dot_i8(i32 acc, i8 a, i8 b) {
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 4; ++k) acc.v[j] += std::int32_t{a.v[4 * j + k]} * std::int32_t{b.v[4 * j + k]};
    return acc;
  }
  // acc[j] += sum_{k<4} ulo[4j+k] * slo[4j+k] + uhi[4j+k] * shi[4j+k], with ulo and uhi read as unsigned
  // bytes. Contract: ulo, uhi in [0, 15] (offset int4 codes, load_u4): the AVX2 path sums the four products
  // of a pair of lanes in int16.
  static i32 dot_u4s8(i32 acc, i8 ulo, i8 slo, i8 uhi, i8 shi) {
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 4; ++k)
        acc.v[j] += std::int32_t{static_cast<std::uint8_t>(ulo.v[4 * j + k])} * slo.v[4 * j + k] +
                    std::int32_t{static_cast<std::uint8_t>(uhi.v[4 * j + k])} * shi.v[4 * j + k];
    return acc;
  }
  static i32 load_i32(const std::int32_t* p) {
    i32 r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  // Wrapping int32 addition.
  static i32 add_i32(i32 a, i32 b) {
    for (int j = 0; j < 8; ++j)
      a.v[j] =
          static_cast<std::int32_t>(static_cast<std::uint32_t>(a.v[j]) + static_cast<std::uint32_t>(b.v[j]));
    return a;
  }
  static std::int32_t reduce_add(i32 a) {
    std::int32_t s = 0;
    for (std::int32_t e : a.v) s += e;
    return s;
  }
  static f32 to_f32(i32 a) {
    f32 r;
    for (int i = 0; i < width; ++i) r.v[i] = static_cast<float>(a.v[i]);
    return r;
  }

  // ---- rounding, masks and code conversions (quantization) ---------------------------------------------
  // |a| (clears the sign bit, NaN included).
  static f32 abs(f32 a) {
    for (float& e : a.v) e = std::fabs(e);
    return a;
  }
  // Round to nearest, ties to even (the default rounding mode).
  static f32 round_even(f32 a) {
    for (float& e : a.v) e = std::nearbyint(e);
    return a;
  }
  // Round to nearest, ties away from zero: truncate, then step away when the (exact) remainder is at least
  // one half. The sign of a zero result is the sign of a (-0.3 -> -0).
  static f32 round_away(f32 a) {
    for (float& e : a.v) {
      const float t = std::trunc(e);
      e = std::fabs(e - t) >= 0.5f ? t + std::copysign(1.0f, e) : t;
    }
    return a;
  }
  // Lanes where a == b (ordered: NaN is never equal) keep v, the others become +0.
  static f32 select_eq(f32 a, f32 b, f32 v) {
    for (int i = 0; i < width; ++i) v.v[i] = a.v[i] == b.v[i] ? v.v[i] : 0.0f;
    return v;
  }
  // Lanes [0, n) (n clamped to [0, 8]) as int8. Contract: integral lanes in [-128, 127].
  static void store_i8(std::int8_t* p, f32 a, int n) {
    for (int i = 0; i < clamp_n(n); ++i) p[i] = static_cast<std::int8_t>(a.v[i]);
  }
  // The 8 lanes as int16. Contract: integral lanes in [-32768, 32767].
  static void store_i16(std::int16_t* p, f32 a) {
    for (int i = 0; i < width; ++i) p[i] = static_cast<std::int16_t>(a.v[i]);
  }
  // Integral lanes in [-8, 7] as 4 bytes of int4x2: lane 2j in the low nibble, 2j+1 in the high nibble of
  // p[j].
  static void store_i4(std::uint8_t* p, f32 a) {
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(a.v[2 * j]), hi = static_cast<int>(a.v[2 * j + 1]);
      p[j] = static_cast<std::uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
    }
  }
  // 32 bytes of int4x2 -> the 32 low-nibble codes and the 32 high-nibble codes, each plus 8 (offset binary,
  // 0..15: the unsigned operand of dot_u4s8).
  static void load_u4(const std::uint8_t* p, i8& lo, i8& hi) {
    for (int i = 0; i < 32; ++i) {
      lo.v[i] = static_cast<std::int8_t>((p[i] & 0xf) ^ 8);
      hi.v[i] = static_cast<std::int8_t>((p[i] >> 4) ^ 8);
    }
  }
  // 8 int8 -> 8 floats.
  static f32 load_i8_f32(const std::int8_t* p) {
    f32 r;
    for (int i = 0; i < width; ++i) r.v[i] = static_cast<float>(p[i]);
    return r;
  }
  // 8 bytes of int4x2 -> the 8 low-nibble codes (even elements) and the 8 high-nibble codes (odd elements).
  static void load_i4_f32(const std::uint8_t* p, f32& even, f32& odd) {
    for (int i = 0; i < width; ++i) {
      even.v[i] = static_cast<float>(low_nibble(p[i]));
      odd.v[i] = static_cast<float>(high_nibble(p[i]));
    }
  }

  // ---- int16 packets ----------------------------------------------------------------------------------
  static i16 load_i16(const std::int16_t* p) {
    i16 r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store_i16(std::int16_t* p, i16 a) { std::memcpy(p, a.v, sizeof a.v); }
  // 16 int8 -> int16.
  static i16 load_i8_i16(const std::int8_t* p) {
    i16 r;
    for (int i = 0; i < 16; ++i) r.v[i] = p[i];
    return r;
  }
  // 16 bytes of int4x2 -> 16 low-nibble and 16 high-nibble codes as int16.
  static void load_i4_i16(const std::uint8_t* p, i16& even, i16& odd) {
    for (int i = 0; i < 16; ++i) {
      even.v[i] = static_cast<std::int16_t>(low_nibble(p[i]));
      odd.v[i] = static_cast<std::int16_t>(high_nibble(p[i]));
    }
  }
  // acc[j] += a[2j] * b[2j] + a[2j+1] * b[2j+1]. Contract: the pair sum fits int32 (it does unless all four
  // factors are -32768).
  static i32 madd_i16(i32 acc, i16 a, i16 b) {
    for (int j = 0; j < 8; ++j)
      acc.v[j] += std::int32_t{a.v[2 * j]} * b.v[2 * j] + std::int32_t{a.v[2 * j + 1]} * b.v[2 * j + 1];
    return acc;
  }
  // Keeps a loaded operand in a register (an optimizer barrier on the SIMD layers; nothing here).
  static void pin(i16&) {}
  // Lane j = the sum of the 8 lanes of a[j] (wrapping int32, so any order gives the same result).
  static i32 reduce_add8(const i32 (&a)[8]) {
    i32 r{};
    for (int j = 0; j < 8; ++j) {
      std::uint32_t s = 0;
      for (int l = 0; l < 8; ++l) s += static_cast<std::uint32_t>(a[j].v[l]);
      r.v[j] = static_cast<std::int32_t>(s);
    }
    return r;
  }
  // lo[j] = the sum of lanes 0..3 of a[j], hi[j] = the sum of lanes 4..7 (wrapping); reduce_add8 is lo + hi.
  static void reduce_add8_halves(const i32 (&a)[8], i32& lo, i32& hi) {
    for (int j = 0; j < 8; ++j) {
      std::uint32_t s0 = 0, s1 = 0;
      for (int l = 0; l < 4; ++l) {
        s0 += static_cast<std::uint32_t>(a[j].v[l]);
        s1 += static_cast<std::uint32_t>(a[j].v[l + 4]);
      }
      lo.v[j] = static_cast<std::int32_t>(s0);
      hi.v[j] = static_cast<std::int32_t>(s1);
    }
  }
  // out[k] = the horizontal sum of the k-th packet in the order ((v0+v1) + (v2+v3)) + ((v4+v5) + (v6+v7))
  // (the AVX2 hadd tree; note: not reduce_add's order).
  static void reduce_add4(f32 a, f32 b, f32 c, f32 d, float* out) {
    const f32* x[4] = {&a, &b, &c, &d};
    for (int k = 0; k < 4; ++k) {
      const float* v = x[k]->v;
      out[k] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
    }
  }

  // One lane of exp (simd/exp_lane.hpp: shared with the vector layers' mirrors and the CUDA kernels).
  static float exp1(float x) { return exp_lane(x); }

 private:
  static int clamp_n(int n) { return std::clamp(n, 0, width); }
  static int low_nibble(std::uint8_t b) { return (b & 0x8) ? int(b & 0xf) - 16 : int(b & 0xf); }
  static int high_nibble(std::uint8_t b) { return static_cast<std::int8_t>(b) >> 4; }
  template <class F>
  static f32 map(f32 a, f32 b, F f) {
    f32 r;
    for (int i = 0; i < width; ++i) r.v[i] = f(a.v[i], b.v[i]);
    return r;
  }
};

DSK_ISA_END
}  // namespace dsk::simd
