// nn::first_nonfinite / all_finite against std::isfinite on every element: f32, bf16 and f16; lengths around
// the packet width, the block (1024) and the per-thread chunk; one NaN / +inf / -inf at each interesting
// position, several (the first wins), large finite values, subnormals and -0 (finite); the scalar packet
// layer and 1 vs 2 threads give the same answer; matrices with strided rows; a non-unit stride is refused.
#include "dsk/nn/finite.hpp"

#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"

namespace {
using dsk::index_t;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <class T>
index_t brute_first(const std::vector<T>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(static_cast<float>(v[i]))) return static_cast<index_t>(i);
  return -1;
}
template <class T>
dsk::view<const T, 1> as_view(const std::vector<T>& v) {
  return dsk::view<const T, 1>(v.data(), dsk::dims<1>(static_cast<index_t>(v.size())), {1});
}
// Finite values that must not be taken for non-finite ones: the largest of the type, subnormals, -0.
template <class T>
std::vector<T> finite_values(index_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  const float big = std::is_same_v<T, float>      ? std::numeric_limits<float>::max()
                    : std::is_same_v<T, dsk::f16> ? 65504.0f
                                                  : 3.3895314e38f;  // largest finite bf16
  const float specials[] = {big, -big, 0.0f, -0.0f, 1e-40f, -1e-40f, 1.0f, -3.5f};
  for (index_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = T(specials[i % 8] * 1.0f);
  return v;
}
template <class T>
void check_all(const std::vector<T>& v) {
  const index_t want = brute_first(v);
  CAPTURE(v.size(), want);
  REQUIRE(dsk::nn::first_nonfinite(as_view(v)) == want);
  REQUIRE(dsk::nn::first_nonfinite<dsk::simd::scalar>(as_view(v)) == want);
  REQUIRE(dsk::nn::all_finite(as_view(v)) == (want < 0));
  {
    const dsk::thread_count_scope one(1);
    REQUIRE(dsk::nn::first_nonfinite(as_view(v)) == want);
  }
  {
    const dsk::thread_count_scope two(2);
    REQUIRE(dsk::nn::first_nonfinite(as_view(v)) == want);
  }
}
}  // namespace

TEMPLATE_TEST_CASE("first_nonfinite finds the first NaN or infinity", "[nn][finite]", float, dsk::bf16,
                   dsk::f16) {
  using T = TestType;
  for (index_t n : {0, 1, 7, 8, 9, 17, 1023, 1024, 1025, 3000, 65536 + 5, 200000}) {
    auto v = finite_values<T>(n);
    check_all(v);  // all finite
    std::vector<index_t> positions = {0, n / 2, n - 1, 1023, 1024, 65536, 65536 * 2 + 3};
    for (index_t pos : positions) {
      if (pos < 0 || pos >= n) continue;
      for (float bad : {kNaN, kInf, -kInf}) {
        auto w = v;
        w[static_cast<std::size_t>(pos)] = T(bad);
        CAPTURE(pos, bad);
        check_all(w);
        REQUIRE(dsk::nn::first_nonfinite(as_view(w)) == pos);
      }
    }
    if (n >= 4) {  // several: the first one wins, whichever thread's part it lies in
      auto w = v;
      w[static_cast<std::size_t>(n - 1)] = T(kNaN);
      w[static_cast<std::size_t>(n / 3)] = T(kInf);
      w[static_cast<std::size_t>(n / 3 + 1)] = T(kNaN);
      check_all(w);
      REQUIRE(dsk::nn::first_nonfinite(as_view(w)) == n / 3);
    }
  }
}

TEST_CASE("first_nonfinite of bf16 / f16 bit patterns: exponent all ones is non-finite", "[nn][finite]") {
  // bf16: 0x7f80 +inf, 0xff80 -inf, 0x7fc0 / 0x7f81 NaN (quiet / signalling), 0x7f7f largest finite.
  std::vector<dsk::bf16> b = {dsk::bf16::from_bits(0x7f7f), dsk::bf16::from_bits(0xff7f),
                              dsk::bf16::from_bits(0x0001), dsk::bf16::from_bits(0x7f81)};
  REQUIRE(dsk::nn::first_nonfinite(as_view(b)) == 3);
  b[3] = dsk::bf16::from_bits(0x3f80);
  REQUIRE(dsk::nn::all_finite(as_view(b)));
  // f16: 0x7c00 +inf, 0xfc00 -inf, 0x7e00 / 0x7c01 NaN, 0x7bff largest finite (65504).
  std::vector<dsk::f16> h = {dsk::f16::from_bits(0x7bff), dsk::f16::from_bits(0xfbff),
                             dsk::f16::from_bits(0x0001), dsk::f16::from_bits(0xfc00),
                             dsk::f16::from_bits(0x7c01)};
  REQUIRE(dsk::nn::first_nonfinite(as_view(h)) == 3);
  REQUIRE(dsk::nn::first_nonfinite<dsk::simd::scalar>(as_view(h)) == 3);
  h[3] = dsk::f16::from_bits(0x3c00);
  REQUIRE(dsk::nn::first_nonfinite(as_view(h)) == 4);
}

TEST_CASE("first_nonfinite of a matrix with strided rows gives (row, column)", "[nn][finite]") {
  const index_t rows = 4, n = 37, ld = 40;
  std::vector<float> buf(static_cast<std::size_t>(rows * ld), 1.0f);
  // Padding between the rows is not part of the matrix: a NaN there is not reported.
  for (index_t r = 0; r < rows; ++r) buf[static_cast<std::size_t>(r * ld + n)] = kNaN;
  const dsk::view<const float, 2> x(buf.data(), dsk::dims<2>(rows, n), {ld, 1});
  REQUIRE(dsk::nn::first_nonfinite(x) == std::array<index_t, 2>{-1, -1});
  REQUIRE(dsk::nn::all_finite(x));
  buf[static_cast<std::size_t>(2 * ld + 36)] = -kInf;
  buf[static_cast<std::size_t>(3 * ld + 0)] = kNaN;
  REQUIRE(dsk::nn::first_nonfinite(x) == std::array<index_t, 2>{2, 36});
  REQUIRE(dsk::nn::first_nonfinite<dsk::simd::scalar>(x) == std::array<index_t, 2>{2, 36});
  REQUIRE_FALSE(dsk::nn::all_finite(x));
  const dsk::view<const float, 2> empty(buf.data(), dsk::dims<2>(0, n), {ld, 1});
  REQUIRE(dsk::nn::first_nonfinite(empty) == std::array<index_t, 2>{-1, -1});
}

TEST_CASE("first_nonfinite refuses a non-unit inner stride", "[nn][finite][errors]") {
  std::vector<float> buf(8, 1.0f);
  const dsk::view<const float, 1> x(buf.data(), dsk::dims<1>(4), {2});
  REQUIRE_THROWS_WITH(dsk::nn::first_nonfinite(x), Catch::Contains("'x'") && Catch::Contains("stride"));
  const dsk::view<const float, 2> m(buf.data(), dsk::dims<2>(2, 2), {4, 2});
  REQUIRE_THROWS_WITH(dsk::nn::all_finite(m), Catch::Contains("'x'") && Catch::Contains("stride"));
}
