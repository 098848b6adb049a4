// CUDA row kernels of nn: RMSNorm, softmax / log-softmax and argmax, one block per row with block reductions.
// Backend dsk::cuda (nvcc, or the SIMT emulation); same contracts and results as the host versions in
// nn/rmsnorm.hpp, nn/softmax.hpp, nn/argmax.hpp. Checked against nn/ref.hpp in tests/simt/nn.cpp (also built
// natively as tests/cuda).
#pragma once

#include <concepts>

#include "dsk/core/backend.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"

namespace dsk::nn {
DSK_CUDA_MODE_BEGIN

namespace kernels {
inline constexpr unsigned row_threads = 256;

template <class W>
__global__ void rmsnorm(const float* x, index_t ldx, const W* w, float eps, float* y, index_t ldy,
                        index_t n) {
  const float* xr = x + static_cast<index_t>(blockIdx.x) * ldx;
  float* yr = y + static_cast<index_t>(blockIdx.x) * ldy;
  float ss = 0.0f;
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
  ss = device::block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(n) + eps);
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = device::to_f32(w[i]) * (xr[i] * inv);
}

// NaN counts as +inf for the row maximum, so that a NaN anywhere makes the whole row NaN (as on the host).
template <bool Log>
__global__ void softmax(const float* x, index_t ldx, float* y, index_t ldy, index_t n) {
  const float* xr = x + static_cast<index_t>(blockIdx.x) * ldx;
  float* yr = y + static_cast<index_t>(blockIdx.x) * ldy;
  float mx = -INFINITY;
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, xr[i] != xr[i] ? INFINITY : xr[i]);
  mx = device::block_max(mx);
  if (mx == -INFINITY) {  // every element is -inf: probabilities 0, log-probabilities -inf
    for (index_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = Log ? -INFINITY : 0.0f;
    return;
  }
  float s = 0.0f;
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) s += expf(xr[i] - mx);
  s = device::block_sum(s);
  if (Log) {
    const float ls = logf(s);
    for (index_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] - mx - ls;
  } else {
    const float inv = 1.0f / s;
    for (index_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = expf(xr[i] - mx) * inv;
  }
}

// (value, index) pairs: a NaN beats every number, then the larger value, then the smaller index.
DSK_DEVICE_INLINE bool argmax_better(float a, index_t ia, float b, index_t ib) {
  const bool na = a != a, nb = b != b;
  if (na != nb) return na;
  if (na || a == b) return ia < ib;
  return a > b;
}

__global__ void argmax(const float* x, index_t ldx, index_t inc, index_t n, index_t* out) {
  DSK_SHARED(float[32], wv);
  DSK_SHARED(index_t[32], wi);
  const float* xr = x + static_cast<index_t>(blockIdx.x) * ldx;
  float bv = -INFINITY;
  index_t bi = n;  // n: "none yet" (loses every tie)
  for (index_t i = threadIdx.x; i < n; i += blockDim.x)
    if (argmax_better(xr[i * inc], i, bv, bi)) bv = xr[i * inc], bi = i;
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, bv, o);
    const index_t j = __shfl_xor_sync(0xffffffffu, bi, o);
    if (argmax_better(v, j, bv, bi)) bv = v, bi = j;
  }
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) {
    wv[warp] = bv;
    wi[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = lane < warps ? wv[lane] : -INFINITY;
    bi = lane < warps ? wi[lane] : n;
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, bv, o);
      const index_t j = __shfl_xor_sync(0xffffffffu, bi, o);
      if (argmax_better(v, j, bv, bi)) bv = v, bi = j;
    }
    if (lane == 0) out[blockIdx.x] = bi < n ? bi : 0;  // a row of only -inf: index 0, as on the host
  }
}
}  // namespace kernels

