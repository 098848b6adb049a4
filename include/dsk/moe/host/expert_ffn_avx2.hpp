// SIMD pieces of the grouped expert FFN over the packet layer S: the SwiGLU epilogue of the quantized path,
// and the one-row (decode) products over float-storage weights, which read the weight rows in address order.
// Other products come from dsk::gemm / dsk::quant. Checked against dsk/moe/ref.hpp through
// tests/moe/expert_ffn.cpp.
#pragma once

#include <cmath>

#include "dsk/core/config.hpp"
#include "dsk/nn/host/activation.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::moe::detail {
DSK_ISA_BEGIN

// h[m, n] = silu(g[m, n]) * u[m, n] over rows of length N (row strides ldg, ldu, ldh).
template <class S>
void swiglu_rows(const float* g, index_t ldg, const float* u, index_t ldu, index_t M, index_t N, float* h,
                 index_t ldh) {
  for (index_t m = 0; m < M; ++m) nn::packet::swiglu_row<S>(g + m * ldg, u + m * ldu, N, h + m * ldh);
}

// x . w over K elements, two accumulators (fp32).
template <class S, class W>
DSK_ALWAYS_INLINE float dot_row(const float* x, const W* w, index_t K) {
  constexpr int V = S::width;
  auto a0 = S::zero(), a1 = S::zero();
  index_t k = 0;
  for (; k + 2 * V <= K; k += 2 * V) {
    a0 = S::fma(S::load(w + k), S::load(x + k), a0);
    a1 = S::fma(S::load(w + k + V), S::load(x + k + V), a1);
  }
  for (; k < K; k += V) {
    const int t = static_cast<int>(K - k < V ? K - k : V);
    a0 = S::fma(S::load_partial(w + k, t), S::load_partial(x + k, t), a0);
  }
  return S::reduce_add(S::add(a0, a1));
}

// Decode products (one row of x): y[n] = x . w[n] for n in [0, N), rows ldw elements apart, visited in
// address order. Why not the general GEMV: reading 4-8 rows side by side splits DRAM traffic into as many
// streams, and with K = 2048 bf16 every row is one 4 KiB page, where the hardware prefetcher stops; one row
// at a time is one sequential stream (measured 2x faster from DRAM on the development machine, see
// docs/performance.md).
template <class S, class W>
void gemv_row(const float* x, const W* w, index_t ldw, index_t N, index_t K, float* y) {
  for (index_t n = 0; n < N; ++n) y[n] = dot_row<S>(x, w + n * ldw, K);
}
// h[n] = silu(x . g[n]) * (x . u[n]): two sequential streams.
template <class S, class W>
void gemv_row_swiglu(const float* x, const W* g, index_t ldg, const W* u, index_t ldu, index_t N, index_t K,
                     float* h) {
  for (index_t n = 0; n < N; ++n) {
    const float gv = dot_row<S>(x, g + n * ldg, K), uv = dot_row<S>(x, u + n * ldu, K);
    h[n] = nn::packet::silu1(gv) * uv;
  }
}

DSK_ISA_END
}  // namespace dsk::moe::detail
