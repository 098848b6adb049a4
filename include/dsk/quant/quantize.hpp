// Symmetric per-channel (optionally group-wise) int8/int4 quantization of weight matrices, its inverse, and
// per-token int8 quantization of activations. Host (scalar + AVX2, quant/host/quantize_avx2.hpp); checked
// against quant/ref.hpp in tests/quant/quantize.cpp. Formats and formulas: quant/format.hpp and
// docs/quantization.md.
#pragma once

#include <cstdint>
#include <cstring>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/quant/format.hpp"
#include "dsk/quant/host/quantize_avx2.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::quant {

// Owning quantized weight W [rows = N output channels, cols = K inputs] in format F: codes (densely packed
// rows, code_row_bytes(F, K) bytes each) and scales [N, groups_per_row(F, K)], 64-byte aligned. Converts to
// the non-owning qweight_view<F> that kernels take.
template <format F>
class quantized_weight {
  static_assert(check_format<F>::value);

 public:
  using code_type = code_t<F>;
  using scale_type = scale_t<F>;
  static constexpr format fmt = F;

  quantized_weight() = default;
  // Zero codes and scales of the given shape.
  quantized_weight(index_t rows, index_t cols)
      : rows_(rows),
        cols_(cols),
        codes_(checked(rows, cols) * code_row_bytes(F, cols)),
        scales_(rows * groups_per_row(F, cols)) {
    for (index_t i = 0; i < codes_.size(); ++i) codes_.data()[i] = code_type{};
    for (index_t i = 0; i < scales_.size(); ++i) scales_.data()[i] = scale_type{};
  }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  index_t extent(std::size_t r) const { return r == 0 ? rows_ : cols_; }
  index_t groups() const { return groups_per_row(F, cols_); }
  code_type* codes() { return codes_.data(); }
  const code_type* codes() const { return codes_.data(); }
  scale_type* scales() { return scales_.data(); }
  const scale_type* scales() const { return scales_.data(); }

  qweight_view<F> view() const {
    return {codes_.data(), scales_.data(), rows_, cols_, code_row_bytes(F, cols_), groups()};
  }
  operator qweight_view<F>() const { return view(); }

  // Code (i, j) as an int and scale (i, g) as a float, for inspection.
  int code(index_t i, index_t j) const { return view().code(i, j); }
  float scale(index_t i, index_t g) const { return view().scale(i, g); }

  // ---- size accounting ----
  index_t code_bytes() const { return rows_ * code_row_bytes(F, cols_); }
  index_t scale_bytes() const { return scales_.size() * static_cast<index_t>(sizeof(scale_type)); }
  index_t bytes() const { return code_bytes() + scale_bytes(); }
  // Storage bits per weight, scales included (int4 with f16 scales per 128: 4 + 16/128 = 4.125).
  double bits_per_weight() const {
    return rows_ * cols_ == 0 ? 0.0 : 8.0 * static_cast<double>(bytes()) / static_cast<double>(rows_ * cols_);
  }
  // Size of the same matrix in f32 (bf16) over this size.
  double compression_vs_f32() const {
    return bytes() == 0 ? 0.0 : 4.0 * static_cast<double>(rows_ * cols_) / bytes();
  }
  double compression_vs_bf16() const {
    return bytes() == 0 ? 0.0 : 2.0 * static_cast<double>(rows_ * cols_) / bytes();
  }

 private:
  static index_t checked(index_t rows, index_t cols) {
    if (rows < 0 || cols < 0)
      fail("quant::quantized_weight: arguments 'rows, cols': expected >= 0, got ", rows, ", ", cols);
    return rows;
  }

  index_t rows_ = 0, cols_ = 0;
  aligned_buffer<code_type> codes_;
  aligned_buffer<scale_type> scales_;
};

