// A rank-2 view over packed signed int4 data (dsk::int4x2: element 2i in the low nibble of byte i).
// Each row holds `cols` elements in ceil(cols/2) bytes, rows `row_stride` bytes apart. Host and device;
// checked in tests/core/packed_int4.cpp.
#pragma once

#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"

namespace dsk {

// Byte is int4x2 (mutable) or const int4x2 (read-only).
template <class Byte>
class packed_int4_view {
  static_assert(std::is_same_v<std::remove_const_t<Byte>, int4x2>,
                "packed_int4_view: Byte must be (const) int4x2");

 public:
  static constexpr std::size_t rank() { return 2; }
  // Bytes needed for one row of `cols` int4 elements.
  static constexpr index_t row_bytes(index_t cols) { return (cols + 1) / 2; }

  constexpr packed_int4_view() = default;
  constexpr packed_int4_view(Byte* data, index_t rows, index_t cols)
      : packed_int4_view(data, rows, cols, row_bytes(cols)) {}
  constexpr packed_int4_view(Byte* data, index_t rows, index_t cols, index_t row_stride_bytes)
      : data_(data), rows_(rows), cols_(cols), stride_(row_stride_bytes) {
    if (rows < 0 || cols < 0)
      fail("dsk::packed_int4_view: arguments 'rows, cols': expected >= 0, got ", rows, ", ", cols);
    if (rows > 1 && row_stride_bytes < row_bytes(cols))
      fail("dsk::packed_int4_view: argument 'row_stride_bytes': expected >= ", row_bytes(cols), " for ", cols,
           " columns, got ", row_stride_bytes);
  }
  // Mutable -> read-only.
  template <class B2>
  requires(std::is_const_v<Byte> &&
           !std::is_const_v<B2>) constexpr packed_int4_view(const packed_int4_view<B2>& o)
      : data_(o.data()), rows_(o.extent(0)), cols_(o.extent(1)), stride_(o.row_stride_bytes()) {}

  DSK_HD constexpr Byte* data() const { return data_; }
  DSK_HD constexpr index_t extent(std::size_t r) const { return r == 0 ? rows_ : cols_; }
  DSK_HD constexpr index_t row_stride_bytes() const { return stride_; }
  DSK_HD constexpr Byte* row(index_t i) const { return data_ + i * stride_; }
  DSK_HD constexpr index_t size() const { return rows_ * cols_; }

  // Element (i, j) as an int in [-8, 7].
  constexpr int get(index_t i, index_t j) const {
#if DSK_CHECKED
    check(i, j);
#endif
    return row(i)[j / 2].get(static_cast<int>(j & 1));
  }
  // Store v in [-8, 7] at (i, j); the other nibble of the byte is kept.
  constexpr void set(index_t i, index_t j, int v) const requires(!std::is_const_v<Byte>) {
#if DSK_CHECKED
    check(i, j);
#endif
    if (v < int4x2::min || v > int4x2::max)
      fail("dsk::packed_int4_view::set: argument 'v': expected a value in [-8, 7], got ", v);
    int4x2& b = row(i)[j / 2];
    b = (j & 1) ? int4x2::pack(b.lo(), v) : int4x2::pack(v, b.hi());
  }

 private:
  constexpr void check(index_t i, index_t j) const {
    if (i < 0 || i >= rows_ || j < 0 || j >= cols_)
      fail("dsk::packed_int4_view: index (", i, ", ", j, ") out of range [0, ", rows_, ") x [0, ", cols_,
           ")");
  }

  Byte* data_ = nullptr;
  index_t rows_ = 0, cols_ = 0, stride_ = 0;
};

}  // namespace dsk
