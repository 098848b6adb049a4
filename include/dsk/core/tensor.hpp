// Owning host tensors: row-major, 64-byte aligned storage, all extents dynamic. They convert to views, which
// is how kernels take them. Host only; checked in tests/core/tensor.cpp.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"

namespace dsk {

namespace detail {
struct aligned_free {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{storage_alignment}); }
};
}  // namespace detail

// A 64-byte aligned, uninitialised array of trivially copyable T. The building block of owning tensors.
template <class T>
class aligned_buffer {
  static_assert(std::is_trivially_copyable_v<T>,
                "dsk::aligned_buffer holds trivially copyable storage types only");

 public:
  aligned_buffer() = default;
  explicit aligned_buffer(index_t count) : size_(count) {
    if (count < 0) fail("dsk::aligned_buffer: argument 'count': expected >= 0, got ", count);
    if (count > 0) {
      if (static_cast<std::uint64_t>(count) > std::numeric_limits<std::size_t>::max() / sizeof(T))
        fail("dsk::aligned_buffer: argument 'count': ", count, " elements overflow the address space");
      // Round up to whole cache lines so that SIMD loads of the last full vector never leave the allocation.
      const std::size_t bytes = (static_cast<std::size_t>(count) * sizeof(T) + storage_alignment - 1) /
                                storage_alignment * storage_alignment;
      ptr_.reset(static_cast<T*>(::operator new (bytes, std::align_val_t{storage_alignment})));
    }
  }
  aligned_buffer(const aligned_buffer& o) : aligned_buffer(o.size_) {
    if (size_) std::memcpy(ptr_.get(), o.ptr_.get(), static_cast<std::size_t>(size_) * sizeof(T));
  }
  aligned_buffer& operator=(const aligned_buffer& o) {
    if (this != &o) *this = aligned_buffer(o);
    return *this;
  }
  aligned_buffer(aligned_buffer&&) noexcept = default;
  aligned_buffer& operator=(aligned_buffer&&) noexcept = default;

  T* data() { return ptr_.get(); }
  const T* data() const { return ptr_.get(); }
  index_t size() const { return size_; }

 private:
  std::unique_ptr<T, detail::aligned_free> ptr_;
  index_t size_ = 0;
};

// Tag: leave the elements of a new tensor uninitialised (the caller overwrites them all).
struct uninitialized_t {};
inline constexpr uninitialized_t uninitialized{};

template <class T, std::size_t R>
class tensor {
  static_assert(!std::is_const_v<T>, "dsk::tensor owns its elements: use a non-const element type");
  static_assert(R >= 1, "dsk::tensor needs rank >= 1");

 public:
  using value_type = T;
  using extents_type = dims<R>;
  static constexpr std::size_t rank() { return R; }

  tensor() = default;
  // Zero-initialised tensor of the given shape. Always inlined, as the constructor below: an out-of-line copy
  // compiled with -march=x86-64-v3 moves the extents with ymm registers, and tensor is not in an ISA
  // namespace (tools/isa-leak-check.sh found it).
  DSK_ALWAYS_INLINE explicit tensor(const std::array<index_t, R>& shape) : tensor(shape, uninitialized) {
    fill(T{});
  }
  template <std::integral... I>
  requires(sizeof...(I) == R) explicit tensor(I... shape)
      : tensor(std::array<index_t, R>{static_cast<index_t>(shape)...}) {}
  DSK_ALWAYS_INLINE tensor(const std::array<index_t, R>& shape, uninitialized_t)
      : ext_(checked_extents(shape)), buf_(ext_.size()) {}

  T* data() { return buf_.data(); }
  const T* data() const { return buf_.data(); }
  index_t size() const { return ext_.size(); }
  bool empty() const { return size() == 0; }
  index_t extent(std::size_t r) const { return ext_.extent(r); }
  const extents_type& extents() const { return ext_; }
  std::array<index_t, R> shape() const { return ext_.values(); }
  std::span<T> span() { return {data(), static_cast<std::size_t>(size())}; }
  std::span<const T> span() const { return {data(), static_cast<std::size_t>(size())}; }

  dense_view<T, R> dense() { return {data(), ext_}; }
  dense_view<const T, R> dense() const { return {data(), ext_}; }
  dsk::view<T, R> view() { return dense(); }
  dsk::view<const T, R> view() const { return dense(); }
  dsk::view<const T, R> cview() const { return dense(); }

  operator dsk::view<T, R>() { return view(); }
  operator dsk::view<const T, R>() const { return cview(); }
  operator dense_view<T, R>() { return dense(); }
  operator dense_view<const T, R>() const { return dense(); }

  template <std::integral... I>
  requires(sizeof...(I) == R) T& operator()(I... idx) { return dense()(idx...); }
  template <std::integral... I>
  requires(sizeof...(I) == R) const T& operator()(I... idx) const { return dense()(idx...); }

  void fill(const T& v) { std::fill_n(data(), size(), v); }

 private:
  static extents_type checked_extents(const std::array<index_t, R>& shape) {
    index_t n = 1;
    for (std::size_t r = 0; r < R; ++r) {
      if (shape[r] < 0) fail("dsk::tensor: argument 'shape': extent(", r, ") must be >= 0, got ", shape[r]);
      if (shape[r] != 0 && n > std::numeric_limits<index_t>::max() / shape[r])
        fail("dsk::tensor: argument 'shape': the element count overflows");
      n *= shape[r];
    }
    return extents_type(shape);
  }

  extents_type ext_{};
  aligned_buffer<T> buf_;
};

}  // namespace dsk
