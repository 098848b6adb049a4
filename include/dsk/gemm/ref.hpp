// Scalar reference of the dense kernels: y = x * W^T (+ bias) and the SwiGLU product, written straight from
// the formulas with double accumulation. The oracle of tests/gemm; shares no code with gemm/host/. Host only.
#pragma once

#include <cmath>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"

namespace dsk::gemm::ref {

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]); x: [M, K], w: [N, K], y: [M, N] (double, any strides).
template <float_storage W>
void matmul(view<const float, 2> x, view<const W, 2> w, view<double, 2> y,
            view<const float, 1> bias = view<const float, 1>{}) {
  const index_t M = x.extent(0), K = x.extent(1), N = w.extent(0);
  if (w.extent(1) != K || y.extent(0) != M || y.extent(1) != N || (bias.data() && bias.extent(0) != N))
    fail("gemm::ref::matmul: shape mismatch");
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      double s = bias.data() ? double(bias(n)) : 0.0;
      for (index_t k = 0; k < K; ++k) s += double(x(m, k)) * double(to_float(w(n, k)));
      y(m, n) = s;
    }
}

// SiLU(g) = g * sigmoid(g) = g / (1 + e^-g).
inline double silu(double g) { return g / (1.0 + std::exp(-g)); }

// y[m, n] = silu(x w_gate[n]^T) * (x w_up[n]^T); x: [M, K], w_gate, w_up: [N, K], y: [M, N].
template <float_storage W>
void swiglu(view<const float, 2> x, view<const W, 2> w_gate, view<const W, 2> w_up, view<double, 2> y) {
  const index_t M = x.extent(0), K = x.extent(1), N = w_gate.extent(0);
  if (w_gate.extent(1) != K || w_up.extent(0) != N || w_up.extent(1) != K || y.extent(0) != M ||
      y.extent(1) != N)
    fail("gemm::ref::swiglu: shape mismatch");
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      double g = 0, u = 0;
      for (index_t k = 0; k < K; ++k) {
        g += double(x(m, k)) * double(to_float(w_gate(n, k)));
        u += double(x(m, k)) * double(to_float(w_up(n, k)));
      }
      y(m, n) = silu(g) * u;
    }
}

}  // namespace dsk::gemm::ref
