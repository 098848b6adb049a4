// Comparison helpers shared by the tests: NMSE (mse(a, b) / mse(a, 0), llama.cpp's test-backend-ops measure)
// and max-abs error, computed in double, plus a deterministic random generator.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace dsk::test {

// Normalised mean squared error of `got` against the reference `want`; 0 when both are all zero.
template <class A, class B>
double nmse(std::span<const A> want, std::span<const B> got) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double w = static_cast<double>(want[i]), g = static_cast<double>(got[i]);
    num += (w - g) * (w - g);
    den += w * w;
  }
  return den == 0 ? num : num / den;
}

template <class A, class B>
double max_abs_diff(std::span<const A> want, std::span<const B> got) {
  double m = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    m = std::max(m, std::abs(static_cast<double>(want[i]) - static_cast<double>(got[i])));
  return m;
}

// Deterministic per-test generator (the seed is part of the test, not of the run).
inline std::mt19937_64 rng(std::uint64_t seed) { return std::mt19937_64(seed); }

inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  auto g = rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace dsk::test
