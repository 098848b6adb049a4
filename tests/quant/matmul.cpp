// quant/matmul.hpp against quant/ref.hpp: weight-only products against the double-precision product with the
// dequantized weights, W8A8/W4A8 against the double-precision sum of exact integer dot products, over int8
// and int4 (both ranges), per-channel and grouped scales, f32/f16/bf16 scales, and shapes with M, N, K of 1,
// not a multiple of the tile/vector/group width, and N crossing the 64-row parallel block. The scalar and
// native packet layers must agree bit for bit.
#include "dsk/quant/matmul.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// matmul_a8's canonical order (quant/matmul.hpp), evaluated on quant/ref.hpp's codes and scales: per chunk (a
// group, or with per-channel scales a run of 2^16 columns) the exact integer dot product, converted to float
// and folded with one fma per chunk, then scaled by the token's scale. Every path and packet layer must give
// these bits.
constexpr index_t a8_chunk = index_t{1} << 16;
std::vector<float> canonical_a8(const ref::tokens& t, const ref::quantized& q, format f) {
  const index_t K = q.cols, span = f.group != 0 ? f.group : std::min(K, a8_chunk);
  const index_t chunks = K == 0 ? 0 : (K + span - 1) / span;
  std::vector<float> y(static_cast<std::size_t>(t.rows * q.rows));
  for (index_t m = 0; m < t.rows; ++m)
    for (index_t n = 0; n < q.rows; ++n) {
      float acc = 0.0f;
      for (index_t c = 0; c < chunks; ++c) {
        std::int64_t dot = 0;
        for (index_t k = c * span; k < std::min(K, (c + 1) * span); ++k)
          dot += std::int64_t{t.codes[static_cast<std::size_t>(m * K + k)]} * q.code(n, k);
        REQUIRE(std::abs(dot) < (std::int64_t{1} << 31));
        acc = std::fma(static_cast<float>(dot), q.scale(n, f.group != 0 ? c : 0), acc);
      }
      y[static_cast<std::size_t>(m * q.rows + n)] = t.scales[static_cast<std::size_t>(m)] * acc;
    }
  return y;
}

// Weights in [-1, 1] with, per row, the extremes of the code range: row 3i + 1 has its abs-max negative
// (code -8 under full8, -127 for int8), row 3i + 2 all weights equal to the row's amax (every code qmax).
tensor<float, 2> extreme_weights(index_t N, index_t K, std::uint64_t seed) {
  tensor<float, 2> w(N, K);
  const auto r = test::random_floats(static_cast<std::size_t>(N * K), seed, -1.0f, 1.0f);
  std::copy(r.begin(), r.end(), w.data());
  for (index_t n = 0; n < N; ++n)
    for (index_t k = 0; k < K; ++k) {
      if (n % 3 == 1 && k % 5 == 0) w(n, k) = -1.5f;
      if (n % 3 == 2) w(n, k) = (k % 7 == 3) ? -0.75f : 0.75f;
    }
  return w;
}

