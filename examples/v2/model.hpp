// DeepSeek-V2 / V2-Lite reference model built only from dsk's public headers: MLA with the latent KV cache
// (expanded prefill, absorbed decode), dense first layer(s), DeepSeekMoE layers, RMSNorm, YaRN RoPE with the
// mscale^2 softmax factor. Host backend. Checked in tests/models against logits of Hugging Face transformers'
// DeepseekV2ForCausalLM (tools/gen_v2_golden.py) and against itself (cache vs recompute, quantized vs bf16).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <variant>

#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include "dsk/attention/mla.hpp"
#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/moe/layer.hpp"
#include "dsk/moe/router.hpp"
#include "dsk/nn/embedding.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/nn/rmsnorm.hpp"
#include "dsk/nn/rope.hpp"
#include "dsk/quant/linear.hpp"
#include "presets.hpp"

namespace dsk_v2 {

using namespace dsk;
namespace fs = std::filesystem;

// How weights are held in memory. checkpoint: the file's dtype (bf16 stays bf16, f32 stays f32); int8 / int4:
// symmetric per-output-channel codes with f32 scales, quantized while loading, one tensor at a time.
enum class weight_format { checkpoint, f32, bf16, int8, int4 };

inline weight_format parse_weight_format(std::string_view s) {
  if (s == "checkpoint" || s == "auto") return weight_format::checkpoint;
  if (s == "f32") return weight_format::f32;
  if (s == "bf16") return weight_format::bf16;
  if (s == "int8") return weight_format::int8;
  if (s == "int4") return weight_format::int4;
  throw unsupported("dsk_v2: --weights '" + std::string(s) +
                    "' is not supported; choices: checkpoint, f32, bf16, int8, int4");
}

// The config the model runs from a preset (the tiny demo) in the form config.json gives.
inline io::v2_config to_config(const preset& d) {
  io::v2_config c;
  c.vocab_size = d.vocab_size;
  c.hidden_size = d.hidden_size;
  c.intermediate_size = d.intermediate_size;
  c.moe_intermediate_size = d.moe_intermediate_size;
  c.num_hidden_layers = d.num_hidden_layers;
  c.num_attention_heads = d.num_attention_heads;
  c.kv_lora_rank = d.kv_lora_rank;
  c.q_lora_rank = d.q_lora_rank;
  c.qk_nope_head_dim = d.qk_nope_head_dim;
  c.qk_rope_head_dim = d.qk_rope_head_dim;
  c.v_head_dim = d.v_head_dim;
  c.n_routed_experts = d.n_routed_experts;
  c.n_shared_experts = d.n_shared_experts;
  c.num_experts_per_tok = d.num_experts_per_tok;
  c.topk_method = d.group_limited ? io::topk_method::group_limited_greedy : io::topk_method::greedy;
  c.n_group = d.n_group;
  c.topk_group = d.topk_group;
  c.routed_scaling_factor = d.routed_scaling_factor;
  c.first_k_dense_replace = d.first_k_dense_replace;
  c.moe_layer_freq = d.moe_layer_freq;
  c.rms_norm_eps = d.rms_norm_eps;
  c.rope_theta = d.rope_theta;
  c.max_position_embeddings = d.max_position_embeddings;
  c.rope_scaling.enabled = d.yarn_factor > 1.0;
  c.rope_scaling.factor = d.yarn_factor;
  c.rope_scaling.mscale = d.yarn_mscale;
  c.rope_scaling.mscale_all_dim = d.yarn_mscale_all_dim;
  c.rope_scaling.original_max_position_embeddings = d.original_max_position_embeddings;
  c.bos_token_id = 0;
  c.eos_token_ids = {1};
  return c;
}

// ---- compiled shape choices ---------------------------------------------------------------------------
// MLA widths are template parameters of dsk::attention; the runner compiles V2's (also V2-Lite's and the
// design card's) and the tiny preset's. Router shapes (n_group, topk_group) likewise.
inline constexpr attention::mla_config mla_v2{
    .kv_lora_rank = 512, .rope_dim = 64, .nope_dim = 128, .v_dim = 128};
inline constexpr attention::mla_config mla_tiny{.kv_lora_rank = 16, .rope_dim = 8, .nope_dim = 8, .v_dim = 8};

template <class F>
decltype(auto) with_mla(const io::v2_config& c, F&& f) {
  auto is = [&](const attention::mla_config& m) {
    return c.kv_lora_rank == m.kv_lora_rank && c.qk_rope_head_dim == m.rope_dim &&
           c.qk_nope_head_dim == m.nope_dim && c.v_head_dim == m.v_dim;
  };
  if (is(mla_v2)) return f(std::integral_constant<int, 0>{});
  if (is(mla_tiny)) return f(std::integral_constant<int, 1>{});
  throw unsupported("dsk_v2: MLA widths (kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim) = (" +
                    std::to_string(c.kv_lora_rank) + ", " + std::to_string(c.qk_rope_head_dim) + ", " +
                    std::to_string(c.qk_nope_head_dim) + ", " + std::to_string(c.v_head_dim) +
                    ") are not compiled in; choices: (512, 64, 128, 128), (16, 8, 8, 8)");
}

// ---- time per kernel family and expert load --------------------------------------------------------------
struct profile {
  enum family { embedding, norm, linear, rope, attention, router, experts, lm_head, count };
  static constexpr const char* names[count] = {"embedding",   "rmsnorm",         "linear (gemm/quant)",
                                               "rope/yarn",   "attention (MLA)", "moe router",
                                               "moe experts", "lm_head"};
  double seconds[count] = {};
  std::vector<std::vector<std::int64_t>> expert_tokens;  // [layer][expert]: tokens routed there

