// Quantization-aware training deploys without surprise, at the kernel level: the float GEMV/GEMM
// (gemm::matmul) on fake-quantized weights gives quant::matmul's output on the quantized weights up to fp32
// summation order, for int8 and int4, per channel and groups, both divisions (dsk's and PyTorch's); and the
// straight-through backward through that GEMM equals a double-precision reference.
//
// Why: with the scales quantize<C> stores (absmax_scales<C>), fake_quantize<C> computes for each weight the
// very product that dequantize computes, f32(code * s) from the same code (the same rounding and division on
// the same f32 quotient) and the same f32 scale: the two weight matrices are equal bit for bit (checked
// first). Both products then approximate the same exact sum
//   t[m, n] = sum_k x[m, k] * code[n, k] * s[n, g(k)]
// only in different orders: the float GEMM sums fl(x * fl(code * s)) along its chains; quant::matmul sums x *
// code per group with fma and scales each group sum by s. In either, a term meets at most one rounding per
// operation on its path to the output: <= 2 for its products (code * s, x * w; an fma rounds once), <= K - 1
// additions, <= G group folds and one scale multiply, so h = K + G + 2 roundings (for any summation tree),
// and (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., 3.1 / 4.2)
//   |y - t| <= gamma_h * sum_k |x * code * s|,   gamma_h = h u / (1 - h u),  u = 2^-24,
// so the two outputs differ by at most 2 gamma_h * sum_k |x[m, k] * w_fq[n, k]|, the bound checked here. (The
// tighter chain-length bound of tests/quant/matmul.cpp depends on the kernels' blocking; this one does not.)
// A single code off by one would move an int4 output by |x| s, far above it for the shapes here; the test
// also shows that mixing the conventions (quantize with one division, fake-quantize with the other) changes
// weights.
#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/gemm/matmul.hpp"
#include "dsk/quant/fake_quant.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"
#include "dsk/quant/ref.hpp"
#include "support/compare.hpp"

using namespace dsk;
using namespace dsk::quant;

namespace {

double gamma(index_t h) {
  const double hu = static_cast<double>(h) * std::ldexp(1.0, -24);
  return hu / (1.0 - hu);
}

// Weights ~ U(-1, 1) rounded to bf16 (checkpoint-like), every 5th one moved onto a near tie of its channel's
// grid, w = (j + 0.5) * amax / divisor (the divisions disagree there most often).
tensor<float, 2> qat_weights(index_t N, index_t K, std::uint64_t seed, format f) {
  tensor<float, 2> w(N, K);
  const auto r = test::random_floats(static_cast<std::size_t>(N * K), seed, -1.0f, 1.0f);
  for (index_t i = 0; i < N * K; ++i) w.data()[i] = static_cast<float>(bf16(r[static_cast<std::size_t>(i)]));
  const index_t span = group_span(f, K);
  for (index_t i = 0; i < N; ++i)
    for (index_t g = 0; g * span < K; ++g) {
      const index_t k0 = g * span, k1 = std::min(K, k0 + span);
      float amax = 0;
      for (index_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(w(i, k)));
      const float s = amax / divisor(f);
      for (index_t k = k0 + 1; k < k1; k += 5) {
        const float j = static_cast<float>((k * 7) % (2 * qmax(f) - 1) - (qmax(f) - 1));
        w(i, k) = (j + 0.5f) * s;
      }
    }
  return w;
}

template <class S, quantize_config C>
void check_equivalence(index_t M, index_t N, index_t K) {
  constexpr format F = C.fmt;
  INFO("M " << M << " N " << N << " K " << K << " group " << F.group << " int" << code_bits(F) << " div "
            << int(C.div) << " layer " << S::name);
  const auto w = qat_weights(N, K, 31 + static_cast<std::uint64_t>(N * K), F);
  tensor<float, 2> x(M, K);
  const auto rx =
      test::random_floats(static_cast<std::size_t>(M * K), 41 + static_cast<std::uint64_t>(M), -2.0f, 2.0f);
  std::copy(rx.begin(), rx.end(), x.data());
  const index_t G = groups_per_row(F, K);

  // Deployment: quantized weights, quant::matmul.
  const auto q = quantize<C, S>(w.cview());
  tensor<float, 2> y_q(M, N);
  quant::matmul<S>(x.cview(), q, y_q.view());
  // Training: the same scales, fake-quantized float weights, the float GEMM.
  tensor<float, 2> s(N, G), w_fq(N, K), y_fq(M, N);
  absmax_scales<C, S>(w.cview(), s.view());
  fake_quantize<C, S>(w.cview(), s.cview(), w_fq.view());
  gemm::matmul<gemm::matmul_config{}, S>(x.cview(), w_fq.cview(), y_fq.view());

  // The weights are the same bits.
  tensor<float, 2> w_dq(N, K);
  dequantize<S>(q, w_dq.view());
  REQUIRE(std::memcmp(w_dq.data(), w_fq.data(), sizeof(float) * static_cast<std::size_t>(N * K)) == 0);
  for (index_t i = 0; i < N; ++i)
    for (index_t g = 0; g < G; ++g) REQUIRE(s(i, g) == q.scale(i, g));

  const double bound = 2.0 * gamma(K + G + 2);
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      double abs_sum = 0;
      for (index_t k = 0; k < K; ++k) abs_sum += std::fabs(static_cast<double>(x(m, k)) * w_fq(n, k));
      INFO("m " << m << " n " << n);
      REQUIRE(std::fabs(static_cast<double>(y_q(m, n)) - y_fq(m, n)) <= bound * abs_sum);
    }
}

