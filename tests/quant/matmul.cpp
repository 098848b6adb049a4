// quant/matmul.hpp against quant/ref.hpp: weight-only products against the double-precision product with the
// dequantized weights, W8A8/W4A8 against the double-precision sum of exact integer dot products, over int8
// and int4 (both ranges), per-channel and grouped scales, f32/f16/bf16 scales, and shapes with M, N, K of 1,
// not a multiple of the tile/vector/group width, and N crossing the 64-row parallel block. The scalar and
// native packet layers must agree bit for bit.
#include "dsk/quant/matmul.hpp"

#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/quant/ref.hpp"
#include "support/compare.hpp"

using namespace dsk;
using namespace dsk::quant;

namespace {

// Both products sum K terms in fp32 along chains of at most K/8 + 2 operations per lane, then fold groups
// (one fma per group), reduce 8 lanes (3 adds) and add a tail and the scale product: a worst-case relative
// rounding bound of (K/8 + G + 24) * 2^-24 of sum |x * w| (Higham, Accuracy and Stability, 3.1; the +24 also
// covers the ref's rounding of code * scale to float).
double fp32_bound(index_t K, index_t G, double abs_sum) {
  return (static_cast<double>(K) / 8.0 + static_cast<double>(G) + 24.0) * std::ldexp(1.0, -24) * abs_sum;
}

template <class S, format F>
void check_weight_only(index_t M, index_t N, index_t K) {
  INFO("M " << M << " N " << N << " K " << K << " layer " << S::name);
  tensor<float, 2> w(N, K), x(M, K);
  const auto rw = test::random_floats(static_cast<std::size_t>(N * K), 11 + K, -1.0f, 1.0f);
  const auto rx = test::random_floats(static_cast<std::size_t>(M * K), 12 + M, -2.0f, 2.0f);
  std::copy(rw.begin(), rw.end(), w.data());
  std::copy(rx.begin(), rx.end(), x.data());
  const auto q = quantize<quantize_config{F}>(w.cview());
  const auto rq = ref::quantize(w.cview(), quantize_config{F});
  const auto wd = ref::dequantize(rq, F);
  const auto want = ref::matmul(x.cview(), wd, N);
  // y with a padded row stride, to exercise strided outputs.
  tensor<float, 2> ybuf(M, N + 3);
  const view<float, 2> y = ybuf.view().slice(1, 0, N);
  quant::matmul<S>(x.cview(), q.view(), y);
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      double abs_sum = 0;
      for (index_t k = 0; k < K; ++k) abs_sum += std::fabs(x(m, k) * wd[static_cast<std::size_t>(n * K + k)]);
      INFO("m " << m << " n " << n);
      REQUIRE(std::fabs(y(m, n) - want[static_cast<std::size_t>(m * N + n)]) <=
              fp32_bound(K, groups_per_row(F, K), abs_sum));
    }
}

template <class S, format F>
void check_a8(index_t M, index_t N, index_t K) {
  INFO("M " << M << " N " << N << " K " << K << " layer " << S::name);
  tensor<float, 2> w(N, K), x(M, K);
  const auto rw = test::random_floats(static_cast<std::size_t>(N * K), 21 + K, -1.0f, 1.0f);
  const auto rx = test::random_floats(static_cast<std::size_t>(M * K), 22 + M, -2.0f, 2.0f);
  std::copy(rw.begin(), rw.end(), w.data());
  std::copy(rx.begin(), rx.end(), x.data());
  if (M > 1)
    for (index_t k = 0; k < K; ++k) x(1, k) = 0.0f;  // an all-zero token: scale 0, output 0
  const auto q = quantize<quantize_config{F}>(w.cview());
  const auto rq = ref::quantize(w.cview(), quantize_config{F});
  const auto rt = ref::quantize_tokens(x.cview());
  const auto want = ref::matmul_a8(rt, rq, F);
  tensor<float, 2> y(M, N);
  quant::matmul_a8<S>(x.cview(), q.view(), y.view());
  const index_t span = group_span(F, K);
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      // Integer dots are exact; only the per-group fp32 scaling and the lane reduction round.
      double abs_sum = 0;
      for (index_t k = 0; k < K; ++k)
        abs_sum += std::fabs(double(rt.codes[static_cast<std::size_t>(m * K + k)]) * rq.code(n, k) *
                             rq.scale(n, k / span) * rt.scales[static_cast<std::size_t>(m)]);
      INFO("m " << m << " n " << n);
      REQUIRE(std::fabs(y(m, n) - want[static_cast<std::size_t>(m * N + n)]) <=
              (static_cast<double>(groups_per_row(F, K)) + 24.0) * std::ldexp(1.0, -24) * abs_sum);
    }
  // Over enough outputs, the quantized-activation product stays close to the exact product: int8 activations
  // add a relative error of ~0.4% per element, an NMSE of ~1e-5 (one output alone can cancel to near zero).
  if (M * N >= 20 && K >= 32) {
    const auto exact = ref::matmul(x.cview(), ref::dequantize(rq, F), N);
    REQUIRE(test::nmse(std::span<const double>(exact),
                       std::span<const float>(y.data(), static_cast<std::size_t>(M * N))) < 1e-3);
  }
}

