// Conformance of a vector packet layer L with dsk::simd::scalar: every op bit for bit, every tail length from
// 0 to twice the vector width, special values (NaN, +-Inf, subnormals, rounding ties). Instantiated by
// avx2.cpp (x86-64) and neon.cpp (AArch64, run under qemu in CI).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/simd/scalar.hpp"
#include "support/compare.hpp"

namespace dsk::test {

inline std::vector<float> awkward_values(std::size_t n, std::uint64_t seed) {
  std::vector<float> v = random_floats(n, seed, -4.0f, 4.0f);
  const float specials[] = {0.0f,
                            -0.0f,
                            INFINITY,
                            -INFINITY,
                            NAN,
                            std::numeric_limits<float>::denorm_min(),
                            -1e-40f,
                            65504.0f,
                            65520.0f,
                            1e30f,
                            1.00390625f /* bf16 tie */,
                            1.0f + 1.0f / 2048 /* f16 tie */,
                            std::ldexp(1.0f, -25),
                            3.4e38f};
  for (std::size_t i = 0; i < n; i += 3) v[i] = specials[(i / 3) % std::size(specials)];
  return v;
}

inline bool same_bits(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

template <class L>
void check_elementwise() {
  using S = dsk::simd::scalar;
  for (int n = 0; n <= 2 * L::width; ++n) {
    const auto x = awkward_values(static_cast<std::size_t>(n) + 1, 1 + n),
               y = awkward_values(static_cast<std::size_t>(n) + 1, 100 + n);
    auto both = [&](auto op_a, auto op_s) {
      std::vector<float> got(static_cast<std::size_t>(n)), want(static_cast<std::size_t>(n));
      int i = 0;
      for (; i + L::width <= n; i += L::width) {
        L::store(got.data() + i, op_a(L::load(x.data() + i), L::load(y.data() + i)));
        S::store(want.data() + i, op_s(S::load(x.data() + i), S::load(y.data() + i)));
      }
      L::store_partial(got.data() + i,
                       op_a(L::load_partial(x.data() + i, n - i), L::load_partial(y.data() + i, n - i)),
                       n - i);
      S::store_partial(want.data() + i,
                       op_s(S::load_partial(x.data() + i, n - i), S::load_partial(y.data() + i, n - i)),
                       n - i);
      for (int k = 0; k < n; ++k) {
        INFO("n = " << n << ", lane " << k << ": x = " << x[k] << ", y = " << y[k]);
        REQUIRE(same_bits(got[k], want[k]));
      }
    };
    both(L::add, S::add);
    both(L::sub, S::sub);
    both(L::mul, S::mul);
    both(L::div, S::div);
    both(L::max, S::max);
    both(L::min, S::min);
    both([](typename L::f32 a, typename L::f32 b) { return L::fma(a, b, b); },
         [](S::f32 a, S::f32 b) { return S::fma(a, b, b); });
    both([](typename L::f32 a, typename L::f32) { return L::exp(a); },
         [](S::f32 a, S::f32) { return S::exp(a); });
  }
}

template <class L>
void check_exp_range() {
  using S = dsk::simd::scalar;
  std::vector<float> x;
  for (float v = -90.0f; v < 90.0f; v += 0.00731f) x.push_back(v);
  const int n = static_cast<int>(x.size());
  std::vector<float> got(x.size()), want(x.size());
  for (int i = 0; i < n; i += L::width) {
    const int m = std::min(L::width, n - i);
    L::store_partial(got.data() + i, L::exp(L::load_partial(x.data() + i, m)), m);
    S::store_partial(want.data() + i, S::exp(S::load_partial(x.data() + i, m)), m);
  }
  for (int i = 0; i < n; ++i) {
    INFO("x = " << x[i]);
    REQUIRE(same_bits(got[i], want[i]));
  }
}

template <class L>
void check_reductions() {
  using S = dsk::simd::scalar;
  for (int trial = 0; trial < 200; ++trial) {
    auto v = random_floats(8, 500 + trial, -1e4f, 1e4f);
    if (trial % 10 == 0) v[trial % 8] = NAN;
    REQUIRE(same_bits(L::reduce_add(L::load(v.data())), S::reduce_add(S::load(v.data()))));
    REQUIRE(same_bits(L::reduce_max(L::load(v.data())), S::reduce_max(S::load(v.data()))));
  }
}

template <class L, class H>
void check_16bit_tails() {
  using S = dsk::simd::scalar;
  for (int n = 0; n <= 2 * L::width; ++n) {
    const auto x = awkward_values(static_cast<std::size_t>(n) + 1, 7 + n);
    std::vector<H> got(static_cast<std::size_t>(n) + 1, H::from_bits(0xdead)), want = got;
    int i = 0;
    for (; i + L::width <= n; i += L::width) {
      L::store(got.data() + i, L::load(x.data() + i));
      S::store(want.data() + i, S::load(x.data() + i));
    }
    L::store_partial(got.data() + i, L::load_partial(x.data() + i, n - i), n - i);
    S::store_partial(want.data() + i, S::load_partial(x.data() + i, n - i), n - i);
    for (int k = 0; k <= n; ++k) {
      INFO("n = " << n << ", lane " << k << ", x = " << x[k]);
      REQUIRE(got[k].bits == want[k].bits);  // includes the untouched element past the tail
    }
    std::vector<float> wa(static_cast<std::size_t>(n)), ws(static_cast<std::size_t>(n));
    i = 0;
    for (; i + L::width <= n; i += L::width) {
      L::store(wa.data() + i, L::load(want.data() + i));
      S::store(ws.data() + i, S::load(want.data() + i));
    }
    L::store_partial(wa.data() + i, L::load_partial(want.data() + i, n - i), n - i);
    S::store_partial(ws.data() + i, S::load_partial(want.data() + i, n - i), n - i);
    for (int k = 0; k < n; ++k) REQUIRE(same_bits(wa[k], ws[k]));
  }
}

template <class L>
void check_16bit_patterns() {
  for (std::uint32_t b = 0; b < 65536; b += 8) {
    dsk::bf16 hb[8];
    dsk::f16 hf[8];
    for (int k = 0; k < 8; ++k) {
      hb[k] = dsk::bf16::from_bits(static_cast<std::uint16_t>(b + k));
      hf[k] = dsk::f16::from_bits(static_cast<std::uint16_t>(b + k));
    }
    dsk::bf16 ob[8];
    dsk::f16 of[8];
    L::store(ob, L::load(hb));
    L::store(of, L::load(hf));
    for (int k = 0; k < 8; ++k) {
      if (std::isnan(float(hb[k])))
        REQUIRE(std::isnan(float(ob[k])));
      else
        REQUIRE(ob[k].bits == hb[k].bits);
      if (std::isnan(float(hf[k])))
        REQUIRE(std::isnan(float(of[k])));
      else
        REQUIRE(of[k].bits == hf[k].bits);
      REQUIRE(ob[k].bits == dsk::bf16(float(hb[k])).bits);  // same as the scalar conversion, NaN payload too
      REQUIRE(of[k].bits == dsk::f16(float(hf[k])).bits);
    }
  }
}

template <class L>
void check_int8() {
  using S = dsk::simd::scalar;
  auto g = rng(42);
  std::uniform_int_distribution<int> d(-127, 127);
  for (int n = 0; n <= 2 * L::width_i8; ++n) {
    std::vector<std::int8_t> a(static_cast<std::size_t>(n) + 1), b(static_cast<std::size_t>(n) + 1);
    for (auto& e : a) e = static_cast<std::int8_t>(d(g));
    for (auto& e : b) e = static_cast<std::int8_t>(d(g));
    if (n > 1) a[0] = b[0] = a[1] = b[1] = -127;  // the extreme pair
    auto run = [&](auto layer) {
      using V = decltype(layer);
      auto acc = V::zero_i32();
      int i = 0;
      for (; i + V::width_i8 <= n; i += V::width_i8)
        acc = V::dot_i8(acc, V::load_i8(a.data() + i), V::load_i8(b.data() + i));
      acc = V::dot_i8(acc, V::load_i8_partial(a.data() + i, n - i), V::load_i8_partial(b.data() + i, n - i));
      float lanes[8];
      V::store(lanes, V::to_f32(acc));
      return std::pair{V::reduce_add(acc), std::vector<float>(lanes, lanes + 8)};
    };
    const auto [ga, gl] = run(L{});
    const auto [sa, sl] = run(S{});
    std::int32_t want = 0;
    for (int k = 0; k < n; ++k) want += a[k] * b[k];
    REQUIRE(ga == want);
    REQUIRE(sa == want);
    REQUIRE(gl == sl);
  }
}

// Unary float ops of the quantizers (abs, both roundings) and select_eq, on ties, signed zeros, tiny
// negatives, huge values, +-Inf and NaN: every lane bit for bit.
template <class L>
void check_rounding() {
  using S = dsk::simd::scalar;
  std::vector<float> v = awkward_values(256, 7);
  const float ties[] = {0.5f,  -0.5f, 1.5f,   -1.5f,   2.5f,       -2.5f,       -0.3f,      0.3f,
                        -0.0f, 0.0f,  126.5f, -127.5f, 8388607.5f, -8388607.5f, 8388609.0f, 1e30f};
  for (std::size_t i = 0; i < std::size(ties); ++i) v[2 * i + 1] = ties[i];
  for (std::size_t i = 64; i < v.size(); ++i) v[i] *= 40.0f;  // beyond the code range, too
  auto lanes = [](auto layer, auto f) {
    using V = decltype(layer);
    float out[8];
    V::store(out, f(layer));
    return std::vector<float>(out, out + 8);
  };
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (std::size_t k = 0; k < a.size(); ++k)
      if (!same_bits(a[k], b[k])) return false;
    return true;
  };
  for (std::size_t i = 0; i + 8 <= v.size(); i += 8) {
    const float* x = v.data() + i;
    const float* y = v.data() + (i + 24) % (v.size() - 8);
    REQUIRE(same(lanes(L{}, [&](auto l) { return decltype(l)::abs(decltype(l)::load(x)); }),
                 lanes(S{}, [&](auto l) { return decltype(l)::abs(decltype(l)::load(x)); })));
    REQUIRE(same(lanes(L{}, [&](auto l) { return decltype(l)::round_even(decltype(l)::load(x)); }),
                 lanes(S{}, [&](auto l) { return decltype(l)::round_even(decltype(l)::load(x)); })));
    REQUIRE(same(lanes(L{}, [&](auto l) { return decltype(l)::round_away(decltype(l)::load(x)); }),
                 lanes(S{}, [&](auto l) { return decltype(l)::round_away(decltype(l)::load(x)); })));
    // Equal lanes where the rounding leaves the value unchanged (integral x), NaN never equal.
    auto sel = [&](auto l) {
      using V = decltype(l);
      return V::select_eq(V::load(x), V::round_even(V::load(x)), V::load(y));
    };
    REQUIRE(same(lanes(L{}, sel), lanes(S{}, sel)));
  }
  // The defining cases, on the scalar oracle itself.
  float t[8] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -0.3f, 3.49999976f, -1e-40f}, r[8];
  S::store(r, S::round_even(S::load(t)));
  REQUIRE(std::vector<float>(r, r + 8) ==
          std::vector<float>{0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -0.0f, 3.0f, -0.0f});
  S::store(r, S::round_away(S::load(t)));
  REQUIRE(std::vector<float>(r, r + 8) ==
          std::vector<float>{1.0f, 2.0f, 3.0f, -1.0f, -3.0f, -0.0f, 3.0f, -0.0f});
  REQUIRE(std::signbit(r[5]));
  REQUIRE(std::signbit(r[7]));
}

