// Every AVX2 packet op against the scalar packet layer, bit for bit, over every tail length from 0 to twice the
// vector width and over special values (NaN, +-Inf, subnormals, rounding ties).
#include "dsk/simd/avx2.hpp"

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/simd/scalar.hpp"
#include "isa_probe.hpp"
#include "support/compare.hpp"

#if defined(DSK_HOST_ISA_AVX2)

namespace {
using A = dsk::simd::avx2;
using S = dsk::simd::scalar;

std::vector<float> awkward_values(std::size_t n, std::uint64_t seed) {
  std::vector<float> v = dsk::test::random_floats(n, seed, -4.0f, 4.0f);
  const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, std::numeric_limits<float>::denorm_min(),
                            -1e-40f, 65504.0f, 65520.0f, 1e30f, 1.00390625f /* bf16 tie */, 1.0f + 1.0f / 2048 /* f16 tie */,
                            std::ldexp(1.0f, -25), 3.4e38f};
  for (std::size_t i = 0; i < n; i += 3) v[i] = specials[(i / 3) % std::size(specials)];
  return v;
}

bool same_bits(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

// Apply a unary packet op to n elements (full packets then one partial packet) with layer L.
template <class L, class Op>
std::vector<float> run_unary(const std::vector<float>& in, int n, Op op) {
  std::vector<float> out(static_cast<std::size_t>(n), -7.0f);
  int i = 0;
  for (; i + L::width <= n; i += L::width) L::store(out.data() + i, op(L::load(in.data() + i)));
  L::store_partial(out.data() + i, op(L::load_partial(in.data() + i, n - i)), n - i);
  return out;
}
}  // namespace

TEST_CASE("avx2 elementwise ops equal scalar bit for bit, every tail length", "[simd][avx2]") {
  for (int n = 0; n <= 2 * A::width; ++n) {
    const auto x = awkward_values(static_cast<std::size_t>(n) + 1, 1 + n), y = awkward_values(static_cast<std::size_t>(n) + 1, 100 + n);
    auto both = [&](auto op_a, auto op_s) {
      // binary ops: second operand from y, loaded the same way
      std::vector<float> got(static_cast<std::size_t>(n)), want(static_cast<std::size_t>(n));
      int i = 0;
      for (; i + 8 <= n; i += 8) {
        A::store(got.data() + i, op_a(A::load(x.data() + i), A::load(y.data() + i)));
        S::store(want.data() + i, op_s(S::load(x.data() + i), S::load(y.data() + i)));
      }
      A::store_partial(got.data() + i, op_a(A::load_partial(x.data() + i, n - i), A::load_partial(y.data() + i, n - i)), n - i);
      S::store_partial(want.data() + i, op_s(S::load_partial(x.data() + i, n - i), S::load_partial(y.data() + i, n - i)), n - i);
      for (int k = 0; k < n; ++k) {
        INFO("n = " << n << ", lane " << k << ": x = " << x[k] << ", y = " << y[k]);
        REQUIRE(same_bits(got[k], want[k]));
      }
    };
    both(A::add, S::add);
    both(A::sub, S::sub);
    both(A::mul, S::mul);
    both(A::div, S::div);
    both(A::max, S::max);
    both(A::min, S::min);
    both([](A::f32 a, A::f32 b) { return A::fma(a, b, b); }, [](S::f32 a, S::f32 b) { return S::fma(a, b, b); });
    both([](A::f32 a, A::f32) { return A::exp(a); }, [](S::f32 a, S::f32) { return S::exp(a); });
  }
}

TEST_CASE("avx2 exp equals scalar exp over the whole range", "[simd][avx2]") {
  std::vector<float> x;
  for (float v = -90.0f; v < 90.0f; v += 0.00731f) x.push_back(v);
  const int n = static_cast<int>(x.size());
  const auto got = run_unary<A>(x, n, [](A::f32 a) { return A::exp(a); });
  const auto want = run_unary<S>(x, n, [](S::f32 a) { return S::exp(a); });
  for (int i = 0; i < n; ++i) {
    INFO("x = " << x[i]);
    REQUIRE(same_bits(got[i], want[i]));
  }
}

TEST_CASE("avx2 reductions use the scalar order", "[simd][avx2]") {
  for (int trial = 0; trial < 200; ++trial) {
    auto v = dsk::test::random_floats(8, 500 + trial, -1e4f, 1e4f);
    if (trial % 10 == 0) v[trial % 8] = NAN;
    REQUIRE(same_bits(A::reduce_add(A::load(v.data())), S::reduce_add(S::load(v.data()))));
    REQUIRE(same_bits(A::reduce_max(A::load(v.data())), S::reduce_max(S::load(v.data()))));
  }
}