template <class S>
std::vector<float> run_a8(const quantized_weight<int4_g128_f16>& q, const tensor<float, 2>& x) {
  tensor<float, 2> y(x.extent(0), q.rows());
  quant::matmul_a8<S>(x.cview(), q.view(), y.view());
  return {y.data(), y.data() + y.size()};
}

template <format F>
void check_grid() {
  // M = 18 takes the int16 weight-panel path of matmul_a8 (M >= 16), with a 2-token remainder.
  for (index_t M : {1, 2, 4, 5, 9, 18})
    for (index_t N : {1, 5, 67})
      for (index_t K : {1, 15, 16, 33, 64, 100, 257}) {
        if (N == 67 && M > 5 && M != 18) continue;  // the 64-row block crossing needs no more tokens
        if (M == 18 && N == 1) continue;
        check_weight_only<simd::scalar, F>(M, N, K);
        check_weight_only<simd::native, F>(M, N, K);
        check_a8<simd::scalar, F>(M, N, K);
        check_a8<simd::native, F>(M, N, K);
      }
}

}  // namespace

TEST_CASE("quantized matmul against the reference: int8 per channel", "[quant][matmul]") {
  check_grid<int8_per_channel>();
}
TEST_CASE("quantized matmul against the reference: int8 groups of 32, bf16 scales", "[quant][matmul]") {
  check_grid<format{qtype::int8, 32, scale_type::bf16}>();
}
TEST_CASE("quantized matmul against the reference: int4 per channel", "[quant][matmul]") {
  check_grid<int4_per_channel>();
}
TEST_CASE("quantized matmul against the reference: int4 full8 groups of 64, f16 scales", "[quant][matmul]") {
  check_grid<format{qtype::int4, 64, scale_type::f16, int4_range::full8}>();
}

TEST_CASE("quantized matmul: scalar and native packet layers agree bit for bit", "[quant][matmul]") {
  tensor<float, 2> w(70, 300), x(6, 300);
  const auto rw = test::random_floats(70 * 300, 1), rx = test::random_floats(6 * 300, 2);
  std::copy(rw.begin(), rw.end(), w.data());
  std::copy(rx.begin(), rx.end(), x.data());
  const auto q = quantize<quantize_config{int4_g128_f16}>(w.cview());
  REQUIRE(run_a8<simd::scalar>(q, x) == run_a8<simd::native>(q, x));
  tensor<float, 2> y0(6, 70), y1(6, 70);
  quant::matmul<simd::scalar>(x.cview(), q.view(), y0.view());
  quant::matmul<simd::native>(x.cview(), q.view(), y1.view());
  for (index_t i = 0; i < y0.size(); ++i) REQUIRE(y0.data()[i] == y1.data()[i]);
}

