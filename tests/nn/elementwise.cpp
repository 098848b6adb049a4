// nn elementwise ops (silu, sigmoid, swiglu separate / halves / interleaved, add, residual_add, scale)
// against double formulas over row lengths around the packet width (tails), several rows, empty shapes and
// special values (+-inf, NaN, large magnitudes); the scalar packet layer bit for bit through the public entry
// points; in-place use; shape errors naming the argument.
#include "dsk/nn/elementwise.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"
#include "support/compare.hpp"

namespace {
using dsk::index_t;
using dsk::tensor;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// The packet exp is within a few ulp of e^x and one division / multiply adds 1 ulp each: 1e-6 relative
// (8 ulp) to the double formula, plus 1e-30 absolute for results that underflow towards 0.
constexpr double kRel = 1e-6;

double silu_ref(double g) { return g / (1.0 + std::exp(-g)); }
double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

tensor<float, 2> random_rows(index_t rows, index_t n, std::uint64_t seed, float lo = -12.0f,
                             float hi = 12.0f) {
  tensor<float, 2> t(rows, n);
  const auto v = dsk::test::random_floats(static_cast<std::size_t>(rows * n), seed, lo, hi);
  if (!v.empty()) std::memcpy(t.data(), v.data(), sizeof(float) * v.size());
  return t;
}
// Special values at the start of the first row (when it is long enough).
void add_specials(tensor<float, 2>& t) {
  const float sp[] = {0.0f, -0.0f, kInf, -kInf, kNaN, 100.0f, -100.0f, 88.0f, -88.0f, 1e-30f};
  for (index_t i = 0; i < std::min<index_t>(10, t.extent(1)); ++i)
    if (t.extent(0) > 0) t(0, i) = sp[i];
}

// got == want within kRel, with NaN where want is NaN and exact infinities.
void check_close(float got, double want) {
  CAPTURE(got, want);
  if (std::isnan(want)) {
    REQUIRE(std::isnan(got));
  } else if (std::isinf(want)) {
    REQUIRE(got == want);
  } else {
    REQUIRE(std::abs(double(got) - want) <= kRel * std::abs(want) + 1e-30);
  }
}
bool same_bits(const tensor<float, 2>& a, const tensor<float, 2>& b) {
  // (memcmp of empty tensors would pass null pointers: undefined behaviour)
  return a.size() == b.size() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(float) * std::size_t(a.size())) == 0);
}
const index_t kLengths[] = {0, 1, 3, 7, 8, 9, 16, 17, 31, 100};

// The execution tag is checked by the dsk::host_exec concept: a packet layer or dsk::host, nothing else.
template <class E>
constexpr bool silu_accepts = requires(dsk::view<const float, 2> x, dsk::view<float, 2> y) {
  dsk::nn::silu<E>(x, y);
};
static_assert(silu_accepts<dsk::host> && silu_accepts<dsk::simd::scalar> && silu_accepts<dsk::simd::native>);
static_assert(!silu_accepts<double> && !silu_accepts<dsk::cuda>);
}  // namespace

TEST_CASE("silu and sigmoid match the double formulas, scalar twin bit for bit", "[nn][elementwise]") {
  for (index_t n : kLengths)
    for (index_t rows : {0, 1, 3}) {
      CAPTURE(n, rows);
      auto x = random_rows(rows, n, std::uint64_t(n * 7 + rows));
      add_specials(x);
      tensor<float, 2> y(rows, n), ys(rows, n), z(rows, n), zs(rows, n);
      dsk::nn::silu(x, y);
      dsk::nn::silu<dsk::simd::scalar>(x, ys);
      dsk::nn::sigmoid(x, z);
      dsk::nn::sigmoid<dsk::simd::scalar>(x, zs);
      REQUIRE(same_bits(y, ys));
      REQUIRE(same_bits(z, zs));
      for (index_t r = 0; r < rows; ++r)
        for (index_t i = 0; i < n; ++i) {
          const double v = x(r, i);
          // silu(-inf) = -inf / inf: NaN in the formula; the library gives -inf / (1 + inf) = NaN too.
          check_close(y(r, i), std::isinf(v) && v < 0 ? std::nan("") : silu_ref(v));
          check_close(z(r, i), sigmoid_ref(v));
        }
      // In place gives the same bits.
      auto xi = x;
      dsk::nn::silu(dsk::as_const(xi.view()), xi.view());
      REQUIRE(same_bits(xi, y));
    }
}

