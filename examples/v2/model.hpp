// DeepSeek-V2 / V2-Lite reference model built only from dsk's public headers: MLA with the latent KV cache
// (expanded prefill, absorbed decode), dense first layer(s), DeepSeekMoE layers, RMSNorm, YaRN RoPE with the
// mscale^2 softmax factor. Host backend. Checked in tests/models against logits of Hugging Face transformers'
// DeepseekV2ForCausalLM (tools/gen_v2_golden.py) and against itself (cache vs recompute, quantized vs bf16).
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <variant>

#include <unistd.h>
#include <vector>

#include "../common/runner.hpp"
#include "dsk/attention/mla.hpp"
#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/moe/layer.hpp"
#include "dsk/moe/router.hpp"
#include "dsk/nn/elementwise.hpp"
#include "dsk/nn/embedding.hpp"
#include "dsk/nn/finite.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/nn/rmsnorm.hpp"
#include "dsk/nn/rope.hpp"
#include "dsk/quant/linear.hpp"
#include "presets.hpp"

namespace dsk_v2 {

using namespace dsk;
namespace fs = std::filesystem;

// The weight format, loader, MLP loader and tokenizer helpers are shared with the other runners
// (examples/common/runner.hpp); these names keep dsk_v2's spelling of them.
using dsk_examples::has_token;
using dsk_examples::load_options;
using dsk_examples::loader;
using dsk_examples::text_stream;
using dsk_examples::to_linear_format;
using dsk_examples::weight_format;
inline weight_format parse_weight_format(std::string_view s) {
  return dsk_examples::parse_weight_format(s, "dsk_v2");
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
// design card's) and the tiny preset's.
inline constexpr attention::mla_config mla_v2{
    .kv_lora_rank = 512, .rope_dim = 64, .nope_dim = 128, .v_dim = 128};
inline constexpr attention::mla_config mla_tiny{.kv_lora_rank = 16, .rope_dim = 8, .nope_dim = 8, .v_dim = 8};

// The runtime MLA widths of a config, dispatched onto mla_v2 / mla_tiny by attention::mla_dispatch (which
// throws dsk::unsupported listing the compiled choices).
inline attention::mla_config mla_widths(const io::v2_config& c) {
  return {.kv_lora_rank = static_cast<int>(c.kv_lora_rank),
          .rope_dim = static_cast<int>(c.qk_rope_head_dim),
          .nope_dim = static_cast<int>(c.qk_nope_head_dim),
          .v_dim = static_cast<int>(c.v_head_dim)};
}

struct profile : dsk_examples::family_times<8> {
  enum family { embedding, norm, linear, rope, attention, router, experts, lm_head };
  static constexpr const char* names[count] = {"embedding",   "rmsnorm",         "linear (gemm/quant)",
                                               "rope/yarn",   "attention (MLA)", "moe router",
                                               "moe experts", "lm_head"};
  std::vector<std::vector<std::int64_t>> expert_tokens;  // [layer][expert]: tokens routed there

  void reset() {
    reset_times();
    for (auto& l : expert_tokens) std::fill(l.begin(), l.end(), 0);
  }
};

using dsk_examples::load_mlp;

// The routed and shared experts of one DeepSeekMoE layer in the weight format, as the moe::expert_bank types
// that moe::deepseek_moe runs. Float storage: per-expert matrices, viewed in place in the mapped checkpoint
// when it already holds the dtype (no [E, I, H] copy), else converted one tensor at a time.
template <float_storage W>
struct dense_expert_store {
  std::vector<tensor<W, 2>> owned;  // converted tensors (empty when the bank views the checkpoint)
  std::vector<view<const W, 2>> gate, up, down, s_gate, s_up, s_down;
  moe::dense_experts<W> routed() const { return {gate, up, down}; }
  std::optional<moe::dense_experts<W>> shared() const {
    if (s_gate.empty()) return std::nullopt;
    return moe::dense_experts<W>(s_gate, s_up, s_down);
  }
  std::int64_t bytes() const {
    std::int64_t b = 0;
    for (const auto* v : {&gate, &up, &down, &s_gate, &s_up, &s_down})
      for (const auto& m : *v) b += m.extent(0) * m.extent(1) * static_cast<std::int64_t>(sizeof(W));
    return b;
  }
};
// Quantized: per expert gate, up [I, H] and down [H, I] codes and scales, quantized one tensor at a time.
template <quant::format F>
struct quant_expert_store {
  moe::quantized_expert_store<quant::quantize_config{.fmt = F}> routed_, shared_;
  moe::quantized_experts<F> routed() const { return routed_.bank(); }
  std::optional<moe::quantized_experts<F>> shared() const {
    if (shared_.empty()) return std::nullopt;
    return shared_.bank();
  }
  std::int64_t bytes() const { return routed_.bytes() + shared_.bytes(); }
};
// The int4 layout of a Lite checkpoint: the codes and scales viewed in the mapping (no copy).
template <quant::format F>
struct view_expert_store {
  std::vector<quant::qweight_view<F>> gate, up, down, s_gate, s_up, s_down;
  bool int8_activations = false;
  moe::quantized_experts<F> routed() const { return {gate, up, down, int8_activations}; }
  std::optional<moe::quantized_experts<F>> shared() const {
    if (s_gate.empty()) return std::nullopt;
    return moe::quantized_experts<F>(s_gate, s_up, s_down, int8_activations);
  }
  std::int64_t bytes() const {
    std::int64_t b = 0;
    for (const auto* v : {&gate, &up, &down, &s_gate, &s_up, &s_down})
      for (const auto& m : *v) b += m.bytes();
    return b;
  }
};
using expert_store =
    std::variant<dense_expert_store<float>, dense_expert_store<bf16>,
                 quant_expert_store<quant::int8_per_channel>, quant_expert_store<quant::int4_per_channel>,
                 view_expert_store<dsk_examples::int4_layout_formats[0]>,
                 view_expert_store<dsk_examples::int4_layout_formats[1]>>;

// Loads experts[e].{gate,up,down}_proj (first <= e < first + count: all E experts, or one process's share of
// them under expert parallelism) and shared_experts.* of one layer into the chosen format.
inline expert_store load_experts(const loader& ld, const std::string& prefix, index_t first, index_t count,
                                 index_t H, index_t I, index_t shared_inter) {
  const auto& ck = ld.checkpoint();
  const std::string one = prefix + "experts." + std::to_string(first) + ".gate_proj.weight";
  // FP8 experts (V3) become bf16 unless f32 is asked for (the loader's fp8_as_f32 rule).
  const bool bf =
      ck.contains(one) && (ck.info(one).dtype == io::st_dtype::BF16 || io::is_fp8(ck.info(one).dtype));
  const auto fmt = ld.format();
  auto name = [&](index_t e, const char* which) {
    return e < 0 ? prefix + "shared_experts." + which + ".weight"
                 : prefix + "experts." + std::to_string(e) + "." + which + ".weight";
  };
  auto dense = [&]<class W>(dense_expert_store<W> st) -> expert_store {
    auto matrix = [&](const std::string& n, index_t r, index_t c) -> view<const W, 2> {
      const std::array<index_t, 2> shape{r, c};
      ck.check_shape(n, shape);
      ld.check_finite(n);
      if (ck.info(n).dtype == io::st_dtype_of_t<W>::value && !ld.has_lora(n)) {
        // Mapped, not copied. The check read its pages: drop them again, so that resident memory grows
        // only with the experts that are used (they come back from the file when touched).
        ld.release(n);
        return ck.view<W, 2>(n, shape);
      }
      st.owned.push_back(ld.dense<W>(n, shape));
      return st.owned.back().cview();
    };
    st.owned.reserve(static_cast<std::size_t>(3 * (count + 1)));  // views into owned stay valid
    for (index_t e = first; e < first + count; ++e) {
      st.gate.push_back(matrix(name(e, "gate_proj"), I, H));
      st.up.push_back(matrix(name(e, "up_proj"), I, H));
      st.down.push_back(matrix(name(e, "down_proj"), H, I));
    }
    if (shared_inter > 0) {
      st.s_gate.push_back(matrix(name(-1, "gate_proj"), shared_inter, H));
      st.s_up.push_back(matrix(name(-1, "up_proj"), shared_inter, H));
      st.s_down.push_back(matrix(name(-1, "down_proj"), H, shared_inter));
    }
    return st;
  };
  auto quant = [&]<quant::format F>(quant_expert_store<F> st) -> expert_store {
    constexpr quant::quantize_config C{.fmt = F};
    auto q = [&](const std::string& n, index_t r, index_t c) {
      const std::array<index_t, 2> shape{r, c};
      ck.check_shape(n, shape);
      ld.check_finite(n);
      if (ck.info(n).dtype != io::st_dtype::BF16 || ld.has_lora(n))
        return quant::quantize<C>(ld.dense<float>(n, shape).cview());
      auto w = quant::quantize<C>(ck.view<bf16, 2>(n, shape));
      ld.release(n);
      return w;
    };
    for (index_t e = first; e < first + count; ++e)
      st.routed_.add_quantized(q(name(e, "gate_proj"), I, H), q(name(e, "up_proj"), I, H),
                               q(name(e, "down_proj"), H, I));
    if (shared_inter > 0)
      st.shared_.add_quantized(q(name(-1, "gate_proj"), shared_inter, H),
                               q(name(-1, "up_proj"), shared_inter, H),
                               q(name(-1, "down_proj"), H, shared_inter));
    return st;
  };
  if (ld.int4_layout())
    return dsk_examples::with_int4_format(*ld.int4_layout(), [&](auto k) -> expert_store {
      constexpr quant::format F = decltype(k)::value;
      view_expert_store<F> st;
      st.int8_activations = ld.activations() == quant::activations::int8;
      for (index_t e = first; e < first + count; ++e) {
        st.gate.push_back(ld.int4_view<F>(name(e, "gate_proj"), I, H));
        st.up.push_back(ld.int4_view<F>(name(e, "up_proj"), I, H));
        st.down.push_back(ld.int4_view<F>(name(e, "down_proj"), H, I));
      }
      if (shared_inter > 0) {
        st.s_gate.push_back(ld.int4_view<F>(name(-1, "gate_proj"), shared_inter, H));
        st.s_up.push_back(ld.int4_view<F>(name(-1, "up_proj"), shared_inter, H));
        st.s_down.push_back(ld.int4_view<F>(name(-1, "down_proj"), H, shared_inter));
      }
      return st;
    });
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

// Element type of the latent KV cache. f32 reproduces transformers' logits to ~1e-6; bf16 halves the cache
// (each value rounded once, on append).
enum class cache_dtype { f32, bf16 };

// Per-sequence state: for every layer an attention::mla_cache of rows [kv_a_layernorm(c) (kv_lora_rank) ;
// rotated k_pe (rope_dim)]; length = positions filled (the same in every layer).
struct kv_cache {
  std::variant<std::vector<attention::mla_cache<float>>, std::vector<attention::mla_cache<bf16>>> layers;
  index_t length = 0;
  index_t num_layers() const {
    return std::visit([](const auto& l) { return static_cast<index_t>(l.size()); }, layers);
  }
  index_t capacity() const {
    return std::visit([](const auto& l) { return l.empty() ? index_t{0} : l[0].capacity(); }, layers);
  }
  std::int64_t bytes() const {
    return std::visit(
        [](const auto& l) {
          std::int64_t b = 0;
          for (const auto& c : l) b += c.bytes();
          return b;
        },
        layers);
  }
};

// How the stored weights map onto the model (DeepSeek-Lite, examples/lite; V2 checkpoints use the defaults):
// stored block b runs as layers b * share_repeats .. b * share_repeats + share_repeats - 1 (each keeps its
// own cache rows), the output head may be the embedding, and the weights may be the Lite int4 layout, viewed
// in the mapped checkpoint (examples/common/int4_layout.hpp; kv_b_proj, read per head by MLA, is dequantized
// to f32 at load: exact, 4 bytes per weight).
struct structure {
  index_t share_repeats = 1;
  bool tied_head = false;  // lm_head is model.embed_tokens (no lm_head tensor)
  std::optional<quant::format> int4_layout;
  // The int4 layout's products: f32 activations (weight-only), or int8 per token (W4A8: u8 x s8
  // multiply-adds, faster; the activations' rounding changes the logits slightly).
  quant::activations activations = quant::activations::f32;
};

// The exchange of an expert-parallel run. Every process runs the whole model on the same tokens except the
// routed experts, which are split over the processes (load_options::expert_shard); in each MoE layer a
// process takes its share of the tokens (token_range), dispatch sends them to the processes holding their
// experts, combine returns their weighted sums, allgather_rows gives every process all tokens' outputs.
// examples/v2/expert_parallel.hpp implements it over MPI with moe::ep_communicator; model.hpp itself needs
// no MPI. Every call is collective (all processes, same order).
class expert_exchange {
 public:
  virtual ~expert_exchange() = default;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;
  // Checks that every process runs the same experts and hidden size (collective; all throw on a mismatch).
  virtual void configure(index_t experts, index_t hidden) = 0;
  virtual std::pair<index_t, index_t> token_range(index_t tokens) const = 0;  // first, count
  // x [n, H] (this process's tokens), topk_idx / topk_w [n, K] (global expert ids) -> received() rows and
  // local(): their (token, slot) pairs over this process's experts, grouped per local expert.
  virtual void dispatch(view<const float, 2> x, view<const moe::expert_id, 2> topk_idx,
                        view<const float, 2> topk_w) = 0;
  virtual view<const float, 2> received() const = 0;
  virtual const moe::dispatch_handle& local() const = 0;
  // ys [local rows, H] -> y [n, H] = shared + sum_k topk_w * expert output (moe::combine_tokens' order).
  virtual void combine(view<const float, 2> ys, view<const float, 2> topk_w, view<float, 2> y,
                       view<const float, 2> shared) = 0;
  virtual void allgather_rows(view<const float, 2> part, view<float, 2> all) = 0;
  virtual std::vector<std::int64_t> allgather(std::int64_t value) = 0;
};

class model {
 public:
  // Loads config.json and the safetensors checkpoint (one file or sharded) of a directory.
  static model load(const fs::path& dir, weight_format fmt, load_options opts = {}) {
    const io::v2_config cfg = io::v2_config::load(dir);
    return model(cfg, std::make_shared<const io::checkpoint>(dir), fmt, opts);
  }

  // The eps of q_a_layernorm and kv_a_layernorm: DeepSeek's modeling code (V2 and V3) and transformers build
  // them with RMSNorm's default 1e-6, not config.rms_norm_eps (which the other norms use).
  static constexpr float latent_norm_eps = 1e-6f;

  // The model keeps the checkpoint mapped: bf16 experts are viewed in place in it (no copy). Before
  // anything is allocated the checkpoint must hold tensors of exactly the layers 0 .. num_hidden_layers - 1
  // (check_layers); every tensor is shape-checked, then (opts.check_finite) scanned for NaN / infinity,
  // before it is converted.
  model(const io::v2_config& cfg, std::shared_ptr<const io::checkpoint> checkpoint, weight_format fmt,
        load_options opts = {}, structure st = {})
      : ck_(std::move(checkpoint)), cfg_(cfg), st_(st) {
    contract{"dsk_v2::model"}.require(ck_ != nullptr, "checkpoint", "a loaded checkpoint", "null");
    const io::checkpoint& ck = *ck_;
    validate_config();
    set_expert_shard(opts);
    const index_t blocks = cfg_.num_hidden_layers / st_.share_repeats;
    skipped_layers_ = check_layers(ck, blocks, st_.share_repeats, cfg_.num_nextn_predict_layers);
    loader ld(ck, fmt, opts, "dsk_v2");
    if (st_.int4_layout) ld.set_int4_layout(*st_.int4_layout, st_.activations);
    if (cfg_.quantization) ld.set_fp8_blocks(cfg_.quantization->block);
    const index_t D = cfg_.hidden_size, H = cfg_.num_attention_heads, V = cfg_.vocab_size;
    const index_t qk = cfg_.qk_head_dim(), R = cfg_.kv_lora_rank, Dr = cfg_.qk_rope_head_dim;
    const std::array<index_t, 2> emb_shape{V, D};
    if (st_.int4_layout) {  // looked up by dequantizing rows of the mapped codes
      embed_q_ = ld.linear("model.embed_tokens.weight", V, D);
    } else {
      ck.check_shape("model.embed_tokens.weight", emb_shape);
      ld.check_finite("model.embed_tokens.weight");
      if (ck.info("model.embed_tokens.weight").dtype == io::st_dtype::F32 && fmt != weight_format::bf16 &&
          fmt != weight_format::int8 && fmt != weight_format::int4)
        embed_ = ck.read<float, 2>("model.embed_tokens.weight", emb_shape);
      else
        embed_ = ck.read<bf16, 2>("model.embed_tokens.weight", emb_shape);
      ld.release("model.embed_tokens.weight");
    }
    final_norm_ = ld.vec("model.norm.weight", D);
    if (st_.tied_head) {
      const bool has_head = ck.contains("lm_head.weight") || ck.contains("lm_head.qweight");
      contract{"dsk_v2::model"}.require(!has_head, "checkpoint", "no lm_head tensor with a tied head",
                                        "an lm_head");
      lm_head_ = embed_q_ ? *embed_q_ : ld.linear("model.embed_tokens.weight", V, D);
    } else {
      lm_head_ = ld.linear("lm_head.weight", V, D);
    }
    layers_.resize(static_cast<std::size_t>(blocks));
    for (index_t b = 0; b < blocks; ++b) {
      layer& L = layers_[static_cast<std::size_t>(b)];
      const index_t i = b * st_.share_repeats;  // the block's first layer
      const std::string p = "model.layers." + std::to_string(b) + ".";
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
      // kv_b_proj (read per head by both MLA forms) stays in the checkpoint's bf16 (f32 when asked for f32 or
      // when the file holds f32): small next to the experts, and it keeps MLA exact for bf16 checkpoints. The
      // int4 layout's is dequantized to f32 (code x scale is exact in f32).
      {
        const std::string n = p + "self_attn.kv_b_proj.weight";
        const std::array<index_t, 2> shape{H * (cfg_.qk_nope_head_dim + cfg_.v_head_dim), R};
        if (st_.int4_layout) {
          L.kv_b = ld.dense_f32(n, shape[0], shape[1]);
        } else {
          // f32 when asked for, when the file holds f32 / f16, and when a LoRA adapter is merged into it
          // (kept exact: MLA reads kv_b_proj per head, not through an nn::linear); else bf16 (FP8 too).
          const io::st_dtype dt = ck.contains(n) ? ck.info(n).dtype : io::st_dtype::BF16;
          if (fmt == weight_format::f32 || (dt != io::st_dtype::BF16 && !io::is_fp8(dt)) || ld.has_lora(n))
            L.kv_b = ld.dense<float>(n, shape);
          else
            L.kv_b = ld.dense<bf16>(n, shape);
        }
      }
      L.o = ld.linear(p + "self_attn.o_proj.weight", D, H * cfg_.v_head_dim);
      if (cfg_.is_moe_layer(i)) {
        const index_t E = cfg_.n_routed_experts;
        L.moe = true;
        L.gate = ld.f32(p + "mlp.gate.weight", {E, D});
        // V3's selection-only correction bias (noaux_tc): required there, absent in V2.
        if (cfg_.topk_method == io::topk_method::noaux_tc)
          L.score_bias = ld.vec(p + "mlp.gate.e_score_correction_bias", E);
        L.experts = load_experts(ld, p + "mlp.", expert_first_, expert_count_, D, cfg_.moe_intermediate_size,
                                 cfg_.moe_intermediate_size * cfg_.n_shared_experts);
      } else {
        L.mlp = load_mlp(ld, p + "mlp", D, cfg_.intermediate_size);
      }
    }
    ld.check_lora_used();
    lora_weights_ = ld.lora_used();
    prof_.expert_tokens.assign(static_cast<std::size_t>(cfg_.num_hidden_layers),
                               std::vector<std::int64_t>(static_cast<std::size_t>(cfg_.n_routed_experts), 0));
    checked_bytes_ = ld.checked_bytes();
  }

  // The layers of a checkpoint must be exactly 0 .. num_layers - 1: tensors named model.layers.N.* for every
  // N < num_layers, none for N >= num_layers (a config with fewer layers than the checkpoint would run a
  // truncated model without a word; with more it would allocate every layer before the first missing tensor
  // is noticed). One pass over the tensor names, before anything is allocated. (DeepSeek-V3's multi-token
  // prediction layers, model.layers.<num_hidden_layers>.*, are allowed when config.json declares them in
  // num_nextn_predict_layers = extra_layers: they are skipped, and returned.)
  // With sharing (share_repeats r > 1) num_layers is the number of stored blocks, num_hidden_layers / r.
  static index_t check_layers(const io::checkpoint& ck, index_t num_layers, index_t share_repeats = 1,
                              index_t extra_layers = 0) {
    constexpr std::string_view prefix = "model.layers.";
    std::set<index_t> present, skipped;
    std::string beyond, beyond_digits;  // a tensor of the first layer >= num_layers, and its layer number
    index_t beyond_index = -1;
    for (const auto& n : ck.names()) {
      if (n.compare(0, prefix.size(), prefix) != 0) continue;
      const char* first = n.data() + prefix.size();
      const char* last = n.data() + n.size();
      index_t i = -1;
      const auto [p, ec] = std::from_chars(first, last, i);
      if (p == first || p == last || *p != '.') continue;  // not model.layers.<N>.<...>
      if (ec == std::errc::result_out_of_range) i = std::numeric_limits<index_t>::max();
      if (i < 0) continue;
      if (i >= num_layers && i < num_layers + extra_layers) {
        skipped.insert(i);
        continue;
      }
      if (i >= num_layers) {
        if (beyond.empty() || i < beyond_index)
          beyond = n, beyond_index = i, beyond_digits = std::string(first, p);
        continue;
      }
      present.insert(i);
    }
    const std::string cfg_says = share_repeats > 1
                                     ? "config.json's num_hidden_layers / share_repeats = " +
                                           std::to_string(num_layers * share_repeats) + " / " +
                                           std::to_string(share_repeats) + " = " +
                                           std::to_string(num_layers) + " stored blocks"
                                     : "config.json's num_hidden_layers = " + std::to_string(num_layers);
    if (!beyond.empty())
      fail("dsk_v2::model: checkpoint '", ck.label(), "' holds tensors of layer ", beyond_digits, " (e.g. '",
           beyond, "'), beyond ", cfg_says,
           extra_layers > 0 ? " + num_nextn_predict_layers = " + std::to_string(extra_layers) : std::string(),
           ": the config does not describe this checkpoint (set "
           "num_hidden_layers to the checkpoint's layer count)");
    if (static_cast<index_t>(present.size()) < num_layers) {
      index_t missing = 0;
      for (const index_t i : present) {
        if (i != missing) break;
        ++missing;
      }
      fail("dsk_v2::model: checkpoint '", ck.label(), "' has no tensors of layer ", missing,
           " (model.layers.", missing, ".*) but ", cfg_says, " (the checkpoint holds ", present.size(),
           " layers): the config does not describe this checkpoint");
    }
    return static_cast<index_t>(skipped.size());
  }

  // Weights that received a LoRA adapter on load (load_options::lora), attached or merged.
  index_t lora_weights() const { return lora_weights_; }
  // The multi-token-prediction layers (num_nextn_predict_layers) the checkpoint holds and load skipped.
  index_t skipped_mtp_layers() const { return skipped_layers_; }

  // The routed experts this process holds: [first, first + count) of every MoE layer (all of them unless
  // loaded with load_options::expert_shards > 1).
  std::pair<index_t, index_t> held_experts() const { return {expert_first_, expert_count_}; }

  // Runs the MoE layers expert-parallel over `ex` (collective: every process of the run calls it, each with
  // the model loaded with load_options::expert_shard = ex->rank(), expert_shards = ex->ranks()); nullptr
  // goes back to running every expert here, which needs all experts loaded.
  void set_expert_parallel(std::shared_ptr<expert_exchange> ex) {
    const contract c{"dsk_v2::model::set_expert_parallel"};
    const int shards = ex ? ex->ranks() : 1, shard = ex ? ex->rank() : 0;
    const index_t E = cfg_.n_routed_experts;
    const index_t count = E / shards, first = shard * count;
    const auto held = [&] {
      return dsk::detail::concat("experts [", expert_first_, ", ", expert_first_ + expert_count_, ") of ", E);
    };
    // Every process checks the configuration with the others first, so that a mismatch makes all throw.
    if (ex) ex->configure(E, cfg_.hidden_size);
    c.require(E % shards == 0 && first == expert_first_ && count == expert_count_, "ex",
              ex ? dsk::detail::concat("an exchange whose rank ", shard, " of ", shards,
                                       " holds the experts this model loaded (", held(), ")")
                 : dsk::detail::concat("an exchange: this model holds only ", held()),
              ex ? dsk::detail::concat("rank ", shard, " of ", shards) : std::string("nullptr"));
    ep_ = std::move(ex);
  }

  // Bytes of checkpoint tensors scanned for NaN / infinity while loading (0 with check_finite = false).
  std::int64_t checked_bytes() const { return checked_bytes_; }

  // The tiny preset (or any preset) on deterministic random weights, written to a temporary safetensors file
  // and loaded through the same path as a real checkpoint.
  // (opts.expert_shard / expert_shards: one process's share of the routed experts; the same weights.)
  static model random(const preset& d, weight_format fmt, load_options opts = {},
                      std::uint64_t seed = 20261128) {
    return model(to_config(d),
                 dsk_examples::temporary_checkpoint(
                     "dsk_v2", seed, [&](const fs::path& path) { write_random_checkpoint(d, path, seed); }),
                 fmt, opts);
  }

  // The tensors of preset d's checkpoint in file order: f(name, rows, cols, kind), cols = 0 for the 1-D
  // norms. lm_head = false: no lm_head.weight (a model whose head is tied to the embedding).
  enum class tensor_kind { matrix, router_gate, norm };
  template <class F>
  static void for_each_checkpoint_tensor(const preset& d, bool lm_head, F&& f) {
    const index_t D = d.hidden_size, H = d.num_attention_heads, qk = d.qk_nope_head_dim + d.qk_rope_head_dim;
    auto mat = [&](const std::string& name, index_t r, index_t c) { f(name, r, c, tensor_kind::matrix); };
    auto ones = [&](const std::string& name, index_t n) { f(name, n, index_t{0}, tensor_kind::norm); };
    mat("model.embed_tokens.weight", d.vocab_size, D);
    ones("model.norm.weight", D);
    if (lm_head) mat("lm_head.weight", d.vocab_size, D);
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
        f(p + "mlp.gate.weight", d.n_routed_experts, D, tensor_kind::router_gate);
        for (index_t e = 0; e < d.n_routed_experts; ++e)
          mlp(p + "mlp.experts." + std::to_string(e), d.moe_intermediate_size);
        if (d.n_shared_experts > 0)
          mlp(p + "mlp.shared_experts", d.moe_intermediate_size * d.n_shared_experts);
      } else {
        mlp(p + "mlp", d.intermediate_size);
      }
    }
  }

  // Writes random bf16 weights (normal, std 0.02 like the HF initialiser; norms = 1) for preset d.
  static void write_random_checkpoint(const preset& d, const fs::path& path, std::uint64_t seed,
                                      bool lm_head = true) {
    io::safetensors_writer w;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for_each_checkpoint_tensor(d, lm_head, [&](const std::string& name, index_t r, index_t c, tensor_kind k) {
      if (k == tensor_kind::norm) {
        tensor<bf16, 1> t(std::array<index_t, 1>{r}, uninitialized);
        t.fill(bf16(1.0f));
        w.add(name, t);
        return;
      }
      tensor<bf16, 2> t(std::array<index_t, 2>{r, c}, uninitialized);
      for (index_t i = 0; i < t.size(); ++i) t.data()[i] = bf16(nd(rng));
      w.add(name, t);
    });
    w.write(path);
  }

  const io::v2_config& config() const { return cfg_; }
  const structure& stored_structure() const { return st_; }
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
    if (embed_q_ && !st_.tied_head) b += embed_q_->bytes();
    b += lm_head_.bytes();
    for (const auto& L : layers_) {
      b += L.q_a.has_value() ? L.q_a->bytes() + L.q_b->bytes() : L.q->bytes();
      b += L.kv_a.bytes() + L.o.bytes() +
           std::visit([](const auto& t) { return t.size() * std::int64_t(sizeof(*t.data())); }, L.kv_b);
      if (L.moe) {
        b += L.gate.size() * 4 + std::visit([](const auto& st) { return st.bytes(); }, L.experts);
      } else {
        b += L.mlp.bytes();
      }
    }
    return b;
  }

