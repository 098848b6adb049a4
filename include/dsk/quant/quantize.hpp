// Symmetric per-channel (optionally group-wise) int8/int4 quantization of weight matrices, its inverse, and
// per-token int8 quantization of activations. Host (scalar + AVX2, quant/host/quantize_avx2.hpp); checked
// against quant/ref.hpp in tests/quant/quantize.cpp. Formats and formulas: quant/format.hpp and
// docs/quantization.md.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/quant/alias.hpp"
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
  // Zero codes and scales of the given shape; rows, cols >= 0 and at most 2^48 bytes of storage (else
  // dsk::error naming them, before allocating).
  quantized_weight(index_t rows, index_t cols)
      : rows_(rows),
        cols_(cols),
        codes_(contracts::checked_weight_shape<F>("quant::quantized_weight", rows, cols) *
               code_row_bytes(F, cols)),
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
  // Reused storage is written while w is read: w must not live inside it.
  contracts::check_weight_alias(c, "w", w, "out", v);
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
  contracts::check_weight_alias(c, "out", out, "q", q);
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
  // A row of x is read whole before its codes are written, but codes are narrower than x: q or scales over
  // x would overwrite later rows before they are read.
  c.disjoint("q", q, "x", x).disjoint("scales", scales, "x", x).disjoint("scales", scales, "q", q);
  parallel_for_chunks(0, x.extent(0), 16, [&](index_t lo, index_t hi) {
    quantize_tokens_rows<S, std::int8_t, 0>(x.data(), x.stride(0), lo, hi, x.extent(1), q.data(), q.stride(0),
                                            scales.data(), where);
  });
}
DSK_ISA_END
}  // namespace detail

// A quantized weight operand of matmul / matmul_a8 / dequantize: qweight_view<F> or quantized_weight<F>.
template <class W>
inline constexpr bool is_quantized_operand = false;
template <format F>
inline constexpr bool is_quantized_operand<qweight_view<F>> = true;
template <format F>
inline constexpr bool is_quantized_operand<quantized_weight<F>> = true;
template <class W>
concept quantized_operand = is_quantized_operand<std::remove_cvref_t<W>>;

namespace detail {
// One readable line instead of a failed overload set (the instantiation context names W).
template <class W>
constexpr bool check_qweight() {
  static_assert(quantized_operand<W>,
                "dsk::quant: not a quantized weight (quant::quantized_weight<F> or quant::qweight_view<F>; "
                "quantize a float/bf16/f16 matrix with quant::quantize<format>(w), or use gemm::matmul)");
  return quantized_operand<W>;
}
template <format F>
qweight_view<F> as_qview(const qweight_view<F>& w) {
  return w;
}
template <format F>
qweight_view<F> as_qview(const quantized_weight<F>& w) {
  return w.view();
}
}  // namespace detail

DSK_ISA_BEGIN
// quantize<C, Exec = dsk::host>(w): C is a quant::format (quantize<quant::int4_per_channel>(w): ties to even,
// abs-max scales) or a quant::quantize_config (rounding, clipping search); Exec is dsk::host or a packet
// layer (dsk::simd::scalar, ...), all giving the same bits.
// Quantizes W [N, K] (f32, or a bf16/f16 checkpoint tensor; unit inner stride) per output channel (row), or
// per group of fmt.group columns:
//   amax = max |w| over the channel/group;  scale = stored(r * amax / divisor)  (r = 1 for absmax; the best
//   of the clip_ratio grid for range_method::mse);  code = clamp(round(w / scale), qmin, qmax), 0 when scale
//   == 0; w / scale an IEEE division, or w * f32(1 / scale) with division::reciprocal.
// Conventions follow PyTorch's quantize_per_channel (half_even; bit for bit with division::reciprocal, i.e.
// quantize<quant::torch_compatible(fmt)>) or llama.cpp (half_away). A NaN or Inf weight throws dsk::error
// naming the channel and column.
template <auto C, host_exec Exec = host>
quantized_weight<spec_v<C>.fmt> quantize(view<const float, 2> w) {
  return detail::quantize_with<exec_packet_t<Exec>, spec_v<C>>(w);
}
template <auto C, host_exec Exec = host>
quantized_weight<spec_v<C>.fmt> quantize(view<const bf16, 2> w) {
  return detail::quantize_with<exec_packet_t<Exec>, spec_v<C>>(w);
}
template <auto C, host_exec Exec = host>
quantized_weight<spec_v<C>.fmt> quantize(view<const f16, 2> w) {
  return detail::quantize_with<exec_packet_t<Exec>, spec_v<C>>(w);
}

// The same into existing storage (reallocated only when the shape differs): for re-quantizing in a loop.
template <auto C, host_exec Exec = host>
void quantize(view<const float, 2> w, quantized_weight<spec_v<C>.fmt>& out) {
  detail::quantize_into<exec_packet_t<Exec>, spec_v<C>>(w, out);
}
template <auto C, host_exec Exec = host>
void quantize(view<const bf16, 2> w, quantized_weight<spec_v<C>.fmt>& out) {
  detail::quantize_into<exec_packet_t<Exec>, spec_v<C>>(w, out);
}
template <auto C, host_exec Exec = host>
void quantize(view<const f16, 2> w, quantized_weight<spec_v<C>.fmt>& out) {
  detail::quantize_into<exec_packet_t<Exec>, spec_v<C>>(w, out);
}

// out[N, K] = code * scale; out must not overlap q's codes or scales (checked). dequantize<Exec =
// dsk::host>(q, out) deduces the format from q; dequantize<F, Exec>(q, out) names it (q converts to
// qweight_view<F>).
template <host_exec Exec = host, class W>
void dequantize(const W& q, view<float, 2> out) {
  if constexpr (detail::check_qweight<W>())
    detail::dequantize_with<exec_packet_t<Exec>>(detail::as_qview(q), out);
}
template <format F, host_exec Exec = host>
void dequantize(std::type_identity_t<qweight_view<F>> q, view<float, 2> out) {
  detail::dequantize_with<exec_packet_t<Exec>>(q, out);
}

// Per-token (row) int8 quantization of activations x [M, K]: scales[m] = max_k |x[m, k]| / 127,
// q[m, k] = clamp(nearbyint(x / scale), -127, 127) (0 for an all-zero token). Non-finite values throw.
// q and scales must not overlap x or each other (checked).
template <host_exec Exec = host>
void quantize_tokens(view<const float, 2> x, view<std::int8_t, 2> q, view<float, 1> scales) {
  detail::quantize_tokens_with<exec_packet_t<Exec>>(x, q, scales);
}
DSK_ISA_END

}  // namespace dsk::quant
