// Scalar references of the nn layers, written from the formulas in double: RMSNorm, softmax / log-softmax,
// argmax, embedding, RoPE with YaRN (DeepSeek-V2's modeling_deepseek.py). The oracle of tests/nn; shares no
// code with the layers. Host only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <vector>

#include "dsk/core/dtype.hpp"
#include "dsk/core/view.hpp"

namespace dsk::nn::ref {

// y = w * x / sqrt(mean(x^2) + eps), row by row.
template <class W>
void rmsnorm(view<const float, 2> x, view<const W, 1> w, double eps, view<double, 2> y) {
  for (index_t r = 0; r < x.extent(0); ++r) {
    double ss = 0;
    for (index_t i = 0; i < x.extent(1); ++i) ss += double(x(r, i)) * double(x(r, i));
    const double inv = 1.0 / std::sqrt(ss / double(x.extent(1)) + eps);
    for (index_t i = 0; i < x.extent(1); ++i) y(r, i) = double(to_float(w(i))) * double(x(r, i)) * inv;
  }
}

// softmax / log-softmax of each row in double; an all -inf row gives 0 / -inf.
inline void softmax(view<const float, 2> x, view<double, 2> y, bool log) {
  for (index_t r = 0; r < x.extent(0); ++r) {
    double mx = -std::numeric_limits<double>::infinity();
    for (index_t i = 0; i < x.extent(1); ++i) mx = std::max(mx, double(x(r, i)));
    if (mx == -std::numeric_limits<double>::infinity()) {
      for (index_t i = 0; i < x.extent(1); ++i) y(r, i) = log ? mx : 0.0;
      continue;
    }
    double s = 0;
    for (index_t i = 0; i < x.extent(1); ++i) s += std::exp(double(x(r, i)) - mx);
    for (index_t i = 0; i < x.extent(1); ++i)
      y(r, i) = log ? double(x(r, i)) - mx - std::log(s) : std::exp(double(x(r, i)) - mx) / s;
  }
}

// First index of the maximum; the first NaN wins.
inline index_t argmax(const float* x, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (std::isnan(x[i])) return i;
  index_t best = 0;
  for (index_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// YaRN inv_freq straight from the formulas of the DeepSeek-V2 reference (dim, base, factor, original max
// position, beta_fast, beta_slow), in double.
inline std::vector<double> yarn_inv_freq(int dim, double base, double factor, double orig_max,
                                         double beta_fast, double beta_slow) {
  auto corr = [&](double rot) {
    return dim * std::log(orig_max / (rot * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  double low = std::max(std::floor(corr(beta_fast)), 0.0),
         high = std::min(std::ceil(corr(beta_slow)), dim - 1.0);
  if (low == high) high += 0.001;
  std::vector<double> f(static_cast<std::size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) {
    const double extra = 1.0 / std::pow(base, 2.0 * i / dim), inter = extra / factor;
    const double mask = 1.0 - std::clamp((i - low) / (high - low), 0.0, 1.0);
    f[static_cast<std::size_t>(i)] = factor > 1.0 ? inter * (1 - mask) + extra * mask : extra;
  }
  return f;
}

// Rotates one head v[dim] at position pos by angles pos * inv_freq[i], scaled by cs_scale; pairs as in
// nn::rope_layout (interleaved: (2i, 2i+1); else (i, i + dim/2)).
inline void rope(std::vector<double>& v, double pos, const std::vector<double>& inv_freq, bool interleaved,
                 double cs_scale) {
  const std::size_t half = v.size() / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const std::size_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
    const double c = std::cos(pos * inv_freq[i]) * cs_scale, s = std::sin(pos * inv_freq[i]) * cs_scale;
    const double x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

}  // namespace dsk::nn::ref