  kv_cache new_cache(index_t capacity, cache_dtype dtype = cache_dtype::f32) const {
    const contract c{"dsk_v2::model::new_cache"};
    c.in_range<index_t>("capacity", capacity, 1, cfg_.max_position_embeddings);
    kv_cache k;
    auto fill = [&]<class T>(std::type_identity<T>) {
      std::vector<attention::mla_cache<T>> layers;
      for (index_t i = 0; i < cfg_.num_hidden_layers; ++i) layers.emplace_back(capacity, mla_widths(cfg_));
      k.layers = std::move(layers);
    };
    if (dtype == cache_dtype::bf16)
      fill(std::type_identity<bf16>{});
    else
      fill(std::type_identity<float>{});
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
    c.require(cache.num_layers() == cfg_.num_hidden_layers, "cache",
              "a cache made by this model's new_cache()", cache.num_layers());
    c.require(cache.length + T <= cache.capacity(), "cache",
              "room for the tokens (capacity " + std::to_string(cache.capacity()) + ")", cache.length + T);
    c.extent("logits", logits, 1, V, "vocab_size");
    c.require(logits.extent(0) == T || logits.extent(0) == 1, "logits", "T rows or 1 row (the last token)",
              logits.extent(0));
    ensure_rope(cache.capacity());

    tensor<float, 2> h(std::array<index_t, 2>{T, D}, uninitialized);
    {
      profile::timer tm{&prof_, profile::embedding};
      if (embed_q_)
        embed_int4(tokens, h.view());
      else
        std::visit([&](const auto& e) { nn::embedding(e.cview(), tokens, h.view()); }, embed_);
    }
    std::vector<index_t> pos(static_cast<std::size_t>(T));
    for (index_t t = 0; t < T; ++t) pos[static_cast<std::size_t>(t)] = cache.length + t;
    std::visit(
        [&](auto& layers) {
          for (index_t i = 0; i < cfg_.num_hidden_layers; ++i)
            layer_forward(i, h.view(), pos, layers[static_cast<std::size_t>(i)]);
        },
        cache.layers);
    cache.length += T;

    const index_t rows = logits.extent(0);
    const view<const float, 2> last(h.data() + (T - rows) * D, dims<2>(rows, D), {D, 1});
    tensor<float, 2> hn(std::array<index_t, 2>{rows, D}, uninitialized);
    {
      profile::timer tm{&prof_, profile::norm};
      nn::rmsnorm(last, final_norm_.cview(), static_cast<float>(cfg_.rms_norm_eps), hn.view());
    }
    {
      profile::timer tm{&prof_, profile::lm_head};
      lm_head_.forward(hn.cview(), logits);
    }
    check_logits(view<const float, 2>(logits), tokens, cache.length - rows);
  }

