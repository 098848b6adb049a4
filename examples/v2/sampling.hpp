// Token sampling of the dsk_v2 runner: greedy (nn::argmax) or temperature + top-k + top-p (nucleus; Holtzman
// et al. 2019) over nn::softmax probabilities, from a seeded generator. Host; tested in
// tests/models/model.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/nn/argmax.hpp"
#include "dsk/nn/softmax.hpp"

namespace dsk_v2 {

struct sampling_params {
  double temperature = 0.7;  // 0: greedy
  int top_k = 30;            // 0: no limit
  double top_p = 1.0;        // 1: no limit
  std::uint64_t seed = 0;
};

class sampler {
 public:
  explicit sampler(sampling_params p) : p_(p), rng_(p.seed) {}

  // The next token from the last row of logits [rows, vocab].
  std::int32_t sample(dsk::view<const float, 2> logits) {
    using dsk::index_t;
    const index_t V = logits.extent(1), r = logits.extent(0) - 1;
    const dsk::view<const float, 2> row(&logits(r, 0), dsk::dims<2>(1, V), {V, 1});
    if (p_.temperature <= 0.0) {
      dsk::index_t best = 0;
      dsk::nn::argmax(row, dsk::view<dsk::index_t, 1>(&best, dsk::dims<1>(1), {1}));
      return static_cast<std::int32_t>(best);
    }
    // Candidates: the top_k largest logits (all when top_k is 0), best first.
    const index_t k = p_.top_k > 0 ? std::min<index_t>(p_.top_k, V) : V;
    idx_.resize(static_cast<std::size_t>(V));
    std::iota(idx_.begin(), idx_.end(), 0);
    std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), [&](index_t a, index_t b) {
      return row(0, a) > row(0, b) || (row(0, a) == row(0, b) && a < b);
    });
    dsk::tensor<float, 2> z(std::array<index_t, 2>{1, k}, dsk::uninitialized);
    const float inv_t = static_cast<float>(1.0 / p_.temperature);
    for (index_t i = 0; i < k; ++i) z(0, i) = row(0, idx_[static_cast<std::size_t>(i)]) * inv_t;
    dsk::nn::softmax(z.cview(), z.view());
    // Nucleus: keep the shortest prefix whose probability reaches top_p.
    index_t n = k;
    if (p_.top_p < 1.0) {
      double acc = 0.0;
      for (index_t i = 0; i < k; ++i) {
        acc += z(0, i);
        if (acc >= p_.top_p) {
          n = i + 1;
          break;
        }
      }
    }
    double total = 0.0;
    for (index_t i = 0; i < n; ++i) total += z(0, i);
    const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
    double acc = 0.0;
    for (index_t i = 0; i < n; ++i) {
      acc += z(0, i);
      if (u < acc) return static_cast<std::int32_t>(idx_[static_cast<std::size_t>(i)]);
    }
    return static_cast<std::int32_t>(idx_[static_cast<std::size_t>(n - 1)]);
  }

 private:
  sampling_params p_;
  std::mt19937_64 rng_;
  std::vector<dsk::index_t> idx_;
};

}  // namespace dsk_v2
