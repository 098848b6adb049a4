// Compile-time presets of DeepSeek-Lite, the edge model: a V2-family decoder (MLA with the latent cache,
// DeepSeekMoE routed + shared experts) with parameter sharing and 4-bit weights. Plain constexpr code, no
// backend; the sizes are checked in tests/models/presets.cpp and the arithmetic is in docs/models.md.
//
// Sharing: immediate block-wise. The checkpoint stores num_blocks() decoder blocks; logical layer i runs
// stored block i / share_repeats, so each stored block runs share_repeats times in a row (and keeps one KV
// cache per logical layer: the inputs differ on each run). The output head is tied to the embedding (one
// [vocab, hidden] table, used as lookup and as lm_head).
// Storage: every 2-D weight except the router gates is int4 (packed nibbles, two per byte) with f16 scales,
// one per output channel (quant_group = 0) or per run of quant_group inputs; router gates and norms are f16.
#pragma once

#include <cstdint>

#include "dsk/core/config.hpp"

namespace dsk_lite {

using dsk::index_t;

// The block's hyperparameters named as in config.json (the V2 names; num_hidden_layers is the number of
// logical layers run, n_group = topk_group = 1 with greedy routing), plus sharing and the storage format.
struct preset {
  const char* name = "";
  index_t vocab_size = 0;
  index_t hidden_size = 0;
  index_t intermediate_size = 0;  // dense layers (first_k_dense_replace of them), 0 if none
  index_t moe_intermediate_size = 0;
  index_t num_hidden_layers = 0;  // logical layers: num_blocks() * share_repeats
  index_t num_attention_heads = 0;
  index_t q_lora_rank = 0;
  index_t kv_lora_rank = 0;
  index_t qk_nope_head_dim = 0;
  index_t qk_rope_head_dim = 0;
  index_t v_head_dim = 0;
  index_t n_routed_experts = 0;
  index_t n_shared_experts = 0;
  index_t num_experts_per_tok = 0;
  index_t first_k_dense_replace = 0;  // logical layers; a multiple of share_repeats
  index_t share_repeats = 1;          // r: each stored block runs r times in a row
  int quant_group = 0;                // 0: one scale per output channel; else 32, 64 or 128
  bool full8 = false;                 // int4 range: false = sym7 ([-7, 7]), true = full8 ([-8, 7])

