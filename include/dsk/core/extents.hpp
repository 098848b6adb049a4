// Extents: the shape of a tensor, each dimension either fixed at compile time or given at run time
// (in the spirit of std::extents). Host and device; checked in tests/core/extents.cpp.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"

namespace dsk {

// Marks a dimension whose size is only known at run time.
inline constexpr index_t dynamic_extent = -1;

template <index_t... E>
class extents {
  static_assert(((E >= 0 || E == dynamic_extent) && ...),
                "dsk::extents: a static extent must be >= 0 or dynamic_extent");

 public:
  using index_type = index_t;
  static constexpr std::size_t rank() { return sizeof...(E); }
  static constexpr std::size_t rank_dynamic() { return ((E == dynamic_extent ? 1u : 0u) + ... + 0u); }
  static constexpr index_t static_extent(std::size_t r) { return static_[r]; }

  // All extents static: nothing to give.
  DSK_HD constexpr extents() : ext_{E...} {
    if constexpr (rank_dynamic() != 0)
      for (auto& e : ext_)
        if (e == dynamic_extent) e = 0;
  }

  // Either the dynamic extents only (in order), or all extents (static ones must match).
  template <std::integral... I>
  requires(sizeof...(I) > 0 && (sizeof...(I) == rank_dynamic() ||
                                sizeof...(I) == rank())) constexpr explicit extents(I... values) {
    const std::array<index_t, sizeof...(I)> v{static_cast<index_t>(values)...};
    assign(v.data(), sizeof...(I));
  }
  template <std::size_t N>
  requires(N == rank() && N > 0) constexpr explicit extents(const std::array<index_t, N>& all) {
    assign(all.data(), N);
  }

  // From other extents of the same rank: implicit when no static extent has to be checked.
  template <index_t... F>
  requires(sizeof...(F) == rank()) constexpr explicit(((E != dynamic_extent && F != E) || ...))
      extents(const extents<F...>& other) {
    std::array<index_t, rank()> v{};
    for (std::size_t r = 0; r < rank(); ++r) v[r] = other.extent(r);
    assign(v.data(), rank());
  }

  DSK_HD constexpr index_t extent(std::size_t r) const { return ext_[r]; }
  DSK_HD constexpr index_t size() const {
    index_t n = 1;
    for (std::size_t r = 0; r < rank(); ++r) n *= ext_[r];
    return n;
  }
  DSK_HD constexpr const std::array<index_t, rank()>& values() const { return ext_; }

  template <index_t... F>
  friend constexpr bool operator==(const extents& a, const extents<F...>& b) {
    if constexpr (sizeof...(F) != rank()) {
      return false;
    } else {
      for (std::size_t r = 0; r < rank(); ++r)
        if (a.extent(r) != b.extent(r)) return false;
      return true;
    }
  }

 private:
  static constexpr std::array<index_t, rank()> static_{E...};

  constexpr void assign(const index_t* v, std::size_t n) {
    std::size_t next = 0;
    for (std::size_t r = 0; r < rank(); ++r) {
      index_t value;
      if (n == rank()) {
        value = v[r];
        if (static_[r] != dynamic_extent && value != static_[r])
          fail("dsk::extents: dimension ", r, " is static with extent ", static_[r], ", got ", value);
      } else {
        value = static_[r] != dynamic_extent ? static_[r] : v[next++];
      }
      if (value < 0) fail("dsk::extents: dimension ", r, " must be >= 0, got ", value);
      ext_[r] = value;
    }
  }

  std::array<index_t, rank()> ext_{};
};

namespace detail {
template <std::size_t R, index_t... E>
struct make_dims : make_dims<R - 1, dynamic_extent, E...> {};
template <index_t... E>
struct make_dims<0, E...> {
  using type = extents<E...>;
};
}  // namespace detail

// Extents of rank R, all dynamic.
template <std::size_t R>
using dims = typename detail::make_dims<R>::type;

template <class T>
inline constexpr bool is_extents = false;
template <index_t... E>
inline constexpr bool is_extents<extents<E...>> = true;

}  // namespace dsk