  struct timer {
    profile* p;
    family f;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    ~timer() {
      if (p) p->seconds[f] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  void reset() {
    std::fill(std::begin(seconds), std::end(seconds), 0.0);
    for (auto& l : expert_tokens) std::fill(l.begin(), l.end(), 0);
  }
};

// ---- weights in any format ----------------------------------------------------------------------------
inline constexpr quant::linear_config q8{.quant = {.fmt = quant::int8_per_channel}};
inline constexpr quant::linear_config q4{.quant = {.fmt = quant::int4_per_channel}};

// A bias-free linear layer W [out, in] in f32, bf16, f16, int8 or int4; forward(x [T, in], y [T, out]).
class any_linear {
 public:
  any_linear() = default;
  template <class L>
  explicit any_linear(L l) : l_(std::move(l)) {}

  index_t in_features() const {
    return std::visit([](const auto& l) -> index_t { return l.in_features(); }, l_);
  }
  index_t out_features() const {
    return std::visit([](const auto& l) -> index_t { return l.out_features(); }, l_);
  }
  std::int64_t bytes() const {
    return std::visit(
        [](const auto& l) -> std::int64_t {
          if constexpr (requires { l.weights(); })
            return l.weights().bytes();
          else
            return l.weight().bytes();
        },
        l_);
  }
  void forward(view<const float, 2> x, view<float, 2> y) const {
    std::visit([&](const auto& l) { l.forward(x, y); }, l_);
  }

 private:
  std::variant<nn::linear<float>, nn::linear<bf16>, nn::linear<f16>, quant::linear<q8>, quant::linear<q4>> l_;
};

// Reads tensors of one checkpoint (or of the built-in random weights) into the chosen format.
class loader {
 public:
  loader(const io::checkpoint& ck, weight_format fmt) : ck_(ck), fmt_(fmt) {}

  const io::checkpoint& checkpoint() const { return ck_; }

  // A 2-D weight of exactly this shape, converted one tensor at a time.
  any_linear linear(const std::string& name, index_t out, index_t in) const {
    any_linear l = convert(name, out, in);
    release(name);
    return l;
  }
  tensor<float, 2> f32(const std::string& name, std::array<index_t, 2> shape) const {
    auto t = ck_.read<float, 2>(name, shape);
    release(name);
    return t;
  }
  tensor<float, 1> vec(const std::string& name, index_t n) const {
    const std::array<index_t, 1> shape{n};
    auto t = ck_.read<float, 1>(name, shape);
    release(name);
    return t;
  }
  weight_format format() const { return fmt_; }

  // Drops the mapped file pages of a tensor that has been converted (the converted copy is what the model
  // keeps), so that resident memory while loading stays near the size of the result instead of growing by
  // every byte of the checkpoint read so far. The pages come back from the file if touched again.
  void release(const std::string& name) const {
#if DSK_IO_HAVE_MMAP
    const auto b = ck_.bytes(name);
    if (b.empty()) return;
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto lo = reinterpret_cast<std::uintptr_t>(b.data()) / page * page;
    const auto hi = (reinterpret_cast<std::uintptr_t>(b.data()) + b.size() + page - 1) / page * page;
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // advisory: failure only costs memory
#else
    (void)name;
#endif
  }

 private:
  any_linear convert(const std::string& name, index_t out, index_t in) const {
    const std::array<index_t, 2> shape{out, in};
    ck_.check_shape(name, shape);
    const io::st_dtype dt = ck_.info(name).dtype;
    const bool is_bf16 = dt == io::st_dtype::BF16;
    switch (fmt_) {
      case weight_format::checkpoint:
        if (is_bf16) return any_linear(nn::linear<bf16>(ck_.view<bf16, 2>(name, shape)));
        if (dt == io::st_dtype::F16) return any_linear(nn::linear<f16>(ck_.view<f16, 2>(name, shape)));
        return any_linear(nn::linear<float>(f32(name, shape).cview()));
      case weight_format::f32:
        return any_linear(nn::linear<float>(f32(name, shape).cview()));
      case weight_format::bf16:
        if (is_bf16) return any_linear(nn::linear<bf16>(ck_.view<bf16, 2>(name, shape)));
        return any_linear(nn::linear<bf16>(ck_.read<bf16, 2>(name, shape).cview()));
      case weight_format::int8:
        if (is_bf16) return any_linear(quant::linear<q8>(ck_.view<bf16, 2>(name, shape)));
        return any_linear(quant::linear<q8>(f32(name, shape).cview()));
      case weight_format::int4:
        if (is_bf16) return any_linear(quant::linear<q4>(ck_.view<bf16, 2>(name, shape)));
        return any_linear(quant::linear<q4>(f32(name, shape).cview()));
    }
    return {};
  }

