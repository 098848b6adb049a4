// Errors and argument contracts of dsk: every public entry point validates its arguments through `contract`,
// so that a bad call throws dsk::error naming the kernel, the argument and what was expected.
// Host and CUDA host-side code; no reference counterpart.
#pragma once

#include <cstdint>
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

// The memory of one argument, for the overlap checks of contract: bytes [begin, end) as addresses, made of
// rows of `width` bytes every `pitch` bytes from begin (pitch 0: one run of end - begin bytes). The row
// structure lets two column slices of one buffer (x = columns [0, K), y = columns [K, K + N) of the same
// rows) count as disjoint, which a plain span test would reject.
struct byte_range {
  std::uintptr_t begin = 0, end = 0;
  std::uintptr_t pitch = 0, width = 0;
};

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

// The bytes a view (anything with data(), size(), rank(), extent(), stride(), required_span_size() and
// element_type: mdview, or a tensor's view) may touch; empty for an empty or null view. Strides >= 0.
template <class View>
byte_range bytes_of(const View& v) {
  using T = typename View::element_type;
  if (v.data() == nullptr || v.size() == 0) return {};
  const auto b = reinterpret_cast<std::uintptr_t>(v.data());
  const auto span = static_cast<std::uintptr_t>(v.required_span_size()) * sizeof(T);
  byte_range r{b, b + span, 0, span};
  if constexpr (View::rank() >= 2) {
    if (v.extent(0) > 1 && v.stride(0) > 0) {
      index_t inner = 1;  // elements one index of dimension 0 spans
      for (std::size_t d = 1; d < View::rank(); ++d) inner += (v.extent(d) - 1) * v.stride(d);
      r.pitch = static_cast<std::uintptr_t>(v.stride(0)) * sizeof(T);
      r.width = static_cast<std::uintptr_t>(inner) * sizeof(T);
    }
  }
  return r;
}
inline byte_range bytes_of(const byte_range& r) { return r; }
// `bytes` bytes from p (a buffer of codes, scales, indices).
inline byte_range bytes_of(const void* p, std::uintptr_t bytes) {
  if (p == nullptr || bytes == 0) return {};
  const auto b = reinterpret_cast<std::uintptr_t>(p);
  return {b, b + bytes, 0, bytes};
}

// True when a and b may share a byte. Exact for one-run ranges and for row ranges of the same pitch (or one
// of them a single run no wider than the other's pitch); otherwise conservative (true when the spans meet).
inline bool overlap(const byte_range& a, const byte_range& b) {
  if (a.begin == a.end || b.begin == b.end) return false;
  if (a.end <= b.begin || b.end <= a.begin) return false;
  const std::uintptr_t pitch = a.pitch ? a.pitch : b.pitch;
  if (pitch == 0 || (a.pitch && b.pitch && a.pitch != b.pitch)) return true;
  const std::uintptr_t wa = a.pitch ? a.width : a.end - a.begin, wb = b.pitch ? b.width : b.end - b.begin;
  if (wa > pitch || wb > pitch) return true;
  // Offset of b's rows within a's row period: disjoint iff b's row [d, d + wb) fits in the gap [wa, pitch).
  const std::uintptr_t d =
      b.begin >= a.begin ? (b.begin - a.begin) % pitch : (pitch - (a.begin - b.begin) % pitch) % pitch;
  return !(d >= wa && d + wb <= pitch);
}

// True when two views are exactly the same elements in the same order (same address, extents and strides
// in bytes): an in-place call.
template <class A, class B>
bool same_memory(const A& a, const B& b) {
  if constexpr (A::rank() != B::rank()) {
    return false;
  } else {
    if (reinterpret_cast<std::uintptr_t>(a.data()) != reinterpret_cast<std::uintptr_t>(b.data()))
      return false;
    // The stride of a dimension of extent 1 (or of an empty view) addresses nothing: it may differ.
    bool empty = false;
    for (std::size_t d = 0; d < A::rank(); ++d) empty = empty || a.extent(d) == 0;
    for (std::size_t d = 0; d < A::rank(); ++d) {
      if (a.extent(d) != b.extent(d)) return false;
      if (!empty && a.extent(d) > 1 &&
          a.stride(d) * index_t(sizeof(typename A::element_type)) !=
              b.stride(d) * index_t(sizeof(typename B::element_type)))
        return false;
    }
    return true;
  }
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

  // Output `arg` must not share memory with `other` (an input the kernel reads after it starts writing, or
  // another output): overlapping memory would give a silently wrong result. Views or byte_range.
  template <class A, class B>
  const contract& disjoint(std::string_view arg, const A& a, std::string_view other, const B& b) const {
    if (overlap(bytes_of(a), bytes_of(b)))
      fail(where_, ": argument '", arg, "': expected memory that does not overlap ", other);
    return *this;
  }
  // The same, except that `arg` may be exactly `other` (same_memory): for kernels that compute each element
  // from the same element of `other` only, which makes an in-place call correct.
  template <class A, class B>
  const contract& disjoint_or_same(std::string_view arg, const A& a, std::string_view other,
                                   const B& b) const {
    if (!same_memory(a, b) && overlap(bytes_of(a), bytes_of(b)))
      fail(where_, ": argument '", arg, "': expected memory that does not overlap ", other, ", or exactly ",
           other, " (in place)");
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
