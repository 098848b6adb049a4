// AArch64 NEON packet layer: 8 float lanes as two float32x4_t, 32 int8 lanes as two int8x16_t. Same
// interface, lane order, reduction order and NaN rules as dsk::simd::scalar, its oracle (tests/simd/neon.cpp,
// run under qemu-aarch64 in CI). Only defined when the TU targets AArch64 with Advanced SIMD.
#pragma once

#include "dsk/core/config.hpp"

#if defined(DSK_HOST_ISA_NEON)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "dsk/core/dtype.hpp"

namespace dsk::simd {
DSK_ISA_BEGIN

struct neon {
  static constexpr std::string_view name = "neon";
  static constexpr int width = 8;
  static constexpr int width_i8 = 32;

  struct f32 {
    float32x4_t lo, hi;
  };
  struct i32 {
    int32x4_t lo, hi;
  };
  struct i8 {
    int8x16_t lo, hi;
  };
  struct i16 {
    int16x8_t lo, hi;
  };

  // ---- float packets --------------------------------------------------------------------------------
  static f32 zero() { return broadcast(0.0f); }
  static f32 broadcast(float x) { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
  static f32 load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static f32 load_partial(const float* p, int n) {
    float tmp[8] = {};
    std::memcpy(tmp, p, sizeof(float) * static_cast<std::size_t>(clamp_n(n)));
    return load(tmp);
  }
  static void store(float* p, f32 a) {
    vst1q_f32(p, a.lo);
    vst1q_f32(p + 4, a.hi);
  }
  static void store_partial(float* p, f32 a, int n) {
    float tmp[8];
    store(tmp, a);
    std::memcpy(p, tmp, sizeof(float) * static_cast<std::size_t>(clamp_n(n)));
  }

  static f32 load(const bf16* p) { return widen_bf16(vld1q_u16(reinterpret_cast<const std::uint16_t*>(p))); }
  static f32 load_partial(const bf16* p, int n) { return widen_bf16(load_partial_u16(p, n)); }
  static f32 load(const f16* p) { return widen_f16(vld1q_u16(reinterpret_cast<const std::uint16_t*>(p))); }
  static f32 load_partial(const f16* p, int n) { return widen_f16(load_partial_u16(p, n)); }
  static void store(bf16* p, f32 a) { vst1q_u16(reinterpret_cast<std::uint16_t*>(p), narrow_bf16(a)); }
  static void store_partial(bf16* p, f32 a, int n) { store_partial_u16(p, narrow_bf16(a), n); }
  static void store(f16* p, f32 a) { vst1q_u16(reinterpret_cast<std::uint16_t*>(p), narrow_f16(a)); }
  static void store_partial(f16* p, f32 a, int n) { store_partial_u16(p, narrow_f16(a), n); }

  static f32 add(f32 a, f32 b) { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
  static f32 sub(f32 a, f32 b) { return {vsubq_f32(a.lo, b.lo), vsubq_f32(a.hi, b.hi)}; }
  static f32 mul(f32 a, f32 b) { return {vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)}; }
  static f32 div(f32 a, f32 b) { return {vdivq_f32(a.lo, b.lo), vdivq_f32(a.hi, b.hi)}; }
  // x86 rule, as scalar: a > b ? a : b, so a NaN in either operand returns b (vmaxq_f32 would return NaN).
  static f32 max(f32 a, f32 b) { return {sel_gt(a.lo, b.lo), sel_gt(a.hi, b.hi)}; }
  static f32 min(f32 a, f32 b) { return {sel_lt(a.lo, b.lo), sel_lt(a.hi, b.hi)}; }
  static f32 fma(f32 a, f32 b, f32 c) { return {vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)}; }

