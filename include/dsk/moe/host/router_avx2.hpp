// Row softmax and row sigmoid of the MoE router over the packet layer S: the library's one copy of each lives
// in nn (nn/host/rows_avx2.hpp, nn/host/activation.hpp); these keep the router's (in, out, n) order. Host
// only; the router built on them is checked against dsk/moe/ref.hpp.
#pragma once

#include "dsk/core/config.hpp"
#include "dsk/nn/host/activation.hpp"
#include "dsk/nn/host/rows_avx2.hpp"

namespace dsk::moe::detail {
DSK_ISA_BEGIN

// out[0, n) = softmax(in[0, n)), max-subtracted so that large logits cannot overflow exp.
template <class S>
void softmax_row(const float* in, float* out, index_t n) {
  nn::packet::softmax_row<S, false>(in, n, out);
}

// out = 1 / (1 + exp(-in)).
template <class S>
void sigmoid_row(const float* in, float* out, index_t n) {
  nn::packet::sigmoid_row<S>(in, n, out);
}

DSK_ISA_END
}  // namespace dsk::moe::detail
