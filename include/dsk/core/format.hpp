// fmt formatters for dsk types: bf16/f16 (printed as their float value), int4x2, dtype, extents and small
// views/tensors (at most `max_per_dim` entries per dimension, then "..."). Needs fmt (libfmt-dev); host only.
#pragma once

#include <fmt/format.h>

#include "dsk/core/dtype.hpp"
#include "dsk/core/extents.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"

namespace dsk::detail {
inline constexpr index_t format_max_per_dim = 8;

template <class V, class Out>
Out format_view_dim(const V& v, Out out, std::size_t dim, index_t offset) {
  *out++ = '[';
  const index_t n = v.extent(dim);
  for (index_t i = 0; i < n; ++i) {
    if (i == format_max_per_dim && n > format_max_per_dim + 1) {
      out = fmt::format_to(out, ", ...");
      i = n - 1;  // always show the last entry
    }
    if (i) out = fmt::format_to(out, fmt::runtime(", "));
    const index_t off = offset + i * v.stride(dim);
    if (dim + 1 == V::rank())
      out = fmt::format_to(out, "{}", v.data()[off]);
    else
      out = format_view_dim(v, out, dim + 1, off);
  }
  *out++ = ']';
  return out;
}
}  // namespace dsk::detail

template <>
struct fmt::formatter<dsk::bf16> : fmt::formatter<float> {
  auto format(dsk::bf16 v, format_context& ctx) const { return fmt::formatter<float>::format(float(v), ctx); }
};
template <>
struct fmt::formatter<dsk::f16> : fmt::formatter<float> {
  auto format(dsk::f16 v, format_context& ctx) const { return fmt::formatter<float>::format(float(v), ctx); }
};
template <>
struct fmt::formatter<dsk::int4x2> : fmt::formatter<fmt::string_view> {
  auto format(dsk::int4x2 v, format_context& ctx) const {
    return fmt::format_to(ctx.out(), "({}, {})", v.lo(), v.hi());
  }
};
template <>
struct fmt::formatter<dsk::dtype> : fmt::formatter<fmt::string_view> {
  auto format(dsk::dtype t, format_context& ctx) const {
    return fmt::formatter<fmt::string_view>::format(dsk::name(t), ctx);
  }
};
template <dsk::index_t... E>
struct fmt::formatter<dsk::extents<E...>> : fmt::formatter<fmt::string_view> {
  auto format(const dsk::extents<E...>& e, format_context& ctx) const {
    auto out = ctx.out();
    *out++ = '[';
    for (std::size_t r = 0; r < e.rank(); ++r)
      out = fmt::format_to(out, fmt::runtime(r ? ", {}" : "{}"), e.extent(r));
    *out++ = ']';
    return out;
  }
};
// Views print their values, nested by dimension: [[1, 2], [3, 4]].
template <class T, class E, class L>
struct fmt::formatter<dsk::mdview<T, E, L>> : fmt::formatter<fmt::string_view> {
  auto format(const dsk::mdview<T, E, L>& v, format_context& ctx) const {
    return dsk::detail::format_view_dim(v, ctx.out(), 0, 0);
  }
};
template <class T, std::size_t R>
struct fmt::formatter<dsk::tensor<T, R>> : fmt::formatter<dsk::view<const T, R>> {
  auto format(const dsk::tensor<T, R>& t, format_context& ctx) const {
    return fmt::formatter<dsk::view<const T, R>>::format(t.cview(), ctx);
  }
};