  const io::checkpoint& ck_;
  weight_format fmt_;
};

// SwiGLU MLP down(silu(gate x) * up x) over any_linear weights (the fused gemm::swiglu for f32/bf16/f16).
class any_mlp {
 public:
  any_mlp() = default;
  any_mlp(const loader& ld, const std::string& prefix, index_t hidden, index_t inter) {
    const std::array<index_t, 2> gu{inter, hidden};
    const std::string g = prefix + ".gate_proj.weight", u = prefix + ".up_proj.weight";
    const auto& ck = ld.checkpoint();
    ck.check_shape(g, gu);
    ck.check_shape(u, gu);
    const bool bf = ck.info(g).dtype == io::st_dtype::BF16 && ck.info(u).dtype == io::st_dtype::BF16;
    const auto fmt = ld.format();
    if (fmt == weight_format::bf16 || (fmt == weight_format::checkpoint && bf)) {
      gate_up_ =
          bf ? gemm::packed_weights<bf16>::swiglu(ck.view<bf16, 2>(g), ck.view<bf16, 2>(u))
             : gemm::packed_weights<bf16>::swiglu(ck.read<bf16, 2>(g).cview(), ck.read<bf16, 2>(u).cview());
      ld.release(g);
      ld.release(u);
    } else if (fmt == weight_format::f32 || fmt == weight_format::checkpoint) {
      gate_up_ = gemm::packed_weights<float>::swiglu(ld.f32(g, gu).cview(), ld.f32(u, gu).cview());
    } else {
      gate_ = ld.linear(g, inter, hidden);
      up_ = ld.linear(u, inter, hidden);
    }
    down_ = ld.linear(prefix + ".down_proj.weight", hidden, inter);
    inter_ = inter;
  }
  index_t intermediate() const { return inter_; }
  std::int64_t bytes() const {
    std::int64_t b = down_.bytes();
    std::visit(
        [&](const auto& p) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(p)>, std::monostate>)
            b += p.bytes();
          else
            b += gate_.bytes() + up_.bytes();
        },
        gate_up_);
    return b;
  }
  // x [T, hidden] -> y [T, hidden]; h: scratch [T, intermediate].
  void forward(view<const float, 2> x, view<float, 2> y, view<float, 2> h) const {
    const bool fused = std::visit(
        [&](const auto& p) {
          if constexpr (std::is_same_v<std::decay_t<decltype(p)>, std::monostate>)
            return false;
          else {
            gemm::swiglu(x, p, h);
            return true;
          }
        },
        gate_up_);
    if (!fused) {
      tensor<float, 2> u(std::array<index_t, 2>{x.extent(0), inter_}, uninitialized);
      gate_.forward(x, h);
      up_.forward(x, u.view());
      for (index_t t = 0; t < x.extent(0); ++t)
        for (index_t i = 0; i < inter_; ++i) {
          const float g = h(t, i);
          h(t, i) = g / (1.0f + std::exp(-g)) * u(t, i);
        }
    }
    down_.forward(h, y);
  }

