// Errors and argument contracts of dsk: every public entry point validates its arguments through `contract`,
// so that a bad call throws dsk::error naming the kernel, the argument and what was expected.
// Host and CUDA host-side code; no reference counterpart.
#pragma once

#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dsk/core/config.hpp"

namespace dsk {

// Base of every error dsk throws: bad arguments, malformed files, failed device calls.
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

// A value that is valid in general but not compiled in or not implemented (a head_dim outside the compiled
// list, a dtype a kernel does not take). The message lists what is supported.
class unsupported : public error {
 public:
  explicit unsupported(const std::string& what) : error(what) {}
};

namespace detail {
// In the ISA namespace: built with -march=x86-64-v3 the inlined ostringstream code uses ymm registers, and
// one merged weak copy would then run on every CPU (tests/isa checks it).
DSK_ISA_BEGIN
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return s.str();
}
DSK_ISA_END
}  // namespace detail

// fail, fail_unsupported and contract stream values into messages (ostringstream code that -march=x86-64-v3
// compiles with ymm registers when inlined): in the ISA namespace like concat.
DSK_ISA_BEGIN

// Throws dsk::error with the parts streamed into one message.
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw error(detail::concat(parts...));
}

template <class... Parts>
[[noreturn]] void fail_unsupported(const Parts&... parts) {
  throw unsupported(detail::concat(parts...));
}

// Argument checks of one call of one public entry point. Each failed check throws dsk::error reading
//   "<where>: argument '<arg>': expected <expectation>, got <actual>"
// Usage:
//   contract c{"gemm::matmul"};
//   c.extent("w", w, 1, x.extent(1), "x.extent(1) (K)");
class contract {
 public:
  explicit contract(std::string_view where) : where_(where) {}

  // A general condition on one argument.
  template <class Actual>
  const contract& require(bool ok, std::string_view arg, std::string_view expectation,
                          const Actual& actual) const {
    if (!ok) fail(where_, ": argument '", arg, "': expected ", expectation, ", got ", actual);
    return *this;
  }
  const contract& require(bool ok, std::string_view arg, std::string_view expectation) const {
    if (!ok) fail(where_, ": argument '", arg, "': expected ", expectation);
    return *this;
  }

  // extent(dim) of a view-like argument must equal `expected`, described by `expected_what`.
  template <class View>
  const contract& extent(std::string_view arg, const View& v, std::size_t dim, index_t expected,
                         std::string_view expected_what = {}) const {
    const index_t actual = v.extent(dim);
    if (actual != expected) {
      fail(where_, ": argument '", arg, "': extent(", dim, ") must be ", expected,
           expected_what.empty() ? "" : " (", expected_what, expected_what.empty() ? "" : ")", ", got ",
           actual, " (shape ", shape_string(v), ")");
    }
    return *this;
  }

  // The innermost stride must be 1 (SIMD kernels load rows contiguously).
  template <class View>
  const contract& unit_inner_stride(std::string_view arg, const View& v) const {
    constexpr std::size_t r = View::rank();
    static_assert(r >= 1, "unit_inner_stride needs a view of rank >= 1");
    if (v.extent(r - 1) > 1 && v.stride(r - 1) != 1)
      fail(where_, ": argument '", arg, "': expected a unit inner stride, got stride ", v.stride(r - 1));
    return *this;
  }

  // A value must lie in [lo, hi].
  template <class T>
  const contract& in_range(std::string_view arg, T value, T lo, T hi) const {
    if (value < lo || value > hi)
      fail(where_, ": argument '", arg, "': expected a value in [", lo, ", ", hi, "], got ", value);
    return *this;
  }

  std::string_view where() const { return where_; }

  template <class View>
  static std::string shape_string(const View& v) {
    std::ostringstream s;
    s << '[';
    for (std::size_t d = 0; d < View::rank(); ++d) s << (d ? ", " : "") << v.extent(d);
    s << ']';
    return s.str();
  }

 private:
  std::string_view where_;
};

DSK_ISA_END

}  // namespace dsk
