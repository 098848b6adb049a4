// The packet layer: dsk::simd::scalar always, dsk::simd::avx2 when the TU targets AVX2+FMA+F16C,
// dsk::simd::neon on AArch64, and dsk::simd::native = the best of those compiled in. Kernels are templates on
// the packet type (template <class S> ... S::fma(...)), so each ISA instantiates differently-named code.
#pragma once

#include <concepts>

#include "dsk/core/config.hpp"
#include "dsk/simd/avx2.hpp"
#include "dsk/simd/neon.hpp"
#include "dsk/simd/scalar.hpp"

namespace dsk::simd {
DSK_ISA_BEGIN
#if defined(DSK_HOST_ISA_AVX2)
using native = avx2;
#elif defined(DSK_HOST_ISA_NEON)
using native = neon;
#else
using native = scalar;
#endif
DSK_ISA_END

// Packet types that implement the interface kernels rely on.
template <class S>
concept packet_isa = requires(const float* p, float* q, int n, typename S::f32 a) {
  { S::width } -> std::convertible_to<int>;
  { S::load(p) } -> std::same_as<typename S::f32>;
  { S::load_partial(p, n) } -> std::same_as<typename S::f32>;
  S::store(q, a);
  { S::fma(a, a, a) } -> std::same_as<typename S::f32>;
  { S::reduce_add(a) } -> std::convertible_to<float>;
};
static_assert(packet_isa<scalar>);
static_assert(packet_isa<native>);
}  // namespace dsk::simd
