// Warp and block reductions shared by dsk's CUDA kernels (sum and max over float), written with the sync-mask
// intrinsics so that they run natively and under the SIMT emulation. Checked in tests/simt/simt.cpp.
#pragma once

#include "dsk/cuda/platform.cuh"

namespace dsk::device {
DSK_CUDA_MODE_BEGIN

// Butterfly reduction over a full warp: every lane gets the result. All 32 lanes must call it.
DSK_DEVICE_INLINE float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
DSK_DEVICE_INLINE float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

namespace detail {
template <bool Max>
DSK_DEVICE float block_reduce(float v) {
  DSK_SHARED(float[32], partial);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const unsigned warps = (blockDim.x + 31u) >> 5;
  v = Max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // an earlier call may still be reading partial[0]
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? partial[lane] : (Max ? -INFINITY : 0.0f);
    v = Max ? warp_max(v) : warp_sum(v);
    if (lane == 0) partial[0] = v;
  }
  __syncthreads();
  return partial[0];
}
}  // namespace detail

// Sum / max over a one-dimensional block whose size is a multiple of 32 (at most 1024); every thread must
// call it and every thread gets the result. Contains __syncthreads.
DSK_DEVICE float block_sum(float v) { return detail::block_reduce<false>(v); }
DSK_DEVICE float block_max(float v) { return detail::block_reduce<true>(v); }

DSK_CUDA_MODE_END
}  // namespace dsk::device
