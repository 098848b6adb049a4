// CUDA weight-only quantized GEMV/GEMM y[M, N] = x[M, K] * dequant(W)^T with int8 / int4 codes dequantized in
// registers: one warp per 4 output channels streams their codes once for up to 8 rows of x (16-byte loads
// when rows are aligned), integer-valued codes times x summed per 16/32-code chunk in fp32, then scaled once
// per chunk. Backend dsk::cuda; the same contract as quant::matmul (quant/matmul.hpp). Checked against
// quant/ref.hpp in tests/simt/quant.cpp (also built natively as tests/cuda).
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/quant/alias.hpp"
#include "dsk/quant/cuda/quantize.cuh"
#include "dsk/quant/cuda/weight.cuh"
#include "dsk/quant/format.hpp"

namespace dsk::quant {
DSK_CUDA_MODE_BEGIN

namespace kernels {
inline constexpr int qgemv_rows = 8;      // rows of x per pass (M-blocking)
inline constexpr int qgemv_channels = 4;  // output channels per warp: each x value loaded serves 4 code rows
inline constexpr unsigned qgemv_warps = 8;

// Code e of a 32-bit word of codes as a float: int8 (4 per word, byte e) or int4 (8 per word, nibble e:
// element 2i in the low nibble of byte i). Shift left to the top, then arithmetic shift right sign-extends.
template <qtype Q>
DSK_DEVICE_INLINE float code_in_word(unsigned u, int e) {
  if constexpr (Q == qtype::int8)
    return static_cast<float>(static_cast<int>(u << (24 - 8 * e)) >> 24);
  else
    return static_cast<float>(static_cast<int>(u << (28 - 4 * e)) >> 28);
}

// grid (ceil(N / (warps * channels)), ceil(M / rows)). Vec: code rows 16-byte aligned (pointer and row
// stride). Why 4 channels per warp: with f32 activations an int4 code (half a byte) needs 4 bytes of x;
// reading x once per 4 code rows keeps the L1 traffic for x below the HBM traffic for the codes.
template <DSK_QUANT_FMT_PARAMS, bool Vec>
__global__ void __launch_bounds__(32 * qgemv_warps)
    matmul(const float* x, index_t ldx, const std::uint8_t* codes, index_t code_stride,
           const typename scale_storage<S>::type* scales, index_t scale_stride, index_t N, index_t K,
           float* y, index_t ldy, index_t M) {
  constexpr format F{Q, G, S, R};
  constexpr int NC = qgemv_channels;
  const qweight_view<F> w{reinterpret_cast<const code_t<F>*>(codes), scales, N, K, code_stride, scale_stride};
  const index_t n0 = (static_cast<index_t>(blockIdx.x) * qgemv_warps + (threadIdx.x >> 5)) * NC;
  const index_t m0 = static_cast<index_t>(blockIdx.y) * qgemv_rows;
  const unsigned lane = threadIdx.x & 31u;
  if (n0 >= N) return;                                            // whole warps leave together
  const int chans = static_cast<int>(N - n0 < NC ? N - n0 : NC);  // uniform over the warp, like rows
  const int rows = static_cast<int>(M - m0 < qgemv_rows ? M - m0 : qgemv_rows);
  const float* xb = x + m0 * ldx;
  const index_t span = group_span(F, K);
  float acc[NC][qgemv_rows] = {};
  index_t k = 0;
  if constexpr (Vec) {
    constexpr int PW = F.type == qtype::int8 ? 4 : 8;  // codes per 32-bit word
    constexpr int E = 4 * PW;                          // codes per 16 bytes; a chunk never straddles a group
    const index_t chunks = K / E;
    for (index_t ch = lane; ch < chunks; ch += 32) {
      const index_t kk = ch * E;
      unsigned cw[NC][4];
      float sc[NC];
      DSK_UNROLL
      for (int c = 0; c < NC; ++c) {
        if (c < chans) {
          const uint4 v = reinterpret_cast<const uint4*>(w.code_row(n0 + c))[ch];
          cw[c][0] = v.x, cw[c][1] = v.y, cw[c][2] = v.z, cw[c][3] = v.w;
          sc[c] = device::to_f32(scales[(n0 + c) * scale_stride + kk / span]);  // hardware f16/bf16 widening
        } else {
          cw[c][0] = cw[c][1] = cw[c][2] = cw[c][3] = 0u;
          sc[c] = 0.0f;
        }
      }
      DSK_UNROLL
      for (int m = 0; m < qgemv_rows; ++m) {
        if (m < rows) {
          const float* xr = xb + m * ldx + kk;
          float d[NC] = {};
          DSK_UNROLL
          for (int j = 0; j < 4; ++j) {
            DSK_UNROLL
            for (int e = 0; e < PW; ++e) {
              const float xv = xr[j * PW + e];
              DSK_UNROLL
              for (int c = 0; c < NC; ++c) d[c] = fmaf(xv, code_in_word<F.type>(cw[c][j], e), d[c]);
            }
          }
          DSK_UNROLL
          for (int c = 0; c < NC; ++c) acc[c][m] = fmaf(sc[c], d[c], acc[c][m]);
        }
      }
    }
    k = chunks * E;
  }
  for (index_t kk = k + lane; kk < K; kk += 32) {
    float wf[NC];
    DSK_UNROLL
    for (int c = 0; c < NC; ++c)
      wf[c] = c < chans ? static_cast<float>(w.code(n0 + c, kk)) *
                              device::to_f32(scales[(n0 + c) * scale_stride + kk / span])
                        : 0.0f;
    DSK_UNROLL
    for (int m = 0; m < qgemv_rows; ++m) {
      if (m < rows) {
        const float xv = xb[m * ldx + kk];
        DSK_UNROLL
        for (int c = 0; c < NC; ++c) acc[c][m] = fmaf(xv, wf[c], acc[c][m]);
      }
    }
  }
  DSK_UNROLL
  for (int c = 0; c < NC; ++c) {
    DSK_UNROLL
    for (int m = 0; m < qgemv_rows; ++m) {
      if (c < chans && m < rows) {  // uniform over the warp
        const float s = device::warp_sum(acc[c][m]);
        if (lane == 0) y[(m0 + m) * ldy + n0 + c] = s;
      }
    }
  }
}
}  // namespace kernels

// matmul<dsk::cuda>(x, w, y, s) (format deduced from w) or matmul<F, dsk::cuda>(x, w, y, s).
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
  c.disjoint("y", y, "x", x);  // the host's overlap rules (quant/matmul.hpp), on device addresses
  contracts::check_weight_alias(c, "y", y, "w", w);
  const index_t M = x.extent(0), N = w.rows;
  if (M == 0 || N == 0) return;
  c.in_range("x.extent(0) (M)", M, index_t{0}, index_t{65535} * kernels::qgemv_rows);
  const bool vec = reinterpret_cast<std::uintptr_t>(w.codes) % 16 == 0 && w.code_stride % 16 == 0;
  const device::launch_shape shape{dim3(device::blocks_for(N, kernels::qgemv_warps * kernels::qgemv_channels),
                                        device::blocks_for(M, kernels::qgemv_rows)),
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
// The same with the format named first, as the host's matmul<F, Exec>: matmul<F, dsk::cuda>(x, w, y, s).
template <format F, std::same_as<dsk::cuda> B>
void matmul(view<const float, 2> x, std::type_identity_t<qweight_view<F>> w, view<float, 2> y,
            const device::stream& s = device::stream::default_stream()) {
  matmul<B>(x, w, y, s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::quant