TEMPLATE_TEST_CASE("avx2 16-bit widening loads and narrowing stores equal scalar, every tail length", "[simd][avx2]",
                   dsk::bf16, dsk::f16) {
  for (int n = 0; n <= 2 * A::width; ++n) {
    const auto x = awkward_values(static_cast<std::size_t>(n) + 1, 7 + n);
    std::vector<TestType> got(static_cast<std::size_t>(n) + 1, TestType::from_bits(0xdead)), want = got;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      A::store(got.data() + i, A::load(x.data() + i));
      S::store(want.data() + i, S::load(x.data() + i));
    }
    A::store_partial(got.data() + i, A::load_partial(x.data() + i, n - i), n - i);
    S::store_partial(want.data() + i, S::load_partial(x.data() + i, n - i), n - i);
    for (int k = 0; k <= n; ++k) {
      INFO("n = " << n << ", lane " << k << ", x = " << x[k]);
      REQUIRE(got[k].bits == want[k].bits);  // includes the untouched element past the tail
    }
    // and back: widening loads
    std::vector<float> wa(static_cast<std::size_t>(n)), ws(static_cast<std::size_t>(n));
    i = 0;
    for (; i + 8 <= n; i += 8) {
      A::store(wa.data() + i, A::load(want.data() + i));
      S::store(ws.data() + i, S::load(want.data() + i));
    }
    A::store_partial(wa.data() + i, A::load_partial(want.data() + i, n - i), n - i);
    S::store_partial(ws.data() + i, S::load_partial(want.data() + i, n - i), n - i);
    for (int k = 0; k < n; ++k) REQUIRE(same_bits(wa[k], ws[k]));
  }
}

TEST_CASE("avx2 narrowing of all 16-bit patterns round-trips, NaN stays NaN", "[simd][avx2]") {
  for (std::uint32_t b = 0; b < 65536; b += 8) {
    dsk::bf16 hb[8];
    dsk::f16 hf[8];
    for (int k = 0; k < 8; ++k) {
      hb[k] = dsk::bf16::from_bits(static_cast<std::uint16_t>(b + k));
      hf[k] = dsk::f16::from_bits(static_cast<std::uint16_t>(b + k));
    }
    dsk::bf16 ob[8];
    dsk::f16 of[8];
    A::store(ob, A::load(hb));
    A::store(of, A::load(hf));
    for (int k = 0; k < 8; ++k) {
      const bool nan_b = std::isnan(float(hb[k])), nan_f = std::isnan(float(hf[k]));
      if (nan_b) REQUIRE(std::isnan(float(ob[k])));
      else REQUIRE(ob[k].bits == hb[k].bits);
      if (nan_f) REQUIRE(std::isnan(float(of[k])));
      else REQUIRE(of[k].bits == hf[k].bits);
      REQUIRE(ob[k].bits == dsk::bf16(float(hb[k])).bits);  // same as the scalar conversion, NaN payload too
      REQUIRE(of[k].bits == dsk::f16(float(hf[k])).bits);
    }
  }
}

TEST_CASE("avx2 int8 dot and reductions equal scalar, every tail length", "[simd][avx2]") {
  auto g = dsk::test::rng(42);
  std::uniform_int_distribution<int> d(-127, 127);
  for (int n = 0; n <= 2 * A::width_i8; ++n) {
    std::vector<std::int8_t> a(static_cast<std::size_t>(n) + 1), b(static_cast<std::size_t>(n) + 1);
    for (auto& e : a) e = static_cast<std::int8_t>(d(g));
    for (auto& e : b) e = static_cast<std::int8_t>(d(g));
    if (n > 1) a[0] = b[0] = a[1] = b[1] = -127;  // the extreme pair
    auto run = [&](auto layer) {
      using L = decltype(layer);
      auto acc = L::zero_i32();
      int i = 0;
      for (; i + L::width_i8 <= n; i += L::width_i8) acc = L::dot_i8(acc, L::load_i8(a.data() + i), L::load_i8(b.data() + i));
      acc = L::dot_i8(acc, L::load_i8_partial(a.data() + i, n - i), L::load_i8_partial(b.data() + i, n - i));
      float lanes[8];
      L::store(lanes, L::to_f32(acc));
      return std::pair{L::reduce_add(acc), std::vector<float>(lanes, lanes + 8)};
    };
    const auto [ga, gl] = run(A{});
    const auto [sa, sl] = run(S{});
    std::int32_t want = 0;
    for (int k = 0; k < n; ++k) want += a[k] * b[k];
    REQUIRE(ga == want);
    REQUIRE(sa == want);
    REQUIRE(gl == sl);
  }
}

TEST_CASE("TUs built for different ISAs keep separate instantiations", "[simd][isa]") {
  const auto x = dsk::test::random_floats(37, 3), y = dsk::test::random_floats(37, 4);
  REQUIRE(dsk::test::native_name() == "avx2");
#if defined(__x86_64__)
  REQUIRE(dsk::test::baseline_tu_native_name() == "scalar");
#endif
  // Same interface, same lane order and reduction tree: bit-identical results.
  REQUIRE(same_bits(dsk::test::native_dot(x.data(), y.data(), 37), dsk::test::baseline_tu_native_dot(x.data(), y.data(), 37)));
}

#else
TEST_CASE("avx2 packet tests", "[simd][avx2]") {
  WARN("this test binary was not compiled for AVX2+FMA+F16C (set DSK_HOST_ARCH); the avx2 layer is not tested");
  REQUIRE(dsk::test::native_name() == "scalar");
}
#endif
