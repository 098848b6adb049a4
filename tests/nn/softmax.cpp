// nn::softmax and nn::log_softmax against the double reference over row lengths around the vector width,
// including -inf entries, all -inf rows and NaN; the scalar packet layer bit for bit; shape errors.
#include "dsk/nn/softmax.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"

#include "dsk/nn/ref.hpp"
#include "support/compare.hpp"

namespace {
using dsk::index_t;
constexpr float kInf = std::numeric_limits<float>::infinity();
// The packet exp is within a few ulp and the sum of n <= 1000 terms adds n * 2^-24 relative: 2e-6 relative on
// the probabilities (softmax) and 2e-5 absolute on log-probabilities of magnitude <~ 20.
constexpr double kSoftmaxRel = 2e-6;
constexpr double kLogAbs = 2e-5;
}  // namespace

TEST_CASE("softmax and log_softmax match the double reference", "[nn][softmax]") {
  for (index_t n : {1, 5, 8, 13, 64, 1000})
    for (index_t rows : {1, 4}) {
      CAPTURE(n, rows);
      auto v = dsk::test::random_floats(std::size_t(rows * n), std::uint64_t(n), -8.0f, 8.0f);
      if (n > 3) v[2] = -kInf;  // a masked entry
      dsk::tensor<float, 2> x(rows, n);
      std::memcpy(x.data(), v.data(), sizeof(float) * v.size());
      dsk::tensor<double, 2> want(rows, n), want_log(rows, n);
      dsk::nn::ref::softmax(x.cview(), want.view(), false);
      dsk::nn::ref::softmax(x.cview(), want_log.view(), true);
      for (int threads : {1, 2}) {
        const dsk::thread_count_scope scope(threads);
        dsk::tensor<float, 2> y(rows, n), yl(rows, n), ys(rows, n);
        dsk::nn::softmax(x, y);
        dsk::nn::log_softmax(x, yl);
        dsk::nn::softmax<dsk::simd::scalar>(x, ys);
        REQUIRE(std::memcmp(y.data(), ys.data(), sizeof(float) * std::size_t(y.size())) == 0);
        dsk::tensor<float, 2> yls(rows, n);
        dsk::nn::log_softmax<dsk::simd::scalar>(x, yls);
        REQUIRE(std::memcmp(yl.data(), yls.data(), sizeof(float) * std::size_t(yl.size())) == 0);
        for (index_t r = 0; r < rows; ++r)
          for (index_t i = 0; i < n; ++i) {
            REQUIRE(std::abs(y(r, i) - want(r, i)) <= kSoftmaxRel * want(r, i) + 1e-30);
            if (std::isinf(want_log(r, i)))
              REQUIRE(yl(r, i) == -kInf);
            else
              REQUIRE(std::abs(yl(r, i) - want_log(r, i)) <= kLogAbs);
          }
      }
    }
}

TEST_CASE("softmax of special rows: all -inf, NaN, in place", "[nn][softmax]") {
  dsk::tensor<float, 2> x(3, 9);
  for (index_t i = 0; i < 9; ++i) x(0, i) = -kInf, x(1, i) = float(i), x(2, i) = 1.0f;
  x(1, 8) = std::numeric_limits<float>::quiet_NaN();
  dsk::tensor<float, 2> y(3, 9), yl(3, 9);
  dsk::nn::softmax(x, y);
  dsk::nn::log_softmax(x, yl);
  for (index_t i = 0; i < 9; ++i) {
    REQUIRE(y(0, i) == 0.0f);
    REQUIRE(yl(0, i) == -kInf);
    REQUIRE(std::isnan(y(1, i)));
    REQUIRE(std::isnan(yl(1, i)));
  }
  dsk::nn::softmax(x, x);  // in place
  for (index_t i = 0; i < 9; ++i) REQUIRE(std::abs(x(2, i) - 1.0f / 9) <= 1e-7f);
}

TEST_CASE("softmax rejects mismatched shapes", "[nn][softmax][errors]") {
  dsk::tensor<float, 2> x(2, 8), y(2, 7);
  REQUIRE_THROWS_WITH(dsk::nn::softmax(x, y), Catch::Contains("nn::softmax") && Catch::Contains("'y'"));
  REQUIRE_THROWS_WITH(dsk::nn::log_softmax(x, y), Catch::Contains("nn::log_softmax"));
}
