// Conformance of a vector packet layer L with dsk::simd::scalar: every op bit for bit, every tail length from
// 0 to twice the vector width, special values (NaN, +-Inf, subnormals, rounding ties). Instantiated by
// avx2.cpp (x86-64) and neon.cpp (AArch64, run under qemu in CI).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
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
  }
