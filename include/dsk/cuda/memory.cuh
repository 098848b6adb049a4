// Device memory: RAII device buffers, pinned host buffers, owning device tensors that hand out the core view
// types (dsk::view over device memory), and copies between host and device. Natively
// cudaMalloc/cudaMemcpyAsync; under the SIMT emulation "device" memory is ordinary host memory and copies are
// memcpy. Checked in tests/simt/runtime.cpp (emulation) and tests/cuda/runtime.cu (native).
#pragma once

#include <array>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "dsk/core/error.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda/error.cuh"
#include "dsk/cuda/platform.cuh"
#include "dsk/cuda/stream.cuh"

namespace dsk::device {
DSK_CUDA_MODE_BEGIN

namespace detail {
inline std::size_t checked_bytes(index_t count, std::size_t elem, const char* who) {
  if (count < 0) fail(who, ": argument 'count': expected >= 0, got ", count);
  if (static_cast<std::uint64_t>(count) > std::numeric_limits<std::size_t>::max() / elem)
    fail(who, ": argument 'count': ", count, " elements overflow the address space");
  return static_cast<std::size_t>(count) * elem;
}
}  // namespace detail

// `count` uninitialised elements of trivially copyable T in device global memory. Move-only.
template <class T>
class buffer {
  static_assert(std::is_trivially_copyable_v<T>, "dsk::device::buffer holds trivially copyable types only");

 public:
  buffer() = default;
  explicit buffer(index_t count) : size_(count) {
    const std::size_t bytes = detail::checked_bytes(count, sizeof(T), "dsk::device::buffer");
    if (bytes == 0) return;
#if !DSK_SIMT_EMULATION
    void* p = nullptr;
    check(cudaMalloc(&p, bytes), dsk::detail::concat("cudaMalloc(", bytes, " bytes)").c_str());
    p_ = static_cast<T*>(p);
#else
    p_ = static_cast<T*>(::operator new (bytes, std::align_val_t{256}));
#endif
  }
  buffer(buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() { release(); }

  T* data() const { return p_; }
  index_t size() const { return size_; }
  std::size_t bytes() const { return static_cast<std::size_t>(size_) * sizeof(T); }

 private:
  void release() noexcept {
    if (!p_) return;
#if !DSK_SIMT_EMULATION
    cudaFree(p_);
#else
    ::operator delete (p_, std::align_val_t{256});
#endif
    p_ = nullptr;
  }
  T* p_ = nullptr;
  index_t size_ = 0;
};

// Page-locked host memory: asynchronous copies from/to it overlap with kernels. Move-only.
template <class T>
class pinned_buffer {
  static_assert(std::is_trivially_copyable_v<T>,
                "dsk::device::pinned_buffer holds trivially copyable types only");

