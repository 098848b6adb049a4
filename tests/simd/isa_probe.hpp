// A tiny kernel written against the packet interface, instantiated from TUs built for different ISAs.
#pragma once

#include <string_view>

#include "dsk/simd/simd.hpp"

namespace dsk::test {
DSK_ISA_BEGIN

template <class S>
float dot(const float* a, const float* b, int n) {
  auto acc = S::zero();
  int i = 0;
  for (; i + S::width <= n; i += S::width) acc = S::fma(S::load(a + i), S::load(b + i), acc);
  acc = S::fma(S::load_partial(a + i, n - i), S::load_partial(b + i, n - i), acc);
  return S::reduce_add(acc);
}

// Which packet layer `native` is in the calling TU, and a dot product computed with it.
inline std::string_view native_name() { return simd::native::name; }
inline float native_dot(const float* a, const float* b, int n) { return dot<simd::native>(a, b, n); }

DSK_ISA_END

// Defined in isa_mix_scalar.cpp, which is compiled for baseline x86-64 (no AVX2).
std::string_view baseline_tu_native_name();
float baseline_tu_native_dot(const float* a, const float* b, int n);
}  // namespace dsk::test