// Code stores and decoders of int8/int4 and the int16 multiply-add, against the scalar layer and against the
// formats' definitions (int4x2: element 2j in the low nibble of byte j).
template <class L>
void check_codes() {
  using S = dsk::simd::scalar;
  auto g = rng(11);
  std::uniform_int_distribution<int> d8(-128, 127), d4(-8, 7), d16(-32767, 32767);
  for (int rep = 0; rep < 200; ++rep) {
    float c8[8], c4[8], c16[8];
    for (int k = 0; k < 8; ++k) c8[k] = float(d8(g)), c4[k] = float(d4(g)), c16[k] = float(d16(g));
    if (rep == 0) c8[0] = -128.0f, c8[1] = 127.0f, c4[0] = -8.0f, c4[1] = 7.0f, c16[0] = -32768.0f;
    for (int n = 0; n <= 9; ++n) {
      std::int8_t a[8] = {}, b[8] = {};
      L::store_i8(a, L::load(c8), n);
      S::store_i8(b, S::load(c8), n);
      for (int k = 0; k < 8; ++k) REQUIRE(a[k] == (k < n ? std::int8_t(c8[k]) : 0));
      REQUIRE(std::equal(a, a + 8, b));
    }
    std::int16_t h[8], hs[8];
    L::store_i16(h, L::load(c16));
    S::store_i16(hs, S::load(c16));
    for (int k = 0; k < 8; ++k) REQUIRE((h[k] == std::int16_t(c16[k]) && hs[k] == h[k]));
    std::uint8_t q[4], qs[4];
    L::store_i4(q, L::load(c4));
    S::store_i4(qs, S::load(c4));
    for (int j = 0; j < 4; ++j) {
      REQUIRE(q[j] == std::uint8_t((int(c4[2 * j]) & 0xf) | ((int(c4[2 * j + 1]) & 0xf) << 4)));
      REQUIRE(qs[j] == q[j]);
    }
  }
  std::vector<std::uint8_t> bytes(32);
  std::uniform_int_distribution<int> db(0, 255);
  for (int rep = 0; rep < 64; ++rep) {
    for (auto& e : bytes) e = static_cast<std::uint8_t>(rep == 0 ? (&e - bytes.data()) * 8 : db(g));
    const auto* i8p = reinterpret_cast<const std::int8_t*>(bytes.data());
    float f[8], fs[8], e[8], o[8], es[8], os[8];
    L::store(f, L::load_i8_f32(i8p));
    S::store(fs, S::load_i8_f32(i8p));
    typename L::f32 le, lo;
    typename S::f32 se, so;
    L::load_i4_f32(bytes.data(), le, lo);
    S::load_i4_f32(bytes.data(), se, so);
    L::store(e, le), L::store(o, lo), S::store(es, se), S::store(os, so);
    for (int k = 0; k < 8; ++k) {
      const int lo_n = bytes[k] & 0xf, hi_n = bytes[k] >> 4;
      REQUIRE(f[k] == float(i8p[k]));
      REQUIRE(e[k] == float(lo_n >= 8 ? lo_n - 16 : lo_n));
      REQUIRE(o[k] == float(hi_n >= 8 ? hi_n - 16 : hi_n));
      REQUIRE((same_bits(f[k], fs[k]) && same_bits(e[k], es[k]) && same_bits(o[k], os[k])));
    }
    std::int16_t w[16], ws[16], ev[16], od[16], evs[16], ods[16];
    L::store_i16(w, L::load_i8_i16(i8p));
    S::store_i16(ws, S::load_i8_i16(i8p));
    typename L::i16 lev, lod;
    typename S::i16 sev, sod;
    L::load_i4_i16(bytes.data(), lev, lod);
    S::load_i4_i16(bytes.data(), sev, sod);
    L::store_i16(ev, lev), L::store_i16(od, lod), S::store_i16(evs, sev), S::store_i16(ods, sod);
    for (int k = 0; k < 16; ++k) {
      const int lo_n = bytes[k] & 0xf, hi_n = bytes[k] >> 4;
      REQUIRE(w[k] == i8p[k]);
      REQUIRE(ev[k] == (lo_n >= 8 ? lo_n - 16 : lo_n));
      REQUIRE(od[k] == (hi_n >= 8 ? hi_n - 16 : hi_n));
      REQUIRE((w[k] == ws[k] && ev[k] == evs[k] && od[k] == ods[k]));
    }
  }
}

