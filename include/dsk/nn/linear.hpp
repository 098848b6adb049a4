// nn::linear: a dense layer y = x W^T (+ b) whose weight format is chosen at run time (f32, bf16, f16 through
// dsk::gemm; int8 / int4 per channel or grouped, weight-only or with int8 activations, through dsk::quant),
// with an optional LoRA adapter (nn::lora_adapter; nn::merge_lora folds one into a weight), and
// nn::swiglu_mlp: DeepSeek's dense MLP / expert FFN down(silu(gate x) * up x) over the same formats.
// Host backend. Checked against gemm/ref.hpp and quant/ref.hpp in tests/nn/linear.cpp. Header-only, or
// compiled into dsk::kernels (DSK_COMPILED_KERNELS=1: the members below are declared here and defined once
// in src/kernels/nn_linear_*.cpp; see dsk/kernels/config.hpp).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "dsk/core/dispatch.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/gemm/matmul.hpp"
#include "dsk/gemm/packed.hpp"
#include "dsk/kernels/config.hpp"
#include "dsk/nn/elementwise.hpp"
#include "dsk/quant/linear.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"

namespace dsk::nn {

// The storage of a layer's weights. source: keep the dtype of the matrix the layer is built from (f32, bf16
// or f16: a checkpoint's own dtype).
enum class weight_type : std::uint8_t { source, f32, bf16, f16, int8, int4 };

// A weight format chosen at run time (e.g. from a command-line flag: parse_linear_format("int4-g128")).
// group, scale and act apply to int8 / int4 only: group 0 = one scale per output channel, or 32, 64, 128
// consecutive inputs per scale; scale f32 (every group) or f16 (group 128); act f32 = weight-only product
// (quant::matmul, the accurate one), int8 = activations quantized per token (quant::matmul_a8, W8A8/W4A8).
struct linear_format {
  weight_type type = weight_type::source;
  int group = 0;
  quant::scale_type scale = quant::scale_type::f32;
  quant::activations act = quant::activations::f32;

  friend constexpr bool operator==(const linear_format&, const linear_format&) = default;
};

inline constexpr bool is_quantized(weight_type t) { return t == weight_type::int8 || t == weight_type::int4; }

// "source", "f32", "bf16", "f16", "int8", "int4", then for int8 / int4 optional suffixes "-g32" / "-g64" /
// "-g128" (group), "-f16" / "-bf16" (scale type; bf16 scales parse but are not compiled in), "-a8" (int8
// activations), in that order: "int4-g128-f16-a8".
inline std::string to_string(const linear_format& f) {
  static constexpr const char* names[] = {"source", "f32", "bf16", "f16", "int8", "int4"};
  std::string s = names[static_cast<int>(f.type)];
  if (!is_quantized(f.type)) return s;
  if (f.group) s += "-g" + std::to_string(f.group);
  if (f.scale == quant::scale_type::f16) s += "-f16";
  if (f.scale == quant::scale_type::bf16) s += "-bf16";
  if (f.act == quant::activations::int8) s += "-a8";
  return s;
}

// The inverse of to_string; "checkpoint" and "auto" are accepted for "source". Throws dsk::unsupported on
// anything else, listing the grammar.
inline linear_format parse_linear_format(std::string_view s) {
  const std::string all(s);
  auto bad = [&]() -> linear_format {
    throw unsupported(
        "nn::parse_linear_format: '" + all +
        "' is not a weight format; choices: source (checkpoint, auto), f32, bf16, f16, int8, int4, "
        "the last two with optional -g32 / -g64 / -g128, -f16 (f16 scales), -a8 (int8 "
        "activations), e.g. int4-g128-f16-a8");
  };
  auto take = [&](std::string_view p) {
    if (s.substr(0, p.size()) != p) return false;
    s.remove_prefix(p.size());
    return true;
  };
  linear_format f;
  if (s == "source" || s == "checkpoint" || s == "auto") return f;
  if (s == "f32" || s == "bf16" || s == "f16") {
    f.type = s == "f32" ? weight_type::f32 : s == "bf16" ? weight_type::bf16 : weight_type::f16;
    return f;
  }
  if (take("int8"))
    f.type = weight_type::int8;
  else if (take("int4"))
    f.type = weight_type::int4;
  else
    return bad();
  if (take("-g128"))
    f.group = 128;
  else if (take("-g64"))
    f.group = 64;
  else if (take("-g32"))
    f.group = 32;
  if (take("-f16"))
    f.scale = quant::scale_type::f16;
  else if (take("-bf16"))
    f.scale = quant::scale_type::bf16;
  if (take("-a8")) f.act = quant::activations::int8;
  return s.empty() ? f : bad();
}

namespace detail {
DSK_ISA_BEGIN

// The quantized formats compiled into nn::linear (each instantiates quantize and both products).
template <quant::format... F>
struct quant_format_list {
  using storage =
      std::variant<std::monostate, gemm::packed_weights<float>, gemm::packed_weights<bf16>,
                   gemm::packed_weights<f16>, quant::quantized_weight<F>..., quant::qweight_view<F>...>;