  static float reduce_add(f32 a) {
    const float32x4_t t = vaddq_f32(a.lo, a.hi);                        // v[i] + v[i+4]
    const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));  // (t0+t2, t1+t3)
    return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
  }
  static float reduce_max(f32 a) {
    const float32x4_t t = sel_gt(a.lo, a.hi);
    const float32x2_t l = vget_low_f32(t), h = vget_high_f32(t);
    const float32x2_t u = vbsl_f32(vcgt_f32(l, h), l, h);
    const float u0 = vget_lane_f32(u, 0), u1 = vget_lane_f32(u, 1);
    return u0 > u1 ? u0 : u1;
  }

  // Four 4 x 4 transposes: the low halves of rows 0-3 become the low halves of rows 0-3, and so on.
  static void transpose8(f32 (&r)[8]) {
    float32x4_t a[4], b[4], c[4], d[4];
    transpose4(r[0].lo, r[1].lo, r[2].lo, r[3].lo, a);
    transpose4(r[4].lo, r[5].lo, r[6].lo, r[7].lo, b);
    transpose4(r[0].hi, r[1].hi, r[2].hi, r[3].hi, c);
    transpose4(r[4].hi, r[5].hi, r[6].hi, r[7].hi, d);
    for (int i = 0; i < 4; ++i) {
      r[i] = {a[i], b[i]};
      r[i + 4] = {c[i], d[i]};
    }
  }

  // e^x, the operation sequence of scalar::exp1.
  static f32 exp(f32 a) { return {exp4(a.lo), exp4(a.hi)}; }

  // ---- int8 packets ---------------------------------------------------------------------------------
  static i8 load_i8(const std::int8_t* p) { return {vld1q_s8(p), vld1q_s8(p + 16)}; }
  static i8 load_i8_partial(const std::int8_t* p, int n) {
    std::int8_t tmp[32] = {};
    std::memcpy(tmp, p, static_cast<std::size_t>(std::clamp(n, 0, width_i8)));
    return load_i8(tmp);
  }
  static i32 zero_i32() { return {vdupq_n_s32(0), vdupq_n_s32(0)}; }
  // acc[j] += sum_{k<4} a[4j+k] * b[4j+k]: widening products, then two pairwise additions.
  static i32 dot_i8(i32 acc, i8 a, i8 b) {
    return {vaddq_s32(acc.lo, dot16(a.lo, b.lo)), vaddq_s32(acc.hi, dot16(a.hi, b.hi))};
  }
  // Offset codes in [0, 15] are also valid int8, so the signed widening products serve.
  static i32 dot_u4s8(i32 acc, i8 ulo, i8 slo, i8 uhi, i8 shi) {
    return {vaddq_s32(vaddq_s32(acc.lo, dot16(ulo.lo, slo.lo)), dot16(uhi.lo, shi.lo)),
            vaddq_s32(vaddq_s32(acc.hi, dot16(ulo.hi, slo.hi)), dot16(uhi.hi, shi.hi))};
  }
  static i32 load_i32(const std::int32_t* p) { return {vld1q_s32(p), vld1q_s32(p + 4)}; }
  static i32 add_i32(i32 a, i32 b) { return {vaddq_s32(a.lo, b.lo), vaddq_s32(a.hi, b.hi)}; }
  static std::int32_t reduce_add(i32 a) { return vaddvq_s32(a.lo) + vaddvq_s32(a.hi); }
  static f32 to_f32(i32 a) { return {vcvtq_f32_s32(a.lo), vcvtq_f32_s32(a.hi)}; }

  // ---- rounding, masks and code conversions (quantization; semantics in scalar.hpp) --------------------
  static f32 abs(f32 a) { return {vabsq_f32(a.lo), vabsq_f32(a.hi)}; }
  static f32 round_even(f32 a) { return {vrndnq_f32(a.lo), vrndnq_f32(a.hi)}; }  // FRINTN: ties to even
  static f32 round_away(f32 a) { return {vrndaq_f32(a.lo), vrndaq_f32(a.hi)}; }  // FRINTA: ties away, -0 kept
  static f32 select_eq(f32 a, f32 b, f32 v) { return {mask_eq(a.lo, b.lo, v.lo), mask_eq(a.hi, b.hi, v.hi)}; }
  static void store_i8(std::int8_t* p, f32 a, int n) {
    std::int8_t tmp[8];
    vst1_s8(tmp, vqmovn_s16(to_i16(a)));
    std::memcpy(p, tmp, static_cast<std::size_t>(clamp_n(n)));
  }
  static void store_i16(std::int16_t* p, f32 a) { vst1q_s16(p, to_i16(a)); }
  static void store_i4(std::uint8_t* p, f32 a) {
    const uint8x8_t b = vand_u8(vreinterpret_u8_s8(vmovn_s16(to_i16(a))), vdup_n_u8(0x0f));
    const uint8x8_t packed = vorr_u8(vuzp1_u8(b, b), vshl_n_u8(vuzp2_u8(b, b), 4));  // bytes 0..3
    std::uint8_t tmp[8];
    vst1_u8(tmp, packed);
    std::memcpy(p, tmp, 4);
  }
  static void load_u4(const std::uint8_t* p, i8& lo, i8& hi) {
    const uint8x16_t k = vdupq_n_u8(0x88), m = vdupq_n_u8(0x0f);
    const uint8x16_t b0 = veorq_u8(vld1q_u8(p), k), b1 = veorq_u8(vld1q_u8(p + 16), k);
    lo = {vreinterpretq_s8_u8(vandq_u8(b0, m)), vreinterpretq_s8_u8(vandq_u8(b1, m))};
    hi = {vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), vreinterpretq_s8_u8(vshrq_n_u8(b1, 4))};
  }
  static f32 load_i8_f32(const std::int8_t* p) { return widen_i16_f32(vmovl_s8(vld1_s8(p))); }
  static void load_i4_f32(const std::uint8_t* p, f32& even, f32& odd) {
    const int8x8_t b = vreinterpret_s8_u8(vld1_u8(p));
    even = widen_i16_f32(vmovl_s8(vshr_n_s8(vshl_n_s8(b, 4), 4)));
    odd = widen_i16_f32(vmovl_s8(vshr_n_s8(b, 4)));
  }

  // ---- int16 packets ----------------------------------------------------------------------------------
  static i16 load_i16(const std::int16_t* p) { return {vld1q_s16(p), vld1q_s16(p + 8)}; }
  static void store_i16(std::int16_t* p, i16 a) {
    vst1q_s16(p, a.lo);
    vst1q_s16(p + 8, a.hi);
  }
  static i16 load_i8_i16(const std::int8_t* p) {
    const int8x16_t b = vld1q_s8(p);
    return {vmovl_s8(vget_low_s8(b)), vmovl_high_s8(b)};
  }
  static void load_i4_i16(const std::uint8_t* p, i16& even, i16& odd) {
    const int8x16_t b = vreinterpretq_s8_u8(vld1q_u8(p));
    const int8x16_t e = vshrq_n_s8(vshlq_n_s8(b, 4), 4), o = vshrq_n_s8(b, 4);
    even = {vmovl_s8(vget_low_s8(e)), vmovl_high_s8(e)};
    odd = {vmovl_s8(vget_low_s8(o)), vmovl_high_s8(o)};
  }
  static i32 madd_i16(i32 acc, i16 a, i16 b) {
    return {vaddq_s32(acc.lo, madd8(a.lo, b.lo)), vaddq_s32(acc.hi, madd8(a.hi, b.hi))};
  }
  static void pin([[maybe_unused]] i16& a) {
#if defined(__GNUC__)
    __asm__("" : "+w"(a.lo), "+w"(a.hi));
#endif
  }
  static i32 reduce_add8(const i32 (&a)[8]) {
    int32x4_t s[8];
    for (int j = 0; j < 8; ++j) s[j] = vaddq_s32(a[j].lo, a[j].hi);
    return {vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3])),
            vpaddq_s32(vpaddq_s32(s[4], s[5]), vpaddq_s32(s[6], s[7]))};
  }
  static void reduce_add8_halves(const i32 (&a)[8], i32& lo, i32& hi) {
    lo = {vpaddq_s32(vpaddq_s32(a[0].lo, a[1].lo), vpaddq_s32(a[2].lo, a[3].lo)),
          vpaddq_s32(vpaddq_s32(a[4].lo, a[5].lo), vpaddq_s32(a[6].lo, a[7].lo))};
    hi = {vpaddq_s32(vpaddq_s32(a[0].hi, a[1].hi), vpaddq_s32(a[2].hi, a[3].hi)),
          vpaddq_s32(vpaddq_s32(a[4].hi, a[5].hi), vpaddq_s32(a[6].hi, a[7].hi))};
  }
  // The AVX2 hadd tree: pairwise adds within each half, then the two halves.
  static void reduce_add4(f32 a, f32 b, f32 c, f32 d, float* out) {
    const float32x4_t lo = vpaddq_f32(vpaddq_f32(a.lo, b.lo), vpaddq_f32(c.lo, d.lo));
    const float32x4_t hi = vpaddq_f32(vpaddq_f32(a.hi, b.hi), vpaddq_f32(c.hi, d.hi));
    vst1q_f32(out, vaddq_f32(lo, hi));
  }

 private:
  static int clamp_n(int n) { return std::clamp(n, 0, width); }
  static float32x4_t mask_eq(float32x4_t a, float32x4_t b, float32x4_t v) {
    return vreinterpretq_f32_u32(vandq_u32(vceqq_f32(a, b), vreinterpretq_u32_f32(v)));
  }
  // Integral lanes -> int16 (round to nearest like cvtps_epi32, saturating like packs_epi32).
  static int16x8_t to_i16(f32 a) {
    return vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(a.lo)), vqmovn_s32(vcvtnq_s32_f32(a.hi)));
  }
  static f32 widen_i16_f32(int16x8_t h) {
    return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), vcvtq_f32_s32(vmovl_high_s16(h))};
  }
  static int32x4_t madd8(int16x8_t a, int16x8_t b) {
    return vpaddq_s32(vmull_s16(vget_low_s16(a), vget_low_s16(b)), vmull_high_s16(a, b));
  }
  static void transpose4(float32x4_t r0, float32x4_t r1, float32x4_t r2, float32x4_t r3,
                         float32x4_t (&out)[4]) {
    const float32x4x2_t p01 = vtrnq_f32(r0, r1), p23 = vtrnq_f32(r2, r3);
    out[0] = vcombine_f32(vget_low_f32(p01.val[0]), vget_low_f32(p23.val[0]));
    out[1] = vcombine_f32(vget_low_f32(p01.val[1]), vget_low_f32(p23.val[1]));
    out[2] = vcombine_f32(vget_high_f32(p01.val[0]), vget_high_f32(p23.val[0]));
    out[3] = vcombine_f32(vget_high_f32(p01.val[1]), vget_high_f32(p23.val[1]));
  }
  static float32x4_t sel_gt(float32x4_t a, float32x4_t b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
  static float32x4_t sel_lt(float32x4_t a, float32x4_t b) { return vbslq_f32(vcltq_f32(a, b), a, b); }

  static int32x4_t dot16(int8x16_t a, int8x16_t b) {
    const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));  // pairs of bytes 0..7
    const int32x4_t hi = vpaddlq_s16(vmull_high_s8(a, b));                       // pairs of bytes 8..15
    return vpaddq_s32(lo, hi);                                                   // groups of four
  }

  static float32x4_t exp4(float32x4_t x) {
    const float32x4_t hi = vdupq_n_f32(88.7228394f), lo = vdupq_n_f32(-87.3365479f);
    const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), hi);
    const float32x4_t n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmaq_f32(xc, n, vdupq_n_f32(-0.693359375f));
    r = vfmaq_f32(r, n, vdupq_n_f32(2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(r, p, vmulq_f32(r, r));
    p = vaddq_f32(p, vdupq_n_f32(1.0f));
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    float32x4_t res = vmulq_f32(vmulq_f32(p, s1), s2);
    res = vbslq_f32(vcgtq_f32(x, hi), vdupq_n_f32(INFINITY), res);
    res = vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0f), res);
    return vbslq_f32(vceqq_f32(x, x), res, x);  // NaN lanes return x
  }

  static f32 widen_bf16(uint16x8_t h) {
    return {vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)),
            vreinterpretq_f32_u32(vshll_high_n_u16(h, 16))};
  }
  static f32 widen_f16(uint16x8_t h) {
    return {vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))),
            vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)))};
  }
  static uint16x4_t narrow_bf16_half(float32x4_t a) {
    const uint32x4_t u = vreinterpretq_u32_f32(a);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
    const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
    const uint32x4_t is_nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    return vmovn_u32(vbslq_u32(is_nan, quiet, rounded));
  }
  static uint16x8_t narrow_bf16(f32 a) {
    return vcombine_u16(narrow_bf16_half(a.lo), narrow_bf16_half(a.hi));
  }
  // vcvt keeps a signalling NaN signalling (x86's F16C and dsk::f16 quiet it): set the quiet bit on NaN
  // lanes.
  static uint16x4_t narrow_f16_half(float32x4_t a) {
    const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(a));
    const uint16x4_t is_nan = vmovn_u32(vmvnq_u32(vceqq_f32(a, a)));
    return vorr_u16(h, vand_u16(is_nan, vdup_n_u16(0x0200)));
  }
  static uint16x8_t narrow_f16(f32 a) { return vcombine_u16(narrow_f16_half(a.lo), narrow_f16_half(a.hi)); }
  template <class H>
  static uint16x8_t load_partial_u16(const H* p, int n) {
    std::uint16_t tmp[8] = {};
    std::memcpy(tmp, p, sizeof(H) * static_cast<std::size_t>(clamp_n(n)));
    return vld1q_u16(tmp);
  }
  template <class H>
  static void store_partial_u16(H* p, uint16x8_t h, int n) {
    std::uint16_t tmp[8];
    vst1q_u16(tmp, h);
    std::memcpy(p, tmp, sizeof(H) * static_cast<std::size_t>(clamp_n(n)));
  }
};

DSK_ISA_END
}  // namespace dsk::simd

#endif  // DSK_HOST_ISA_NEON