 public:
  pinned_buffer() = default;
  explicit pinned_buffer(index_t count) : size_(count) {
    const std::size_t bytes = detail::checked_bytes(count, sizeof(T), "dsk::device::pinned_buffer");
    if (bytes == 0) return;
#if !DSK_SIMT_EMULATION
    void* p = nullptr;
    check(cudaMallocHost(&p, bytes), dsk::detail::concat("cudaMallocHost(", bytes, " bytes)").c_str());
    p_ = static_cast<T*>(p);
#else
    p_ = static_cast<T*>(::operator new (bytes, std::align_val_t{256}));
#endif
  }
  pinned_buffer(pinned_buffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  pinned_buffer& operator=(pinned_buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  ~pinned_buffer() { release(); }

  T* data() const { return p_; }
  index_t size() const { return size_; }
  T& operator[](index_t i) const { return p_[i]; }

 private:
  void release() noexcept {
    if (!p_) return;
#if !DSK_SIMT_EMULATION
    cudaFreeHost(p_);
#else
    ::operator delete (p_, std::align_val_t{256});
#endif
    p_ = nullptr;
  }
  T* p_ = nullptr;
  index_t size_ = 0;
};

// Direction of a copy.
enum class copy_kind { host_to_device, device_to_host, device_to_device };

// Copies `count` elements; asynchronous on `s` natively (host memory must stay alive until s is synchronised;
// it is only truly asynchronous when the host side is pinned).
template <class T>
void copy(T* dst, const T* src, index_t count, copy_kind kind, const stream& s) {
  const std::size_t bytes = detail::checked_bytes(count, sizeof(T), "dsk::device::copy");
  if (bytes == 0) return;
#if !DSK_SIMT_EMULATION
  const cudaMemcpyKind k = kind == copy_kind::host_to_device   ? cudaMemcpyHostToDevice
                           : kind == copy_kind::device_to_host ? cudaMemcpyDeviceToHost
                                                               : cudaMemcpyDeviceToDevice;
  check(cudaMemcpyAsync(dst, src, bytes, k, s.get()),
        dsk::detail::concat("cudaMemcpyAsync(", bytes, " bytes)").c_str());
#else
  (void)kind;
  (void)s;
  // checked_bytes bounds it already; said again here so that GCC 12 (AArch64, -O3) sees the range and does not
  // report a false -Wstringop-overflow for "sizes above PTRDIFF_MAX".
  if (bytes > static_cast<std::size_t>(PTRDIFF_MAX)) fail("dsk::device::copy: argument 'count': too large");
  std::memmove(static_cast<void*>(dst), static_cast<const void*>(src), bytes);
#endif
}

// Rank-2 strided copy (rows may be padded on either side); extents must match, inner strides must be 1.
template <class T, class L1, class E1, class L2, class E2>
void copy(const mdview<T, E1, L1>& dst, const mdview<const T, E2, L2>& src, copy_kind kind, const stream& s) {
  static_assert(E1::rank() == 2 && E2::rank() == 2, "dsk::device::copy of views: rank-2 views only");
  contract c{"dsk::device::copy"};
  c.extent("dst", dst, 0, src.extent(0), "src.extent(0)")
      .extent("dst", dst, 1, src.extent(1), "src.extent(1)");
  c.unit_inner_stride("dst", dst).unit_inner_stride("src", src);
  if (dst.size() == 0) return;
  const std::size_t width = static_cast<std::size_t>(src.extent(1)) * sizeof(T);
#if !DSK_SIMT_EMULATION
  const cudaMemcpyKind k = kind == copy_kind::host_to_device   ? cudaMemcpyHostToDevice
                           : kind == copy_kind::device_to_host ? cudaMemcpyDeviceToHost
                                                               : cudaMemcpyDeviceToDevice;
  DSK_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), static_cast<std::size_t>(dst.stride(0)) * sizeof(T),
                                   src.data(), static_cast<std::size_t>(src.stride(0)) * sizeof(T), width,
                                   static_cast<std::size_t>(src.extent(0)), k, s.get()));
#else
  (void)kind;
  (void)s;
  for (index_t i = 0; i < src.extent(0); ++i)
    std::memmove(static_cast<void*>(dst.data() + i * dst.stride(0)),
                 static_cast<const void*>(src.data() + i * src.stride(0)), width);
#endif
}

// An owning row-major tensor in device memory. Its views (dsk::view / dsk::dense_view) point to device
// memory: pass them to dsk::cuda kernels, never dereference them on the host (except under the emulation).
template <class T, std::size_t R>
class tensor {
  static_assert(R >= 1, "dsk::device::tensor needs rank >= 1");

 public:
  using value_type = T;
  tensor() = default;
  explicit tensor(const std::array<index_t, R>& shape) : ext_(shape), buf_(ext_.size()) {}
  template <std::integral... I>
  requires(sizeof...(I) == R) explicit tensor(I... shape)
      : tensor(std::array<index_t, R>{static_cast<index_t>(shape)...}) {}

  T* data() const { return buf_.data(); }
  index_t size() const { return ext_.size(); }
  index_t extent(std::size_t r) const { return ext_.extent(r); }
  std::array<index_t, R> shape() const { return ext_.values(); }

  dense_view<T, R> dense() const { return {data(), ext_}; }
  dsk::view<T, R> view() const { return dense(); }
  dsk::view<const T, R> cview() const { return dense(); }
  operator dsk::view<T, R>() const { return view(); }
  operator dsk::view<const T, R>() const { return cview(); }

 private:
  dims<R> ext_{};
  buffer<T> buf_;
};

// Host tensor -> new device tensor. The copy is enqueued on `s`: synchronise s before changing or freeing
// src.
template <class T, std::size_t R>
tensor<T, R> upload(const dsk::tensor<T, R>& src, const stream& s = stream::default_stream()) {
  tensor<T, R> d(src.shape());
  copy(d.data(), src.data(), src.size(), copy_kind::host_to_device, s);
  return d;
}

// Device tensor -> new host tensor; synchronises `s` so that the result is ready.
template <class T, std::size_t R>
dsk::tensor<T, R> download(const tensor<T, R>& src, const stream& s = stream::default_stream()) {
  dsk::tensor<T, R> h(src.shape(), uninitialized);
  copy(h.data(), static_cast<const T*>(src.data()), src.size(), copy_kind::device_to_host, s);
  s.synchronize();
  return h;
}

DSK_CUDA_MODE_END
}  // namespace dsk::device