  static constexpr quant::format to_quant(const linear_format& f) {
    return {f.type == weight_type::int8 ? quant::qtype::int8 : quant::qtype::int4, f.group, f.scale,
            quant::int4_range::sym7};
  }
  static std::string choices() {
    std::string s;
    ((s += (s.empty() ? "" : ", ") +
           to_string(linear_format{F.type == quant::qtype::int8 ? weight_type::int8 : weight_type::int4,
                                   F.group, F.scale, quant::activations::f32})),
     ...);
    return s;
  }
  template <class Fn>
  static storage visit(const char* where, const linear_format& lf, Fn&& fn) {
    const quant::format q = to_quant(lf);
    std::optional<storage> r;
    const bool found =
        ((q == F ? (r.emplace(fn(std::integral_constant<quant::format, F>{})), true) : false) || ...);
    if (!found)
      throw unsupported(std::string(where) + ": argument 'format': " + to_string(lf) +
                        " is not compiled in; quantized choices (each also with -a8): " + choices());
    return *std::move(r);
  }
};

using linear_formats = quant_format_list<
    quant::format{quant::qtype::int8, 0}, quant::format{quant::qtype::int8, 32},
    quant::format{quant::qtype::int8, 64}, quant::format{quant::qtype::int8, 128},
    quant::format{quant::qtype::int8, 128, quant::scale_type::f16}, quant::format{quant::qtype::int4, 0},
    quant::format{quant::qtype::int4, 32}, quant::format{quant::qtype::int4, 0, quant::scale_type::f16},
    quant::format{quant::qtype::int4, 64}, quant::format{quant::qtype::int4, 128}, quant::int4_g128_f16>;

template <class To, class From>
tensor<To, 2> convert(view<const From, 2> w) {
  tensor<To, 2> t(std::array<index_t, 2>{w.extent(0), w.extent(1)}, uninitialized);
  for (index_t i = 0; i < w.extent(0); ++i)
    for (index_t j = 0; j < w.extent(1); ++j) t(i, j) = from_float<To>(to_float(w(i, j)));
  return t;
}

inline void check_format(const char* where, const linear_format& f) {
  const contract c{where};
  if (!is_quantized(f.type)) {
    c.require(f.group == 0 && f.scale == quant::scale_type::f32 && f.act == quant::activations::f32, "format",
              "group 0, f32 scales and f32 activations for a float weight type (they apply to int8 / int4)",
              to_string(f));
    return;
  }
  c.require(f.group == 0 || f.group == 32 || f.group == 64 || f.group == 128, "format",
            "group 0 (per channel), 32, 64 or 128", f.group);
}

// Weights w [out, in] (f32, bf16, f16) stored in format f.
template <class T>
linear_formats::storage make_storage(const char* where, view<const T, 2> w, const linear_format& f) {
  check_format(where, f);
  auto pack = [&]<class W>(std::type_identity<W>) -> linear_formats::storage {
    if constexpr (std::is_same_v<W, T>)
      return gemm::packed_weights<W>(w);
    else
      return gemm::packed_weights<W>(convert<W>(w).cview());
  };
  switch (f.type) {
    case weight_type::source:
      return pack(std::type_identity<T>{});
    case weight_type::f32:
      return pack(std::type_identity<float>{});
    case weight_type::bf16:
      return pack(std::type_identity<bf16>{});
    case weight_type::f16:
      return pack(std::type_identity<f16>{});
    default:
      break;
  }
  return linear_formats::visit(where, f, [&](auto k) -> linear_formats::storage {
    return quant::quantize<quant::quantize_config{decltype(k)::value}>(w);
  });
}

DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// A low-rank adapter on a linear layer (LoRA: Hu et al. 2021, arXiv 2106.09685): y += scale * (x A^T) B^T
// with A [r, in_features] and B [out_features, r] in f32 (PEFT's lora_A.weight / lora_B.weight) and
// scale = lora_alpha / r (rsLoRA: lora_alpha / sqrt(r)). nn::linear applies it after its base product, so the
// base weight, in any format, is still read once per call; the adapter adds r (in + out) multiply-adds per
// token.
struct lora_adapter {
  tensor<float, 2> a;  // [r, in_features]
  tensor<float, 2> b;  // [out_features, r]
  float scale = 1.0f;
  index_t rank() const { return a.extent(0); }
};

// Throws unless the adapter fits a layer [out, in]: a [r, in], b [out, r], r >= 1, finite scale and values.
inline void check_lora_adapter(const contract& c, const lora_adapter& l, index_t out, index_t in) {
  c.require(l.a.extent(0) >= 1, "adapter.a", "rank r = extent(0) >= 1", l.a.extent(0))
      .extent("adapter.a", l.a.cview(), 1, in, "in_features")
      .extent("adapter.b", l.b.cview(), 0, out, "out_features")
      .extent("adapter.b", l.b.cview(), 1, l.a.extent(0), "adapter.a.extent(0) (the rank)")
      .require(std::isfinite(l.scale), "adapter.scale", "a finite value", l.scale);
  for (const auto* t : {&l.a, &l.b})
    for (index_t i = 0; i < t->size(); ++i)
      if (!std::isfinite(t->data()[i]))
        c.require(false, t == &l.a ? "adapter.a" : "adapter.b", "finite values",
                  dsk::detail::concat("a non-finite value at flat index ", i));
}

// W [out, in] += scale * (B A): the adapter merged into a dense f32 copy of the weight (as PEFT's merge: the
// product B A in f32, then times scale), so that the merged layer costs nothing extra per token. The product
// runs on dsk::gemm (threads, blocked).
inline void merge_lora(view<float, 2> w, const lora_adapter& l) {
  const contract c{"nn::merge_lora"};
  check_lora_adapter(c, l, w.extent(0), w.extent(1));
  c.unit_inner_stride("w", w);
  const index_t out = w.extent(0), in = w.extent(1), r = l.rank();
  tensor<float, 2> at(std::array<index_t, 2>{in, r}, uninitialized);  // A^T: matmul takes W [N, K]
  for (index_t k = 0; k < r; ++k)
    for (index_t j = 0; j < in; ++j) at(j, k) = l.a(k, j);
  tensor<float, 2> delta(std::array<index_t, 2>{out, in}, uninitialized);
  gemm::matmul(l.b.cview(), at.cview(), delta.view());  // B [out, r] x (A^T)^T
  for (index_t i = 0; i < out; ++i)
    for (index_t j = 0; j < in; ++j) w(i, j) += delta(i, j) * l.scale;
}

// A linear layer with weights W [out_features, in_features] (checkpoint layout) held in a format chosen at
// run time, and an optional f32 bias [out_features] and low-rank adapter. Weights are packed / quantized once
// at construction; forward is const and may be called from several threads at once.
class linear {
 public:
  linear() = default;
  // From a weight matrix in f32, bf16 or f16 and the format to hold it in (source: its own dtype).
  linear(view<const float, 2> weight, linear_format format, std::optional<view<const float, 1>> bias = {});
  linear(view<const bf16, 2> weight, linear_format format, std::optional<view<const float, 1>> bias = {});
  linear(view<const f16, 2> weight, linear_format format, std::optional<view<const float, 1>> bias = {});
  // The weight's own dtype (format source).
  explicit linear(view<const float, 2> weight) : linear(weight, linear_format{}) {}
  explicit linear(view<const bf16, 2> weight) : linear(weight, linear_format{}) {}
  explicit linear(view<const f16, 2> weight) : linear(weight, linear_format{}) {}
  linear(view<const float, 2> weight, view<const float, 1> bias) : linear(weight, linear_format{}, bias) {}
  linear(view<const bf16, 2> weight, view<const float, 1> bias) : linear(weight, linear_format{}, bias) {}
  linear(view<const f16, 2> weight, view<const float, 1> bias) : linear(weight, linear_format{}, bias) {}
  // Adopts weights already packed for gemm::matmul (e.g. loaded by a model runner).
  template <float_storage W>
  explicit linear(gemm::packed_weights<W> packed, std::optional<view<const float, 1>> bias = {}) {
    const contract c{"nn::linear"};
    c.require(packed.kind() == gemm::panel_kind::plain, "packed", "plain packed weights (not swiglu)");
    fmt_.type = std::is_same_v<W, float>  ? weight_type::f32
                : std::is_same_v<W, bf16> ? weight_type::bf16
                                          : weight_type::f16;
    w_ = std::move(packed);
    finish(bias);
  }
  // Adopts quantized weights (one of the compiled formats); act: weight-only or int8-activation product.
  template <quant::format F>
  explicit linear(quant::quantized_weight<F> q, quant::activations act = quant::activations::f32,
                  std::optional<view<const float, 1>> bias = {}) {
    static_assert(std::is_constructible_v<detail::linear_formats::storage, quant::quantized_weight<F>>,
                  "nn::linear: this quant::format is not among the compiled formats (see linear_formats)");
    fmt_ = {F.type == quant::qtype::int8 ? weight_type::int8 : weight_type::int4, F.group, F.scale, act};
    w_ = std::move(q);
    finish(bias);
  }