 private:
  std::variant<std::monostate, gemm::packed_weights<float>, gemm::packed_weights<bf16>> gate_up_;
  any_linear gate_, up_, down_;
  index_t inter_ = 0;
};

// The routed and shared experts of one DeepSeekMoE layer, owned in the weight format, exposed as the
// moe::expert_bank types that moe::deepseek_moe runs (grouped SwiGLU over the dispatched rows).
// Float storage: gate/up [E, I, H], down [E, H, I] copied from the per-expert checkpoint tensors.
template <float_storage W>
struct dense_expert_store {
  tensor<W, 3> gate, up, down;        // routed
  tensor<W, 3> s_gate, s_up, s_down;  // shared (one merged expert), empty when there is none
  moe::dense_experts<W> routed() const { return {gate.cview(), up.cview(), down.cview()}; }
  std::optional<moe::dense_experts<W>> shared() const {
    if (s_gate.empty()) return std::nullopt;
    return moe::dense_experts<W>(s_gate.cview(), s_up.cview(), s_down.cview());
  }
  std::int64_t bytes() const {
    return (gate.size() + up.size() + down.size() + s_gate.size() + s_up.size() + s_down.size()) *
           static_cast<std::int64_t>(sizeof(W));
  }
};
// Quantized: per expert gate, up [I, H] and down [H, I] codes and scales.
template <quant::format F>
struct quant_expert_store {
  std::vector<quant::quantized_weight<F>> gate, up, down, s_gate, s_up, s_down;
  static moe::quantized_experts<F> bank(const std::vector<quant::quantized_weight<F>>& g,
                                        const std::vector<quant::quantized_weight<F>>& u,
                                        const std::vector<quant::quantized_weight<F>>& d) {
    std::vector<quant::qweight_view<F>> gv, uv, dv;
    for (std::size_t e = 0; e < g.size(); ++e) {
      gv.push_back(g[e].view());
      uv.push_back(u[e].view());
      dv.push_back(d[e].view());
    }
    return {std::move(gv), std::move(uv), std::move(dv)};
  }
  moe::quantized_experts<F> routed() const { return bank(gate, up, down); }
  std::optional<moe::quantized_experts<F>> shared() const {
    if (s_gate.empty()) return std::nullopt;
    return bank(s_gate, s_up, s_down);
  }
  std::int64_t bytes() const {
    std::int64_t b = 0;
    for (const auto* v : {&gate, &up, &down, &s_gate, &s_up, &s_down})
      for (const auto& w : *v) b += w.bytes();
    return b;
  }
};
using expert_store =
    std::variant<dense_expert_store<float>, dense_expert_store<bf16>,
                 quant_expert_store<quant::int8_per_channel>, quant_expert_store<quant::int4_per_channel>>;

// Loads experts[e].{gate,up,down}_proj (e < E) and shared_experts.* of one layer into the chosen format.
inline expert_store load_experts(const loader& ld, const std::string& prefix, index_t E, index_t H, index_t I,
                                 index_t shared_inter) {
  const auto& ck = ld.checkpoint();
  const std::string first = prefix + "experts.0.gate_proj.weight";
  const bool bf = ck.contains(first) && ck.info(first).dtype == io::st_dtype::BF16;
  const auto fmt = ld.format();
  auto name = [&](index_t e, const char* which) {
    return e < 0 ? prefix + "shared_experts." + which + ".weight"
                 : prefix + "experts." + std::to_string(e) + "." + which + ".weight";
  };
  auto dense = [&]<class W>(dense_expert_store<W> st) -> expert_store {
    auto fill = [&](tensor<W, 3>& g, tensor<W, 3>& u, tensor<W, 3>& d, index_t n, index_t inter,
                    bool shared) {
      g = tensor<W, 3>(std::array<index_t, 3>{n, inter, H}, uninitialized);
      u = tensor<W, 3>(std::array<index_t, 3>{n, inter, H}, uninitialized);
      d = tensor<W, 3>(std::array<index_t, 3>{n, H, inter}, uninitialized);
      for (index_t e = 0; e < n; ++e) {
        const index_t id = shared ? -1 : e;
        auto copy = [&](const char* which, tensor<W, 3>& dst, index_t r, index_t c) {
          const auto t = ck.read<W, 2>(name(id, which), std::array<index_t, 2>{r, c});
          std::copy_n(t.data(), t.size(), &dst(e, 0, 0));
          ld.release(name(id, which));
        };
        copy("gate_proj", g, inter, H);
        copy("up_proj", u, inter, H);
        copy("down_proj", d, H, inter);
      }
    };
    fill(st.gate, st.up, st.down, E, I, false);
    if (shared_inter > 0) fill(st.s_gate, st.s_up, st.s_down, 1, shared_inter, true);
    return st;
  };
  auto quant = [&]<quant::format F>(quant_expert_store<F> st) -> expert_store {
    constexpr quant::quantize_config C{.fmt = F};
    auto q = [&](const std::string& n, index_t r, index_t c) {
      const std::array<index_t, 2> shape{r, c};
      ck.check_shape(n, shape);
      auto w = ck.info(n).dtype == io::st_dtype::BF16
                   ? quant::quantize<C>(ck.view<bf16, 2>(n, shape))
                   : quant::quantize<C>(ck.read<float, 2>(n, shape).cview());
      ld.release(n);
      return w;
    };
    for (index_t e = 0; e < E; ++e) {
      st.gate.push_back(q(name(e, "gate_proj"), I, H));
      st.up.push_back(q(name(e, "up_proj"), I, H));
      st.down.push_back(q(name(e, "down_proj"), H, I));
    }
    if (shared_inter > 0) {
      st.s_gate.push_back(q(name(-1, "gate_proj"), shared_inter, H));
      st.s_up.push_back(q(name(-1, "up_proj"), shared_inter, H));
      st.s_down.push_back(q(name(-1, "down_proj"), H, shared_inter));
    }
    return st;
  };
  switch (fmt) {
    case weight_format::int8:
      return quant(quant_expert_store<quant::int8_per_channel>{});
    case weight_format::int4:
      return quant(quant_expert_store<quant::int4_per_channel>{});
    case weight_format::bf16:
      return dense(dense_expert_store<bf16>{});
    case weight_format::f32:
      return dense(dense_expert_store<float>{});
    case weight_format::checkpoint:
      break;
  }
  return bf ? dense(dense_expert_store<bf16>{}) : dense(dense_expert_store<float>{});
}

// ---- the model ----------------------------------------------------------------------------------------
// Which MLA form prefill uses. Decode (one new token) always runs the absorbed form over the latent cache.
enum class attention_form { expanded, absorbed };

// Per-sequence state: for every layer the latent cache rows [kv_a_layernorm(c) (kv_lora_rank) ; rotated k_pe
// (rope_dim)], and how many positions are filled.
struct kv_cache {
  std::vector<tensor<float, 2>> layers;  // [capacity, kv_lora_rank + rope_dim]
  index_t length = 0;
  index_t capacity() const { return layers.empty() ? 0 : layers[0].extent(0); }
  std::int64_t bytes() const {
    std::int64_t b = 0;
    for (const auto& l : layers) b += l.size() * static_cast<std::int64_t>(sizeof(float));
    return b;
  }
};

class model {
 public:
  // Loads config.json and the safetensors checkpoint (one file or sharded) of a directory.
  static model load(const fs::path& dir, weight_format fmt) {
    const io::v2_config cfg = io::v2_config::load(dir);
    const io::checkpoint ck(dir);
    return model(cfg, ck, fmt);
  }

