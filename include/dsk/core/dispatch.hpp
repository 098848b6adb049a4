// Runtime value -> compile-time constant: dispatch<64, 128, 192, 256>("head_dim", d, f) calls
// f(std::integral_constant<int, d>{}) for a compiled choice and throws dsk::unsupported listing the choices
// otherwise. Host only.
#pragma once

#include <optional>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "dsk/core/error.hpp"

namespace dsk {

template <auto V>
using constant = std::integral_constant<decltype(V), V>;

template <auto First, auto... Rest, class Value, class F>
std::invoke_result_t<F&, constant<First>> dispatch(std::string_view what, Value value, F&& f) {
  using result = std::invoke_result_t<F&, constant<First>>;
  static_assert((std::is_same_v<result, std::invoke_result_t<F&, constant<Rest>>> && ...),
                "dsk::dispatch: f must return the same type for every choice");
  auto unsupported_value = [&] {
    std::ostringstream s;
    s << "dsk: " << what << " = " << value << " is not supported; compiled choices: " << First;
    ((s << ", " << Rest), ...);
    throw unsupported(s.str());
  };
  if constexpr (std::is_void_v<result>) {
    const bool found = (value == First ? (f(constant<First>{}), true) : false) ||
                       ((value == Rest ? (f(constant<Rest>{}), true) : false) || ...);
    if (!found) unsupported_value();
  } else {
    std::optional<result> r;
    const bool found = (value == First ? (r.emplace(f(constant<First>{})), true) : false) ||
                       ((value == Rest ? (r.emplace(f(constant<Rest>{})), true) : false) || ...);
    if (!found) unsupported_value();
    return *std::move(r);
  }
}

}  // namespace dsk
