// CUDA weight-only quantized GEMV/GEMM y[M, N] = x[M, K] * dequant(W)^T with int8 / int4 codes dequantized in
// registers: one warp per output channel streams its codes once for up to 8 rows of x (16-byte loads when
// rows are aligned), integer-valued codes times x summed per 16/32-code chunk in fp32, then scaled once per
// chunk. Backend dsk::cuda; the same contract as quant::matmul (quant/matmul.hpp). Checked against
// quant/ref.hpp in tests/simt/quant.cpp (also built natively as tests/cuda).
#pragma once

#include <concepts>
#include <cstdint>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/quant/cuda/quantize.cuh"
#include "dsk/quant/cuda/weight.cuh"
#include "dsk/quant/format.hpp"

namespace dsk::quant {
DSK_CUDA_MODE_BEGIN

namespace kernels {
inline constexpr int qgemv_rows = 8;
inline constexpr unsigned qgemv_warps = 8;

// The codes of 16 bytes as floats: 16 int8 codes, or 32 int4 codes (low nibble first).
template <qtype Q>
DSK_DEVICE_INLINE void unpack_codes(uint4 v, float* f) {
  const unsigned u[4] = {v.x, v.y, v.z, v.w};
  if constexpr (Q == qtype::int8) {
    for (int i = 0; i < 4; ++i)
      for (int b = 0; b < 4; ++b)
        f[4 * i + b] = static_cast<float>(static_cast<int>(u[i] << (24 - 8 * b)) >> 24);
  } else {
    for (int i = 0; i < 4; ++i)
      for (int n = 0; n < 8; ++n)
        f[8 * i + n] = static_cast<float>(static_cast<int>(u[i] << (28 - 4 * n)) >> 28);
  }
}

// grid (ceil(N / warps), ceil(M / rows)). Vec: code rows 16-byte aligned (pointer and row stride).
template <DSK_QUANT_FMT_PARAMS, bool Vec>
__global__ void __launch_bounds__(32 * qgemv_warps)
    matmul(const float* x, index_t ldx, const std::uint8_t* codes, index_t code_stride,
           const typename scale_storage<S>::type* scales, index_t scale_stride, index_t N, index_t K,
           float* y, index_t ldy, index_t M) {
  constexpr format F{Q, G, S, R};
  const qweight_view<F> w{reinterpret_cast<const code_t<F>*>(codes), scales, N, K, code_stride, scale_stride};
  const index_t n = static_cast<index_t>(blockIdx.x) * qgemv_warps + (threadIdx.x >> 5);
  const index_t m0 = static_cast<index_t>(blockIdx.y) * qgemv_rows;
  const unsigned lane = threadIdx.x & 31u;
  if (n >= N) return;  // whole warps leave together
  const int rows = static_cast<int>(M - m0 < qgemv_rows ? M - m0 : qgemv_rows);
  const float* xb = x + m0 * ldx;
  const std::uint8_t* cr = w.code_row(n);
  const index_t span = group_span(F, K);
  float acc[qgemv_rows] = {};
  index_t k = 0;
  if constexpr (Vec) {
    constexpr int E = F.type == qtype::int8 ? 16 : 32;  // codes per 16 bytes; a chunk never straddles a group
    const index_t chunks = K / E;
    const uint4* cv = reinterpret_cast<const uint4*>(cr);
    for (index_t ch = lane; ch < chunks; ch += 32) {
      float f[E];
      unpack_codes<F.type>(cv[ch], f);
      const index_t kk = ch * E;
      const float s = device::to_f32(scales[n * scale_stride + kk / span]);  // hardware f16/bf16 widening
      DSK_UNROLL
      for (int m = 0; m < qgemv_rows; ++m) {
        if (m < rows) {
          const float* xr = xb + m * ldx + kk;
          float d = 0.0f;
          DSK_UNROLL
          for (int e = 0; e < E; ++e) d = fmaf(xr[e], f[e], d);
          acc[m] = fmaf(s, d, acc[m]);
        }
      }
    }
    k = chunks * E;
  }
  for (index_t kk = k + lane; kk < K; kk += 32) {
    const float wf = static_cast<float>(w.code(n, kk)) * device::to_f32(scales[n * scale_stride + kk / span]);
    DSK_UNROLL
    for (int m = 0; m < qgemv_rows; ++m)
      if (m < rows) acc[m] = fmaf(xb[m * ldx + kk], wf, acc[m]);
  }
  DSK_UNROLL
  for (int m = 0; m < qgemv_rows; ++m) {
    if (m < rows) {
      const float s = device::warp_sum(acc[m]);
      if (lane == 0) y[(m0 + m) * ldy + n] = s;
    }
  }
}
}  // namespace kernels

// Weight-only product y[m, n] = sum_g scale[n, g] * sum_{k in g} x[m, k] * code[n, k]: x [M, K] f32, w [N, K]
// quantized (device memory, e.g. device_quantized_weight<F>::view()), y [M, N] f32; unit inner strides, any
// row strides. M = 1 is the decode GEMV; larger M re-streams the codes once per 8 rows. Asynchronous on s.
template <std::same_as<dsk::cuda> B, format F>
void matmul(view<const float, 2> x, qweight_view<F> w, view<float, 2> y,
            const device::stream& s = device::stream::default_stream()) {
  static_assert(check_format<F>::value);
  const contract c{"quant::matmul<cuda>"};
  c.extent("x", x, 1, w.cols, "w.cols (K)")
      .unit_inner_stride("x", x)
      .extent("y", y, 0, x.extent(0), "x.extent(0) (M)")
      .extent("y", y, 1, w.rows, "w.rows (N)")
      .unit_inner_stride("y", y)
      .require(w.rows == 0 || w.cols == 0 || (w.codes && w.scales), "w", "non-null codes and scales");
  const index_t M = x.extent(0), N = w.rows;
  if (M == 0 || N == 0) return;
  c.in_range("x.extent(0) (M)", M, index_t{0}, index_t{65535} * kernels::qgemv_rows);
  const bool vec = reinterpret_cast<std::uintptr_t>(w.codes) % 16 == 0 && w.code_stride % 16 == 0;
  const device::launch_shape shape{
      dim3(device::blocks_for(N, kernels::qgemv_warps), device::blocks_for(M, kernels::qgemv_rows)),
      dim3(32 * kernels::qgemv_warps)};
  const auto* codes = reinterpret_cast<const std::uint8_t*>(w.codes);
  if (vec)
    device::launch(kernels::matmul<DSK_QUANT_FMT_ARGS(F), true>, shape, s)(
        x.data(), x.stride(0), codes, w.code_stride, w.scales, w.scale_stride, N, w.cols, y.data(),
        y.stride(0), M);
  else
    device::launch(kernels::matmul<DSK_QUANT_FMT_ARGS(F), false>, shape, s)(
        x.data(), x.stride(0), codes, w.code_stride, w.scales, w.scale_stride, N, w.cols, y.data(),
        y.stride(0), M);
}
template <std::same_as<dsk::cuda> B, format F>
void matmul(view<const float, 2> x, const device_quantized_weight<F>& w, view<float, 2> y,
            const device::stream& s = device::stream::default_stream()) {
  matmul<B>(x, w.view(), y, s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::quant