// madd_i16 (pairs of int16 products), reduce_add8 (a transpose-and-add of 8 int32 packets), reduce_add4 (four
// float sums in the hadd order), and pin (a no-op on the values).
template <class L>
void check_int16_and_reductions() {
  using S = dsk::simd::scalar;
  auto g = rng(12);
  std::uniform_int_distribution<int> d(-32767, 32767), dsmall(-127, 127);
  for (int rep = 0; rep < 100; ++rep) {
    std::int16_t a[16], b[16];
    std::int32_t acc0[8];
    for (int k = 0; k < 16; ++k) a[k] = std::int16_t(rep % 2 ? d(g) : dsmall(g)), b[k] = std::int16_t(d(g));
    for (int k = 0; k < 8; ++k) acc0[k] = d(g) * 3;
    std::int32_t big[64];
    for (auto& e : big) e = static_cast<std::int32_t>(static_cast<std::uint32_t>(d(g)) * 65599u);
    auto run = [&](auto layer) {
      using V = decltype(layer);
      typename V::i32 acc;
      std::memcpy(&acc, acc0, sizeof acc0);  // both layers hold 8 int32 lanes in lane order
      typename V::i16 va = V::load_i16(a), vb = V::load_i16(b);
      V::pin(va);
      acc = V::madd_i16(acc, va, vb);
      typename V::i32 many[8];  // any int32 values: the sums wrap the same way on every layer
      std::memcpy(many, big, sizeof big);
      typename V::i32 sums = V::reduce_add8(many);
      std::int32_t out[16];
      std::memcpy(out, &acc, 32);
      std::memcpy(out + 8, &sums, 32);
      return std::vector<std::int32_t>(out, out + 16);
    };
    const auto got = run(L{}), want = run(S{});
    REQUIRE(got == want);
    for (int j = 0; j < 8; ++j)
      REQUIRE(want[std::size_t(j)] ==
              acc0[j] + std::int32_t{a[2 * j]} * b[2 * j] + std::int32_t{a[2 * j + 1]} * b[2 * j + 1]);
  }
  const auto v = awkward_values(32, 99), r = random_floats(32, 98, -1e4f, 1e4f);
  for (const auto* x : {v.data(), r.data()}) {
    float o[4], os[4];
    L::reduce_add4(L::load(x), L::load(x + 8), L::load(x + 16), L::load(x + 24), o);
    S::reduce_add4(S::load(x), S::load(x + 8), S::load(x + 16), S::load(x + 24), os);
    for (int k = 0; k < 4; ++k) {
      const float* p = x + 8 * k;
      REQUIRE(same_bits(os[k], ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))));
      REQUIRE(same_bits(o[k], os[k]));
    }
  }
}

