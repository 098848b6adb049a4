// Compile-time presets of the DeepSeek-V2 family (tiny, V2-Lite, V2, and the design card's V2) and their
// constexpr parameter counts. Plain constexpr code, no backend; checked in tests/models/presets.cpp against
// the published totals (V2-Lite 15.7B / 2.4B active, V2 236B / 21B active; arXiv 2405.04434, Table 1 and
// sec. 3.1).
#pragma once

#include <cstdint>

#include "dsk/core/config.hpp"

namespace dsk_v2 {

using dsk::index_t;

// Hyperparameters of one model, named as in config.json. q_lora_rank = 0 means no query compression
// (V2-Lite: q_proj); n_group = topk_group = 1 with greedy routing.
struct preset {
  const char* name = "";
  index_t vocab_size = 0;
  index_t hidden_size = 0;
  index_t intermediate_size = 0;
  index_t moe_intermediate_size = 0;
  index_t num_hidden_layers = 0;
  index_t num_attention_heads = 0;
  index_t q_lora_rank = 0;
  index_t kv_lora_rank = 0;
  index_t qk_nope_head_dim = 0;
  index_t qk_rope_head_dim = 0;
  index_t v_head_dim = 0;
  index_t n_routed_experts = 0;
  index_t n_shared_experts = 0;
  index_t num_experts_per_tok = 0;
  bool group_limited = false;
  index_t n_group = 1;
  index_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  index_t first_k_dense_replace = 1;
  index_t moe_layer_freq = 1;
  double rope_theta = 10000.0;
  double yarn_factor = 40.0;  // <= 1: plain RoPE
  double yarn_mscale = 0.707;
  double yarn_mscale_all_dim = 0.707;
  index_t original_max_position_embeddings = 4096;
  index_t max_position_embeddings = 163840;
  double rms_norm_eps = 1e-6;