  // Adopts quantized weights held elsewhere, not copied (e.g. codes and scales viewed in a memory-mapped
  // checkpoint): that memory must outlive the layer and its copies.
  template <quant::format F>
  explicit linear(quant::qweight_view<F> w, quant::activations act = quant::activations::f32,
                  std::optional<view<const float, 1>> bias = {}) {
    static_assert(std::is_constructible_v<detail::linear_formats::storage, quant::qweight_view<F>>,
                  "nn::linear: this quant::format is not among the compiled formats (see linear_formats)");
    const contract c{"nn::linear"};
    c.require(w.codes != nullptr && w.scales != nullptr, "w", "codes and scales", "a null pointer");
    c.require(w.rows >= 1 && w.cols >= 1, "w", "at least one row and column",
              dsk::detail::concat(w.rows, " x ", w.cols));
    c.require(w.code_stride >= quant::code_row_bytes(F, w.cols), "w",
              dsk::detail::concat("a code row stride >= ", quant::code_row_bytes(F, w.cols), " bytes"),
              w.code_stride);
    c.require(w.scale_stride >= w.groups(), "w",
              dsk::detail::concat("a scale row stride >= ", w.groups(), " scales"), w.scale_stride);
    fmt_ = {F.type == quant::qtype::int8 ? weight_type::int8 : weight_type::int4, F.group, F.scale, act};
    w_ = w;
    finish(bias);
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  bool has_bias() const { return bias_.has_value(); }
  // The format the weights are held in (source resolved to the dtype it kept).
  const linear_format& format() const { return fmt_; }
  // Bytes of the weights as stored (codes + scales for int8 / int4; an adapter's A and B), bias excluded.
  std::int64_t bytes() const;

  // Attaches a low-rank adapter (replacing an earlier one): forward then adds adapter.scale * (x A^T) B^T.
  // Checked: a [r, in_features], b [out_features, r], r >= 1, finite values and scale. Shared by copies.
  void set_adapter(lora_adapter adapter) {
    check_lora_adapter(contract{"nn::linear::set_adapter"}, adapter, out_, in_);
    lora_ = std::make_shared<const lora_adapter>(std::move(adapter));
  }
  const lora_adapter* adapter() const { return lora_.get(); }
  std::int64_t adapter_bytes() const { return lora_ ? 4 * (lora_->a.size() + lora_->b.size()) : 0; }
  // The weights: a gemm::packed_weights<W> or a quant::quantized_weight<F> (std::get_if on the variant).
  const detail::linear_formats::storage& weights() const { return w_; }

  // x: [tokens, in_features] -> y: [tokens, out_features]; unit inner strides. Host.
  void forward(view<const float, 2> x, view<float, 2> y) const;

 private:
  // Records the shape, resolves format source to the dtype kept, copies the bias.
  void finish(std::optional<view<const float, 1>> bias);

  // y += scale * (x A^T) B^T, PEFT's order (the low-rank product, then the scale, then the sum).
  void apply_adapter(view<const float, 2> x, view<float, 2> y) const {
    const index_t T = x.extent(0), r = lora_->rank();
    tensor<float, 2> t(std::array<index_t, 2>{T, r}, uninitialized);
    tensor<float, 2> u(std::array<index_t, 2>{T, out_}, uninitialized);
    gemm::matmul(x, lora_->a.cview(), t.view());
    gemm::matmul(t.cview(), lora_->b.cview(), u.view());
    const float s = lora_->scale;
    for (index_t i = 0; i < T; ++i)
      for (index_t j = 0; j < out_; ++j) y(i, j) += u(i, j) * s;
  }

  linear_format fmt_{};
  detail::linear_formats::storage w_;
  index_t in_ = 0, out_ = 0;
  std::optional<tensor<float, 1>> bias_;
  std::shared_ptr<const lora_adapter> lora_;
};

// SwiGLU MLP without biases (DeepSeek-V2 dense layers, shared and routed experts) in any linear_format:
// y = down(silu(x gate^T) * (x up^T)); gate, up: [inter, hidden]; down: [hidden, inter]. f32 / bf16 / f16:
// one fused gemm::swiglu over interleaved gate/up panels; int8 / int4: gate and up quantized as one stacked
// [2 inter, hidden] weight (row-wise scales, so the codes are those of each matrix alone), one quantized
// product, then nn::swiglu on its halves.
class swiglu_mlp {
 public:
  swiglu_mlp() = default;
  swiglu_mlp(view<const float, 2> gate, view<const float, 2> up, view<const float, 2> down,
             linear_format format);
  swiglu_mlp(view<const bf16, 2> gate, view<const bf16, 2> up, view<const bf16, 2> down,
             linear_format format);
  swiglu_mlp(view<const f16, 2> gate, view<const f16, 2> up, view<const f16, 2> down, linear_format format);
  // The weights' own dtype.
  swiglu_mlp(view<const float, 2> gate, view<const float, 2> up, view<const float, 2> down)
      : swiglu_mlp(gate, up, down, linear_format{}) {}
  swiglu_mlp(view<const bf16, 2> gate, view<const bf16, 2> up, view<const bf16, 2> down)
      : swiglu_mlp(gate, up, down, linear_format{}) {}
  swiglu_mlp(view<const f16, 2> gate, view<const f16, 2> up, view<const f16, 2> down)
      : swiglu_mlp(gate, up, down, linear_format{}) {}