template <class S, format F>
std::vector<float> run_a8_on(const tensor<float, 2>& x, const quantized_weight<F>& q) {
  tensor<float, 2> ybuf(x.extent(0), q.rows() + 2);  // a padded row stride
  const view<float, 2> y = ybuf.view().slice(1, 0, q.rows());
  quant::matmul_a8<S>(x.cview(), q.view(), y);
  std::vector<float> out;
  for (index_t m = 0; m < x.extent(0); ++m)
    for (index_t n = 0; n < q.rows(); ++n) out.push_back(y(m, n));
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <format F>
void check_canonical(index_t M, index_t N, index_t K) {
  INFO("M " << M << " N " << N << " K " << K);
  const tensor<float, 2> w = extreme_weights(N, K, 31 + K + N);
  tensor<float, 2> x(M, K);
  const auto rx = test::random_floats(static_cast<std::size_t>(M * K), 32 + M, -2.0f, 2.0f);
  std::copy(rx.begin(), rx.end(), x.data());
  for (index_t k = 0; M > 2 && k < K; ++k) x(2, k) = (k % 3 == 0) ? -1.0f : 1.0f;  // codes +-127 only
  if (M > 1)
    for (index_t k = 0; k < K; ++k) x(1, k) = 0.0f;  // an all-zero token
  const auto q = quantize<quantize_config{F}>(w.cview());
  const auto want =
      canonical_a8(ref::quantize_tokens(x.cview()), ref::quantize(w.cview(), quantize_config{F}), F);
  const auto got_s = run_a8_on<simd::scalar>(x, q), got_n = run_a8_on<simd::native>(x, q);
  REQUIRE(same_bits(got_s, want));
  REQUIRE(same_bits(got_n, want));
}

template <format F>
void check_canonical_grid() {
  // M < 16: the decode path (1 x 8, 2 x 4 and 1 x 1 tiles); 16 and 18: the int16 panel path (4 x 2, 4 x 1,
  // 1 x 4, 1 x 1 tiles). K: below, at and past the 32/64-column steps and the groups; N: 8-row tiles with
  // remainders, and the 64-row parallel block crossed.
  for (index_t M : {1, 2, 3, 5, 15, 16, 18})
    for (index_t N : {1, 3, 8, 13, 67})
      for (index_t K : {1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200, 257}) {
        if (N == 67 && K > 65 && M != 1 && M != 16) continue;
        if (M >= 15 && N == 13 && K > 64) continue;
        check_canonical<F>(M, N, K);
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

TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int4 sym7 per channel",
          "[quant][matmul]") {
  check_canonical_grid<int4_per_channel>();
}
TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int4 full8 groups of 32, f16",
          "[quant][matmul]") {
  check_canonical_grid<format{qtype::int4, 32, scale_type::f16, int4_range::full8}>();
}
TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int4 full8 groups of 64",
          "[quant][matmul]") {
  check_canonical_grid<format{qtype::int4, 64, scale_type::f32, int4_range::full8}>();
}
TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int4 groups of 128, f16",
          "[quant][matmul]") {
  check_canonical_grid<int4_g128_f16>();
}
TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int8 per channel", "[quant][matmul]") {
  check_canonical_grid<int8_per_channel>();
}
TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int8 groups of 32, bf16",
          "[quant][matmul]") {
  check_canonical_grid<format{qtype::int8, 32, scale_type::bf16}>();
}
TEST_CASE("matmul_a8 gives the canonical order's bits on every path: int8 groups of 128", "[quant][matmul]") {
  check_canonical_grid<format{qtype::int8, 128, scale_type::f32}>();
}

TEST_CASE("matmul_a8 per channel: int32 chunks of 2^16 columns keep long rows exact", "[quant][matmul]") {
  // Every code +-127 over 140000 columns: one int32 sum of the row would reach 140000 * 127^2 > 2^31.
  const index_t K = 140000;
  tensor<float, 2> w(3, K), x(2, K);
  for (index_t k = 0; k < K; ++k) {
    w(0, k) = 1.0f, w(1, k) = (k % 2) ? -1.0f : 1.0f, w(2, k) = (k % 3) ? 0.5f : -1.0f;
    x(0, k) = 2.0f, x(1, k) = (k % 5) ? -2.0f : 2.0f;
  }
  const auto q8 = quantize<quantize_config{int8_per_channel}>(w.cview());
  const auto want8 =
      canonical_a8(ref::quantize_tokens(x.cview()),
                   ref::quantize(w.cview(), quantize_config{int8_per_channel}), int8_per_channel);
  REQUIRE(same_bits(run_a8_on<simd::scalar>(x, q8), want8));
  REQUIRE(same_bits(run_a8_on<simd::native>(x, q8), want8));
  REQUIRE(std::fabs(want8[0] - 2.0 * K) <= 1e-5 * 2.0 * K);  // sx * 127 * (127 * 1/127) per column
  const auto q4 = quantize<quantize_config{int4_per_channel}>(w.cview());
  const auto want4 =
      canonical_a8(ref::quantize_tokens(x.cview()),
                   ref::quantize(w.cview(), quantize_config{int4_per_channel}), int4_per_channel);
  REQUIRE(same_bits(run_a8_on<simd::scalar>(x, q4), want4));
  REQUIRE(same_bits(run_a8_on<simd::native>(x, q4), want4));
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
