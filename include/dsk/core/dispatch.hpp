// Runtime value -> compile-time constant: dispatch<64, 128, 192, 256>("head_dim", d, f) calls
// f(std::integral_constant<int, d>{}) for a compiled choice and throws dsk::unsupported listing the choices
// otherwise. The choices may also be structural configs (e.g. MLA widths read from config.json): the runtime
// value is compared with each by ==, and the message lists them through operator<< or an ADL to_string(). Host only.
#pragma once

#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"

namespace dsk {

template <auto V>
using constant = std::integral_constant<decltype(V), V>;

namespace detail {
DSK_ISA_BEGIN
template <class T>
concept streamable = requires(std::ostream& s, const T& v) { s << v; };
template <class T>
concept adl_to_string = requires(const T& v) {
  { to_string(v) } -> std::convertible_to<std::string>;
};

// How a dispatch choice (or the rejected runtime value) is written in dsk::unsupported's message.
template <class T>
void write_choice(std::ostream& s, const T& v) {
  if constexpr (streamable<T>)
    s << v;
  else if constexpr (adl_to_string<T>)
    s << to_string(v);
  else
    static_assert(streamable<T> || adl_to_string<T>,
                  "dsk::dispatch: a config used as a dispatch choice needs operator<< or to_string(config) (found "
                  "by ADL) so that dsk::unsupported can list the compiled choices");
}
DSK_ISA_END
}  // namespace detail

// In the ISA namespace: f's body (a kernel call, often inlined) is compiled with the TU's -march.
DSK_ISA_BEGIN
template <auto First, auto... Rest, class Value, class F>
std::invoke_result_t<F&, constant<First>> dispatch(std::string_view what, const Value& value, F&& f) {
  using result = std::invoke_result_t<F&, constant<First>>;
  static_assert((std::is_same_v<result, std::invoke_result_t<F&, constant<Rest>>> && ...),
                "dsk::dispatch: f must return the same type for every choice");
  static_assert(requires { bool(value == First); },
                "dsk::dispatch: the runtime value must be comparable (==) with every compiled choice (give a "
                "config struct a defaulted operator==)");
  auto unsupported_value = [&] {
    std::ostringstream s;
    s << "dsk: " << what << " = ";
    detail::write_choice(s, value);
    s << " is not supported; compiled choices: ";
    detail::write_choice(s, First);
    ((s << ", ", detail::write_choice(s, Rest)), ...);
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
DSK_ISA_END

}  // namespace dsk
