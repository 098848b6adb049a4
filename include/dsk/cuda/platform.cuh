// Where dsk's CUDA code runs: natively under nvcc (the CUDA runtime, cuda_fp16/cuda_bf16), or on the CPU
// under the SIMT emulation (dsk/cuda/simt.hpp) when a host compiler sees the same sources. Defines the macros
// that kernel sources use for shared memory so that the emulation can check them. Checked in tests/simt and
// tests/cuda.
#pragma once

#include <type_traits>

#include "dsk/core/config.hpp"

#if defined(__CUDACC__)
#define DSK_SIMT_EMULATION 0
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#else
#define DSK_SIMT_EMULATION 1
#include "dsk/cuda/simt.hpp"
#endif

// Definitions that differ between the two modes carry the mode in an inline namespace, so that an emulated TU
// and an nvcc TU linked into one program never share (ODR-merge) a definition. Use inside dsk::device and the
// families' CUDA namespaces.
#if DSK_SIMT_EMULATION
#define DSK_CUDA_MODE_BEGIN inline namespace simt_emu {
#else
#define DSK_CUDA_MODE_BEGIN inline namespace native {
#endif
#define DSK_CUDA_MODE_END }

// Device-side helpers callable from kernels and from host code of the emulation.
#if DSK_SIMT_EMULATION
#define DSK_DEVICE inline
#define DSK_DEVICE_INLINE inline __attribute__((always_inline))
#else
#define DSK_DEVICE __device__ inline
#define DSK_DEVICE_INLINE __device__ __forceinline__
#endif

// Loop unrolling hint for kernels (nvcc's #pragma unroll; nothing under the emulation).
#if DSK_SIMT_EMULATION
#define DSK_UNROLL
#else
#define DSK_UNROLL _Pragma("unroll")
#endif

// A statically sized shared array: DSK_SHARED(float[32][33], tile). Natively a __shared__ array; under the
// emulation's checked mode a bounds-checked array poisoned at every block start (uninitialised reads give NaN
// / -1).
#if !DSK_SIMT_EMULATION
#define DSK_SHARED(type, name) __shared__ __align__(16) std::type_identity_t<type> name
#elif DSK_SIMT_CHECKED
#define DSK_SHARED(type, name) static thread_local ::dsk::simt::shared<type> name(#name)
#else
#define DSK_SHARED(type, name) alignas(16) static thread_local std::type_identity_t<type> name
#endif

// The block's dynamic shared memory (the launch's shared_bytes) as T*, from byte `offset` (a multiple of
// alignof(T)): DSK_DYNAMIC_SHARED(float, buf, 0). Under the emulation's checked mode, a bounds-checked
// pointer.
#if !DSK_SIMT_EMULATION
#define DSK_DYNAMIC_SHARED(T, name, offset)                          \
  extern __shared__ __align__(16) unsigned char dsk_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(dsk_dynamic_smem_ + (offset))
#else
#define DSK_DYNAMIC_SHARED(T, name, offset) auto name = ::dsk::simt::dynamic_shared<T>(#name, (offset))
#endif
