// Row-wise host kernels of nn: RMSNorm, softmax / log-softmax, as templates on the packet layer S
// (simd::scalar mirrors simd::avx2 bit for bit); the library's one row softmax (the MoE router calls it).
// Checked against nn/ref.hpp in tests/nn/{rmsnorm,softmax,argmax}.cpp.
#pragma once

#include <cmath>
#include <limits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::nn::packet {
DSK_ISA_BEGIN

template <class S>
DSK_ALWAYS_INLINE int tail(index_t n, index_t i) {
  return static_cast<int>(n - i < S::width ? n - i : S::width);
}

// Sum of squares with two accumulators (latency) then the fixed packet reduction.
template <class S>
float sum_squares(const float* x, index_t n) {
  using V = typename S::f32;
  V a = S::zero(), b = S::zero();
  index_t i = 0;
  for (; i + 2 * S::width <= n; i += 2 * S::width) {
    const V u = S::load(x + i), v = S::load(x + i + S::width);
    a = S::fma(u, u, a), b = S::fma(v, v, b);
  }
  for (; i < n; i += S::width) {
    const V u = S::load_partial(x + i, tail<S>(n, i));
    a = S::fma(u, u, a);
  }
  return S::reduce_add(S::add(a, b));
}

// y = w * (x * rsqrt(mean(x^2) + eps)) for one row; y may equal x.
template <class S, class W>
void rmsnorm_row(const float* x, const W* w, index_t n, float eps, float* y) {
  using V = typename S::f32;
  const float r = 1.0f / std::sqrt(sum_squares<S>(x, n) / static_cast<float>(n) + eps);
  const V rv = S::broadcast(r);
  for (index_t i = 0; i < n; i += S::width) {
    const int t = tail<S>(n, i);
    S::store_partial(y + i, S::mul(S::load_partial(w + i, t), S::mul(S::load_partial(x + i, t), rv)), t);
  }
}

// max over a row (NaN-propagating: any NaN lane makes the result NaN).
template <class S>
float row_max(const float* x, index_t n) {
  using V = typename S::f32;
  V m = S::broadcast(-std::numeric_limits<float>::infinity());
  bool nan = false;
  for (index_t i = 0; i < n; i += S::width) {
    const int t = tail<S>(n, i);
    const V v = S::load_partial(x + i, t);
    // max(v, m) returns m when v is NaN: track NaN separately so it reaches the result. v - v is 0 for finite
    // lanes (and the zeroed tail) and NaN for NaN or +-inf; only then look at the lanes one by one.
    if (S::reduce_add(S::sub(v, v)) != 0.0f)
      for (int j = 0; j < t; ++j) nan = nan || std::isnan(x[i + j]);
    V vm = v;
    if (t < S::width) {
      alignas(32) float buf[S::width];
      S::store(buf, v);
      for (int j = t; j < S::width; ++j) buf[j] = -std::numeric_limits<float>::infinity();
      vm = S::load(buf);
    }
    m = S::max(vm, m);
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : S::reduce_max(m);
}

// y = exp(x - max) / sum, or (log) y = x - max - log(sum). A row of -inf gives zeros (softmax) / -inf (log).
template <class S, bool Log>
void softmax_row(const float* x, index_t n, float* y) {
  using V = typename S::f32;
  const float mx = row_max<S>(x, n);
  if (mx == -std::numeric_limits<float>::infinity()) {
    for (index_t i = 0; i < n; ++i) y[i] = Log ? -std::numeric_limits<float>::infinity() : 0.0f;
    return;
  }
  const V mv = S::broadcast(mx);
  V s = S::zero();
  for (index_t i = 0; i < n; i += S::width) {
    const int t = tail<S>(n, i);
    V e = S::exp(S::sub(S::load_partial(x + i, t), mv));
    if (t < S::width) {
      alignas(32) float buf[S::width];
      S::store(buf, e);
      for (int j = t; j < S::width; ++j) buf[j] = 0.0f;
      e = S::load(buf);
    }
    s = S::add(s, e);
    if constexpr (!Log) S::store_partial(y + i, e, t);
  }
  const float sum = S::reduce_add(s);
  if constexpr (Log) {
    const V off = S::broadcast(mx + std::log(sum));
    for (index_t i = 0; i < n; i += S::width) {
      const int t = tail<S>(n, i);
      S::store_partial(y + i, S::sub(S::load_partial(x + i, t), off), t);
    }
  } else {
    const V inv = S::broadcast(1.0f / sum);
    for (index_t i = 0; i < n; i += S::width) {
      const int t = tail<S>(n, i);
      S::store_partial(y + i, S::mul(S::load_partial(y + i, t), inv), t);
    }
  }
}

DSK_ISA_END
}  // namespace dsk::nn::packet
