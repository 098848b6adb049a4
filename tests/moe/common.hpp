// Shared helpers of the MoE tests: logits with well-separated values (so that fp32 and the double reference
// pick the same experts unless a test builds ties on purpose) and conversions to the reference's types.
#pragma once

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "dsk/moe/ref.hpp"
#include "support/compare.hpp"

namespace moe_test {
using namespace dsk;
using namespace dsk::moe;

// A router as the tests use it: the compile-time config (scoring, method) and its runtime options.
struct router_case {
  router_config cfg;
  router_options opt;
};

// logits[T, E]: each row a random permutation of {-E/2, ..., E/2 - 1} / 16 (distinct, exactly representable).
inline tensor<float, 2> separated_logits(index_t T, index_t E, std::uint64_t seed) {
  tensor<float, 2> l(T, E);
  auto g = dsk::test::rng(seed);
  std::vector<int> p(static_cast<std::size_t>(E));
  for (index_t t = 0; t < T; ++t) {
    std::iota(p.begin(), p.end(), static_cast<int>(-E / 2));
    std::shuffle(p.begin(), p.end(), g);
    for (index_t e = 0; e < E; ++e) l(t, e) = static_cast<float>(p[e]) / 16.0f;
  }
  return l;
}

// E matrices [N, K] of W with values uniform in [-0.5, 0.5) (an [E, N, K] expert bank).
template <class W>
tensor<W, 3> random_weights(index_t E, index_t N, index_t K, std::uint64_t seed) {
  tensor<W, 3> t(E, N, K);
  const auto v = dsk::test::random_floats(static_cast<std::size_t>(t.size()), seed, -0.5f, 0.5f);
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = from_float<W>(v[i]);
  return t;
}

inline tensor<float, 2> random_tensor(index_t r, index_t c, std::uint64_t seed, float lo = -1.0f,
                                      float hi = 1.0f) {
  tensor<float, 2> a(r, c);
  const auto v = dsk::test::random_floats(static_cast<std::size_t>(r * c), seed, lo, hi);
  std::copy(v.begin(), v.end(), a.data());
  return a;
}

inline std::vector<std::vector<int>> idx_rows(const tensor<expert_id, 2>& idx) {
  std::vector<std::vector<int>> r(static_cast<std::size_t>(idx.extent(0)));
  for (index_t t = 0; t < idx.extent(0); ++t)
    for (index_t k = 0; k < idx.extent(1); ++k) r[t].push_back(idx(t, k));
  return r;
}

}  // namespace moe_test
