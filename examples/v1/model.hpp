// DeepSeek-V1 reference model (encoder-decoder Transformer with dynamic block attention), built only from
// dsk's public headers. Encoder: bidirectional dynamic block attention (attention::nsa, causal = false) with
// RoPE; decoder: causal dynamic block attention over a growing cache (attention::nsa_step) and dense cross
// attention (attention::dense) to the encoder output, whose K/V are projected once per sequence (start()).
// SwiGLU FFN, pre-RMSNorm, a final RMSNorm after each stack, the output head tied to the shared token
// embedding. Host backend. presets.hpp gives the shapes and the parameter count; docs/models.md the
// architecture.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "../common/runner.hpp"
#include "config.hpp"
#include "dsk/attention/flash.hpp"
#include "dsk/attention/nsa.hpp"
#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/nn/elementwise.hpp"
#include "dsk/nn/embedding.hpp"
#include "dsk/nn/finite.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/nn/rmsnorm.hpp"
#include "dsk/nn/rope.hpp"
#include "presets.hpp"

namespace dsk_v1 {

using namespace dsk;
namespace fs = std::filesystem;
using dsk_examples::load_options;
using dsk_examples::loader;
using dsk_examples::weight_format;

// ---- compiled attention shapes ----------------------------------------------------------------------------
// The dynamic block attention's widths and block shapes are template parameters of dsk::attention; the model
// compiles the tiny preset's and the card's block shapes at head_dim 64 (mid) and 128 (v1_card), mean pooled
// or learned. A preset outside them is dsk::unsupported, listing these.
struct attention_shape {
  int head_dim, cmp_block, cmp_stride, sel_block, sel_count, window;
  bool learned;
  friend constexpr bool operator==(const attention_shape&, const attention_shape&) = default;
};
#ifndef DSK_V1_TINY_SHAPES_ONLY
inline constexpr attention_shape compiled_shapes[] = {
    {16, 8, 4, 16, 5, 16, false},      {16, 8, 4, 16, 5, 16, true},      {64, 32, 16, 64, 16, 512, false},
    {128, 32, 16, 64, 16, 512, false}, {128, 32, 16, 64, 16, 512, true},
};
#else  // tests that run only the tiny preset, in builds that trim compile time (tests/support/grid.hpp)
inline constexpr attention_shape compiled_shapes[] = {{16, 8, 4, 16, 5, 16, false},
                                                      {16, 8, 4, 16, 5, 16, true}};
#endif
constexpr attention_shape shape_of(const preset& p) {
  return {static_cast<int>(p.head_dim), p.cmp_block, p.cmp_stride, p.sel_block, p.sel_count, p.window,
          p.learned_compression};
}
constexpr attention::nsa_config nsa_of(const attention_shape& s, bool causal) {
  return {.head_dim = s.head_dim,
          .cmp_block = s.cmp_block,
          .cmp_stride = s.cmp_stride,
          .sel_block = s.sel_block,
          .sel_count = s.sel_count,
          .window = s.window,
          .pooling = s.learned ? attention::nsa_pooling::linear : attention::nsa_pooling::mean,
          .causal = causal};
}
inline std::string to_string(const attention_shape& s) {
  return "(head_dim " + std::to_string(s.head_dim) + ", cmp " + std::to_string(s.cmp_block) + "/" +
         std::to_string(s.cmp_stride) + ", sel " + std::to_string(s.sel_block) + " x " +
         std::to_string(s.sel_count) + ", window " + std::to_string(s.window) +
         (s.learned ? ", learned)" : ", mean)");
}
// Calls fn.template operator()<S>() with the compiled shape S equal to s; dsk::unsupported otherwise.
template <class Fn>
void with_shape(const attention_shape& s, Fn&& fn) {
  bool found = false;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((!found && compiled_shapes[I] == s ? (fn.template operator()<compiled_shapes[I]>(), found = true)
                                        : false),
     ...);
  }
  (std::make_index_sequence<std::size(compiled_shapes)>{});
  if (found) return;
  std::string choices;
  for (const auto& c : compiled_shapes) choices += (choices.empty() ? "" : ", ") + to_string(c);
  throw unsupported("dsk_v1::model: attention shape " + to_string(s) +
                    " is not compiled; choices: " + choices);
}