  constexpr index_t num_blocks() const { return num_hidden_layers / share_repeats; }
  constexpr bool is_moe_block(index_t b) const {
    return n_routed_experts > 0 && b * share_repeats >= first_k_dense_replace;
  }
  // The structure is one the sharing can express: whole blocks, dense layers ending on a block boundary.
  constexpr bool valid() const {
    return share_repeats >= 1 && num_hidden_layers % share_repeats == 0 &&
           first_k_dense_replace % share_repeats == 0 && hidden_size % 2 == 0 &&
           (quant_group == 0 || quant_group == 32 || quant_group == 64 || quant_group == 128);
  }
};

// ---- bytes of the stored form --------------------------------------------------------------------------
// One int4 matrix [n, k]: packed codes (each row ceil(k / 2) bytes) plus f16 scales.
constexpr std::int64_t int4_codes(const preset&, index_t n, index_t k) { return n * ((k + 1) / 2); }
constexpr std::int64_t int4_scales(const preset& p, index_t n, index_t k) {
  return 2 * n * (p.quant_group == 0 ? 1 : (k + p.quant_group - 1) / p.quant_group);
}
constexpr std::int64_t int4_bytes(const preset& p, index_t n, index_t k) {
  return int4_codes(p, n, k) + int4_scales(p, n, k);
}

constexpr index_t qk_head_dim(const preset& p) { return p.qk_nope_head_dim + p.qk_rope_head_dim; }

// Attention of one block: q_proj (or q_a, q_b), kv_a_proj_with_mqa, kv_b_proj, o_proj (int4).
constexpr std::int64_t attention_int4_bytes(const preset& p) {
  const index_t H = p.num_attention_heads, D = p.hidden_size;
  const std::int64_t q =
      p.q_lora_rank > 0 ? int4_bytes(p, p.q_lora_rank, D) + int4_bytes(p, H * qk_head_dim(p), p.q_lora_rank)
                        : int4_bytes(p, H * qk_head_dim(p), D);
  return q + int4_bytes(p, p.kv_lora_rank + p.qk_rope_head_dim, D) +
         int4_bytes(p, H * (p.qk_nope_head_dim + p.v_head_dim), p.kv_lora_rank) +
         int4_bytes(p, D, H * p.v_head_dim);
}
// One SwiGLU MLP of width inter: gate, up [inter, D], down [D, inter] (int4).
constexpr std::int64_t mlp_int4_bytes(const preset& p, index_t inter) {
  return 2 * int4_bytes(p, inter, p.hidden_size) + int4_bytes(p, p.hidden_size, inter);
}
// f16 tensors of one block: two norms (+ q_a norm), kv_a norm, the router gate [E, D] of a MoE block.
constexpr std::int64_t block_f16_bytes(const preset& p, index_t b) {
  std::int64_t n = 2 * p.hidden_size + p.kv_lora_rank + p.q_lora_rank;
  if (p.is_moe_block(b)) n += p.n_routed_experts * p.hidden_size;
  return 2 * n;
}
constexpr std::int64_t block_int4_bytes(const preset& p, index_t b) {
  return attention_int4_bytes(p) + (p.is_moe_block(b) ? (p.n_routed_experts + p.n_shared_experts) *
                                                            mlp_int4_bytes(p, p.moe_intermediate_size)
                                                      : mlp_int4_bytes(p, p.intermediate_size));
}

// int4 codes + f16 scales of every quantized weight: the stored blocks and the tied embedding / head.
constexpr std::int64_t int4_weight_bytes(const preset& p) {
  std::int64_t n = int4_bytes(p, p.vocab_size, p.hidden_size);
  for (index_t b = 0; b < p.num_blocks(); ++b) n += block_int4_bytes(p, b);
  return n;
}
// Everything the checkpoint stores: the int4 part plus the f16 norms and router gates.
constexpr std::int64_t checkpoint_bytes(const preset& p) {
  std::int64_t n = int4_weight_bytes(p) + 2 * p.hidden_size;  // + final norm
  for (index_t b = 0; b < p.num_blocks(); ++b) n += block_f16_bytes(p, b);
  return n;
}

// Weights stored (each once, the head tied) and weights run per token counted over logical layers.
constexpr std::int64_t stored_params(const preset& p) {
  const index_t H = p.num_attention_heads, D = p.hidden_size;
  const std::int64_t attn =
      (p.q_lora_rank > 0 ? D * p.q_lora_rank + p.q_lora_rank * H * qk_head_dim(p) : D * H * qk_head_dim(p)) +
      D * (p.kv_lora_rank + p.qk_rope_head_dim) + p.kv_lora_rank * H * (p.qk_nope_head_dim + p.v_head_dim) +
      H * p.v_head_dim * D;
  std::int64_t n = p.vocab_size * D + D;
  for (index_t b = 0; b < p.num_blocks(); ++b)
    n += attn + 2 * D + p.kv_lora_rank + p.q_lora_rank +
         (p.is_moe_block(b) ? (p.n_routed_experts + p.n_shared_experts) * 3 * D * p.moe_intermediate_size +
                                  p.n_routed_experts * D
                            : 3 * D * p.intermediate_size);
  return n;
}

// Bytes one decoded token reads from memory (weights only; the KV cache is extra and small at short
// context): the tied head (all of it: logits over the vocabulary), and for every LOGICAL layer its block's
// attention, router gate and the num_experts_per_tok chosen + shared experts. A block run r times is read r
// times per token (it does not stay in cache between its runs once it is larger than the LLC). The embedding
// lookup reads one row (ignored).
constexpr std::int64_t decode_bytes_per_token(const preset& p) {
  std::int64_t n = int4_bytes(p, p.vocab_size, p.hidden_size);
  for (index_t i = 0; i < p.num_hidden_layers; ++i) {
    const index_t b = i / p.share_repeats;
    n += attention_int4_bytes(p) + block_f16_bytes(p, b);
    n += p.is_moe_block(b)
             ? (p.num_experts_per_tok + p.n_shared_experts) * mlp_int4_bytes(p, p.moe_intermediate_size)
             : mlp_int4_bytes(p, p.intermediate_size);
  }
  return n;
}

// ---- presets ---------------------------------------------------------------------------------------------
// The demo / test preset: the MLA widths of dsk_v2's tiny (compiled into the runner), 2 stored blocks run
// twice each (4 logical layers), the first block dense, per-channel int4.
inline constexpr preset tiny{.name = "lite-tiny",
                             .vocab_size = 256,
                             .hidden_size = 32,
                             .intermediate_size = 48,
                             .moe_intermediate_size = 16,
                             .num_hidden_layers = 4,
                             .num_attention_heads = 4,
                             .q_lora_rank = 0,
                             .kv_lora_rank = 16,
                             .qk_nope_head_dim = 8,
                             .qk_rope_head_dim = 8,
                             .v_head_dim = 8,
                             .n_routed_experts = 8,
                             .n_shared_experts = 1,
                             .num_experts_per_tok = 2,
                             .first_k_dense_replace = 2,
                             .share_repeats = 2};

// The seed's 2.8 GB edge card. V2-Lite's attention (hidden 2048, 16 heads, no query LoRA, MLA 512/64/128/128:
// the widths dsk_v2 compiles), all layers MoE with fine-grained experts (244 routed of width 512, 1 shared,
// 5 per token), 7 stored blocks each run twice (14 logical layers), vocabulary 32768 tied with the head.
// int4 + f16 scales: 2.79 GB (checked within 3% of 2.8 GB in tests/models/presets.cpp); one decoded token
// reads 0.277 GB (decode_bytes_per_token): 14.1 ms at the 19.7 GB/s 2-thread DRAM read roof measured on
// this host (docs/performance.md, quiet run), 9.2 ms at the 30 GB/s of shared/reference/perf-roofs.md.
inline constexpr preset lite_card{.name = "lite_card",
                                  .vocab_size = 32768,
                                  .hidden_size = 2048,
                                  .intermediate_size = 0,
                                  .moe_intermediate_size = 512,
                                  .num_hidden_layers = 14,
                                  .num_attention_heads = 16,
                                  .q_lora_rank = 0,
                                  .kv_lora_rank = 512,
                                  .qk_nope_head_dim = 128,
                                  .qk_rope_head_dim = 64,
                                  .v_head_dim = 128,
                                  .n_routed_experts = 244,
                                  .n_shared_experts = 1,
                                  .num_experts_per_tok = 5,
                                  .first_k_dense_replace = 0,
                                  .share_repeats = 2};

static_assert(tiny.valid() && lite_card.valid());

}  // namespace dsk_lite
