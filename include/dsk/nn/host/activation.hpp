// The library's one SiLU and one sigmoid, as packet functions on the layer S (simd::scalar mirrors avx2 and
// neon bit for bit) and as single-float twins whose result equals one lane of the packet form. gemm, moe and
// attention kernels call these; nn's elementwise ops (nn/elementwise.hpp) are built on them. Host only;
// checked against the double formulas in tests/nn/elementwise.cpp.
#pragma once

#include "dsk/core/config.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::nn::packet {
DSK_ISA_BEGIN

// silu(g) = g * sigmoid(g) = g / (1 + e^-g) (Elfwing et al. 2017; Hendrycks & Gimpel's SiLU), one division.
template <class S>
DSK_ALWAYS_INLINE typename S::f32 silu(typename S::f32 g) {
  const auto one = S::broadcast(1.0f);
  return S::div(g, S::add(one, S::exp(S::sub(S::zero(), g))));
}

// sigmoid(x) = 1 / (1 + e^-x).
template <class S>
DSK_ALWAYS_INLINE typename S::f32 sigmoid(typename S::f32 x) {
  const auto one = S::broadcast(1.0f);
  return S::div(one, S::add(one, S::exp(S::sub(S::zero(), x))));
}

// Rows of n floats (any n >= 0; the tail is a partial packet). y may equal x (or g, u).
template <class S>
void silu_row(const float* x, index_t n, float* y) {
  index_t i = 0;
  for (; i + S::width <= n; i += S::width) S::store(y + i, silu<S>(S::load(x + i)));
  if (i < n) {
    const int t = static_cast<int>(n - i);
    S::store_partial(y + i, silu<S>(S::load_partial(x + i, t)), t);
  }
}
template <class S>
void sigmoid_row(const float* x, index_t n, float* y) {
  index_t i = 0;
  for (; i + S::width <= n; i += S::width) S::store(y + i, sigmoid<S>(S::load(x + i)));
  if (i < n) {
    const int t = static_cast<int>(n - i);
    S::store_partial(y + i, sigmoid<S>(S::load_partial(x + i, t)), t);
  }
}
// y = silu(g) * u.
template <class S>
void swiglu_row(const float* g, const float* u, index_t n, float* y) {
  index_t i = 0;
  for (; i + S::width <= n; i += S::width) S::store(y + i, S::mul(silu<S>(S::load(g + i)), S::load(u + i)));
  if (i < n) {
    const int t = static_cast<int>(n - i);
    S::store_partial(y + i, S::mul(silu<S>(S::load_partial(g + i, t)), S::load_partial(u + i, t)), t);
  }
}

// One float: the same operation sequence as one lane of silu<S> / sigmoid<S> (simd::scalar::exp1 is the lane
// function of every layer's exp), so a kernel may finish a tail with these and stay bit-identical. In the ISA
// namespace too: exp1's std::fma compiles to an FMA instruction under -mfma.
inline float silu1(float g) { return g / (1.0f + simd::scalar::exp1(-g)); }
inline float sigmoid1(float x) { return 1.0f / (1.0f + simd::scalar::exp1(-x)); }

DSK_ISA_END

}  // namespace dsk::nn::packet