  // Throws dsk::error naming the position and token whose logits hold a NaN or infinity (a corrupt weight,
  // or an activation that overflowed): sampling would otherwise pick token 0 or a random one without a word.
  // logits: [rows, vocab] of positions first_pos .. first_pos + rows - 1, the last rows of tokens.
  static void check_logits(view<const float, 2> logits, std::span<const std::int32_t> tokens,
                           index_t first_pos) {
    const auto [r, v] = nn::first_nonfinite(logits);
    if (r < 0) return;
    const index_t t = static_cast<index_t>(tokens.size()) - logits.extent(0) + r;
    fail("dsk_v2::model::forward: the logits of position ", first_pos + r, " (token id ",
         tokens[static_cast<std::size_t>(t)], ", input ", t, " of this call) are not finite: logits[", r,
         ", ", v, "] = ", logits(r, v),
         ". A weight is NaN / infinite or an activation overflowed; sampling from them would be meaningless");
  }

 private:
  struct layer {
    tensor<float, 1> input_norm, post_norm, q_a_norm, kv_a_norm;
    std::optional<nn::linear> q, q_a, q_b;
    nn::linear kv_a, o;
    std::variant<tensor<float, 2>, tensor<bf16, 2>> kv_b;  // [H * (nope + v), kv_lora_rank]
    bool moe = false;
    nn::swiglu_mlp mlp;           // dense layers
    tensor<float, 2> gate;        // [E, hidden], f32 (router logits in fp32)
    tensor<float, 1> score_bias;  // [E] V3's e_score_correction_bias (selection only), empty for V2
    expert_store experts;
  };

