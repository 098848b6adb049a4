// Helpers shared by the causal and the bidirectional NSA tests: the reference's parameters from a config,
// one set of random inputs (q, k, v, gates and the learned-linear compression weights), and the near-tie
// rule for block choices that differ from the reference's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "common.hpp"
#include "dsk/attention/nsa.hpp"
#include "dsk/attention/ref.hpp"

namespace dsk::test {

template <attention::nsa_config C>
attention::ref::nsa_params nsa_params_of(double scale) {
  return {C.cmp_block, C.cmp_stride, C.sel_block, C.sel_count, C.init_blocks, C.local_blocks,
          C.window,    C.cmp,        C.sel,       C.win,       scale};
}

// Inputs of one NSA call of T tokens, H query heads over Hkv KV heads.
template <attention::nsa_config C>
struct nsa_inputs {
  static constexpr int D = C.head_dim, Dv = C.v_dim();
  tensor<float, 3> q, k, v, gates;
  tensor<float, 2> w_k, pe_k, w_v, pe_v;
  nsa_inputs(index_t T, index_t H, index_t Hkv, std::uint64_t seed)
      : q(random_tensor<3>({T, H, D}, seed)),
        k(random_tensor<3>({T, Hkv, D}, seed + 1)),
        v(random_tensor<3>({T, Hkv, Dv}, seed + 2)),
        gates(random_tensor<3>({T, H, 3}, seed + 3, 0.0f, 1.0f)),
        w_k(random_tensor<2>({D, C.cmp_block * D}, seed + 4, -0.05f, 0.05f)),
        pe_k(random_tensor<2>({C.cmp_block, D}, seed + 5)),
        w_v(random_tensor<2>({Dv, C.cmp_block * Dv}, seed + 6, -0.05f, 0.05f)),
        pe_v(random_tensor<2>({C.cmp_block, Dv}, seed + 7)) {}
  attention::nsa_weights weights() const { return {w_k, pe_k, w_v, pe_v}; }
};

// A kernel's block list `got` may differ from the reference's `want` only by near-ties: the reference
// importance of every block it chose within `tol` of the weakest kept one (relative above 1 when `relative`:
// the bidirectional importances sum up to sel_block * group probabilities).
inline void require_near_tie(const std::vector<index_t>& want, const std::vector<index_t>& got,
                             const std::vector<double>& importance, double tol, bool relative) {
  double kept_min = 1e300;
  for (index_t b : want) kept_min = std::min(kept_min, importance[b]);
  for (index_t b : got) {
    INFO("block " << b);
    REQUIRE(std::abs(importance[b] - kept_min) < (relative ? tol * std::max(1.0, kept_min) : tol));
  }
}

}  // namespace dsk::test
