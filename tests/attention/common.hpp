// Helpers shared by the attention tests: random tensors and comparisons of a float result with a double
// oracle.
#pragma once

#include <array>
#include <cmath>
#include <span>

#include "dsk/core/tensor.hpp"
#include "support/compare.hpp"

namespace dsk::test {

template <std::size_t R>
dsk::tensor<float, R> random_tensor(std::array<index_t, R> shape, std::uint64_t seed, float lo = -1.0f,
                                    float hi = 1.0f) {
  dsk::tensor<float, R> t(shape);
  auto g = rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (float& x : t.span()) x = d(g);
  return t;
}

template <class A, std::size_t R>
double nmse_of(const dsk::tensor<double, R>& want, const dsk::tensor<A, R>& got) {
  return nmse(std::span<const double>(want.span()), std::span<const A>(got.span()));
}

// fp32 accumulation over <= 600 keys plus a polynomial exp (~2 ulp) gives relative errors ~1e-6, an NMSE
// ~1e-12; an indexing or masking bug gives NMSE ~1e-2 or more.
inline constexpr double attention_nmse = 1e-9;
// ln of a sum of <= 600 terms in fp32: absolute error ~1e-6 per unit of magnitude.
inline constexpr double lse_abs = 1e-4;

template <std::size_t R>
bool bit_equal(const dsk::tensor<float, R>& a, const dsk::tensor<float, R>& b) {
  if (a.shape() != b.shape()) return false;
  for (index_t i = 0; i < a.size(); ++i) {
    const float x = a.data()[i], y = b.data()[i];
    if (!(x == y || (std::isnan(x) && std::isnan(y)))) return false;
  }
  return true;
}

}  // namespace dsk::test