  void validate_config() const {
    const contract c{"dsk_v2::model"};
    const auto& k = cfg_;
    c.require(st_.activations == quant::activations::f32 || st_.int4_layout.has_value(),
              "structure.activations",
              "f32 unless the weights are the int4 layout (int8 activations run the int4 products)", "int8");
    const index_t r = st_.share_repeats;
    c.require(r >= 1 && k.num_hidden_layers % r == 0, "share_repeats",
              "a positive divisor of num_hidden_layers = " + std::to_string(k.num_hidden_layers), r);
    for (index_t i = 0; i < k.num_hidden_layers; ++i)
      c.require(k.is_moe_layer(i) == k.is_moe_layer(i - i % r), "share_repeats",
                "blocks of r layers that are all dense or all MoE (first_k_dense_replace and moe_layer_freq "
                "compatible with r)",
                r);
    // dsk::unsupported for widths that are not compiled in, listing mla_v2 and mla_tiny.
    attention::mla_dispatch<mla_v2, mla_tiny>(mla_widths(k), [](auto) {});
    c.require(k.vocab_size > 0 && k.hidden_size > 0 && k.num_hidden_layers > 0 && k.num_attention_heads > 0,
              "config", "positive vocab_size, hidden_size, num_hidden_layers, num_attention_heads",
              k.hidden_size);
    if (k.n_routed_experts > 0) {
      c.require(k.num_experts_per_tok >= 1 && k.num_experts_per_tok <= k.n_routed_experts,
                "num_experts_per_tok", "in [1, n_routed_experts]", k.num_experts_per_tok);
      if (k.topk_method != io::topk_method::greedy) {
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
  template <class CacheT>
  void layer_forward(index_t li, view<float, 2> h, std::span<const index_t> pos,
                     attention::mla_cache<CacheT>& cache) const {
    const layer& L = layers_[static_cast<std::size_t>(li / st_.share_repeats)];  // its stored block
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
        nn::rmsnorm(qa.cview(), L.q_a_norm.cview(), latent_norm_eps, qa.view());
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
    const view<float, 2> latent(ckv.data(), dims<2>(T, R), {Dc, 1});
    const view<float, 2> k_pe(ckv.data() + R, dims<2>(T, Dr), {Dc, 1});
    {
      auto tm = timed(profile::norm);
      nn::rmsnorm(view<const float, 2>(latent), L.kv_a_norm.cview(), latent_norm_eps, latent);
    }
    const view<float, 3> q_nope(q.data(), dims<3>(T, H, Dn), {H * qk, qk, 1});
    const view<float, 3> q_pe(q.data() + Dn, dims<3>(T, H, Dr), {H * qk, qk, 1});
    {
      auto tm = timed(profile::rope);
      nn::apply_rope(*rope_, pos, k_pe);
      nn::apply_rope(*rope_, pos, q_pe);
    }
    // Attention over the cache rows [0, p0 + T) once this step's rows are appended; query t at p0 + t.
    tensor<float, 2> o(std::array<index_t, 2>{T, H * Dv}, uninitialized);
    {
      auto tm = timed(profile::attention);
      contract{"dsk_v2::model::forward"}.require(cache.size() == p0, "cache", "as many rows as the position",
                                                 cache.size());
      cache.append(ckv.cview());
      const view<float, 3> ov(o.data(), dims<3>(T, H, Dv), {H * Dv, Dv, 1});
      const attention::options opts{.scale = static_cast<float>(cfg_.softmax_scale()), .query_offset = p0};
      const bool absorbed = T == 1 || prefill_form_ == attention_form::absorbed;
      attention::mla_dispatch<mla_v2, mla_tiny>(mla_widths(cfg_), [&](auto c) {
        constexpr attention::mla_config C = decltype(c)::value;
        std::visit(
            [&](const auto& kv_b) {
              if (absorbed)
                attention::mla_absorbed<C>(q_nope, q_pe, cache, kv_b.cview(), ov, opts);
              else
                attention::mla_expanded<C>(q_nope, q_pe, cache, kv_b.cview(), ov, opts);
            },
            L.kv_b);
      });
    }
    tensor<float, 2> y(std::array<index_t, 2>{T, D}, uninitialized);
    {
      auto tm = timed(profile::linear);
      L.o.forward(o.cview(), y.view());
    }
    nn::residual_add(y.cview(), h);

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
    nn::residual_add(y.cview(), h);
  }

  // f(router config, moe_options): the config's router as a compile-time moe::router_config (V2's two
  // methods with softmax scores, V3's sigmoid noaux_tc: the configs io::v2_config accepts) and its options.
  template <class F>
  void with_router(F&& f) const {
    const bool grouped = cfg_.topk_method != io::topk_method::greedy;
    const moe::router_config rc{
        .score =
            cfg_.scoring_func == io::scoring_func::sigmoid ? moe::scoring::sigmoid : moe::scoring::softmax,
        .method = cfg_.topk_method == io::topk_method::noaux_tc ? moe::topk_method::noaux_tc
                  : cfg_.topk_method == io::topk_method::group_limited_greedy
                      ? moe::topk_method::group_limited_greedy
                      : moe::topk_method::greedy};
    const moe::moe_options mo{
        .route = {.n_group = grouped ? static_cast<int>(cfg_.n_group) : 1,
                  .topk_group = grouped ? static_cast<int>(cfg_.topk_group) : 1,
                  .norm_topk_prob = cfg_.norm_topk_prob,
                  .routed_scaling_factor = static_cast<float>(cfg_.routed_scaling_factor),
                  .scale_normalised = cfg_.scale_normalised_weights()}};
    dsk::dispatch<moe::router_config{}, moe::router_config{.method = moe::topk_method::group_limited_greedy},
                  moe::deepseek_v3_router>("dsk_v2: topk_method", rc, [&](auto c) { f(c, mo); });
  }

  // y = sum_k w_k Expert_{idx_k}(x) + Shared(x) (DeepSeekMoE) by moe::deepseek_moe: gate, route, dispatch
  // (rows grouped per expert), grouped SwiGLU of the routed experts and the shared expert, combine.
  void moe_forward(index_t li, const layer& L, view<const float, 2> x, view<float, 2> y) const {
    if (ep_) {
      moe_forward_split(li, L, x, y);
      return;
    }
    with_router([&](auto c, const moe::moe_options& mo) {
      std::visit(
          [&](const auto& st) {
            using bank = decltype(st.routed());
            const moe::deepseek_moe<decltype(c)::value, bank> m(
                L.gate.cview(), st.routed(), st.shared(), cfg_.num_experts_per_tok, mo, L.score_bias.cview());
            {
              profile::timer tm{&prof_, profile::router};
              m.route(x, ws_);
            }
            profile::timer tm{&prof_, profile::experts};
            m.dispatch(x, ws_);
            m.experts(x, ws_);
            m.combine(ws_, y);
          },
          L.experts);
    });
    count_expert_load(li);
  }

  // The same expert-parallel (set_expert_parallel): every process routes all T tokens and runs the shared
  // expert on them (replicated like attention: the same bits as one process, whatever the split), then
  // takes its share of the tokens: dispatch to the processes holding their experts, this process's experts
  // on the rows it received (each expert sees the rows it sees in one process, in the same order), combine
  // (the single-process combine_tokens' order), and all shares' outputs gathered on every process.
  void moe_forward_split(index_t li, const layer& L, view<const float, 2> x, view<float, 2> y) const {
    const index_t T = x.extent(0), D = cfg_.hidden_size;
    with_router([&](auto c, const moe::moe_options& mo) {
      {
        profile::timer tm{&prof_, profile::router};
        moe::detail::ensure_shape(ws_.logits, T, cfg_.n_routed_experts);
        moe::detail::ensure_shape(ws_.scores, T, cfg_.n_routed_experts);
        moe::detail::ensure_shape(ws_.topk_idx, T, cfg_.num_experts_per_tok);
        moe::detail::ensure_shape(ws_.topk_w, T, cfg_.num_experts_per_tok);
        moe::gate_logits(x, L.gate.cview(), ws_.logits.view());
        moe::route<decltype(c)::value>(ws_.logits.cview(), L.score_bias.cview(), ws_.scores.view(),
                                       ws_.topk_idx.view(), ws_.topk_w.view(), mo.route);
      }
      profile::timer tm{&prof_, profile::experts};
      // (Not a structured binding: the lambdas below capture t0 and n, which clang 14 does not allow.)
      const auto range = ep_->token_range(T);
      const index_t t0 = range.first, n = range.second;
      const view<const float, 2> xs = x.slice(0, t0, t0 + n);
      const view<const float, 2> w = ws_.topk_w.cview().slice(0, t0, t0 + n);
      ep_->dispatch(xs, ws_.topk_idx.cview().slice(0, t0, t0 + n), w);  // received() and local()
      std::visit(
          [&](const auto& st) {
            const auto routed = st.routed();
            const moe::dispatch_handle& local = ep_->local();
            moe::detail::ensure_shape(ws_.xs, local.rows(), D);
            moe::detail::ensure_shape(ws_.h, local.rows(), routed.inter());
            moe::detail::ensure_shape(ws_.ys, local.rows(), D);
            moe::dispatch_tokens(ep_->received(), local, ws_.xs.view());
            moe::grouped_swiglu(ws_.xs.cview(), local, routed, ws_.h.view(), ws_.ys.view());
            // The shared expert runs on all T tokens, like the other replicated layers: its product over
            // T rows is not bit for bit the one over a share of them (dsk::gemm vs the one-row path).
            view<const float, 2> shared{};
            if (const auto sh = st.shared()) {
              const index_t off[2] = {0, T}, cnt[1] = {T};
              moe::detail::ensure_shape(ws_.shared_h, T, sh->inter());
              moe::detail::ensure_shape(ws_.shared_y, T, D);
              moe::grouped_swiglu(x, std::span<const index_t>(off), std::span<const index_t>(cnt), *sh,
                                  ws_.shared_h.view(), ws_.shared_y.view());
              shared = ws_.shared_y.cview().slice(0, t0, t0 + n);
            }
            moe::detail::ensure_shape(ep_part_, n, D);
            ep_->combine(ws_.ys.cview(), w, ep_part_.view(), shared);
            ep_->allgather_rows(ep_part_.cview(), y);
          },
          L.experts);
    });
    count_expert_load(li);
  }

  void count_expert_load(index_t li) const {
    auto& load = prof_.expert_tokens[static_cast<std::size_t>(li)];
    for (index_t t = 0; t < ws_.topk_idx.extent(0); ++t)
      for (index_t k = 0; k < ws_.topk_idx.extent(1); ++k)
        if (ws_.topk_idx(t, k) >= 0) ++load[static_cast<std::size_t>(ws_.topk_idx(t, k))];
  }

  // The routed experts this process holds (load_options::expert_shard / expert_shards), before any is read.
  void set_expert_shard(const load_options& opts) {
    const contract c{"dsk_v2::model"};
    const index_t E = cfg_.n_routed_experts;
    c.in_range<index_t>("load_options.expert_shards", opts.expert_shards, 1, std::max<index_t>(E, 1))
        .in_range<index_t>("load_options.expert_shard", opts.expert_shard, 0, opts.expert_shards - 1)
        .require(E % opts.expert_shards == 0, "load_options.expert_shards",
                 dsk::detail::concat("a divisor of n_routed_experts = ", E, " (every process holds as many)"),
                 opts.expert_shards)
        .require(opts.expert_shards == 1 || opts.lora.empty(), "load_options.lora",
                 "no adapter when the experts are split (expert_shards > 1)", opts.lora.string());
    expert_count_ = E / opts.expert_shards;
    expert_first_ = opts.expert_shard * expert_count_;
  }

  // The int4 layout's embedding [V, D]: row t of the mapped codes dequantized (code x scale, as the tied head
  // computes with them).
  void embed_int4(std::span<const std::int32_t> tokens, view<float, 2> h) const {
    const contract c{"dsk_v2::model::forward"};
    const index_t V = cfg_.vocab_size;
    for (std::size_t t = 0; t < tokens.size(); ++t)
      c.require(tokens[t] >= 0 && tokens[t] < V, "tokens",
                "ids in [0, vocab_size = " + std::to_string(V) + ")",
                dsk::detail::concat(tokens[t], " at index ", t));
    std::visit(
        [&](const auto& w) {
          if constexpr (requires { w.code_stride; }) {
            for (std::size_t t = 0; t < tokens.size(); ++t) {
              auto row = w;
              row.codes = reinterpret_cast<decltype(w.codes)>(w.code_row(tokens[t]));
              row.scales = w.scales + tokens[t] * w.scale_stride;
              row.rows = 1;
              const auto ti = static_cast<index_t>(t);
              quant::dequantize(row,
                                view<float, 2>(h.data() + ti * h.stride(0), dims<2>(1, w.cols), {w.cols, 1}));
            }
          } else {
            fail("dsk_v2::model: the int4 embedding is not a view of the checkpoint");
          }
        },
        embed_q_->weights());
  }

  std::shared_ptr<const io::checkpoint> ck_;  // first: destroyed after every view into its mapping
  io::v2_config cfg_;
  structure st_;
  std::variant<tensor<float, 2>, tensor<bf16, 2>> embed_;
  std::optional<nn::linear> embed_q_;  // the int4 layout's embedding (viewed in the mapping)
  tensor<float, 1> final_norm_;
  nn::linear lm_head_;
  std::vector<layer> layers_;
  attention_form prefill_form_ = attention_form::expanded;
  nn::rope_layout rope_layout_ = nn::rope_layout::interleaved;
  mutable std::optional<nn::rope_cache> rope_;
  mutable profile prof_;
  mutable moe::moe_workspace ws_;                // reused by every MoE layer and call
  index_t expert_first_ = 0, expert_count_ = 0;  // the routed experts held here (held_experts)
  std::shared_ptr<expert_exchange> ep_;          // set: the MoE layers run expert-parallel over it
  mutable tensor<float, 2> ep_part_;             // expert-parallel: this process's share of a MoE output
  std::int64_t checked_bytes_ = 0;
  index_t skipped_layers_ = 0;
  index_t lora_weights_ = 0;
};

inline std::vector<std::int32_t> builtin_prompt(index_t vocab_size) {
  return dsk_examples::builtin_prompt(vocab_size, "dsk_v2", "--tokens");
}
inline void check_tokenizer(const io::tokenizer& tok, index_t vocab_size, std::string_view tokenizer_file,
                            std::string_view config_file) {
  dsk_examples::check_tokenizer(tok, vocab_size, tokenizer_file, config_file, "dsk_v2");
}

}  // namespace dsk_v2