// Score and value FLOPs (2 dh per key for q.k, 2 dh for p.v, per head) of the encoder's self-attention over S
// source tokens: dynamic block attention (compressed + selected + local keys per query) and dense
// bidirectional attention (all S keys), summed over the encoder layers. Projections and the importance
// scores of the selection are not counted (the same in both / small).
struct attention_flops {
  double nsa = 0, dense = 0;
};
inline attention_flops encoder_attention_flops(const preset& p, index_t S) {
  if (S <= 0) return {};
  const double l = p.cmp_block, dc = p.cmp_stride;
  const double n_cmp = S <= p.cmp_block ? 1.0 : std::ceil((static_cast<double>(S) - l) / dc) + 1.0;
  const double n_blocks = std::ceil(static_cast<double>(S) / p.sel_block);
  const double n_sel = std::min<double>(std::min<double>(p.sel_count, n_blocks) * p.sel_block, S);
  const double n_win = std::min<double>(2.0 * p.window + 1.0, S);
  const double per_key = 4.0 * static_cast<double>(p.head_dim * p.num_heads * p.encoder_layers) * S;
  return {per_key * (n_cmp + n_sel + n_win), per_key * static_cast<double>(S)};
}

struct profile : dsk_examples::family_times<6> {
  enum family { embedding, norm, linear, attention, ffn, lm_head };
  static constexpr const char* names[count] = {"embedding",         "rmsnorm",      "linear (gemm/quant)",
                                               "attention (NSA+x)", "ffn (SwiGLU)", "lm_head"};
};

// The decoder's state for one sequence: per layer the self-attention cache and the cross-attention K/V of
// the encoder output (projected once, by model::start).
struct decoder_state {
  std::vector<attention::nsa_cache> self;
  std::vector<tensor<float, 3>> cross_k, cross_v;  // [S, kv_heads, head_dim]
  index_t length = 0;                              // decoder positions filled
  index_t memory_length = 0;                       // S
};

// The encoder's self-attention: the model's dynamic block attention, or dense bidirectional attention over
// the same q, k, v (no gates) -- the baseline of the encoder benchmark (bench/models), not a V1 variant.
enum class encoder_attention { dynamic_block, dense };

class model {
 public:
  // Loads a V1 checkpoint (names in docs/models.md) described by preset p, weights held in fmt.
  model(const preset& p, std::shared_ptr<const io::checkpoint> ck, weight_format fmt, load_options opts = {})
      : p_(p), ck_(std::move(ck)) {
    validate();
    const loader ld(*ck_, fmt, opts, "dsk_v1");
    const index_t V = p_.vocab_size, D = p_.hidden_size;
    embed_ = ld.f32("model.embed_tokens.weight", {V, D});
    lm_head_ = nn::linear(embed_.cview(), dsk_examples::to_linear_format(fmt));  // tied
    enc_norm_ = ld.vec("model.encoder.norm.weight", D);
    dec_norm_ = ld.vec("model.decoder.norm.weight", D);
    for (index_t i = 0; i < p_.encoder_layers; ++i) {
      const std::string pre = "model.encoder.layers." + std::to_string(i) + ".";
      enc_.push_back(load_layer(ld, pre, false));
    }
    for (index_t i = 0; i < p_.decoder_layers; ++i) {
      const std::string pre = "model.decoder.layers." + std::to_string(i) + ".";
      dec_.push_back(load_layer(ld, pre, true));
    }
    checked_bytes_ = ld.checked_bytes();
  }

  // Loads DIR/config.json and the safetensors checkpoint (one file or sharded) of a directory.
  static model load(const fs::path& dir, weight_format fmt, load_options opts = {}) {
    return model(load_config(dir), std::make_shared<const io::checkpoint>(dir), fmt, opts);
  }

