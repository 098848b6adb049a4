// Non-owning multi-dimensional views (in the spirit of std::mdspan): element type (const-qualified for
// read-only), extents, layout. Element access is bounds-checked in checked builds (DSK_CHECKED).
// Host and device; checked in tests/core/view.cpp.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/extents.hpp"
#include "dsk/core/layout.hpp"

namespace dsk {

template <class T, class Extents, class Layout = layout_right>
class mdview {
  static_assert(is_extents<Extents>, "dsk::mdview: the second template argument must be dsk::extents<...>");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using extents_type = Extents;
  using layout_type = Layout;
  using mapping_type = typename Layout::template mapping<Extents>;
  static constexpr std::size_t rank() { return Extents::rank(); }

  constexpr mdview() = default;
  // All extents static: the pointer is enough.
  constexpr explicit mdview(T* data) requires(
      std::is_same_v<Layout, layout_right>&& Extents::rank_dynamic() == 0)
      : map_(Extents{}), data_(data) {}
  constexpr mdview(T* data, const mapping_type& m) : map_(m), data_(data) {}
  constexpr mdview(T* data, const Extents& e) requires std::is_same_v<Layout, layout_right> : map_(e),
                                                                                              data_(data) {}
  // data plus the extents as integers (all of them, or the dynamic ones only): mdview<float, dims<2>>(p,
  // rows, cols).
  template <std::integral... I>
  requires(std::is_same_v<Layout, layout_right> && sizeof...(I) > 0) constexpr mdview(T* data, I... extents)
      : map_(Extents(extents...)), data_(data) {}
  // data, extents and strides (in elements): the strided constructor.
  constexpr mdview(T* data, const Extents& e, const std::array<index_t, Extents::rank()>& strides) requires
      std::is_same_v<Layout, layout_stride> : map_(e, strides),
                                              data_(data) {}

  // Converts T -> const T, static -> dynamic extents, and row-major -> strided.
  template <class U, class E2, class L2>
  requires(std::is_convertible_v<U (*)[], T (*)[]>&& E2::rank() == Extents::rank() &&
           std::is_constructible_v<mapping_type, const typename L2::template mapping<E2>&> &&
           !std::is_same_v<mdview<U, E2, L2>, mdview>) constexpr mdview(const mdview<U, E2, L2>& other)
      : map_(convert_mapping(other.mapping())), data_(other.data()) {}

  DSK_HD constexpr T* data() const { return data_; }
  DSK_HD constexpr const mapping_type& mapping() const { return map_; }
  DSK_HD constexpr const Extents& extents() const { return map_.extents(); }
  DSK_HD constexpr index_t extent(std::size_t r) const { return map_.extents().extent(r); }
  DSK_HD constexpr index_t stride(std::size_t r) const { return map_.stride(r); }
  DSK_HD constexpr index_t size() const { return map_.extents().size(); }
  DSK_HD constexpr bool empty() const { return size() == 0; }
  DSK_HD constexpr bool is_contiguous() const { return map_.is_contiguous(); }
  // Elements spanned in memory from data(): what a buffer must hold for this view to be valid.
  DSK_HD constexpr index_t required_span_size() const { return map_.required_span_size(); }

  template <std::integral... I>
  requires(sizeof...(I) == Extents::rank()) DSK_HD constexpr T& operator()(I... idx) const {
#if DSK_CHECKED && !defined(__CUDA_ARCH__)
    check_bounds({static_cast<index_t>(idx)...});
#endif
    return data_[map_(idx...)];
  }

  // Row i of a rank >= 2 view as a rank-1 strided view (or the leading slice for higher ranks).
  constexpr auto operator[](index_t i) const requires(Extents::rank() >= 2) {
#if DSK_CHECKED
    check_index(0, i);
#endif
    using sub_extents = dims<Extents::rank() - 1>;
    std::array<index_t, Extents::rank() - 1> e{}, s{};
    for (std::size_t r = 1; r < Extents::rank(); ++r) {
      e[r - 1] = extent(r);
      s[r - 1] = stride(r);
    }
    return mdview<T, sub_extents, layout_stride>(data_ + i * stride(0), sub_extents(e), s);
  }

  // Elements [begin, end) along dimension `dim`, same rank, strided.
  constexpr mdview<T, dims<Extents::rank()>, layout_stride> slice(std::size_t dim, index_t begin,
                                                                  index_t end) const {
    if (dim >= rank()) fail("dsk::mdview::slice: argument 'dim': expected < ", rank(), ", got ", dim);
    if (begin < 0 || end < begin || end > extent(dim))
      fail("dsk::mdview::slice: argument 'begin, end': expected 0 <= begin <= end <= ", extent(dim),
           ", got [", begin, ", ", end, ")");
    std::array<index_t, rank()> e{}, s{};
    for (std::size_t r = 0; r < rank(); ++r) {
      e[r] = extent(r);
      s[r] = stride(r);
    }
    e[dim] = end - begin;
    return {data_ + begin * stride(dim), dims<rank()>(e), s};
  }

 private:
  template <class M>
  static constexpr mapping_type convert_mapping(const M& m) {
    if constexpr (std::is_same_v<Layout, layout_right>)
      return mapping_type(Extents(m.extents()));
    else
      return mapping_type(m);
  }

  constexpr void check_index(std::size_t r, index_t i) const {
    if (i < 0 || i >= extent(r))
      fail("dsk::mdview: index ", i, " out of range [0, ", extent(r), ") in dimension ", r);
  }
  constexpr void check_bounds(const std::array<index_t, Extents::rank()>& idx) const {
    for (std::size_t r = 0; r < rank(); ++r) check_index(r, idx[r]);
  }

  mapping_type map_{};
  T* data_ = nullptr;
};

// Row-major view with all extents dynamic: the common kernel argument when contiguity is required.
template <class T, std::size_t R>
using dense_view = mdview<T, dims<R>, layout_right>;
// Strided view with all extents dynamic: the common kernel argument (any row stride).
template <class T, std::size_t R>
using view = mdview<T, dims<R>, layout_stride>;

template <class V>
inline constexpr bool is_mdview = false;
template <class T, class E, class L>
inline constexpr bool is_mdview<mdview<T, E, L>> = true;

// A read-only strided view of any view (or owning tensor, which converts to a view).
template <class T, class E, class L>
constexpr view<const T, E::rank()> as_const(const mdview<T, E, L>& v) {
  return view<const T, E::rank()>(v);
}

// Rows of a rank-2 view, given as a pointer and a row stride: what SIMD kernels iterate over.
template <class T, class E, class L>
constexpr T* row_ptr(const mdview<T, E, L>& v, index_t i) {
  static_assert(E::rank() == 2, "row_ptr needs a rank-2 view");
  return v.data() + i * v.stride(0);
}

}  // namespace dsk