  // From three layers in any formats: gate, up [inter, hidden], down [hidden, inter] (e.g. quantized weights
  // viewed in a memory-mapped checkpoint, which cannot be stacked without a copy); gate and up run as two
  // products.
  swiglu_mlp(linear gate, linear up, linear down);

  index_t hidden() const { return hidden_; }
  index_t intermediate() const { return inter_; }
  const linear_format& format() const { return down_.format(); }
  std::int64_t bytes() const;
  const linear& down() const { return down_; }

  // x: [tokens, hidden] -> y: [tokens, hidden]. Allocates the [tokens, intermediate] activation per call.
  void forward(view<const float, 2> x, view<float, 2> y) const;
  // The same with a caller-provided activation buffer h: [tokens, intermediate] (the quantized formats also
  // allocate their [tokens, 2 intermediate] gate/up product).
  void forward(view<const float, 2> x, view<float, 2> y, view<float, 2> h) const;

 private:
  template <class T>
  swiglu_mlp(int, view<const T, 2> gate, view<const T, 2> up, view<const T, 2> down, linear_format f);
  std::int64_t gate_up_bytes() const;

  std::variant<std::monostate, gemm::packed_weights<float>, gemm::packed_weights<bf16>,
               gemm::packed_weights<f16>>
      gate_up_;
  std::optional<linear> gate_up_q_;  // int8 / int4: [gate; up] stacked
  std::optional<linear> gate_, up_;  // the three-layer form
  linear down_;
  index_t hidden_ = 0, inter_ = 0;
};

DSK_ISA_END

// ---- definitions: inline here (header-only), or compiled once into dsk::kernels --------------------------
}  // namespace dsk::nn

#if DSK_COMPILED_KERNELS
#include "dsk/kernels.hpp"  // extern templates of the other compiled configs (quantize, MLA, MoE experts)
#endif

namespace dsk::nn {

#if DSK_KERNELS_DEFINE(NN_LINEAR_BUILD)  // construction: packing / quantizing in every format
DSK_ISA_BEGIN

DSK_KERNEL_INLINE linear::linear(view<const float, 2> weight, linear_format format,
                                 std::optional<view<const float, 1>> bias)
    : fmt_(format), w_(detail::make_storage("nn::linear", weight, format)) {
  finish(bias);
}
DSK_KERNEL_INLINE linear::linear(view<const bf16, 2> weight, linear_format format,
                                 std::optional<view<const float, 1>> bias)
    : fmt_(format), w_(detail::make_storage("nn::linear", weight, format)) {
  finish(bias);
}
DSK_KERNEL_INLINE linear::linear(view<const f16, 2> weight, linear_format format,
                                 std::optional<view<const float, 1>> bias)
    : fmt_(format), w_(detail::make_storage("nn::linear", weight, format)) {
  finish(bias);
}

DSK_KERNEL_INLINE std::int64_t linear::bytes() const {
  return adapter_bytes() + std::visit(
                               [](const auto& w) -> std::int64_t {
                                 if constexpr (std::is_same_v<std::decay_t<decltype(w)>, std::monostate>)
                                   return 0;
                                 else
                                   return w.bytes();
                               },
                               w_);
}

DSK_KERNEL_INLINE void linear::finish(std::optional<view<const float, 1>> bias) {
  std::visit(
      [&](const auto& w) {
        if constexpr (requires { w.kind(); })
          out_ = w.out_features(), in_ = w.in_features();
        else if constexpr (requires { w.rows(); })
          out_ = w.rows(), in_ = w.cols();
        else if constexpr (requires { w.rows; })
          out_ = w.rows, in_ = w.cols;
      },
      w_);
  if (fmt_.type == weight_type::source)
    fmt_.type = std::holds_alternative<gemm::packed_weights<float>>(w_)  ? weight_type::f32
                : std::holds_alternative<gemm::packed_weights<bf16>>(w_) ? weight_type::bf16
                                                                         : weight_type::f16;
  if (!bias) return;
  const contract c{"nn::linear"};
  c.extent("bias", *bias, 0, out_, "weight.extent(0) (out_features)");
  bias_.emplace(std::array<index_t, 1>{out_}, uninitialized);
  for (index_t i = 0; i < out_; ++i) (*bias_)(i) = (*bias)(i);
}

DSK_KERNEL_INLINE swiglu_mlp::swiglu_mlp(view<const float, 2> gate, view<const float, 2> up,
                                         view<const float, 2> down, linear_format format)
    : swiglu_mlp(0, gate, up, down, format) {}
DSK_KERNEL_INLINE swiglu_mlp::swiglu_mlp(view<const bf16, 2> gate, view<const bf16, 2> up,
                                         view<const bf16, 2> down, linear_format format)
    : swiglu_mlp(0, gate, up, down, format) {}
DSK_KERNEL_INLINE swiglu_mlp::swiglu_mlp(view<const f16, 2> gate, view<const f16, 2> up,
                                         view<const f16, 2> down, linear_format format)
    : swiglu_mlp(0, gate, up, down, format) {}

DSK_KERNEL_INLINE swiglu_mlp::swiglu_mlp(linear gate, linear up, linear down) {
  const contract c{"nn::swiglu_mlp"};
  c.require(up.out_features() == gate.out_features(), "up",
            dsk::detail::concat(gate.out_features(), " outputs (gate's: the intermediate size)"),
            up.out_features());
  c.require(up.in_features() == gate.in_features(), "up",
            dsk::detail::concat(gate.in_features(), " inputs (gate's: the hidden size)"), up.in_features());
  c.require(
      down.in_features() == gate.out_features() && down.out_features() == gate.in_features(), "down",
      dsk::detail::concat("[", gate.in_features(), ", ", gate.out_features(), "] (hidden, intermediate)"),
      dsk::detail::concat("[", down.out_features(), ", ", down.in_features(), "]"));
  c.require(!gate.has_bias() && !up.has_bias() && !down.has_bias(), "gate/up/down", "layers without bias",
            "a bias");
  inter_ = gate.out_features(), hidden_ = gate.in_features();
  gate_.emplace(std::move(gate));
  up_.emplace(std::move(up));
  down_ = std::move(down);
}

DSK_KERNEL_INLINE std::int64_t swiglu_mlp::bytes() const { return down_.bytes() + gate_up_bytes(); }

template <class T>
swiglu_mlp::swiglu_mlp(int, view<const T, 2> gate, view<const T, 2> up, view<const T, 2> down,
                       linear_format f) {
  const contract c{"nn::swiglu_mlp"};
  detail::check_format("nn::swiglu_mlp", f);
  c.extent("up", up, 0, gate.extent(0), "gate.extent(0) (intermediate size)")
      .extent("up", up, 1, gate.extent(1), "gate.extent(1) (hidden size)");
  c.extent("down", down, 1, gate.extent(0), "gate.extent(0) (intermediate size)");
  c.extent("down", down, 0, gate.extent(1), "gate.extent(1) (hidden size)");
  inter_ = gate.extent(0), hidden_ = gate.extent(1);
  auto fused = [&]<class W>(std::type_identity<W>) {
    if constexpr (std::is_same_v<W, T>)
      gate_up_ = gemm::packed_weights<W>::swiglu(gate, up);
    else
      gate_up_ =
          gemm::packed_weights<W>::swiglu(detail::convert<W>(gate).cview(), detail::convert<W>(up).cview());
  };
  switch (f.type) {
    case weight_type::source:
      fused(std::type_identity<T>{});
      break;
    case weight_type::f32:
      fused(std::type_identity<float>{});
      break;
    case weight_type::bf16:
      fused(std::type_identity<bf16>{});
      break;
    case weight_type::f16:
      fused(std::type_identity<f16>{});
      break;
    default: {
      tensor<T, 2> stacked(std::array<index_t, 2>{2 * inter_, hidden_}, uninitialized);
      for (index_t i = 0; i < inter_; ++i)
        for (index_t j = 0; j < hidden_; ++j) stacked(i, j) = gate(i, j), stacked(inter_ + i, j) = up(i, j);
      gate_up_q_.emplace(stacked.cview(), f);
    }
  }
  down_ = linear(down, f);
}

DSK_KERNEL_INLINE std::int64_t swiglu_mlp::gate_up_bytes() const {
  if (gate_up_q_) return gate_up_q_->bytes();
  if (gate_) return gate_->bytes() + up_->bytes();
  return std::visit(
      [](const auto& p) -> std::int64_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, std::monostate>)
          return 0;
        else
          return p.bytes();
      },
      gate_up_);
}

DSK_ISA_END
#endif  // DSK_KERNELS_DEFINE(NN_LINEAR_BUILD)

#if DSK_KERNELS_DEFINE(NN_LINEAR_FORWARD)  // the products: gemm / quant::matmul / matmul_a8 per format
DSK_ISA_BEGIN

DSK_KERNEL_INLINE void linear::forward(view<const float, 2> x, view<float, 2> y) const {
  std::visit(
      [&](const auto& w) {
        using T = std::decay_t<decltype(w)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          fail("nn::linear::forward: the layer is empty (default-constructed)");
        } else if constexpr (requires { w.kind(); }) {  // gemm::packed_weights
          if (bias_)
            gemm::matmul(x, w, bias_->cview(), y);
          else
            gemm::matmul(x, w, y);
        } else {
          if (fmt_.act == quant::activations::int8)
            quant::matmul_a8(x, w, y);
          else
            quant::matmul(x, w, y);
          if (bias_)
            detail::binary_rows<simd::native>(y.data(), y.stride(0), bias_->data(), 0, y.data(), y.stride(0),
                                              y.extent(0), y.extent(1),
                                              [](auto a, auto b) { return simd::native::add(a, b); });
        }
      },
      w_);
  if (lora_) apply_adapter(x, y);
}

