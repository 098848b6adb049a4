// SIMD epilogue of the grouped expert FFN over quantized weights: h = silu(g) * u over the packet layer S
// (the products themselves come from dsk::quant / dsk::gemm). Checked against dsk/moe/ref.hpp through
// tests/moe/expert_ffn.cpp.
#pragma once

#include "dsk/core/config.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::moe::detail {
DSK_ISA_BEGIN

// h[m, n] = silu(g[m, n]) * u[m, n] over rows of length N (row strides ldg, ldu, ldh).
template <class S>
void swiglu_rows(const float* g, index_t ldg, const float* u, index_t ldu, index_t M, index_t N, float* h,
                 index_t ldh) {
  constexpr int V = S::width;
  const auto one = S::broadcast(1.0f), zero = S::zero();
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; n += V) {
      const int t = static_cast<int>(N - n < V ? N - n : V);
      const auto gv = S::load_partial(g + m * ldg + n, t), uv = S::load_partial(u + m * ldu + n, t);
      const auto sig = S::div(one, S::add(one, S::exp(S::sub(zero, gv))));
      S::store_partial(h + m * ldh + n, S::mul(S::mul(gv, sig), uv), t);
    }
}

DSK_ISA_END
}  // namespace dsk::moe::detail
