// nn::rmsnorm against the double reference: row lengths around the vector width, f32/bf16/f16 weights,
// strided rows, in place, 1 and 2 threads; the scalar packet layer bit for bit; shape errors.
#include "dsk/nn/rmsnorm.hpp"

#include <cmath>
#include <cstring>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"

#include "dsk/nn/ref.hpp"
#include "support/compare.hpp"

namespace {
using dsk::index_t;
// fp32 sum of n <= 300 squares and a few roundings: relative error per element <~ 1e-6 (NMSE ~1e-12);
// max-abs 4e-6 on outputs of magnitude <~ 3 covers n * 2^-24 * |y| with margin.
constexpr double kMaxAbs = 4e-6;
}  // namespace

TEMPLATE_TEST_CASE("rmsnorm matches w * x / sqrt(mean(x^2) + eps)", "[nn][rmsnorm]", float, dsk::bf16,
                   dsk::f16) {
  using W = TestType;
  for (index_t n : {1, 7, 8, 9, 64, 300})
    for (index_t rows : {1, 3, 17}) {
      CAPTURE(n, rows);
      auto xs = dsk::test::random_floats(std::size_t(rows * (n + 2)), std::uint64_t(n + rows), -2.0f, 2.0f);
      auto ws = dsk::test::random_floats(std::size_t(n), 9, 0.5f, 1.5f);
      dsk::tensor<W, 1> w(n);
      for (index_t i = 0; i < n; ++i) w(i) = dsk::from_float<W>(ws[std::size_t(i)]);
      const dsk::view<const float, 2> x(xs.data(), dsk::dims<2>(rows, n), {n + 2, 1});
      dsk::tensor<double, 2> want(rows, n);
      dsk::nn::ref::rmsnorm<W>(x, w.cview(), 1e-6, want.view());
      for (int threads : {1, 2}) {
        const dsk::thread_count_scope scope(threads);
        dsk::tensor<float, 2> y(rows, n), ys(rows, n);
        dsk::nn::rmsnorm(x, w.cview(), 1e-6f, y);
        dsk::nn::rmsnorm<dsk::simd::scalar>(x, w.cview(), 1e-6f, ys.view());
        REQUIRE(std::memcmp(y.data(), ys.data(), sizeof(float) * std::size_t(y.size())) == 0);
        for (index_t r = 0; r < rows; ++r)
          for (index_t i = 0; i < n; ++i) REQUIRE(std::abs(y(r, i) - want(r, i)) <= kMaxAbs);
      }
    }
}

TEST_CASE("rmsnorm works in place and handles a zero row", "[nn][rmsnorm]") {
  dsk::tensor<float, 2> x(2, 10);
  dsk::tensor<float, 1> w(10);
  for (index_t i = 0; i < 10; ++i) x(0, i) = float(i) - 4.5f, x(1, i) = 0.0f, w(i) = 1.0f;
  dsk::tensor<double, 2> want(2, 10);
  dsk::nn::ref::rmsnorm<float>(x.cview(), w.cview(), 1e-6, want.view());
  dsk::nn::rmsnorm(x, w, 1e-6f, x);
  for (index_t i = 0; i < 10; ++i) {
    REQUIRE(std::abs(x(0, i) - want(0, i)) <= kMaxAbs);
    REQUIRE(x(1, i) == 0.0f);
  }
}

TEST_CASE("rmsnorm rejects mismatched shapes", "[nn][rmsnorm][errors]") {
  dsk::tensor<float, 2> x(2, 8), y(2, 7);
  dsk::tensor<float, 1> w(8), w7(7);
  REQUIRE_THROWS_WITH(dsk::nn::rmsnorm(x, w7, 1e-6f, x),
                      Catch::Contains("'w'") && Catch::Contains("must be 8"));
  REQUIRE_THROWS_WITH(dsk::nn::rmsnorm(x, w, 1e-6f, y), Catch::Contains("'y'"));
  REQUIRE_THROWS_WITH(dsk::nn::rmsnorm(x, w, -1.0f, x), Catch::Contains("'eps'"));
}
