// The portable packet layer against plain formulas.
#include "dsk/simd/scalar.hpp"

#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "support/compare.hpp"

using S = dsk::simd::scalar;

TEST_CASE("scalar packets: partial loads and stores touch only the first n lanes", "[simd][scalar]") {
  float src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (int n = 0; n <= 8; ++n) {
    const S::f32 a = S::load_partial(src, n);
    for (int i = 0; i < 8; ++i) REQUIRE(a.v[i] == (i < n ? src[i] : 0.0f));
    float dst[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    S::store_partial(dst, S::broadcast(9.0f), n);
    for (int i = 0; i < 8; ++i) REQUIRE(dst[i] == (i < n ? 9.0f : -1.0f));
  }
}

TEST_CASE("scalar exp is accurate to a few ulp over the float range", "[simd][scalar]") {
  double worst = 0;
  for (float x = -87.0f; x < 88.5f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const double got = S::exp1(x);
    worst = std::max(worst, std::abs(got - want) / want);
  }
  INFO("worst relative error " << worst);
  REQUIRE(worst < 4 * 6e-8);  // 4 ulp of float (2^-24 = 6e-8)
  REQUIRE(S::exp1(0.0f) == 1.0f);
  REQUIRE(S::exp1(-100.0f) == 0.0f);
  REQUIRE(std::isinf(S::exp1(100.0f)));
  REQUIRE(std::isnan(S::exp1(NAN)));
  REQUIRE(S::exp1(-INFINITY) == 0.0f);
}

TEST_CASE("scalar int8 dot groups lanes in fours", "[simd][scalar]") {
  S::i8 a, b;
  for (int i = 0; i < 32; ++i) {
    a.v[i] = static_cast<std::int8_t>(i - 16);
    b.v[i] = static_cast<std::int8_t>(127 - 8 * i);
  }
  const S::i32 r = S::dot_i8(S::zero_i32(), a, b);
  for (int j = 0; j < 8; ++j) {
    std::int32_t want = 0;
    for (int k = 4 * j; k < 4 * j + 4; ++k) want += (k - 16) * (127 - 8 * k);
    REQUIRE(r.v[j] == want);
  }
}
