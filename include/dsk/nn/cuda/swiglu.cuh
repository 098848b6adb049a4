// CUDA SiLU and SwiGLU activations: y = silu(g) = g / (1 + e^-g) and y = silu(g) * u, elementwise (the gate
// of DeepSeek's MLP when gate and up come from separate GEMMs). Backend dsk::cuda. Checked against the
// formula of gemm/ref.hpp (ref::silu, in double) in tests/simt/nn.cpp (also built natively as tests/cuda).
#pragma once

#include <concepts>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"

namespace dsk::nn {
DSK_CUDA_MODE_BEGIN

namespace kernels {
// grid (row blocks, column blocks): rows stride over gridDim.x, columns over blockDim.x * gridDim.y.
template <bool Gated>
__global__ void swiglu(const float* g, index_t ldg, const float* u, index_t ldu, float* y, index_t ldy,
                       index_t rows, index_t cols) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x)
    for (index_t i = static_cast<index_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < cols;
         i += static_cast<index_t>(blockDim.x) * gridDim.y) {
      const float a = g[r * ldg + i];
      const float s = a / (1.0f + expf(-a));
      y[r * ldy + i] = Gated ? s * u[r * ldu + i] : s;
    }
}
}  // namespace kernels

namespace detail {
inline dsk::device::launch_shape elementwise_shape(index_t rows, index_t cols) {
  const unsigned threads = 256;
  const auto gy = static_cast<unsigned>(std::min<index_t>(64, (cols + threads - 1) / threads));
  const auto gx = static_cast<unsigned>(std::min<index_t>(65535, rows));
  return {dim3(gx, gy), dim3(threads)};
}
}  // namespace detail

// y = silu(g) * u; g, u, y: [rows, n] f32 in device memory (y may alias g or u). Asynchronous on s.
template <std::same_as<dsk::cuda> B>
void swiglu(view<const float, 2> g, view<const float, 2> u, view<float, 2> y,
            const device::stream& s = device::stream::default_stream()) {
  const contract c{"nn::swiglu<cuda>"};
  c.unit_inner_stride("g", g).unit_inner_stride("u", u).unit_inner_stride("y", y);
  c.extent("u", u, 0, g.extent(0), "g.extent(0)").extent("u", u, 1, g.extent(1), "g.extent(1)");
  c.extent("y", y, 0, g.extent(0), "g.extent(0)").extent("y", y, 1, g.extent(1), "g.extent(1)");
  if (g.size() == 0) return;
  device::launch(kernels::swiglu<true>, detail::elementwise_shape(g.extent(0), g.extent(1)), s)(
      g.data(), g.stride(0), u.data(), u.stride(0), y.data(), y.stride(0), g.extent(0), g.extent(1));
}

// y = silu(x); x, y: [rows, n] f32 in device memory (y may be x).
template <std::same_as<dsk::cuda> B>
void silu(view<const float, 2> x, view<float, 2> y,
          const device::stream& s = device::stream::default_stream()) {
  const contract c{"nn::silu<cuda>"};
  c.unit_inner_stride("x", x).unit_inner_stride("y", y);
  c.extent("y", y, 0, x.extent(0), "x.extent(0)").extent("y", y, 1, x.extent(1), "x.extent(1)");
  if (x.size() == 0) return;
  device::launch(kernels::swiglu<false>, detail::elementwise_shape(x.extent(0), x.extent(1)), s)(
      x.data(), x.stride(0), x.data(), x.stride(0), y.data(), y.stride(0), x.extent(0), x.extent(1));
}

DSK_CUDA_MODE_END
}  // namespace dsk::nn