// The decode ops of the W4A8/W8A8 GEMV: load_u4 (offset int4 codes), dot_u4s8 (u8 x s8 groups of four, at the
// extremes 15 x -128 of its contract), load_i32 / add_i32 (wrapping), reduce_add8_halves (lanes 0-3 and 4-7
// of 8 packets), transpose8; each lane against the formula and against scalar.
template <class L>
void check_decode_ops() {
  using S = dsk::simd::scalar;
  auto g = rng(13);
  std::uniform_int_distribution<int> db(0, 255), du(0, 15), ds(-128, 127), di(-2000000000, 2000000000);
  for (int rep = 0; rep < 100; ++rep) {
    std::uint8_t codes[32];
    std::int8_t ulo[32], uhi[32], slo[32], shi[32];
    std::int32_t acc0[8], add[8], big[64];
    for (int k = 0; k < 32; ++k) {
      codes[k] = static_cast<std::uint8_t>(rep == 0 ? 8 * k + (k % 16) : db(g));
      ulo[k] = static_cast<std::int8_t>(rep == 1 ? 15 : du(g)), uhi[k] = static_cast<std::int8_t>(du(g));
      slo[k] = static_cast<std::int8_t>(rep == 1 ? -128 : ds(g)), shi[k] = static_cast<std::int8_t>(ds(g));
      if (rep == 1) uhi[k] = 15, shi[k] = -128;
    }
    for (auto& e : acc0) e = di(g) / 2;
    for (auto& e : add) e = di(g);
    for (auto& e : big) e = di(g);
    auto run = [&](auto layer) {
      using V = decltype(layer);
      typename V::i8 lo, hi;
      V::load_u4(codes, lo, hi);
      std::int8_t dl[32], dh[32];
      std::memcpy(dl, &lo, 32);  // both layers hold 32 int8 lanes in lane order
      std::memcpy(dh, &hi, 32);
      typename V::i32 acc = V::load_i32(acc0);
      acc = V::dot_u4s8(acc, V::load_i8(ulo), V::load_i8(slo), V::load_i8(uhi), V::load_i8(shi));
      const typename V::i32 sum = V::add_i32(V::load_i32(acc0), V::load_i32(add));
      typename V::i32 many[8], h0, h1;
      for (int j = 0; j < 8; ++j) many[j] = V::load_i32(big + 8 * j);
      V::reduce_add8_halves(many, h0, h1);
      std::vector<std::int32_t> out(32);
      std::memcpy(out.data(), &acc, 32);
      std::memcpy(out.data() + 8, &sum, 32);
      std::memcpy(out.data() + 16, &h0, 32);
      std::memcpy(out.data() + 24, &h1, 32);
      for (int k = 0; k < 32; ++k) out.push_back(dl[k]), out.push_back(dh[k]);
      return out;
    };
    const auto got = run(L{}), want = run(S{});
    REQUIRE(got == want);
    auto wrap = [](std::int64_t v) { return static_cast<std::int32_t>(static_cast<std::uint32_t>(v)); };
    for (int j = 0; j < 8; ++j) {
      std::int64_t dot = acc0[j], s0 = 0, s1 = 0;
      for (int k = 0; k < 4; ++k) dot += ulo[4 * j + k] * slo[4 * j + k] + uhi[4 * j + k] * shi[4 * j + k];
      for (int l = 0; l < 4; ++l) s0 += big[8 * j + l], s1 += big[8 * j + 4 + l];
      REQUIRE(want[std::size_t(j)] == dot);
      REQUIRE(want[std::size_t(8 + j)] == wrap(std::int64_t{acc0[j]} + add[j]));
      REQUIRE(want[std::size_t(16 + j)] == wrap(s0));
      REQUIRE(want[std::size_t(24 + j)] == wrap(s1));
    }
    for (int k = 0; k < 32; ++k) {  // code + 8 of each nibble (two's complement)
      const int lo_n = codes[k] & 0xf, hi_n = codes[k] >> 4;
      REQUIRE(want[std::size_t(32 + 2 * k)] == (lo_n >= 8 ? lo_n - 16 : lo_n) + 8);
      REQUIRE(want[std::size_t(33 + 2 * k)] == (hi_n >= 8 ? hi_n - 16 : hi_n) + 8);
    }
  }
  const auto v = awkward_values(64, 77);
  float got[64], want[64];
  typename L::f32 rl[8];
  S::f32 rs[8];
  for (int i = 0; i < 8; ++i) rl[i] = L::load(v.data() + 8 * i), rs[i] = S::load(v.data() + 8 * i);
  L::transpose8(rl);
  S::transpose8(rs);
  for (int i = 0; i < 8; ++i) L::store(got + 8 * i, rl[i]), S::store(want + 8 * i, rs[i]);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) {
      REQUIRE(same_bits(want[8 * i + j], v[std::size_t(8 * j + i)]));
      REQUIRE(same_bits(got[8 * i + j], want[8 * i + j]));
    }
}

}  // namespace dsk::test