  model(const io::v2_config& cfg, const io::checkpoint& ck, weight_format fmt) : cfg_(cfg) {
    validate_config();
    const loader ld(ck, fmt);
    const index_t D = cfg_.hidden_size, H = cfg_.num_attention_heads, V = cfg_.vocab_size;
    const index_t qk = cfg_.qk_head_dim(), R = cfg_.kv_lora_rank, Dr = cfg_.qk_rope_head_dim;
    const std::array<index_t, 2> emb_shape{V, D};
    ck.check_shape("model.embed_tokens.weight", emb_shape);
    if (ck.info("model.embed_tokens.weight").dtype == io::st_dtype::F32 && fmt != weight_format::bf16 &&
        fmt != weight_format::int8 && fmt != weight_format::int4)
      embed_ = ck.read<float, 2>("model.embed_tokens.weight", emb_shape);
    else
      embed_ = ck.read<bf16, 2>("model.embed_tokens.weight", emb_shape);
    ld.release("model.embed_tokens.weight");
    final_norm_ = ld.vec("model.norm.weight", D);
    lm_head_ = ld.linear("lm_head.weight", V, D);
    layers_.resize(static_cast<std::size_t>(cfg_.num_hidden_layers));
    for (index_t i = 0; i < cfg_.num_hidden_layers; ++i) {
      layer& L = layers_[static_cast<std::size_t>(i)];
      const std::string p = "model.layers." + std::to_string(i) + ".";
      L.input_norm = ld.vec(p + "input_layernorm.weight", D);
      L.post_norm = ld.vec(p + "post_attention_layernorm.weight", D);
      if (cfg_.q_lora_rank > 0) {
        L.q_a = ld.linear(p + "self_attn.q_a_proj.weight", cfg_.q_lora_rank, D);
        L.q_a_norm = ld.vec(p + "self_attn.q_a_layernorm.weight", cfg_.q_lora_rank);
        L.q_b = ld.linear(p + "self_attn.q_b_proj.weight", H * qk, cfg_.q_lora_rank);
      } else {
        L.q = ld.linear(p + "self_attn.q_proj.weight", H * qk, D);
      }
      L.kv_a = ld.linear(p + "self_attn.kv_a_proj_with_mqa.weight", R + Dr, D);
      L.kv_a_norm = ld.vec(p + "self_attn.kv_a_layernorm.weight", R);
      // dsk::attention's MLA takes kv_b_proj in f32 (it is read per head in both forms): kept in f32 whatever
      // the weight format (V2-Lite: 8 MiB a layer).
      L.kv_b = ld.f32(p + "self_attn.kv_b_proj.weight", {H * (cfg_.qk_nope_head_dim + cfg_.v_head_dim), R});
      L.o = ld.linear(p + "self_attn.o_proj.weight", D, H * cfg_.v_head_dim);
      if (cfg_.is_moe_layer(i)) {
        const index_t E = cfg_.n_routed_experts;
        L.moe = true;
        L.gate = ld.f32(p + "mlp.gate.weight", {E, D});
        L.experts = load_experts(ld, p + "mlp.", E, D, cfg_.moe_intermediate_size,
                                 cfg_.moe_intermediate_size * cfg_.n_shared_experts);
      } else {
        L.mlp = any_mlp(ld, p + "mlp", D, cfg_.intermediate_size);
      }
    }
    prof_.expert_tokens.assign(static_cast<std::size_t>(cfg_.num_hidden_layers),
                               std::vector<std::int64_t>(static_cast<std::size_t>(cfg_.n_routed_experts), 0));
  }

  // The tiny preset (or any preset) on deterministic random weights, written to a temporary safetensors file
  // and loaded through the same path as a real checkpoint.
  static model random(const preset& d, weight_format fmt, std::uint64_t seed = 20261128) {
    const io::v2_config cfg = to_config(d);
    const fs::path path = fs::temp_directory_path() / ("dsk_v2_random_" + std::to_string(::getpid()) + "_" +
                                                       std::to_string(seed) + ".safetensors");
    write_random_checkpoint(d, path, seed);
    struct remover {
      fs::path p;
      ~remover() {
        std::error_code ec;
        fs::remove(p, ec);
      }
    } rm{path};
    const io::checkpoint ck(path);
    return model(cfg, ck, fmt);
  }

  // Writes random bf16 weights (normal, std 0.02 like the HF initialiser; norms = 1) for preset d.
  static void write_random_checkpoint(const preset& d, const fs::path& path, std::uint64_t seed) {
    io::safetensors_writer w;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    auto mat = [&](const std::string& name, index_t r, index_t c) {
      tensor<bf16, 2> t(std::array<index_t, 2>{r, c}, uninitialized);
      for (index_t i = 0; i < t.size(); ++i) t.data()[i] = bf16(nd(rng));
      w.add(name, t);
    };
    auto ones = [&](const std::string& name, index_t n) {
      tensor<bf16, 1> t(std::array<index_t, 1>{n}, uninitialized);
      t.fill(bf16(1.0f));
      w.add(name, t);
    };
    const index_t D = d.hidden_size, H = d.num_attention_heads, qk = d.qk_nope_head_dim + d.qk_rope_head_dim;
    mat("model.embed_tokens.weight", d.vocab_size, D);
    ones("model.norm.weight", D);
    mat("lm_head.weight", d.vocab_size, D);
    for (index_t i = 0; i < d.num_hidden_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      ones(p + "input_layernorm.weight", D);
      ones(p + "post_attention_layernorm.weight", D);
      if (d.q_lora_rank > 0) {
        mat(p + "self_attn.q_a_proj.weight", d.q_lora_rank, D);
        ones(p + "self_attn.q_a_layernorm.weight", d.q_lora_rank);
        mat(p + "self_attn.q_b_proj.weight", H * qk, d.q_lora_rank);
      } else {
        mat(p + "self_attn.q_proj.weight", H * qk, D);
      }
      mat(p + "self_attn.kv_a_proj_with_mqa.weight", d.kv_lora_rank + d.qk_rope_head_dim, D);
      ones(p + "self_attn.kv_a_layernorm.weight", d.kv_lora_rank);
      mat(p + "self_attn.kv_b_proj.weight", H * (d.qk_nope_head_dim + d.v_head_dim), d.kv_lora_rank);
      mat(p + "self_attn.o_proj.weight", D, H * d.v_head_dim);
      auto mlp = [&](const std::string& q, index_t inter) {
        mat(q + ".gate_proj.weight", inter, D);
        mat(q + ".up_proj.weight", inter, D);
        mat(q + ".down_proj.weight", D, inter);
      };
      if (d.is_moe_layer(i)) {
        mat(p + "mlp.gate.weight", d.n_routed_experts, D);
        for (index_t e = 0; e < d.n_routed_experts; ++e)
          mlp(p + "mlp.experts." + std::to_string(e), d.moe_intermediate_size);
        if (d.n_shared_experts > 0)
          mlp(p + "mlp.shared_experts", d.moe_intermediate_size * d.n_shared_experts);
      } else {
        mlp(p + "mlp", d.intermediate_size);
      }
    }
    w.write(path);
  }