namespace detail {
DSK_ISA_BEGIN
template <class S, quantize_config C, class T>
void quantize_into(view<const T, 2> w, quantized_weight<C.fmt>& q) {
  static_assert(check_format<C.fmt>::value);
  constexpr const char* where = "quant::quantize";
  contract c{where};
  c.unit_inner_stride("w", w);
  const index_t N = w.extent(0), K = w.extent(1);
  if (q.rows() != N || q.cols() != K) q = quantized_weight<C.fmt>(N, K);
  const qweight_view<C.fmt> v = q.view();
  auto* codes = reinterpret_cast<std::uint8_t*>(q.codes());
  parallel_for_chunks(0, N, 16, [&](index_t lo, index_t hi) {
    quantize_rows<S, C>(w.data(), w.stride(0), lo, hi, K, codes, v.code_stride, q.scales(), v.scale_stride,
                        where);
  });
}

template <class S, quantize_config C, class T>
quantized_weight<C.fmt> quantize_with(view<const T, 2> w) {
  quantized_weight<C.fmt> q;
  quantize_into<S, C>(w, q);
  return q;
}

template <class S, format F>
void dequantize_with(qweight_view<F> q, view<float, 2> out) {
  contract c{"quant::dequantize"};
  c.extent("out", out, 0, q.rows, "rows of the quantized weight")
      .extent("out", out, 1, q.cols, "cols of the quantized weight")
      .unit_inner_stride("out", out);
  parallel_for_chunks(0, q.rows, 16, [&](index_t lo, index_t hi) {
    dequantize_rows<S>(q, lo, hi, out.data(), out.stride(0));
  });
}

template <class S>
void quantize_tokens_with(view<const float, 2> x, view<std::int8_t, 2> q, view<float, 1> scales) {
  constexpr const char* where = "quant::quantize_tokens";
  contract c{where};
  c.unit_inner_stride("x", x)
      .extent("q", q, 0, x.extent(0), "x.extent(0) (tokens)")
      .extent("q", q, 1, x.extent(1), "x.extent(1)")
      .unit_inner_stride("q", q)
      .extent("scales", scales, 0, x.extent(0), "x.extent(0) (tokens)")
      .require(scales.stride(0) == 1 || scales.extent(0) <= 1, "scales", "a unit stride", scales.stride(0));
  parallel_for_chunks(0, x.extent(0), 16, [&](index_t lo, index_t hi) {
    quantize_tokens_rows<S, std::int8_t, false>(x.data(), x.stride(0), lo, hi, x.extent(1), q.data(),
                                                q.stride(0), scales.data(), where);
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN
// Quantizes W [N, K] (f32, or a bf16/f16 checkpoint tensor; unit inner stride) per output channel (row), or
// per group of C.fmt.group columns:
//   amax = max |w| over the channel/group;  scale = stored(r * amax / divisor)  (r = 1 for absmax; the best
//   of the clip_ratio grid for range_method::mse);  code = clamp(round(w / scale), qmin, qmax), 0 when scale
//   == 0.
// Conventions follow PyTorch's quantize_per_channel (half_even) or llama.cpp (half_away). A NaN or Inf weight
// throws dsk::error naming the channel and column.
template <quantize_config C>
quantized_weight<C.fmt> quantize(view<const float, 2> w) {
  return detail::quantize_with<simd::native, C>(w);
}
template <quantize_config C>
quantized_weight<C.fmt> quantize(view<const bf16, 2> w) {
  return detail::quantize_with<simd::native, C>(w);
}
template <quantize_config C>
quantized_weight<C.fmt> quantize(view<const f16, 2> w) {
  return detail::quantize_with<simd::native, C>(w);
}

// The same into existing storage (reallocated only when the shape differs): for re-quantizing in a loop.
template <quantize_config C>
void quantize(view<const float, 2> w, quantized_weight<C.fmt>& out) {
  detail::quantize_into<simd::native, C>(w, out);
}
template <quantize_config C>
void quantize(view<const bf16, 2> w, quantized_weight<C.fmt>& out) {
  detail::quantize_into<simd::native, C>(w, out);
}

// out[N, K] = code * scale.
template <format F>
void dequantize(qweight_view<F> q, view<float, 2> out) {
  detail::dequantize_with<simd::native>(q, out);
}
template <format F>
void dequantize(const quantized_weight<F>& q, view<float, 2> out) {
  detail::dequantize_with<simd::native>(q.view(), out);
}

// Per-token (row) int8 quantization of activations x [M, K]: scales[m] = max_k |x[m, k]| / 127,
// q[m, k] = clamp(nearbyint(x / scale), -127, 127) (0 for an all-zero token). Non-finite values throw.
inline void quantize_tokens(view<const float, 2> x, view<std::int8_t, 2> q, view<float, 1> scales) {
  detail::quantize_tokens_with<simd::native>(x, q, scales);
}
DSK_ISA_END

}  // namespace dsk::quant
