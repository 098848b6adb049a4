// quant::contracts: memory of a quantized weight (codes and scales) as byte ranges, for the overlap checks of
// the quant entry points (host and CUDA host-side code), and the size bound of quantized_weight. Host only;
// checked in tests/quant/matmul.cpp and quantize.cpp.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "dsk/core/error.hpp"
#include "dsk/quant/format.hpp"

namespace dsk::quant::contracts {
DSK_ISA_BEGIN

// Rows of code_row_bytes(F, cols) bytes every code_stride bytes.
template <format F>
byte_range code_bytes_of(const qweight_view<F>& w) {
  const auto row = static_cast<std::uintptr_t>(code_row_bytes(F, w.cols));
  if (w.codes == nullptr || w.rows <= 0 || row == 0) return {};
  const auto b = reinterpret_cast<std::uintptr_t>(w.codes);
  const auto pitch = static_cast<std::uintptr_t>(w.code_stride);
  const std::uintptr_t end = b + static_cast<std::uintptr_t>(w.rows - 1) * pitch + row;
  return w.rows > 1 ? byte_range{b, end, pitch, row} : byte_range{b, end, 0, row};
}
// Rows of groups_per_row(F, cols) scales every scale_stride scales.
template <format F>
byte_range scale_bytes_of(const qweight_view<F>& w) {
  constexpr auto size = sizeof(scale_t<F>);
  const auto row = static_cast<std::uintptr_t>(w.groups()) * size;
  if (w.scales == nullptr || w.rows <= 0 || row == 0) return {};
  const auto b = reinterpret_cast<std::uintptr_t>(w.scales);
  const auto pitch = static_cast<std::uintptr_t>(w.scale_stride) * size;
  const std::uintptr_t end = b + static_cast<std::uintptr_t>(w.rows - 1) * pitch + row;
  return w.rows > 1 ? byte_range{b, end, pitch, row} : byte_range{b, end, 0, row};
}

// An output `arg` must not overlap the codes or scales of w (read while the output is written).
template <format F, class Out>
void check_weight_alias(const contract& c, std::string_view arg, const Out& out, std::string_view w_name,
                        const qweight_view<F>& w) {
  const std::string codes = dsk::detail::concat(w_name, ".codes"),
                    scales = dsk::detail::concat(w_name, ".scales");
  c.disjoint(arg, out, codes, code_bytes_of(w)).disjoint(arg, out, scales, scale_bytes_of(w));
}

// Largest storage a quantized weight may ask for: 2^48 bytes (256 TiB), the user address space of x86-64
// and AArch64. Larger shapes are an error before anything is allocated (and before a product overflows).
inline constexpr index_t max_weight_bytes = index_t{1} << 48;

// Checks rows, cols >= 0 and that codes + scales of [rows, cols] in format F fit max_weight_bytes; returns
// rows.
template <format F>
index_t checked_weight_shape(const char* where, index_t rows, index_t cols) {
  if (rows < 0 || cols < 0) fail(where, ": arguments 'rows, cols': expected >= 0, got ", rows, ", ", cols);
  if (rows == 0 || cols == 0) return rows;
  // Per-row bytes first (cols <= 2^63 keeps code_row_bytes and groups exact), then the product by division.
  if (cols > max_weight_bytes)
    fail(where, ": arguments 'rows, cols': [", rows, ", ", cols, "] needs more than 2^48 bytes (at most ",
         max_weight_bytes, " bytes of codes and scales)");
  const index_t per_row = code_row_bytes(F, cols) + groups_per_row(F, cols) * index_t(sizeof(scale_t<F>));
  if (rows > max_weight_bytes / per_row)
    fail(where, ": arguments 'rows, cols': [", rows, ", ", cols, "] needs more than 2^48 bytes (at most ",
         max_weight_bytes, " bytes of codes and scales)");
  return rows;
}

DSK_ISA_END
}  // namespace dsk::quant::contracts