template <quantize_config C>
void check_grid() {
  for (index_t M : {1, 3, 9, 17})  // GEMV (M <= 8) and the blocked GEMM of both products
    for (index_t N : {1, 5, 67})
      for (index_t K : {1, 33, 64, 200, 256}) {
        if (N == 67 && M == 3) continue;
        check_equivalence<simd::native, C>(M, N, K);
        if (M <= 3) check_equivalence<simd::scalar, C>(M, N, K);
      }
}

constexpr format i8_g128{qtype::int8, 128, scale_type::f32};
constexpr format i4_g32_f16{qtype::int4, 32, scale_type::f16};
constexpr format i4_full8_g64_bf16{qtype::int4, 64, scale_type::bf16, int4_range::full8};

}  // namespace

TEST_CASE("QAT: float GEMM on fake-quantized weights == quant::matmul up to fp32 order: int8",
          "[quant][qat]") {
  check_grid<quantize_config{int8_per_channel}>();
  check_grid<torch_compatible(int8_per_channel)>();
  check_grid<quantize_config{i8_g128}>();
  check_grid<torch_compatible(i8_g128)>();
}

TEST_CASE("QAT: float GEMM on fake-quantized weights == quant::matmul up to fp32 order: int4",
          "[quant][qat]") {
  check_grid<quantize_config{int4_per_channel}>();
  check_grid<torch_compatible(int4_per_channel)>();
  check_grid<quantize_config{i4_g32_f16}>();
  check_grid<torch_compatible(i4_g32_f16)>();
  check_grid<quantize_config{i4_full8_g64_bf16, rounding::half_away}>();
  check_grid<torch_compatible(i4_full8_g64_bf16, range_method::mse)>();
}

TEST_CASE("QAT: the two divisions give different weights on near ties (the equivalence needs one convention)",
          "[quant][qat]") {
  const index_t N = 64, K = 256;
  const auto w = qat_weights(N, K, 5, int4_per_channel);
  constexpr quantize_config torch = torch_compatible(int4_per_channel);
  tensor<float, 2> s(N, 1), a(N, K), b(N, K);
  absmax_scales<torch>(w.cview(), s.view());
  fake_quantize<torch>(w.cview(), s.cview(), a.view());
  fake_quantize<int4_per_channel>(w.cview(), s.cview(), b.view());
  index_t differ = 0;
  for (index_t i = 0; i < N * K; ++i) differ += a.data()[i] != b.data()[i];
  INFO(differ << " of " << N * K);
  CHECK(differ > 0);
  CHECK(differ < N * K / 20);
}

TEST_CASE("QAT: the straight-through gradient through the float GEMM equals a double reference",
          "[quant][qat]") {
  // y = x w_fq^T, L = sum g * y: dL/dw_fq = g^T x (a GEMM), dL/dw = fake_quantize_backward(w, s, dL/dw_fq):
  // passed where the code is inside [qmin, qmax], 0 where clipped. Scales at 0.7 x abs-max clip the tails.
  constexpr quantize_config C = torch_compatible(format{qtype::int4, 32, scale_type::f32, int4_range::full8});
  const index_t M = 6, N = 9, K = 70;
  const auto w = qat_weights(N, K, 77, C.fmt);
  tensor<float, 2> x(M, K), g(M, N), s(N, groups_per_row(C.fmt, K));
  const auto rx = test::random_floats(static_cast<std::size_t>(M * K), 78, -1.0f, 1.0f);
  const auto rg = test::random_floats(static_cast<std::size_t>(M * N), 79, -1.0f, 1.0f);
  std::copy(rx.begin(), rx.end(), x.data());
  std::copy(rg.begin(), rg.end(), g.data());
  absmax_scales<C>(w.cview(), s.view());
  for (index_t i = 0; i < s.size(); ++i) s.data()[i] *= 0.7f;
  // dL/dw_fq[n, k] = sum_m g[m, n] x[m, k]: the float GEMM on g^T [N, M] and x^T [K, M].
  tensor<float, 2> gt(N, M), xt(K, M), dwfq(N, K), dw(N, K);
  for (index_t m = 0; m < M; ++m) {
    for (index_t n = 0; n < N; ++n) gt(n, m) = g(m, n);
    for (index_t k = 0; k < K; ++k) xt(k, m) = x(m, k);
  }
  gemm::matmul(gt.cview(), xt.cview(), dwfq.view());
  fake_quantize_backward<C>(w.cview(), s.cview(), dwfq.cview(), dw.view());
  const index_t span = group_span(C.fmt, K);
  index_t clipped = 0;
  for (index_t n = 0; n < N; ++n)
    for (index_t k = 0; k < K; ++k) {
      double want = 0;
      for (index_t m = 0; m < M; ++m) want += static_cast<double>(g(m, n)) * x(m, k);
      double abs_sum = 0;
      for (index_t m = 0; m < M; ++m) abs_sum += std::fabs(static_cast<double>(g(m, n)) * x(m, k));
      const float mask = ref::fake_quant_mask(w(n, k), s(n, k / span), C.fmt, C.round, C.div);
      clipped += mask == 0.0f;
      INFO("n " << n << " k " << k);
      REQUIRE(std::fabs(dw(n, k) - mask * want) <= gamma(M + 1) * abs_sum);
      if (mask == 0.0f) REQUIRE(dw(n, k) == 0.0f);
    }
  CHECK(clipped > 0);
  CHECK(clipped < N * K / 2);
}
