// Conversions between dsk's storage types (float, bf16, f16) and float inside kernels: hardware conversions
// natively (cuda_fp16/cuda_bf16, round to nearest even), dsk's constexpr conversions under the emulation.
// Same bits for every finite value. Checked through the kernels' tests (tests/simt, tests/cuda).
#pragma once

#include "dsk/core/dtype.hpp"
#include "dsk/cuda/platform.cuh"

namespace dsk::device {
DSK_CUDA_MODE_BEGIN

DSK_DEVICE_INLINE float to_f32(float v) { return v; }
DSK_DEVICE_INLINE float to_f32(dsk::bf16 v) { return __uint_as_float(static_cast<unsigned>(v.bits) << 16); }
DSK_DEVICE_INLINE float to_f32(dsk::f16 v) {
#if DSK_SIMT_EMULATION
  return static_cast<float>(v);
#else
  return __half2float(__ushort_as_half(v.bits));
#endif
}

template <class T>
DSK_DEVICE_INLINE T from_f32(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else if constexpr (std::is_same_v<T, dsk::bf16>) {
#if DSK_SIMT_EMULATION
    return dsk::bf16(v);
#else
    return dsk::bf16::from_bits(__bfloat16_as_ushort(__float2bfloat16_rn(v)));
#endif
  } else {
    static_assert(std::is_same_v<T, dsk::f16>, "from_f32: float, bf16 or f16 only");
#if DSK_SIMT_EMULATION
    return dsk::f16(v);
#else
    return dsk::f16::from_bits(__half_as_ushort(__float2half_rn(v)));
#endif
  }
}

DSK_CUDA_MODE_END
}  // namespace dsk::device