  // Writes preset p on the deterministic random weights as a checkpoint directory (config.json and
  // model.safetensors) that load() reads.
  static void write_random_directory(const preset& p, const fs::path& dir, std::uint64_t seed = 20261203) {
    fs::create_directories(dir);
    write_random_checkpoint(p, dir / "model.safetensors", seed);
    write_config(p, dir / "config.json");
  }

  // Preset p on deterministic random weights, written to a temporary safetensors file and loaded through the
  // same path as a real checkpoint.
  static model random(const preset& p, weight_format fmt, std::uint64_t seed = 20261203) {
    return model(p,
                 dsk_examples::temporary_checkpoint(
                     "dsk_v1", seed, [&](const fs::path& path) { write_random_checkpoint(p, path, seed); }),
                 fmt);
  }

  // Weight element i of the tensor `name`: (r - 2^23) 2^(e - 23), r the top 24 bits of splitmix64 over a
  // stream keyed by the seed and the name (FNV-1a): uniform in [-2^e, 2^e), exact in f32, and independent of
  // the order tensors are made in, so that tools/gen_v1_golden.py builds the same weights bit for bit.
  static float weight_value(std::uint64_t key, std::uint64_t i, int e) {
    std::uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const auto r = static_cast<std::int64_t>(z >> 40) - (std::int64_t{1} << 23);
    return std::ldexp(static_cast<float>(r), e - 23);
  }
  static std::uint64_t weight_key(std::uint64_t seed, const std::string& name) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
    return h ^ seed;
  }

  // Random f32 weights (weight_value: amplitude 2^-5 for projections, 2^-2 for the queries, keys and gates, 1
  // for the embedding; norms 1) for preset p.
  static void write_random_checkpoint(const preset& p, const fs::path& path, std::uint64_t seed) {
    io::safetensors_writer w;
    auto mat = [&](const std::string& name, index_t r, index_t c, int e = -5) {
      tensor<float, 2> t(std::array<index_t, 2>{r, c}, uninitialized);
      const std::uint64_t key = weight_key(seed, name);
      for (index_t i = 0; i < t.size(); ++i)
        t.data()[i] = weight_value(key, static_cast<std::uint64_t>(i), e);
      w.add(name, t);
    };
    auto ones = [&](const std::string& name, index_t n) {
      tensor<float, 1> t(std::array<index_t, 1>{n}, uninitialized);
      t.fill(1.0f);
      w.add(name, t);
    };
    const index_t D = p.hidden_size, H = p.num_heads, Hkv = p.num_kv_heads, dh = p.head_dim;
    auto attn = [&](const std::string& pre, bool self) {
      mat(pre + "q_proj.weight", H * dh, D, -2);  // sharper scores than 2^-5: block choices with margins
      mat(pre + "k_proj.weight", Hkv * dh, D, -2);
      mat(pre + "v_proj.weight", Hkv * dh, D);
      mat(pre + "o_proj.weight", D, H * dh);
      if (!self) return;
      mat(pre + "gate_proj.weight", 3 * H, D, -2);
      if (p.learned_compression) {
        mat(pre + "compress_k.weight", dh, p.cmp_block * dh, -4);
        mat(pre + "compress_k.pe", p.cmp_block, dh);
        mat(pre + "compress_v.weight", dh, p.cmp_block * dh, -4);
        mat(pre + "compress_v.pe", p.cmp_block, dh);
      }
    };
    auto mlp = [&](const std::string& pre) {
      mat(pre + "mlp.gate_proj.weight", p.intermediate_size, D);
      mat(pre + "mlp.up_proj.weight", p.intermediate_size, D);
      mat(pre + "mlp.down_proj.weight", D, p.intermediate_size);
    };
    mat("model.embed_tokens.weight", p.vocab_size, D, 0);
    ones("model.encoder.norm.weight", D);
    ones("model.decoder.norm.weight", D);
    for (index_t i = 0; i < p.encoder_layers; ++i) {
      const std::string pre = "model.encoder.layers." + std::to_string(i) + ".";
      ones(pre + "input_layernorm.weight", D);
      attn(pre + "self_attn.", true);
      ones(pre + "post_attention_layernorm.weight", D);
      mlp(pre);
    }
    for (index_t i = 0; i < p.decoder_layers; ++i) {
      const std::string pre = "model.decoder.layers." + std::to_string(i) + ".";
      ones(pre + "input_layernorm.weight", D);
      attn(pre + "self_attn.", true);
      ones(pre + "cross_attn_layernorm.weight", D);
      attn(pre + "cross_attn.", false);
      ones(pre + "post_attention_layernorm.weight", D);
      mlp(pre);
    }
    w.write(path);
  }

  const preset& config() const { return p_; }
  void set_encoder_attention(encoder_attention a) { enc_attention_ = a; }
  profile& prof() const { return prof_; }
  std::int64_t checked_bytes() const { return checked_bytes_; }
  // Bytes of the weights as held in memory: the f32 embedding table (lookup) and its tied head in the weight
  // format, the layers' projections, f32 gates and compression weights, FFNs (norms excluded).
  std::int64_t weight_bytes() const {
    std::int64_t b = embed_.size() * std::int64_t(sizeof(float)) + lm_head_.bytes();
    for (const auto* stack : {&enc_, &dec_})
      for (const layer& L : *stack) {
        for (const auto* pr : {&L.self, &L.cross})
          for (const auto* l : {&pr->q, &pr->k, &pr->v, &pr->o})
            if (*l) b += (*l)->bytes();
        b += (L.gates.size() + L.ck_w.size() + L.ck_pe.size() + L.cv_w.size() + L.cv_pe.size()) *
                 std::int64_t(sizeof(float)) +
             L.mlp.bytes();
      }
    return b;
  }

  // Encoder: source tokens [S] -> memory [S, hidden] (after the encoder's final norm). S may be 0.
  tensor<float, 2> encode(std::span<const std::int32_t> src) const {
    const index_t S = static_cast<index_t>(src.size()), D = p_.hidden_size;
    tensor<float, 2> h(std::array<index_t, 2>{S, D}, uninitialized);
    if (S == 0) return h;
    embed(src, h.view());
    ensure_rope(S);
    std::vector<index_t> pos(static_cast<std::size_t>(S));
    for (index_t t = 0; t < S; ++t) pos[static_cast<std::size_t>(t)] = t;
    for (const layer& L : enc_) {
      tensor<float, 2> a(std::array<index_t, 2>{S, D}, uninitialized);
      norm(h.cview(), L.in_norm, a.view());
      tensor<float, 2> o = self_attention<false>(L, a.cview(), pos, nullptr);
      nn::residual_add(o.cview(), h.view());
      ffn(L, h.view());
    }
    tensor<float, 2> out(std::array<index_t, 2>{S, D}, uninitialized);
    norm(h.cview(), enc_norm_, out.view());
    return out;
  }

  // A decoder state for the encoder output `memory` [S, hidden]: the cross-attention K/V of every decoder
  // layer are projected here, once per sequence.
  decoder_state start(view<const float, 2> memory) const {
    const contract c{"dsk_v1::model::start"};
    c.extent("memory", memory, 1, p_.hidden_size, "hidden_size");
    const index_t S = memory.extent(0), Hkv = p_.num_kv_heads, dh = p_.head_dim;
    decoder_state st;
    st.memory_length = S;
    for (const layer& L : dec_) {
      st.self.emplace_back(Hkv, static_cast<int>(dh), static_cast<int>(dh));
      tensor<float, 3> k(std::array<index_t, 3>{S, Hkv, dh}, uninitialized),
          v(std::array<index_t, 3>{S, Hkv, dh}, uninitialized);
      if (S > 0) {
        profile::timer tm{&prof_, profile::linear};
        L.cross.k->forward(memory, flat(k));
        L.cross.v->forward(memory, flat(v));
      }
      st.cross_k.push_back(std::move(k));
      st.cross_v.push_back(std::move(v));
    }
    return st;
  }

  // Decoder: appends tgt tokens (one for decode, several for a prompt) at positions st.length.., and writes
  // the logits of the last logits.extent(0) of them (1 or tgt.size() rows) [rows, vocab].
  void decode(std::span<const std::int32_t> tgt, decoder_state& st, view<float, 2> logits) const {
    const contract c{"dsk_v1::model::decode"};
    const index_t T = static_cast<index_t>(tgt.size()), D = p_.hidden_size, V = p_.vocab_size;
    c.require(T >= 1, "tgt", "at least one token", T);
    c.require(st.self.size() == dec_.size(), "st", "a state made by this model's start()",
              static_cast<index_t>(st.self.size()));
    c.extent("logits", logits, 1, V, "vocab_size");
    c.require(logits.extent(0) == T || logits.extent(0) == 1, "logits", "T rows or 1 row (the last token)",
              logits.extent(0));
    tensor<float, 2> h(std::array<index_t, 2>{T, D}, uninitialized);
    embed(tgt, h.view());
    ensure_rope(st.length + T);
    std::vector<index_t> pos(static_cast<std::size_t>(T));
    for (index_t t = 0; t < T; ++t) pos[static_cast<std::size_t>(t)] = st.length + t;
    tensor<float, 2> a(std::array<index_t, 2>{T, D}, uninitialized);
    for (std::size_t i = 0; i < dec_.size(); ++i) {
      const layer& L = dec_[i];
      norm(h.cview(), L.in_norm, a.view());
      {
        tensor<float, 2> o = self_attention<true>(L, a.cview(), pos, &st.self[i]);
        nn::residual_add(o.cview(), h.view());
      }
      norm(h.cview(), L.cross_norm, a.view());
      {
        tensor<float, 2> o = cross_attention(L, a.cview(), st.cross_k[i].cview(), st.cross_v[i].cview());
        nn::residual_add(o.cview(), h.view());
      }
      ffn(L, h.view());
    }
    st.length += T;
    const index_t rows = logits.extent(0);
    const view<const float, 2> last(h.data() + (T - rows) * D, dims<2>(rows, D), {D, 1});
    tensor<float, 2> hn(std::array<index_t, 2>{rows, D}, uninitialized);
    norm(last, dec_norm_, hn.view());
    {
      profile::timer tm{&prof_, profile::lm_head};
      lm_head_.forward(hn.cview(), logits);
    }
    const auto [r, v] = nn::first_nonfinite(view<const float, 2>(logits));
    if (r >= 0)
      fail("dsk_v1::model::decode: the logits of decoder position ", st.length - rows + r,
           " are not finite: logits[", r, ", ", v, "] = ", logits(r, v),
           ". A weight is NaN / infinite or an activation overflowed");
  }

 private:
  struct projections {
    std::optional<nn::linear> q, k, v, o;
  };
  struct layer {
    tensor<float, 1> in_norm, cross_norm, post_norm;
    projections self, cross;                    // cross: decoder only
    tensor<float, 2> gates;                     // [3 H, hidden]
    tensor<float, 2> ck_w, ck_pe, cv_w, cv_pe;  // learned compression (else empty)
    nn::swiglu_mlp mlp;
  };

  static view<float, 2> flat(tensor<float, 3>& t) {
    return dense_view<float, 2>(t.data(), t.extent(0), t.extent(1) * t.extent(2));
  }

  void validate() const {
    const contract c{"dsk_v1::model"};
    c.require(p_.vocab_size >= 1 && p_.hidden_size >= 1 && p_.intermediate_size >= 1, "preset",
              "positive vocab_size, hidden_size and intermediate_size", p_.hidden_size);
    c.require(p_.encoder_layers >= 0 && p_.decoder_layers >= 1, "preset",
              "encoder_layers >= 0 and decoder_layers >= 1", p_.decoder_layers);
    c.require(p_.num_kv_heads >= 1 && p_.num_heads % p_.num_kv_heads == 0, "preset",
              "num_heads a multiple of num_kv_heads >= 1", p_.num_kv_heads);
    with_shape(shape_of(p_), []<attention_shape>() {});  // unsupported shapes fail here, before loading
  }

  // q [H dh, d], k and v [Hkv dh, d], o [d, H dh] of one attention (self or cross) under `prefix`.
  projections load_projections(const loader& ld, const std::string& prefix) const {
    const index_t D = p_.hidden_size, H = p_.num_heads, Hkv = p_.num_kv_heads, dh = p_.head_dim;
    return {ld.linear(prefix + "q_proj.weight", H * dh, D), ld.linear(prefix + "k_proj.weight", Hkv * dh, D),
            ld.linear(prefix + "v_proj.weight", Hkv * dh, D), ld.linear(prefix + "o_proj.weight", D, H * dh)};
  }
  layer load_layer(const loader& ld, const std::string& pre, bool decoder) const {
    const index_t D = p_.hidden_size, H = p_.num_heads, dh = p_.head_dim;
    layer L;
    L.in_norm = ld.vec(pre + "input_layernorm.weight", D);
    L.post_norm = ld.vec(pre + "post_attention_layernorm.weight", D);
    const std::string a = pre + "self_attn.";
    L.self = load_projections(ld, a);
    L.gates = ld.f32(a + "gate_proj.weight", {3 * H, D});
    if (p_.learned_compression) {
      const index_t l = p_.cmp_block;
      L.ck_w = ld.f32(a + "compress_k.weight", {dh, l * dh});
      L.ck_pe = ld.f32(a + "compress_k.pe", {l, dh});
      L.cv_w = ld.f32(a + "compress_v.weight", {dh, l * dh});
      L.cv_pe = ld.f32(a + "compress_v.pe", {l, dh});
    }
    if (decoder) {
      L.cross_norm = ld.vec(pre + "cross_attn_layernorm.weight", D);
      const std::string x = pre + "cross_attn.";
      L.cross = load_projections(ld, x);
    }
    L.mlp = dsk_examples::load_mlp(ld, pre + "mlp", D, p_.intermediate_size);
    return L;
  }

  void embed(std::span<const std::int32_t> ids, view<float, 2> h) const {
    profile::timer tm{&prof_, profile::embedding};
    nn::embedding(embed_.cview(), ids, h);
  }
  void norm(view<const float, 2> x, const tensor<float, 1>& w, view<float, 2> y) const {
    profile::timer tm{&prof_, profile::norm};
    nn::rmsnorm(x, w.cview(), static_cast<float>(p_.rms_norm_eps), y);
  }
  void ensure_rope(index_t positions) const {
    if (rope_ && rope_->max_positions() >= positions) return;
    nn::rope_params rp;
    rp.dim = p_.head_dim;
    rp.base = p_.rope_theta;
    rp.layout = nn::rope_layout::half_split;
    rope_.emplace(rp, std::max<index_t>(2 * positions, 64));
  }

  // Self-attention of one layer: Causal = decoder (nsa_step on cache), else encoder (bidirectional nsa).
  template <bool Causal>
  tensor<float, 2> self_attention(const layer& L, view<const float, 2> x, std::span<const index_t> pos,
                                  attention::nsa_cache* cache) const {
    const index_t T = x.extent(0), H = p_.num_heads, Hkv = p_.num_kv_heads, dh = p_.head_dim;
    tensor<float, 3> q(std::array<index_t, 3>{T, H, dh}, uninitialized),
        k(std::array<index_t, 3>{T, Hkv, dh}, uninitialized),
        v(std::array<index_t, 3>{T, Hkv, dh}, uninitialized),
        o(std::array<index_t, 3>{T, H, dh}, uninitialized), g(std::array<index_t, 3>{T, H, 3}, uninitialized);
    {
      profile::timer tm{&prof_, profile::linear};
      L.self.q->forward(x, flat(q));
      L.self.k->forward(x, flat(k));
      L.self.v->forward(x, flat(v));
      attention::nsa_gates(x, L.gates.cview(), {}, g.view());
    }
    nn::apply_rope(*rope_, pos, q.view());
    nn::apply_rope(*rope_, pos, k.view());
    {
      profile::timer tm{&prof_, profile::attention};
      const attention::nsa_weights cw{L.ck_w.cview(), L.ck_pe.cview(), L.cv_w.cview(), L.cv_pe.cview()};
      const attention::nsa_weights* wp = p_.learned_compression ? &cw : nullptr;
      with_shape(shape_of(p_), [&]<attention_shape S>() {
        constexpr attention::nsa_config C = nsa_of(S, Causal);
        if constexpr (Causal)
          attention::nsa_step<C>(*cache, q.cview(), k.cview(), v.cview(), g.cview(), o.view(), wp);
        else if (enc_attention_ == encoder_attention::dense)
          attention::dense<attention::dense_config{.head_dim = S.head_dim}>(q.cview(), k.cview(), v.cview(),
                                                                            o.view());
        else
          attention::nsa<C>(q.cview(), k.cview(), v.cview(), g.cview(), o.view(), wp);
      });
    }
    tensor<float, 2> out(std::array<index_t, 2>{T, p_.hidden_size}, uninitialized);
    profile::timer tm{&prof_, profile::linear};
    L.self.o->forward(dense_view<const float, 2>(o.data(), T, H * dh), out.view());
    return out;
  }

  // Dense cross attention of decoder queries to the encoder output's K/V (no mask, no RoPE: the memory's
  // positions are in its content). An empty memory gives 0.
  tensor<float, 2> cross_attention(const layer& L, view<const float, 2> x, view<const float, 3> k,
                                   view<const float, 3> v) const {
    const index_t T = x.extent(0), H = p_.num_heads, dh = p_.head_dim;
    tensor<float, 3> q(std::array<index_t, 3>{T, H, dh}, uninitialized),
        o(std::array<index_t, 3>{T, H, dh}, uninitialized);
    {
      profile::timer tm{&prof_, profile::linear};
      L.cross.q->forward(x, flat(q));
    }
    {
      profile::timer tm{&prof_, profile::attention};
      with_shape(shape_of(p_), [&]<attention_shape S>() {
        attention::dense<attention::dense_config{.head_dim = S.head_dim}>(q.cview(), k, v, o.view());
      });
    }
    tensor<float, 2> out(std::array<index_t, 2>{T, p_.hidden_size}, uninitialized);
    profile::timer tm{&prof_, profile::linear};
    L.cross.o->forward(dense_view<const float, 2>(o.data(), T, H * dh), out.view());
    return out;
  }

  void ffn(const layer& L, view<float, 2> h) const {
    const index_t T = h.extent(0), D = p_.hidden_size;
    tensor<float, 2> a(std::array<index_t, 2>{T, D}, uninitialized),
        y(std::array<index_t, 2>{T, D}, uninitialized);
    norm(view<const float, 2>(h), L.post_norm, a.view());
    {
      profile::timer tm{&prof_, profile::ffn};
      L.mlp.forward(a.cview(), y.view());
    }
    nn::residual_add(y.cview(), h);
  }

  preset p_;
  std::shared_ptr<const io::checkpoint> ck_;
  tensor<float, 2> embed_;
  nn::linear lm_head_;
  tensor<float, 1> enc_norm_, dec_norm_;
  std::vector<layer> enc_, dec_;
  std::int64_t checked_bytes_ = 0;
  encoder_attention enc_attention_ = encoder_attention::dynamic_block;
  mutable std::optional<nn::rope_cache> rope_;
  mutable profile prof_;
};

}  // namespace dsk_v1