  const io::v2_config& config() const { return cfg_; }
  profile& prof() const { return prof_; }
  void set_prefill_form(attention_form f) { prefill_form_ = f; }
  // Storage order of the rotated pairs of q_pe / k_pe. interleaved (2i, 2i+1) is the checkpoint's order and
  // the only correct one for DeepSeek checkpoints; half_split exists so that tests can show the golden
  // comparison tells them apart.
  void set_rope_layout(nn::rope_layout l) {
    rope_layout_ = l;
    rope_.reset();
  }

  // Bytes of the weights as held in memory (packed / quantized), the embedding table included.
  std::int64_t weight_bytes() const {
    std::int64_t b = std::visit(
        [](const auto& t) -> std::int64_t { return t.size() * std::int64_t(sizeof(*t.data())); }, embed_);
    b += lm_head_.bytes();
    for (const auto& L : layers_) {
      b += L.q_a.has_value() ? L.q_a->bytes() + L.q_b->bytes() : L.q->bytes();
      b += L.kv_a.bytes() + L.o.bytes() + L.kv_b.size() * 4;
      if (L.moe) {
        b += L.gate.size() * 4 + std::visit([](const auto& st) { return st.bytes(); }, L.experts);
      } else {
        b += L.mlp.bytes();
      }
    }
    return b;
  }

  kv_cache new_cache(index_t capacity) const {
    const contract c{"dsk_v2::model::new_cache"};
    c.in_range<index_t>("capacity", capacity, 1, cfg_.max_position_embeddings);
    kv_cache k;
    for (index_t i = 0; i < cfg_.num_hidden_layers; ++i)
      k.layers.emplace_back(std::array<index_t, 2>{capacity, cfg_.kv_lora_rank + cfg_.qk_rope_head_dim});
    return k;
  }

  // Runs tokens at positions cache.length .. cache.length + T - 1, appends them to the cache, and writes the
  // logits of every token: logits [T, vocab_size] (or [1, vocab] to get only the last token's). The kernels
  // inside run in parallel; forward itself updates the profile and the RoPE table, so one call at a time per
  // model (several sequences: one kv_cache each, called in turn).
  void forward(std::span<const std::int32_t> tokens, kv_cache& cache, view<float, 2> logits) const {
    const contract c{"dsk_v2::model::forward"};
    const index_t T = static_cast<index_t>(tokens.size()), V = cfg_.vocab_size, D = cfg_.hidden_size;
    c.require(T >= 1, "tokens", "at least one token", T);
    c.require(static_cast<index_t>(cache.layers.size()) == cfg_.num_hidden_layers, "cache",
              "a cache made by this model's new_cache()", static_cast<index_t>(cache.layers.size()));
    c.require(cache.length + T <= cache.capacity(), "cache",
              "room for the tokens (capacity " + std::to_string(cache.capacity()) + ")", cache.length + T);
    c.extent("logits", logits, 1, V, "vocab_size");
    c.require(logits.extent(0) == T || logits.extent(0) == 1, "logits", "T rows or 1 row (the last token)",
              logits.extent(0));
    ensure_rope(cache.capacity());

    tensor<float, 2> h(std::array<index_t, 2>{T, D}, uninitialized);
    {
      profile::timer tm{&prof_, profile::embedding};
      std::visit([&](const auto& e) { nn::embedding(e.cview(), tokens, h.view()); }, embed_);
    }
    std::vector<index_t> pos(static_cast<std::size_t>(T));
    for (index_t t = 0; t < T; ++t) pos[static_cast<std::size_t>(t)] = cache.length + t;
    for (index_t i = 0; i < cfg_.num_hidden_layers; ++i)
      layer_forward(i, h.view(), pos, cache.layers[static_cast<std::size_t>(i)]);
    cache.length += T;

    const index_t rows = logits.extent(0);
    const view<const float, 2> last(h.data() + (T - rows) * D, dims<2>(rows, D), {D, 1});
    tensor<float, 2> hn(std::array<index_t, 2>{rows, D}, uninitialized);
    {
      profile::timer tm{&prof_, profile::norm};
      nn::rmsnorm(last, final_norm_.cview(), static_cast<float>(cfg_.rms_norm_eps), hn.view());
    }
    profile::timer tm{&prof_, profile::lm_head};
    lm_head_.forward(hn.cview(), logits);
  }

 private:
  struct layer {
    tensor<float, 1> input_norm, post_norm, q_a_norm, kv_a_norm;
    std::optional<any_linear> q, q_a, q_b;
    any_linear kv_a, o;
    tensor<float, 2> kv_b;  // [H * (nope + v), kv_lora_rank], f32
    bool moe = false;
    any_mlp mlp;            // dense layers
    tensor<float, 2> gate;  // [E, hidden], f32 (router logits in fp32)
    expert_store experts;
  };