TEST_CASE("swiglu: separate, halves and interleaved gate/up agree with silu(g) * u", "[nn][elementwise]") {
  for (index_t n : kLengths)
    for (index_t rows : {1, 4}) {
      CAPTURE(n, rows);
      auto g = random_rows(rows, n, 100 + std::uint64_t(n)), u = random_rows(rows, n, 200 + std::uint64_t(n));
      add_specials(g);
      tensor<float, 2> y(rows, n), ys(rows, n), yh(rows, n), yi(rows, n), yis(rows, n);
      tensor<float, 2> halves(rows, 2 * n), inter(rows, 2 * n);
      for (index_t r = 0; r < rows; ++r)
        for (index_t i = 0; i < n; ++i) {
          halves(r, i) = g(r, i), halves(r, n + i) = u(r, i);
          inter(r, 2 * i) = g(r, i), inter(r, 2 * i + 1) = u(r, i);
        }
      dsk::nn::swiglu(g, u, y);
      dsk::nn::swiglu<dsk::simd::scalar>(g, u, ys);
      dsk::nn::swiglu(halves, yh);
      dsk::nn::swiglu(inter, yi, dsk::nn::gate_up_layout::interleaved);
      dsk::nn::swiglu<dsk::simd::scalar>(inter, yis, dsk::nn::gate_up_layout::interleaved);
      REQUIRE(same_bits(y, ys));
      REQUIRE(same_bits(y, yh));
      REQUIRE(same_bits(y, yi));
      REQUIRE(same_bits(y, yis));
      for (index_t r = 0; r < rows; ++r)
        for (index_t i = 0; i < n; ++i) {
          const double gv = g(r, i), uv = u(r, i);
          check_close(y(r, i), std::isinf(gv) && gv < 0 ? std::nan("") : silu_ref(gv) * uv);
        }
    }
}

TEST_CASE("add, residual_add and scale are exact float operations", "[nn][elementwise]") {
  for (index_t n : kLengths)
    for (index_t rows : {0, 1, 3}) {
      CAPTURE(n, rows);
      auto a = random_rows(rows, n, 300 + std::uint64_t(n)), b = random_rows(rows, n, 400 + std::uint64_t(n));
      add_specials(a);
      tensor<float, 2> s(rows, n), ss(rows, n), m(rows, n), ms(rows, n);
      dsk::nn::add(a, b, s);
      dsk::nn::add<dsk::simd::scalar>(a, b, ss);
      dsk::nn::scale(a, -1.5f, m);
      dsk::nn::scale<dsk::simd::scalar>(a, -1.5f, ms);
      REQUIRE(same_bits(s, ss));
      REQUIRE(same_bits(m, ms));
      auto r1 = b, r2 = a;
      dsk::nn::residual_add(a, r1);  // b += a
      dsk::nn::scale(r2.view(), -1.5f);
      REQUIRE(same_bits(r1, s));
      REQUIRE(same_bits(r2, m));
      for (index_t r = 0; r < rows; ++r)
        for (index_t i = 0; i < n; ++i) {
          const float sum = a(r, i) + b(r, i), prod = -1.5f * a(r, i);  // IEEE single: the exact answer
          REQUIRE((std::memcmp(&sum, &s(r, i), 4) == 0 || (std::isnan(sum) && std::isnan(s(r, i)))));
          REQUIRE((std::memcmp(&prod, &m(r, i), 4) == 0 || (std::isnan(prod) && std::isnan(m(r, i)))));
        }
    }
}

TEST_CASE("elementwise ops accept strided rows and reject mismatched shapes", "[nn][elementwise][errors]") {
  // Rows 12 floats apart, 9 used.
  tensor<float, 2> big(3, 12), out(3, 12);
  for (index_t i = 0; i < 36; ++i) big.data()[i] = float(i) * 0.25f - 4.0f;
  const dsk::view<const float, 2> xs(big.data(), dsk::dims<2>(3, 9), {12, 1});
  const dsk::view<float, 2> ys(out.data(), dsk::dims<2>(3, 9), {12, 1});
  dsk::nn::silu(xs, ys);
  for (index_t r = 0; r < 3; ++r)
    for (index_t i = 0; i < 9; ++i) check_close(out(r, i), silu_ref(big(r, i)));

  tensor<float, 2> x(2, 5), y(2, 6), z(3, 5), odd(2, 7);
  REQUIRE_THROWS_WITH(dsk::nn::silu(x, y), Catch::Contains("nn::silu") && Catch::Contains("'y'"));
  REQUIRE_THROWS_WITH(dsk::nn::sigmoid(x, z), Catch::Contains("'y'"));
  REQUIRE_THROWS_WITH(dsk::nn::swiglu(x, z, x), Catch::Contains("nn::swiglu") && Catch::Contains("'up'"));
  REQUIRE_THROWS_WITH(dsk::nn::swiglu(odd, x), Catch::Contains("'gate_up'") && Catch::Contains("even"));
  REQUIRE_THROWS_WITH(dsk::nn::swiglu(y, z), Catch::Contains("'y'"));
  REQUIRE_THROWS_WITH(dsk::nn::add(x, x, y), Catch::Contains("nn::add") && Catch::Contains("'y'"));
  REQUIRE_THROWS_WITH(dsk::nn::add(x, z, x), Catch::Contains("'b'"));
  REQUIRE_THROWS_WITH(dsk::nn::residual_add(x, y), Catch::Contains("nn::residual_add"));
  REQUIRE_THROWS_WITH(dsk::nn::scale(x, 2.0f, z), Catch::Contains("nn::scale"));
  const dsk::view<const float, 2> cols(big.data(), dsk::dims<2>(3, 4), {1, 3});
  REQUIRE_THROWS_WITH(dsk::nn::silu(cols, ys), Catch::Contains("unit inner stride"));
}
