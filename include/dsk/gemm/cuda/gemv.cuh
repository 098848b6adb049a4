// CUDA small-M GEMV y[M, N] = x[M, K] * W[N, K]^T: one warp per output channel streams its row of W once for
// up to 8 rows of x (16-byte loads when rows are aligned), fp32 accumulation, butterfly warp sums. Backend
// dsk::cuda; the decode path of gemm::matmul<cuda> (gemm/cuda/matmul.cuh). Checked against gemm/ref.hpp in
// tests/simt/gemm.cpp.
#pragma once

#include <cstdint>
#include <type_traits>

#include "dsk/core/dtype.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"

namespace dsk::gemm {
DSK_CUDA_MODE_BEGIN

namespace kernels {
inline constexpr int gemv_rows = 8;        // rows of x per pass (accumulators per lane)
inline constexpr unsigned gemv_warps = 8;  // output channels per block
inline constexpr unsigned gemv_threads = 32 * gemv_warps;

// 16 bytes of W widened to float.
template <class W>
DSK_DEVICE_INLINE void unpack16(uint4 v, float* f) {
  const unsigned u[4] = {v.x, v.y, v.z, v.w};
  if constexpr (std::is_same_v<W, float>) {
    for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(u[i]);
  } else if constexpr (std::is_same_v<W, bf16>) {
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = __uint_as_float(u[i] << 16);
      f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
  } else {
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = device::to_f32(f16::from_bits(static_cast<std::uint16_t>(u[i] & 0xffffu)));
      f[2 * i + 1] = device::to_f32(f16::from_bits(static_cast<std::uint16_t>(u[i] >> 16)));
    }
  }
}

// grid (ceil(N / gemv_warps), ceil(M / gemv_rows)). Vec: W rows are 16-byte aligned (data and row stride).
template <class X, class W, class Y, bool Vec>
__global__ void __launch_bounds__(gemv_threads) gemv(const X* x, index_t ldx, const W* w, index_t ldw, Y* y,
                                                     index_t ldy, index_t M, index_t N, index_t K) {
  const index_t n = static_cast<index_t>(blockIdx.x) * gemv_warps + (threadIdx.x >> 5);
  const index_t m0 = static_cast<index_t>(blockIdx.y) * gemv_rows;
  const unsigned lane = threadIdx.x & 31u;
  if (n >= N) return;  // whole warps leave together: no warp operation below misses a lane
  const int rows = static_cast<int>(M - m0 < gemv_rows ? M - m0 : gemv_rows);
  const X* xb = x + m0 * ldx;
  const W* wr = w + n * ldw;
  float acc[gemv_rows] = {};
  index_t k = 0;
  if constexpr (Vec) {
    constexpr int E = 16 / sizeof(W);
    const index_t chunks = K / E;
    const uint4* wv = reinterpret_cast<const uint4*>(wr);
    for (index_t ch = lane; ch < chunks; ch += 32) {
      float f[E];
      unpack16<W>(wv[ch], f);
      const index_t kk = ch * E;
      DSK_UNROLL
      for (int m = 0; m < gemv_rows; ++m) {
        if (m < rows) {
          const X* xr = xb + m * ldx + kk;
          float a = acc[m];
          DSK_UNROLL
          for (int e = 0; e < E; ++e) a = fmaf(device::to_f32(xr[e]), f[e], a);
          acc[m] = a;
        }
      }
    }
    k = chunks * E;
  }
  for (index_t kk = k + lane; kk < K; kk += 32) {
    const float wf = device::to_f32(wr[kk]);
    DSK_UNROLL
    for (int m = 0; m < gemv_rows; ++m)
      if (m < rows) acc[m] = fmaf(device::to_f32(xb[m * ldx + kk]), wf, acc[m]);
  }
  DSK_UNROLL
  for (int m = 0; m < gemv_rows; ++m) {
    if (m < rows) {  // rows is uniform over the warp
      const float s = device::warp_sum(acc[m]);
      if (lane == 0) y[(m0 + m) * ldy + n] = device::from_f32<Y>(s);
    }
  }
}
}  // namespace kernels

namespace detail {
// Launches the GEMV kernel (arguments already checked by the entry point).
template <class X, class W, class Y>
void launch_gemv(view<const X, 2> x, view<const W, 2> w, view<Y, 2> y, const device::stream& s) {
  const index_t M = x.extent(0), N = w.extent(0), K = x.extent(1);
  const bool vec = reinterpret_cast<std::uintptr_t>(w.data()) % 16 == 0 &&
                   (w.stride(0) * static_cast<index_t>(sizeof(W))) % 16 == 0;
  const device::launch_shape shape{
      dim3(device::blocks_for(N, kernels::gemv_warps), device::blocks_for(M, kernels::gemv_rows)),
      dim3(kernels::gemv_threads)};
  if (shape.grid.y > 65535)
    fail("gemm::matmul<cuda>: M = ", M, " is too large for the GEMV path (at most ", 65535 * 8, ")");
  if (vec)
    device::launch(kernels::gemv<X, W, Y, true>, shape, s)(x.data(), x.stride(0), w.data(), w.stride(0),
                                                           y.data(), y.stride(0), M, N, K);
  else
    device::launch(kernels::gemv<X, W, Y, false>, shape, s)(x.data(), x.stride(0), w.data(), w.stride(0),
                                                            y.data(), y.stride(0), M, N, K);
}
}  // namespace detail

DSK_CUDA_MODE_END
}  // namespace dsk::gemm