DSK_KERNEL_INLINE void swiglu_mlp::forward(view<const float, 2> x, view<float, 2> y) const {
  tensor<float, 2> h(std::array<index_t, 2>{x.extent(0), inter_}, uninitialized);
  forward(x, y, h.view());
}

DSK_KERNEL_INLINE void swiglu_mlp::forward(view<const float, 2> x, view<float, 2> y, view<float, 2> h) const {
  const contract c{"nn::swiglu_mlp::forward"};
  c.extent("h", h, 0, x.extent(0), "x.extent(0) (tokens)").extent("h", h, 1, inter_, "intermediate()");
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          if (!gate_up_q_ && !gate_)
            fail("nn::swiglu_mlp::forward: the layer is empty (default-constructed)");
          c.extent("x", x, 1, hidden_, "hidden()");
          tensor<float, 2> gu(std::array<index_t, 2>{x.extent(0), 2 * inter_}, uninitialized);
          if (gate_up_q_) {
            gate_up_q_->forward(x, gu.view());
          } else {  // gate into the first half of each row, up into the second
            const index_t T = x.extent(0);
            gate_->forward(x, view<float, 2>(gu.data(), dims<2>(T, inter_), {2 * inter_, 1}));
            up_->forward(x, view<float, 2>(gu.data() + inter_, dims<2>(T, inter_), {2 * inter_, 1}));
          }
          swiglu(gu.cview(), h, gate_up_layout::halves);
        } else {
          gemm::swiglu(x, p, h);
        }
      },
      gate_up_);
  down_.forward(h, y);
}

DSK_ISA_END
#endif  // DSK_KERNELS_DEFINE(NN_LINEAR_FORWARD)

}  // namespace dsk::nn