  void validate_config() const {
    const contract c{"dsk_v2::model"};
    const auto& k = cfg_;
    with_mla(k, [](auto) { return 0; });  // throws dsk::unsupported for widths that are not compiled in
    c.require(k.vocab_size > 0 && k.hidden_size > 0 && k.num_hidden_layers > 0 && k.num_attention_heads > 0,
              "config", "positive vocab_size, hidden_size, num_hidden_layers, num_attention_heads",
              k.hidden_size);
    if (k.n_routed_experts > 0) {
      c.require(k.num_experts_per_tok >= 1 && k.num_experts_per_tok <= k.n_routed_experts,
                "num_experts_per_tok", "in [1, n_routed_experts]", k.num_experts_per_tok);
      if (k.topk_method == io::topk_method::group_limited_greedy) {
        c.require(k.n_routed_experts % k.n_group == 0, "n_group", "a divisor of n_routed_experts", k.n_group);
        c.require(k.num_experts_per_tok <= k.topk_group * (k.n_routed_experts / k.n_group),
                  "num_experts_per_tok", "<= topk_group * n_routed_experts / n_group", k.num_experts_per_tok);
      }
    }
  }

  void ensure_rope(index_t capacity) const {
    if (rope_ && rope_->max_positions() >= capacity) return;
    nn::rope_params p;
    p.dim = cfg_.qk_rope_head_dim;
    p.base = cfg_.rope_theta;
    p.layout = rope_layout_;  // interleaved: checkpoint order of q_pe / k_pe (see docs/models.md)
    if (cfg_.rope_scaling.enabled) {
      p.yarn.factor = cfg_.rope_scaling.factor;
      p.yarn.original_max_position = cfg_.rope_scaling.original_max_position_embeddings;
      p.yarn.beta_fast = cfg_.rope_scaling.beta_fast;
      p.yarn.beta_slow = cfg_.rope_scaling.beta_slow;
      p.yarn.mscale = cfg_.rope_scaling.mscale;
      p.yarn.mscale_all_dim = cfg_.rope_scaling.mscale_all_dim;
    }
    rope_.emplace(p, std::max<index_t>(capacity, 1));
  }

  // h [T, D] += attention, then h += MLP / MoE. pos: absolute positions of the T tokens (contiguous).
  void layer_forward(index_t li, view<float, 2> h, std::span<const index_t> pos,
                     tensor<float, 2>& cache) const {
    const layer& L = layers_[static_cast<std::size_t>(li)];
    const index_t T = h.extent(0), D = cfg_.hidden_size, H = cfg_.num_attention_heads;
    const index_t Dn = cfg_.qk_nope_head_dim, Dr = cfg_.qk_rope_head_dim, Dv = cfg_.v_head_dim,
                  R = cfg_.kv_lora_rank;
    const index_t qk = Dn + Dr, Dc = R + Dr, p0 = pos[0];
    const float eps = static_cast<float>(cfg_.rms_norm_eps);
    auto timed = [&](profile::family f) { return profile::timer{&prof_, f}; };

    tensor<float, 2> x(std::array<index_t, 2>{T, D}, uninitialized);
    {
      auto tm = timed(profile::norm);
      nn::rmsnorm(h, L.input_norm.cview(), eps, x.view());
    }
    // Query [T, H, nope + rope].
    tensor<float, 2> q(std::array<index_t, 2>{T, H * qk}, uninitialized);
    if (L.q_a) {
      tensor<float, 2> qa(std::array<index_t, 2>{T, cfg_.q_lora_rank}, uninitialized);
      {
        auto tm = timed(profile::linear);
        L.q_a->forward(x.cview(), qa.view());
      }
      {
        auto tm = timed(profile::norm);
        nn::rmsnorm(qa.cview(), L.q_a_norm.cview(), eps, qa.view());
      }
      auto tm = timed(profile::linear);
      L.q_b->forward(qa.cview(), q.view());
    } else {
      auto tm = timed(profile::linear);
      L.q->forward(x.cview(), q.view());
    }
    // Latent and decoupled key: ckv [T, R + Dr]; cache rows p0.. get [kv_a_layernorm(c) ; rope(k_pe)].
    tensor<float, 2> ckv(std::array<index_t, 2>{T, Dc}, uninitialized);
    {
      auto tm = timed(profile::linear);
      L.kv_a.forward(x.cview(), ckv.view());
    }
    const view<float, 2> cache_c(&cache(p0, 0), dims<2>(T, R), {Dc, 1});
    const view<float, 2> cache_pe(&cache(p0, R), dims<2>(T, Dr), {Dc, 1});
    {
      auto tm = timed(profile::norm);
      nn::rmsnorm(view<const float, 2>(ckv.data(), dims<2>(T, R), {Dc, 1}), L.kv_a_norm.cview(), eps,
                  cache_c);
    }
    const view<float, 3> q_nope(q.data(), dims<3>(T, H, Dn), {H * qk, qk, 1});
    const view<float, 3> q_pe(q.data() + Dn, dims<3>(T, H, Dr), {H * qk, qk, 1});
    {
      auto tm = timed(profile::rope);
      for (index_t t = 0; t < T; ++t)
        for (index_t r = 0; r < Dr; ++r) cache_pe(t, r) = ckv(t, R + r);
      nn::apply_rope(*rope_, pos, cache_pe);
      nn::apply_rope(*rope_, pos, q_pe);
    }
    // Attention over the cache rows [0, p0 + T); query t at position p0 + t.
    tensor<float, 2> o(std::array<index_t, 2>{T, H * Dv}, uninitialized);
    {
      auto tm = timed(profile::attention);
      const view<const float, 2> cv(cache.data(), dims<2>(p0 + T, Dc), {Dc, 1});
      const view<float, 3> ov(o.data(), dims<3>(T, H, Dv), {H * Dv, Dv, 1});
      const attention::options opts{.scale = static_cast<float>(cfg_.softmax_scale()), .query_offset = p0};
      const bool absorbed = T == 1 || prefill_form_ == attention_form::absorbed;
      with_mla(cfg_, [&](auto which) {
        constexpr attention::mla_config C = decltype(which)::value == 0 ? mla_v2 : mla_tiny;
        if (absorbed)
          attention::mla_absorbed<C>(q_nope, q_pe, cv, L.kv_b.cview(), ov, opts);
        else
          attention::mla_expanded<C>(q_nope, q_pe, cv, L.kv_b.cview(), ov, opts);
        return 0;
      });
    }
    tensor<float, 2> y(std::array<index_t, 2>{T, D}, uninitialized);
    {
      auto tm = timed(profile::linear);
      L.o.forward(o.cview(), y.view());
    }
    add(h, y.cview());

    {
      auto tm = timed(profile::norm);
      nn::rmsnorm(h, L.post_norm.cview(), eps, x.view());
    }
    if (!L.moe) {
      tensor<float, 2> act(std::array<index_t, 2>{T, L.mlp.intermediate()}, uninitialized);
      auto tm = timed(profile::linear);
      L.mlp.forward(x.cview(), y.view(), act.view());
    } else {
      moe_forward(li, L, x.cview(), y.view());
    }
    add(h, y.cview());
  }

