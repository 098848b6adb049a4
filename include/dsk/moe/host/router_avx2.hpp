// SIMD pieces of the MoE router: row softmax and row sigmoid over the packet layer S (simd::scalar mirrors
// simd::avx2 bit for bit). Host only; the router built on them is checked against dsk/moe/ref.hpp.
#pragma once

#include <algorithm>

#include "dsk/core/config.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::moe::detail {
DSK_ISA_BEGIN

// out[0, n) = softmax(in[0, n)), max-subtracted so that large logits cannot overflow exp.
template <class S>
void softmax_row(const float* in, float* out, index_t n) {
  constexpr int W = S::width;
  const index_t full = n / W * W;
  const int tail = static_cast<int>(n - full);
  auto vmax = S::broadcast(-3.0e38f);
  for (index_t j = 0; j < full; j += W) vmax = S::max(S::load(in + j), vmax);
  float m = S::reduce_max(vmax);
  for (index_t j = full; j < n; ++j) m = std::max(m, in[j]);
  const auto bm = S::broadcast(m);
  auto vsum = S::zero();
  for (index_t j = 0; j < full; j += W) {
    const auto e = S::exp(S::sub(S::load(in + j), bm));
    S::store(out + j, e);
    vsum = S::add(vsum, e);
  }
  if (tail) {
    // Masked lanes would hold exp(0 - m); keep them out of the sum by storing the tail only.
    const auto e = S::exp(S::sub(S::load_partial(in + full, tail), bm));
    S::store_partial(out + full, e, tail);
  }
  float sum = S::reduce_add(vsum);
  for (index_t j = full; j < n; ++j) sum += out[j];
  const auto inv = S::broadcast(1.0f / sum);
  for (index_t j = 0; j < full; j += W) S::store(out + j, S::mul(S::load(out + j), inv));
  if (tail) S::store_partial(out + full, S::mul(S::load_partial(out + full, tail), inv), tail);
}

// out = 1 / (1 + exp(-in)).
template <class S>
void sigmoid_row(const float* in, float* out, index_t n) {
  constexpr int W = S::width;
  const auto one = S::broadcast(1.0f), zero = S::zero();
  index_t j = 0;
  for (; j + W <= n; j += W)
    S::store(out + j, S::div(one, S::add(one, S::exp(S::sub(zero, S::load(in + j))))));
  if (j < n) {
    const int t = static_cast<int>(n - j);
    S::store_partial(out + j, S::div(one, S::add(one, S::exp(S::sub(zero, S::load_partial(in + j, t))))), t);
  }
}

DSK_ISA_END
}  // namespace dsk::moe::detail
