// Quantized GEMV/GEMM y[M, N] = x[M, K] * W[N, K]^T with int8/int4 weights: weight-only (f32 activations,
// codes dequantized in registers, fp32 accumulation) and W8A8/W4A8 (activations quantized per token to int8
// on the fly, exact integer dot products per group, rescaled per channel x per token). Host (scalar + AVX2,
// quant/host/matmul_avx2.hpp); checked against quant/ref.hpp in tests/quant/matmul.cpp.
#pragma once

#include <type_traits>

#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/view.hpp"
#include "dsk/quant/format.hpp"
#include "dsk/quant/host/matmul_avx2.hpp"
#include "dsk/quant/quantize.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::quant {

namespace detail {
DSK_ISA_BEGIN
template <format F>
void check_matmul(const contract& c, view<const float, 2> x, const qweight_view<F>& w, view<float, 2> y) {
  static_assert(check_format<F>::value);
  c.extent("x", x, 1, w.cols, "w.cols (K)")
      .unit_inner_stride("x", x)
      .extent("y", y, 0, x.extent(0), "x.extent(0) (M)")
      .extent("y", y, 1, w.rows, "w.rows (N)")
      .unit_inner_stride("y", y)
      .require(w.rows == 0 || w.cols == 0 || (w.codes && w.scales), "w", "non-null codes and scales");
  // Every output reads a whole row of x and all of w: no in-place form.
  c.disjoint("y", y, "x", x);
  contracts::check_weight_alias(c, "y", y, "w", w);
}

template <class S, format F>
void matmul_with(view<const float, 2> x, const qweight_view<F>& w, view<float, 2> y) {
  check_matmul(contract{"quant::matmul"}, x, w, y);
  matmul_wo<S>(x, w, y);
}

template <class S, format F>
void matmul_a8_with(view<const float, 2> x, const qweight_view<F>& w, view<float, 2> y) {
  const contract c{"quant::matmul_a8"};
  check_matmul(c, x, w, y);
  // The documented range (the int32 sums are per group, or per 2^16 columns, so they stay exact beyond it).
  c.require(w.cols <= (index_t{1} << 20), "w", "at most 2^20 columns (int32 accumulators)", w.cols);
  matmul_a8<S>(x, w, y, "quant::matmul_a8");
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN
// matmul<Exec = dsk::host>(x, w, y) deduces the format from w (a quantized_operand); matmul<F, Exec>(x, w, y)
// names it. Exec: dsk::host or a packet layer (dsk::simd::scalar, ...), all giving the same bits.
// Weight-only product: y[m, n] = sum_g scale[n, g] * sum_{k in g} x[m, k] * code[n, k].
// x [M, K] f32, w [N, K] quantized, y [M, N] f32; unit inner strides, any row strides; y must not overlap x
// or w's codes and scales (checked). M = 1 is the decode GEMV.
template <host_exec Exec = host, class W>
void matmul(view<const float, 2> x, const W& w, view<float, 2> y) {
  if constexpr (detail::check_qweight<W>())
    detail::matmul_with<exec_packet_t<Exec>>(x, detail::as_qview(w), y);
}
template <format F, host_exec Exec = host>
void matmul(view<const float, 2> x, std::type_identity_t<qweight_view<F>> w, view<float, 2> y) {
  detail::matmul_with<exec_packet_t<Exec>>(x, w, y);
}

// W8A8 / W4A8 product: x is quantized per token (quantize_tokens), then
// y[m, n] = sx[m] * sum_g scale[n, g] * sum_{k in g} xq[m, k] * code[n, k] with exact int32 dot products
// (SmoothQuant/LLM.int8()-style per-token x per-channel dequantization). Shapes as matmul; K <= 2^20.
// Rounding is the same on every packet layer and for every M (decode or prefill path): t = 0, then per chunk
// c in order t = fma(float(dot_c), scale[n, c], t), y = sx[m] * t, where a chunk is a group, or with
// per-channel scales a run of 2^16 columns (so |dot_c| < 2^31).
template <host_exec Exec = host, class W>
void matmul_a8(view<const float, 2> x, const W& w, view<float, 2> y) {
  if constexpr (detail::check_qweight<W>())
    detail::matmul_a8_with<exec_packet_t<Exec>>(x, detail::as_qview(w), y);
}
template <format F, host_exec Exec = host>
void matmul_a8(view<const float, 2> x, std::type_identity_t<qweight_view<F>> w, view<float, 2> y) {
  detail::matmul_a8_with<exec_packet_t<Exec>>(x, w, y);
}
DSK_ISA_END

}  // namespace dsk::quant
