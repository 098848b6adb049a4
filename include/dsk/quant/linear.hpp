// A linear layer over quantized weights, y = x * W^T + b, with the same forward signature as dsk::nn::linear
// so it drops in wherever the f32/bf16 layer is used. Host; its products are quant::matmul / quant::matmul_a8
// (checked against quant/ref.hpp in tests/quant/linear.cpp).
#pragma once

#include <optional>
#include <vector>

#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"

namespace dsk::quant {

// Which product forward() runs: weight-only (f32 activations; the accurate choice, and the decode GEMV), or
// int8 activations quantized per token (W8A8/W4A8: the faster prefill GEMM).
enum class activations : std::uint8_t { f32, int8 };

struct linear_config {
  quantize_config quant{};
  activations act = activations::f32;
};

DSK_ISA_BEGIN
template <linear_config L>
class linear {
 public:
  static constexpr format fmt = L.quant.fmt;

  linear() = default;
  // From a checkpoint weight [out_features, in_features] (f32, bf16 or f16) and an optional bias
  // [out_features].
  explicit linear(view<const float, 2> w, std::optional<view<const float, 1>> bias = std::nullopt)
      : w_(quantize<L.quant>(w)) {
    set_bias(bias);
  }
  explicit linear(view<const bf16, 2> w, std::optional<view<const float, 1>> bias = std::nullopt)
      : w_(quantize<L.quant>(w)) {
    set_bias(bias);
  }
  explicit linear(view<const f16, 2> w, std::optional<view<const float, 1>> bias = std::nullopt)
      : w_(quantize<L.quant>(w)) {
    set_bias(bias);
  }
  // From already quantized weights.
  explicit linear(quantized_weight<fmt> w, std::optional<view<const float, 1>> bias = std::nullopt)
      : w_(std::move(w)) {
    set_bias(bias);
  }

  index_t in_features() const { return w_.cols(); }
  index_t out_features() const { return w_.rows(); }
  const quantized_weight<fmt>& weight() const { return w_; }
  bool has_bias() const { return !bias_.empty(); }

  // x [tokens, in_features] -> y [tokens, out_features]; unit inner strides.
  void forward(view<const float, 2> x, view<float, 2> y) const {
    if constexpr (L.act == activations::f32)
      matmul(x, w_.view(), y);
    else
      matmul_a8(x, w_.view(), y);
    if (!bias_.empty())
      for (index_t m = 0; m < y.extent(0); ++m)
        for (index_t n = 0; n < y.extent(1); ++n) y(m, n) += bias_[static_cast<std::size_t>(n)];
  }

 private:
  void set_bias(std::optional<view<const float, 1>> bias) {
    if (!bias) return;
    contract{"quant::linear"}.extent("bias", *bias, 0, w_.rows(), "out_features");
    bias_.resize(static_cast<std::size_t>(w_.rows()));
    for (index_t n = 0; n < w_.rows(); ++n) bias_[static_cast<std::size_t>(n)] = (*bias)(n);
  }

  quantized_weight<fmt> w_;
  std::vector<float> bias_;
};
DSK_ISA_END

}  // namespace dsk::quant