namespace detail {
template <class W>
void rmsnorm_cuda(view<const float, 2> x, view<const W, 1> w, float eps, view<float, 2> y,
                  const device::stream& s) {
  const contract c{"nn::rmsnorm<cuda>"};
  c.unit_inner_stride("x", x).unit_inner_stride("w", w).unit_inner_stride("y", y);
  c.extent("w", w, 0, x.extent(1), "x.extent(1) (hidden)");
  c.extent("y", y, 0, x.extent(0), "x.extent(0) (rows)")
      .extent("y", y, 1, x.extent(1), "x.extent(1) (hidden)");
  c.require(eps >= 0.0f, "eps", ">= 0", eps);
  c.in_range("x.extent(0)", x.extent(0), index_t{0}, index_t{device::max_grid_x()});
  if (x.extent(1) == 0) return;
  device::launch(kernels::rmsnorm<W>, {dim3(static_cast<unsigned>(x.extent(0))), dim3(kernels::row_threads)},
                 s)(x.data(), x.stride(0), w.data(), eps, y.data(), y.stride(0), x.extent(1));
}

template <bool Log>
void softmax_cuda(const char* where, view<const float, 2> x, view<float, 2> y, const device::stream& s) {
  const contract c{where};
  c.unit_inner_stride("x", x).unit_inner_stride("y", y);
  c.extent("y", y, 0, x.extent(0), "x.extent(0) (rows)")
      .extent("y", y, 1, x.extent(1), "x.extent(1) (columns)");
  c.in_range("x.extent(0)", x.extent(0), index_t{0}, index_t{device::max_grid_x()});
  if (x.extent(1) == 0) return;
  device::launch(kernels::softmax<Log>,
                 {dim3(static_cast<unsigned>(x.extent(0))), dim3(kernels::row_threads)},
                 s)(x.data(), x.stride(0), y.data(), y.stride(0), x.extent(1));
}
}  // namespace detail

// y = w * (x * rsqrt(mean(x^2) + eps)) row by row (Zhang & Sennrich 2019). x, y: [rows, hidden] in device
// memory (y may be x), w: [hidden] f32 / bf16 / f16. Asynchronous on s.
template <std::same_as<dsk::cuda> B>
void rmsnorm(view<const float, 2> x, view<const float, 1> w, float eps, view<float, 2> y,
             const device::stream& s = device::stream::default_stream()) {
  detail::rmsnorm_cuda(x, w, eps, y, s);
}
template <std::same_as<dsk::cuda> B>
void rmsnorm(view<const float, 2> x, view<const bf16, 1> w, float eps, view<float, 2> y,
             const device::stream& s = device::stream::default_stream()) {
  detail::rmsnorm_cuda(x, w, eps, y, s);
}
template <std::same_as<dsk::cuda> B>
void rmsnorm(view<const float, 2> x, view<const f16, 1> w, float eps, view<float, 2> y,
             const device::stream& s = device::stream::default_stream()) {
  detail::rmsnorm_cuda(x, w, eps, y, s);
}

// y[r] = softmax(x[r]) / log_softmax(x[r]); x, y: [rows, n] in device memory (y may be x). An all -inf row
// gives zeros (-inf for log); NaN or +inf in a row gives NaN in that row. Asynchronous on s.
template <std::same_as<dsk::cuda> B>
void softmax(view<const float, 2> x, view<float, 2> y,
             const device::stream& s = device::stream::default_stream()) {
  detail::softmax_cuda<false>("nn::softmax<cuda>", x, y, s);
}
template <std::same_as<dsk::cuda> B>
void log_softmax(view<const float, 2> x, view<float, 2> y,
                 const device::stream& s = device::stream::default_stream()) {
  detail::softmax_cuda<true>("nn::log_softmax<cuda>", x, y, s);
}

// out[r] = first index of the maximum of x[r] (a NaN counts as the largest value); x: [rows, n >= 1] in
// device memory (any strides), out: [rows] index_t in device memory. Asynchronous on s.
template <std::same_as<dsk::cuda> B>
void argmax(view<const float, 2> x, view<index_t, 1> out,
            const device::stream& s = device::stream::default_stream()) {
  const contract c{"nn::argmax<cuda>"};
  c.require(x.extent(1) >= 1 || x.extent(0) == 0, "x", "extent(1) >= 1 (a row to take the argmax of)",
            x.extent(1));
  c.extent("out", out, 0, x.extent(0), "x.extent(0) (rows)");
  c.require(out.stride(0) == 1 || out.extent(0) <= 1, "out", "a unit stride", out.stride(0));
  c.in_range("x.extent(0)", x.extent(0), index_t{0}, index_t{device::max_grid_x()});
  device::launch(kernels::argmax, {dim3(static_cast<unsigned>(x.extent(0))), dim3(kernels::row_threads)}, s)(
      x.data(), x.stride(0), x.stride(1), x.extent(1), out.data());
}

DSK_CUDA_MODE_END
}  // namespace dsk::nn
