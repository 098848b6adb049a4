// One lane of dsk's exp: the operation sequence that every packet layer's exp follows (simd::scalar::exp
// calls it per lane, avx2 and neon mirror it instruction by instruction) and that CUDA kernels call on the
// device, so host and device scores agree bit for bit (the MoE router). Callable from host code and, under
// nvcc, from device code. Checked in tests/simd (every layer against scalar) and tests/simt/moe_router.cpp.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "dsk/core/config.hpp"

#if defined(__CUDACC__)
#define DSK_LANE_FN __host__ __device__ inline
#else
#define DSK_LANE_FN inline
#endif

namespace dsk::simd {
DSK_ISA_BEGIN

namespace lane {
// Round to nearest, ties to even (the vector code's round under the default rounding mode).
#if defined(__CUDA_ARCH__)
DSK_LANE_FN float round_even(float x) { return rintf(x); }
DSK_LANE_FN float from_bits(std::uint32_t u) { return __uint_as_float(u); }
#else
DSK_LANE_FN float round_even(float x) { return std::nearbyint(x); }
DSK_LANE_FN float from_bits(std::uint32_t u) { return std::bit_cast<float>(u); }
#endif
}  // namespace lane

// e^x with explicit fma, so that vector code can mirror it (Cody-Waite reduction, degree-6 polynomial).
DSK_LANE_FN float exp_lane(float x) {
  if (x != x) return x;  // NaN
  if (x > 88.7228394f) return INFINITY;
  if (x < -87.3365479f) return 0.0f;
  const float n = lane::round_even(x * 1.44269504088896341f);
  float r = fmaf(n, -0.693359375f, x);  // Cody-Waite: ln2 split into a short high part and a correction
  r = fmaf(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = fmaf(p, r * r, r);
  p = p + 1.0f;
  // Scale by 2^n in two steps so that n = 128 (x near the top of the range) does not overflow the exponent.
  const int ni = static_cast<int>(n);
  const int n1 = ni >> 1, n2 = ni - n1;  // floor split, as the vector code's arithmetic shift
  return p * lane::from_bits(static_cast<std::uint32_t>(n1 + 127) << 23) *
         lane::from_bits(static_cast<std::uint32_t>(n2 + 127) << 23);
}

DSK_ISA_END
}  // namespace dsk::simd