// The TEST_CASEs of one layer.
#define DSK_PACKET_CONFORMANCE_TESTS(L, tag)                                                            \
  TEST_CASE(#L " elementwise ops equal scalar bit for bit, every tail length", tag) {                   \
    dsk::test::check_elementwise<L>();                                                                  \
  }                                                                                                     \
  TEST_CASE(#L " exp equals scalar exp over the whole range", tag) { dsk::test::check_exp_range<L>(); } \
  TEST_CASE(#L " reductions use the scalar order", tag) { dsk::test::check_reductions<L>(); }           \
  TEST_CASE(#L " bf16 loads and stores equal scalar, every tail length", tag) {                         \
    dsk::test::check_16bit_tails<L, dsk::bf16>();                                                       \
  }                                                                                                     \
  TEST_CASE(#L " f16 loads and stores equal scalar, every tail length", tag) {                          \
    dsk::test::check_16bit_tails<L, dsk::f16>();                                                        \
  }                                                                                                     \
  TEST_CASE(#L " narrowing of all 16-bit patterns round-trips, NaN stays NaN", tag) {                   \
    dsk::test::check_16bit_patterns<L>();                                                               \
  }                                                                                                     \
  TEST_CASE(#L " int8 dot and reductions equal scalar, every tail length", tag) {                       \
    dsk::test::check_int8<L>();                                                                         \
  }                                                                                                     \
  TEST_CASE(#L " abs, roundings and select_eq equal scalar bit for bit", tag) {                         \
    dsk::test::check_rounding<L>();                                                                     \
  }                                                                                                     \
  TEST_CASE(#L " int8/int4 code stores and decoders equal scalar and the format", tag) {                \
    dsk::test::check_codes<L>();                                                                        \
  }                                                                                                     \
  TEST_CASE(#L " int16 multiply-add, reduce_add8 and reduce_add4 equal scalar", tag) {                  \
    dsk::test::check_int16_and_reductions<L>();                                                         \
  }                                                                                                     \
  TEST_CASE(#L " int4 decode, u8 x s8 dot, int32 ops, half reductions, transpose equal scalar", tag) {  \
    dsk::test::check_decode_ops<L>();                                                                   \
  }
