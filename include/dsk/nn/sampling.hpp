// Token sampling from logits: repetition penalty (Keskar et al. 2019, CTRL), temperature, top-k, top-p
// (nucleus; Holtzman et al. 2019) and min-p (Nguyen et al. 2024), in that order as Hugging Face transformers
// applies them, greedy (argmax) at temperature 0; drawn from a seeded, portable generator (xoshiro256**).
// Host, scalar (double). Checked by chi-square tests of seeded draws against the exact renormalised
// probabilities in tests/nn/sampling.cpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"

namespace dsk::nn {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

// xoshiro256** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro256starstar.c), its state filled by
// four outputs of splitmix64 from the seed (as the authors recommend). The same seed gives the same stream on
// every platform and compiler (unlike std::uniform_real_distribution, whose output is
// implementation-defined).
class rng {
 public:
  explicit rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ull;  // splitmix64
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      w = z ^ (z >> 31);
    }
  }
  // The next 64 random bits.
  std::uint64_t next() {
    const std::uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  // Uniform in [0, 1): the top 53 bits of next() times 2^-53.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  const std::array<std::uint64_t, 4>& state() const { return s_; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

// Runtime sampling options (a runner's command-line flags). Each filter keeps at least the most likely token.
struct sampling_options {
  double temperature = 1.0;         // >= 0; 0: greedy (argmax of the penalised logits)
  index_t top_k = 0;                // >= 0; 0: no limit; else the k largest logits (ties: lower id first)
  double top_p = 1.0;               // (0, 1]; the shortest most-likely-first prefix with probability >= top_p
  double min_p = 0.0;               // [0, 1]; drop tokens with probability < min_p * (largest probability)
  double repetition_penalty = 1.0;  // > 0; 1: off; each distinct id in history: logit > 0 ? / p : * p
};

// Draws one token id from logits [vocab] (f32) under o, consuming exactly one g.next() unless greedy.
// history: previously generated (or prompt) ids that the repetition penalty applies to, each in [0, vocab).
// Steps: z = penalised logits; greedy if o.temperature == 0; else z /= temperature, candidates sorted by z
// (descending, lower id first on ties), top_k prefix, p = softmax over the candidates, shortest prefix with
// sum >= top_p, then p >= min_p * max p; the draw is inverse-CDF over the kept candidates in that order.
// Errors (dsk::error): empty logits, NaN or +inf logits, every logit -inf, temperature < 0 or NaN, top_k < 0,
// top_p outside (0, 1], min_p outside [0, 1], repetition_penalty <= 0, history ids outside [0, vocab).
inline index_t sample(view<const float, 1> logits, const sampling_options& o, rng& g,
                      std::span<const std::int32_t> history = {}) {
  const contract c{"nn::sample"};
  const index_t V = logits.extent(0);
  c.require(V >= 1, "logits", "at least one logit", V);
  c.require(o.temperature >= 0.0 && std::isfinite(o.temperature), "temperature", "a finite value >= 0",
            o.temperature);
  c.require(o.top_k >= 0, "top_k", ">= 0 (0: no limit)", o.top_k);
  c.require(o.top_p > 0.0 && o.top_p <= 1.0, "top_p", "in (0, 1]", o.top_p);
  c.require(o.min_p >= 0.0 && o.min_p <= 1.0, "min_p", "in [0, 1]", o.min_p);
  c.require(o.repetition_penalty > 0.0 && std::isfinite(o.repetition_penalty), "repetition_penalty",
            "a finite value > 0 (1: off)", o.repetition_penalty);
  constexpr double neg_inf = -std::numeric_limits<double>::infinity();
  std::vector<double> z(static_cast<std::size_t>(V));
  for (index_t i = 0; i < V; ++i) {
    const float v = logits(i);
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
      fail("nn::sample: argument 'logits': expected finite values or -inf, got ", v, " at index ", i);
    z[static_cast<std::size_t>(i)] = v;
  }
  if (o.repetition_penalty != 1.0 && !history.empty()) {
    std::vector<bool> seen(static_cast<std::size_t>(V), false);
    for (std::size_t t = 0; t < history.size(); ++t) {
      const std::int32_t id = history[t];
      if (id < 0 || id >= V)
        fail("nn::sample: argument 'history': history[", t, "] = ", id, " is outside [0, ", V, ")");
      if (seen[static_cast<std::size_t>(id)]) continue;
      seen[static_cast<std::size_t>(id)] = true;
      double& v = z[static_cast<std::size_t>(id)];
      v = v > 0.0 ? v / o.repetition_penalty : v * o.repetition_penalty;
    }
  }
  const auto best = static_cast<index_t>(std::max_element(z.begin(), z.end()) - z.begin());  // first maximum
  if (z[static_cast<std::size_t>(best)] == neg_inf)
    fail("nn::sample: argument 'logits': every logit is -inf (no token can be drawn)");
  if (o.temperature == 0.0) return best;

  std::vector<index_t> cand;
  cand.reserve(static_cast<std::size_t>(V));
  for (index_t i = 0; i < V; ++i)
    if (z[static_cast<std::size_t>(i)] != neg_inf) cand.push_back(i);
  for (double& v : z) v /= o.temperature;
  auto before = [&](index_t a, index_t b) {
    const double za = z[static_cast<std::size_t>(a)], zb = z[static_cast<std::size_t>(b)];
    return za > zb || (za == zb && a < b);
  };
  std::size_t n = cand.size();
  if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < n) n = static_cast<std::size_t>(o.top_k);
  const bool ordered = n < cand.size() || o.top_p < 1.0;
  if (ordered) {
    std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(n), cand.end(), before);
    cand.resize(n);
  }
  const double zmax = z[static_cast<std::size_t>(best)];
  // Unnormalised probabilities exp(z - max): the largest is 1.
  std::vector<double> p(n);
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += (p[i] = std::exp(z[static_cast<std::size_t>(cand[i])] - zmax));
  if (o.top_p < 1.0) {
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i)
      if ((acc += p[i]) >= o.top_p * sum) {
        n = i + 1;
        break;
      }
  }
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] < o.min_p) p[i] = 0.0;  // p is relative to the largest probability
    total += p[i];
  }
  const double u = g.uniform() * total;
  double acc = 0.0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] == 0.0) continue;
    last = i;
    if (u < (acc += p[i])) return cand[i];
  }
  return cand[last];  // u rounded up to total
}

// A sampler that owns its options and generator (the state of one generation stream).
class sampler {
 public:
  explicit sampler(sampling_options o = {}, std::uint64_t seed = 0) : o_(o), g_(seed) {}

  // The next token from logits [vocab].
  index_t sample(view<const float, 1> logits, std::span<const std::int32_t> history = {}) {
    return nn::sample(logits, o_, g_, history);
  }
  // The next token from the last row of logits [rows, vocab] (a prefill's or a decode step's output).
  index_t sample(view<const float, 2> logits, std::span<const std::int32_t> history = {}) {
    const contract c{"nn::sampler::sample"};
    c.require(logits.extent(0) >= 1, "logits", "at least one row", logits.extent(0));
    const index_t r = logits.extent(0) - 1;
    return nn::sample(view<const float, 1>(logits.data() + r * logits.stride(0), dims<1>(logits.extent(1)),
                                           {logits.stride(1)}),
                      o_, g_, history);
  }
  const sampling_options& options() const { return o_; }
  rng& generator() { return g_; }

 private:
  sampling_options o_;
  rng g_;
};

DSK_ISA_END
}  // namespace dsk::nn
