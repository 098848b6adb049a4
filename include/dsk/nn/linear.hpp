// nn::linear: a dense layer y = x W^T (+ b) that owns its weights pre-packed for gemm::matmul, and
// nn::swiglu_mlp: DeepSeek's dense MLP / expert FFN down(silu(gate x) * up x). Host backend (gemm/host).
// Checked against gemm/ref.hpp in tests/nn/linear.cpp.
#pragma once

#include <optional>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/gemm/matmul.hpp"
#include "dsk/gemm/packed.hpp"

namespace dsk::nn {

// A linear layer with weights W [out_features, in_features] (checkpoint layout) in float, bf16 or f16, and an
// optional f32 bias [out_features]. The weights are packed once at construction; forward is const and may be
// called from several threads at once.
template <float_storage W>
class linear {
 public:
  using weight_type = W;

  linear() = default;
  explicit linear(view<const W, 2> weight) : w_(weight) {}
  linear(view<const W, 2> weight, view<const float, 1> bias) : w_(weight) {
    const contract c{"nn::linear"};
    c.extent("bias", bias, 0, weight.extent(0), "weight.extent(0) (out_features)");
    bias_.emplace(std::array<index_t, 1>{bias.extent(0)}, uninitialized);
    for (index_t i = 0; i < bias.extent(0); ++i) (*bias_)(i) = bias(i);
  }
  // Adopts weights that are already packed (e.g. shared with another layer or loaded by a model runner).
  explicit linear(gemm::packed_weights<W> packed) : w_(std::move(packed)) {
    const contract c{"nn::linear"};
    c.require(w_.kind() == gemm::panel_kind::plain, "packed", "plain packed weights (not swiglu)");
  }

  index_t in_features() const { return w_.in_features(); }
  index_t out_features() const { return w_.out_features(); }
  bool has_bias() const { return bias_.has_value(); }
  const gemm::packed_weights<W>& weights() const { return w_; }

  // x: [tokens, in_features] -> y: [tokens, out_features]; unit inner strides.
  void forward(view<const float, 2> x, view<float, 2> y) const {
    if (bias_)
      gemm::matmul(x, w_, bias_->cview(), y);
    else
      gemm::matmul(x, w_, y);
  }

 private:
  gemm::packed_weights<W> w_;
  std::optional<tensor<float, 1>> bias_;
};

// SwiGLU MLP without biases (DeepSeek-V2 dense layers, shared and routed experts):
// y = down(silu(x gate^T) * (x up^T)); gate, up: [inter, hidden]; down: [hidden, inter].
template <float_storage W>
class swiglu_mlp {
 public:
  using weight_type = W;

  swiglu_mlp() = default;
  swiglu_mlp(view<const W, 2> gate, view<const W, 2> up, view<const W, 2> down)
      : gate_up_(gemm::packed_weights<W>::swiglu(gate, up)), down_(down) {
    const contract c{"nn::swiglu_mlp"};
    c.extent("down", down, 1, gate.extent(0), "gate.extent(0) (intermediate size)");
    c.extent("down", down, 0, gate.extent(1), "gate.extent(1) (hidden size)");
  }

  index_t hidden() const { return gate_up_.in_features(); }
  index_t intermediate() const { return gate_up_.out_features(); }
  const gemm::packed_weights<W>& gate_up() const { return gate_up_; }
  const linear<W>& down() const { return down_; }

  // x: [tokens, hidden] -> y: [tokens, hidden]. Allocates the [tokens, intermediate] activation per call.
  void forward(view<const float, 2> x, view<float, 2> y) const {
    tensor<float, 2> h({x.extent(0), intermediate()}, uninitialized);
    forward(x, y, h.view());
  }
  // The same with a caller-provided activation buffer h: [tokens, intermediate].
  void forward(view<const float, 2> x, view<float, 2> y, view<float, 2> h) const {
    const contract c{"nn::swiglu_mlp::forward"};
    c.extent("h", h, 0, x.extent(0), "x.extent(0) (tokens)")
        .extent("h", h, 1, intermediate(), "intermediate()");
    gemm::swiglu(x, gate_up_, h);
    down_.forward(h, y);
  }

 private:
  gemm::packed_weights<W> gate_up_;
  linear<W> down_;
};

}  // namespace dsk::nn
