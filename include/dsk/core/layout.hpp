// Layouts map a multi-index to an element offset: layout_right (row-major, contiguous) and layout_stride
// (any non-negative strides, e.g. a row stride larger than the row for padded or sliced matrices).
// Host and device; checked in tests/core/layout.cpp.
#pragma once

#include <array>
#include <cstddef>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/extents.hpp"

namespace dsk {

// Row-major: the last index varies fastest, no padding.
struct layout_right {
  template <class Extents>
  class mapping {
   public:
    using extents_type = Extents;
    static constexpr std::size_t rank() { return Extents::rank(); }

    constexpr mapping() = default;
    constexpr explicit mapping(const Extents& e) : ext_(e) {
      index_t s = 1;
      for (std::size_t r = rank(); r-- > 0;) {
        strides_[r] = s;
        s *= ext_.extent(r);
      }
    }
    DSK_HD constexpr const Extents& extents() const { return ext_; }
    DSK_HD constexpr index_t stride(std::size_t r) const { return strides_[r]; }
    DSK_HD constexpr const std::array<index_t, rank()>& strides() const { return strides_; }
    DSK_HD constexpr index_t required_span_size() const { return ext_.size(); }
    static constexpr bool is_always_contiguous() { return true; }
    DSK_HD constexpr bool is_contiguous() const { return true; }

    template <class... I>
    DSK_HD constexpr index_t operator()(I... idx) const {
      if constexpr (sizeof...(I) == 0) return 0;
      const index_t i[] = {static_cast<index_t>(idx)...};
      index_t off = 0;
      for (std::size_t r = 0; r < rank(); ++r) off += i[r] * strides_[r];
      return off;
    }

   private:
    Extents ext_{};
    std::array<index_t, rank()> strides_{};
  };
};

// Arbitrary non-negative strides, in elements.
struct layout_stride {
  template <class Extents>
  class mapping {
   public:
    using extents_type = Extents;
    static constexpr std::size_t rank() { return Extents::rank(); }

    constexpr mapping() = default;
    constexpr mapping(const Extents& e, const std::array<index_t, Extents::rank()>& strides)
        : ext_(e), strides_(strides) {
      for (std::size_t r = 0; r < rank(); ++r)
        if (strides_[r] < 0) fail("dsk::layout_stride: stride(", r, ") must be >= 0, got ", strides_[r]);
    }
    // Any other mapping with the same rank converts (row-major -> strided is always exact).
    template <class Other>
    requires(Other::rank() == Extents::rank()) constexpr mapping(const Other& other) : ext_(other.extents()) {
      for (std::size_t r = 0; r < rank(); ++r) strides_[r] = other.stride(r);
    }

    DSK_HD constexpr const Extents& extents() const { return ext_; }
    DSK_HD constexpr index_t stride(std::size_t r) const { return strides_[r]; }
    DSK_HD constexpr const std::array<index_t, rank()>& strides() const { return strides_; }
    // One past the largest offset reachable, or 0 for an empty extent.
    DSK_HD constexpr index_t required_span_size() const {
      index_t span = 1;
      for (std::size_t r = 0; r < rank(); ++r) {
        if (ext_.extent(r) == 0) return 0;
        span += (ext_.extent(r) - 1) * strides_[r];
      }
      return span;
    }
    static constexpr bool is_always_contiguous() { return false; }
    // True when the strides are exactly those of row-major order (dimensions of extent 1 ignored).
    DSK_HD constexpr bool is_contiguous() const {
      index_t s = 1;
      for (std::size_t r = rank(); r-- > 0;) {
        if (ext_.extent(r) != 1 && strides_[r] != s) return false;
        s *= ext_.extent(r);
      }
      return true;
    }

    template <class... I>
    DSK_HD constexpr index_t operator()(I... idx) const {
      if constexpr (sizeof...(I) == 0) return 0;
      const index_t i[] = {static_cast<index_t>(idx)...};
      index_t off = 0;
      for (std::size_t r = 0; r < rank(); ++r) off += i[r] * strides_[r];
      return off;
    }

   private:
    Extents ext_{};
    std::array<index_t, rank()> strides_{};
  };
};

}  // namespace dsk