  static void add(view<float, 2> h, view<const float, 2> y) {
    for (index_t t = 0; t < h.extent(0); ++t)
      for (index_t i = 0; i < h.extent(1); ++i) h(t, i) += y(t, i);
  }

  // y = sum_k w_k Expert_{idx_k}(x) + Shared(x) (DeepSeekMoE) by moe::deepseek_moe: gate, route, dispatch
  // (rows grouped per expert), grouped SwiGLU of the routed experts and the shared expert, combine.
  void moe_forward(index_t li, const layer& L, view<const float, 2> x, view<float, 2> y) const {
    with_router([&](auto rc) {
      std::visit(
          [&](const auto& st) {
            using bank = decltype(st.routed());
            const moe::deepseek_moe<decltype(rc)::value, bank> m(L.gate.cview(), st.routed(), st.shared(),
                                                                 cfg_.num_experts_per_tok);
            {
              profile::timer tm{&prof_, profile::router};
              m.route(x, ws_);
              finish_weights(ws_.topk_w.view());
            }
            profile::timer tm{&prof_, profile::experts};
            m.dispatch(x, ws_);
            m.experts(x, ws_);
            m.combine(ws_, y);
          },
          L.experts);
    });
    auto& load = prof_.expert_tokens[static_cast<std::size_t>(li)];
    for (index_t t = 0; t < ws_.topk_idx.extent(0); ++t)
      for (index_t k = 0; k < ws_.topk_idx.extent(1); ++k)
        if (ws_.topk_idx(t, k) >= 0) ++load[static_cast<std::size_t>(ws_.topk_idx(t, k))];
  }

  // f(constant<router_config>) for the compiled (method, n_group, topk_group) choices. routed_scaling_factor
  // and norm_topk_prob are runtime config values but compile-time fields of moe::router_config: routing runs
  // with factor 1 and no normalisation, and finish_weights() applies them exactly as router_config documents.
  template <class F>
  void with_router(F&& f) const {
    using moe::router_config;
    const auto& k = cfg_;
    const bool group = k.topk_method == io::topk_method::group_limited_greedy;
    if (!group || (k.n_group == 1 && k.topk_group == 1))
      f(constant<router_config{.method = moe::topk_method::greedy}>{});
    else if (k.n_group == 8 && k.topk_group == 3)
      f(constant<router_config{
            .method = moe::topk_method::group_limited_greedy, .n_group = 8, .topk_group = 3}>{});
    else if (k.n_group == 4 && k.topk_group == 2)
      f(constant<router_config{
            .method = moe::topk_method::group_limited_greedy, .n_group = 4, .topk_group = 2}>{});
    else
      throw unsupported("dsk_v2: group_limited_greedy with (n_group, topk_group) = (" +
                        std::to_string(k.n_group) + ", " + std::to_string(k.topk_group) +
                        ") is not compiled in; choices: (8, 3), (4, 2)");
  }

  void finish_weights(view<float, 2> w) const {
    const index_t K = w.extent(1);
    for (index_t t = 0; t < w.extent(0); ++t) {
      float sum = 0.0f;
      for (index_t j = 0; j < K; ++j) sum += w(t, j);
      const float f = cfg_.norm_topk_prob && K > 1 ? 1.0f / (sum + 1e-20f)
                                                   : static_cast<float>(cfg_.routed_scaling_factor);
      for (index_t j = 0; j < K; ++j) w(t, j) *= f;
    }
  }

  io::v2_config cfg_;
  std::variant<tensor<float, 2>, tensor<bf16, 2>> embed_;
  tensor<float, 1> final_norm_;
  any_linear lm_head_;
  std::vector<layer> layers_;
  attention_form prefill_form_ = attention_form::expanded;
  nn::rope_layout rope_layout_ = nn::rope_layout::interleaved;
  mutable std::optional<nn::rope_cache> rope_;
  mutable profile prof_;
  mutable moe::moe_workspace ws_;  // reused by every MoE layer and call
};

}  // namespace dsk_v2