  constexpr bool is_moe_layer(index_t i) const {
    return n_routed_experts > 0 && i >= first_k_dense_replace && i % moe_layer_freq == 0;
  }
};

// DeepSeek-V2-Lite (config.json of deepseek-ai/DeepSeek-V2-Lite): 15.7B parameters, 2.4B active.
inline constexpr preset v2_lite{.name = "V2-Lite",
                                .vocab_size = 102400,
                                .hidden_size = 2048,
                                .intermediate_size = 10944,
                                .moe_intermediate_size = 1408,
                                .num_hidden_layers = 27,
                                .num_attention_heads = 16,
                                .q_lora_rank = 0,
                                .kv_lora_rank = 512,
                                .qk_nope_head_dim = 128,
                                .qk_rope_head_dim = 64,
                                .v_head_dim = 128,
                                .n_routed_experts = 64,
                                .n_shared_experts = 2,
                                .num_experts_per_tok = 6};

// DeepSeek-V2 (config.json of deepseek-ai/DeepSeek-V2): 236B parameters, 21B active.
inline constexpr preset v2{.name = "V2",
                           .vocab_size = 102400,
                           .hidden_size = 5120,
                           .intermediate_size = 12288,
                           .moe_intermediate_size = 1536,
                           .num_hidden_layers = 60,
                           .num_attention_heads = 128,
                           .q_lora_rank = 1536,
                           .kv_lora_rank = 512,
                           .qk_nope_head_dim = 128,
                           .qk_rope_head_dim = 64,
                           .v_head_dim = 128,
                           .n_routed_experts = 160,
                           .n_shared_experts = 2,
                           .num_experts_per_tok = 6,
                           .group_limited = true,
                           .n_group = 8,
                           .topk_group = 3,
                           .routed_scaling_factor = 16.0};

// The design card's "V2": about 175B parameters with about 37B active per token. No released checkpoint has
// these totals; this is V2's block (same attention, 60 layers, hidden 5120, the dense first layer) with
// fewer, wider experts that are activated more: 56 routed experts of width 3072 (2x V2's), 2 shared, 8 per
// token, 8 groups of 7 with 3 groups kept. That gives 171.7B total / 37.5B active (see docs/models.md).
inline constexpr preset v2_card{.name = "V2 (design card)",
                                .vocab_size = 102400,
                                .hidden_size = 5120,
                                .intermediate_size = 12288,
                                .moe_intermediate_size = 3072,
                                .num_hidden_layers = 60,
                                .num_attention_heads = 128,
                                .q_lora_rank = 1536,
                                .kv_lora_rank = 512,
                                .qk_nope_head_dim = 128,
                                .qk_rope_head_dim = 64,
                                .v_head_dim = 128,
                                .n_routed_experts = 56,
                                .n_shared_experts = 2,
                                .num_experts_per_tok = 8,
                                .group_limited = true,
                                .n_group = 8,
                                .topk_group = 3,
                                .routed_scaling_factor = 16.0};

// The demo / test preset: V2's structure (query LoRA, YaRN with mscale, dense first layer, group-limited
// routing) at sizes that run in milliseconds. Its MLA widths (16/8/8/8) are the tiny ones compiled into the
// runner; the golden checkpoints in tests/models/data use them too.
inline constexpr preset tiny{.name = "tiny",
                             .vocab_size = 512,
                             .hidden_size = 64,
                             .intermediate_size = 128,
                             .moe_intermediate_size = 32,
                             .num_hidden_layers = 4,
                             .num_attention_heads = 4,
                             .q_lora_rank = 32,
                             .kv_lora_rank = 16,
                             .qk_nope_head_dim = 8,
                             .qk_rope_head_dim = 8,
                             .v_head_dim = 8,
                             .n_routed_experts = 16,
                             .n_shared_experts = 1,
                             .num_experts_per_tok = 4,
                             .group_limited = true,
                             .n_group = 4,
                             .topk_group = 2,
                             .routed_scaling_factor = 1.0,
                             .max_position_embeddings = 4096};

// ---- parameter counts (every weight of the checkpoint; no biases in this architecture) -------------------
constexpr std::int64_t attention_params(const preset& d) {
  const index_t qk = d.qk_nope_head_dim + d.qk_rope_head_dim, H = d.num_attention_heads;
  const index_t q = d.q_lora_rank > 0 ? d.hidden_size * d.q_lora_rank + d.q_lora_rank +
                                            d.q_lora_rank * H * qk   // q_a, norm, q_b
                                      : d.hidden_size * H * qk;      // q_proj
  return q + d.hidden_size * (d.kv_lora_rank + d.qk_rope_head_dim)   // kv_a_proj_with_mqa
         + d.kv_lora_rank                                            // kv_a_layernorm
         + d.kv_lora_rank * H * (d.qk_nope_head_dim + d.v_head_dim)  // kv_b_proj
         + H * d.v_head_dim * d.hidden_size;                         // o_proj
}
constexpr std::int64_t expert_params(const preset& d) { return 3 * d.hidden_size * d.moe_intermediate_size; }
constexpr std::int64_t dense_mlp_params(const preset& d) { return 3 * d.hidden_size * d.intermediate_size; }
constexpr std::int64_t moe_layer_params(const preset& d) {
  return (d.n_routed_experts + d.n_shared_experts) * expert_params(d) + d.n_routed_experts * d.hidden_size;
}

// All parameters: embedding + layers (attention, two norms, MLP or MoE) + final norm + lm_head (not tied).
constexpr std::int64_t total_params(const preset& d) {
  std::int64_t n = 2 * d.vocab_size * d.hidden_size + d.hidden_size;
  for (index_t i = 0; i < d.num_hidden_layers; ++i)
    n += attention_params(d) + 2 * d.hidden_size +
         (d.is_moe_layer(i) ? moe_layer_params(d) : dense_mlp_params(d));
  return n;
}

// Parameters one token computes with: all but the unchosen routed experts and the embedding table (a row
// lookup, no arithmetic; the paper's active counts leave it out: V2-Lite 2.45B without it, 2.66B with it,
// published 2.4B).
constexpr std::int64_t active_params(const preset& d) {
  std::int64_t n = total_params(d) - d.vocab_size * d.hidden_size;
  for (index_t i = 0; i < d.num_hidden_layers; ++i)
    if (d.is_moe_layer(i)) n -= (d.n_routed_experts - d.num_experts_per_tok) * expert_params(d);
  return n;
}

}  // namespace dsk_v2
