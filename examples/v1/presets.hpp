// DeepSeek-V1 presets (encoder-decoder Transformer with dynamic block attention) and their constexpr
// parameter counts. The architecture (docs/models.md, V1): a token embedding shared by encoder and decoder
// and tied to the output head; pre-RMSNorm blocks; encoder self-attention = bidirectional dynamic block
// attention (attention::nsa, causal = false) with RoPE; decoder self-attention = causal dynamic block
// attention (nsa_cache / nsa_step); decoder cross-attention = dense over the encoder output; SwiGLU FFN; a
// final RMSNorm after each stack. MHA or GQA. Per attention: q [H dh, d], k and v [Hkv dh, d], o [d, H dh],
// the sigmoid branch gates [3 H, d] (self-attention only: compressed, selected, local), and with
// learned-linear compression w_k [dh, l dh], pe_k [l, dh], w_v [dh, l dh], pe_v [l, dh] (shared by the KV
// heads).
#pragma once

#include <cstdint>

namespace dsk_v1 {

struct preset {
  const char* name;
  std::int64_t vocab_size;
  std::int64_t hidden_size;        // d
  std::int64_t intermediate_size;  // SwiGLU width
  std::int64_t encoder_layers;
  std::int64_t decoder_layers;
  std::int64_t num_heads;            // H
  std::int64_t num_kv_heads;         // Hkv (H: MHA; fewer: GQA)
  std::int64_t head_dim;             // dh
  int cmp_block = 32;                // l: tokens per compressed block
  int cmp_stride = 16;               // d_c: stride between compressed blocks
  int sel_block = 64;                // block_size of the selection (the seed's 64)
  int sel_count = 16;                // top-n selected blocks
  int window = 512;                  // local band, tokens on each side (encoder) / behind (decoder)
  bool learned_compression = false;  // nsa_pooling::linear (else mean pooling, no weights)
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
};

// Parameters of one attention block (self: with branch gates and compression weights; cross: dense, none).
constexpr std::int64_t attention_params(const preset& p, bool self) {
  const std::int64_t d = p.hidden_size, qd = p.num_heads * p.head_dim, kvd = p.num_kv_heads * p.head_dim;
  std::int64_t n = d * qd + 2 * d * kvd + qd * d;
  if (self) {
    n += 3 * p.num_heads * d;  // gates
    if (p.learned_compression) n += 2 * (p.head_dim * p.cmp_block * p.head_dim + p.cmp_block * p.head_dim);
  }
  return n;
}
constexpr std::int64_t ffn_params(const preset& p) { return 3 * p.hidden_size * p.intermediate_size; }
constexpr std::int64_t encoder_layer_params(const preset& p) {
  return attention_params(p, true) + ffn_params(p) + 2 * p.hidden_size;  // two RMSNorm weights
}
constexpr std::int64_t decoder_layer_params(const preset& p) {
  return attention_params(p, true) + attention_params(p, false) + ffn_params(p) + 3 * p.hidden_size;
}
// All parameters: the tied embedding counted once, the two final norms.
constexpr std::int64_t parameter_count(const preset& p) {
  return p.vocab_size * p.hidden_size + p.encoder_layers * encoder_layer_params(p) +
         p.decoder_layers * decoder_layer_params(p) + 2 * p.hidden_size;
}

// Demo and tests: seconds on one core.
inline constexpr preset tiny{.name = "tiny",
                             .vocab_size = 512,
                             .hidden_size = 64,
                             .intermediate_size = 128,
                             .encoder_layers = 2,
                             .decoder_layers = 2,
                             .num_heads = 4,
                             .num_kv_heads = 2,
                             .head_dim = 16,
                             .cmp_block = 8,
                             .cmp_stride = 4,
                             .sel_block = 16,
                             .sel_count = 5,
                             .window = 16};

// Speed runs: about 0.2 B parameters, the card's block shapes (l 32, d_c 16, block_size 64, top-16, w 512).
inline constexpr preset mid{.name = "mid",
                            .vocab_size = 32000,
                            .hidden_size = 1024,
                            .intermediate_size = 2816,
                            .encoder_layers = 6,
                            .decoder_layers = 6,
                            .num_heads = 16,
                            .num_kv_heads = 4,
                            .head_dim = 64};

// The seed's DeepSeek-V1 card: 13B parameters, block_size 64. The card gives only the total and the block
// size; these widths are derived: d = 5120, 40 heads of 128 (MHA, as the seed's classic Transformer), SwiGLU
// width 12288 (2.4 d), 18 encoder + 18 decoder layers, the DeepSeek vocabulary 102400. Count: 13.00 B.
inline constexpr preset v1_card{.name = "v1_card",
                                .vocab_size = 102400,
                                .hidden_size = 5120,
                                .intermediate_size = 12288,
                                .encoder_layers = 18,
                                .decoder_layers = 18,
                                .num_heads = 40,
                                .num_kv_heads = 40,
                                .head_dim = 128};

static_assert(parameter_count(v1_card) > 12'610'000'000 && parameter_count(v1_card) < 13'390'000'000,
              "v1_card: the parameter count must be within 3% of the card's 13.0 B");

}  // namespace dsk_v1