TEST_CASE("quantized matmul: empty shapes and argument contracts", "[quant][matmul]") {
  const auto q = quantize<quantize_config{int8_per_channel}>(tensor<float, 2>(4, 8).cview());
  tensor<float, 2> x(0, 8), y(0, 4);
  matmul(x.cview(), q, y.view());
  matmul_a8(x.cview(), q, y.view());
  tensor<float, 2> x2(2, 8), y2(2, 4), bad(2, 5), xk(2, 7);
  y2.fill(5.0f);
  matmul(x2.cview(), q, y2.view());
  REQUIRE(y2(1, 3) == 0.0f);
  REQUIRE_THROWS_WITH(matmul(x2.cview(), q, bad.view()),
                      Catch::Contains("'y'") && Catch::Contains("extent(1) must be 4"));
  REQUIRE_THROWS_WITH(matmul_a8(xk.cview(), q, y2.view()), Catch::Contains("'x'") && Catch::Contains("(K)"));
  x2(1, 2) = NAN;
  REQUIRE_THROWS_WITH(matmul_a8(x2.cview(), q, y2.view()), Catch::Contains("token 1"));
  // K = 0: every output is 0.
  const auto q0 = quantize<quantize_config{int4_per_channel}>(tensor<float, 2>(3, 0).cview());
  tensor<float, 2> x0(2, 0), y0(2, 3);
  y0.fill(1.0f);
  matmul(x0.cview(), q0, y0.view());
  REQUIRE(y0(1, 2) == 0.0f);
}

TEST_CASE("matmul names the format or deduces it, on every execution tag", "[quant][matmul]") {
  tensor<float, 2> w(9, 70), x(3, 70);
  const auto rw = test::random_floats(9 * 70, 5, -1.0f, 1.0f),
             rx = test::random_floats(3 * 70, 6, -1.0f, 1.0f);
  std::copy(rw.begin(), rw.end(), w.data());
  std::copy(rx.begin(), rx.end(), x.data());
  const auto q = quantize<int4_per_channel>(w.cview());
  tensor<float, 2> y0(3, 9), y1(3, 9), y2(3, 9), y3(3, 9), y4(3, 9);
  quant::matmul(x.cview(), q, y0.view());
  quant::matmul<int4_per_channel, simd::scalar>(x.cview(), q, y1.view());
  quant::matmul<simd::scalar>(x.cview(), q, y2.view());
  quant::matmul_a8(x.cview(), q, y3.view());
  quant::matmul_a8<int4_per_channel, simd::scalar>(x.cview(), q.view(), y4.view());
  for (index_t i = 0; i < y0.size(); ++i) {
    REQUIRE(y1.data()[i] == y0.data()[i]);
    REQUIRE(y2.data()[i] == y0.data()[i]);
    REQUIRE(y4.data()[i] == y3.data()[i]);
  }
}

TEST_CASE("quantized matmul rejects outputs that overlap x or the weights", "[quant][matmul][errors]") {
  // y == x (K == N): the kernels read every row of x for every output, so in place is silently wrong.
  tensor<float, 2> w(8, 8), x(3, 8);
  for (index_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>(i % 7) - 3.0f;
  const auto q = quantize<quantize_config{int8_per_channel}>(w.cview());
  REQUIRE_THROWS_WITH(matmul(x.cview(), q, x.view()), Catch::Contains("quant::matmul: argument 'y'") &&
                                                          Catch::Contains("does not overlap x"));
  REQUIRE_THROWS_WITH(matmul_a8(x.cview(), q, x.view()), Catch::Contains("quant::matmul_a8: argument 'y'") &&
                                                             Catch::Contains("does not overlap x"));
  // y over the codes or the scales of w (a weight view into the output buffer).
  tensor<float, 2> y(3, 8);
  qweight_view<int8_per_channel> on_y = q.view();
  on_y.codes = reinterpret_cast<const std::int8_t*>(y.data());
  REQUIRE_THROWS_WITH(matmul(x.cview(), on_y, y.view()), Catch::Contains("does not overlap w.codes"));
  on_y = q.view();
  on_y.scales = y.data() + 4;
  REQUIRE_THROWS_WITH(matmul_a8(x.cview(), on_y, y.view()), Catch::Contains("does not overlap w.scales"));
  // Separate buffers are fine (and an in-range but disjoint neighbour row of one buffer too).
  tensor<float, 2> xy(6, 8);
  CHECK_NOTHROW(matmul(dsk::as_const(xy.view().slice(0, 0, 3)), q, xy.view().slice(0, 3, 6)));
}
