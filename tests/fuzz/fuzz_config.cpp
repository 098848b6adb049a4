// libFuzzer harness: config.json. The input is the file. An accepted config must keep its invariants: every
// size within dsk::io::config_limits, the derived sizes and the softmax scale finite and without overflow,
// the MoE fields consistent, and a second, independent read (v2_config::load of the same bytes written to a
// file) gives the same config.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsk/io/config.hpp"
#include "fuzz_util.hpp"

namespace {
using dsk::index_t;
using L = dsk::io::config_limits;

bool in(index_t x, index_t lo, index_t hi) { return x >= lo && x <= hi; }

void check(const dsk::io::v2_config& c) {
  DSK_FUZZ_CHECK(in(c.vocab_size, 1, L::vocab_size));
  DSK_FUZZ_CHECK(in(c.hidden_size, 1, L::hidden_size));
  DSK_FUZZ_CHECK(in(c.intermediate_size, 1, L::intermediate_size));
  DSK_FUZZ_CHECK(in(c.num_hidden_layers, 1, L::num_hidden_layers));
  DSK_FUZZ_CHECK(in(c.num_attention_heads, 1, L::num_attention_heads));
  DSK_FUZZ_CHECK(in(c.kv_lora_rank, 1, L::lora_rank));
  DSK_FUZZ_CHECK(in(c.q_lora_rank, 0, L::lora_rank));
  DSK_FUZZ_CHECK(in(c.qk_nope_head_dim, 1, L::head_dim));
  DSK_FUZZ_CHECK(in(c.qk_rope_head_dim, 1, L::head_dim) && c.qk_rope_head_dim % 2 == 0);
  DSK_FUZZ_CHECK(in(c.v_head_dim, 1, L::head_dim));
  DSK_FUZZ_CHECK(in(c.max_position_embeddings, 1, L::positions));
  DSK_FUZZ_CHECK(c.rope_theta > 1 && std::isfinite(c.rope_theta));
  DSK_FUZZ_CHECK(c.rms_norm_eps > 0 && std::isfinite(c.rms_norm_eps));
  const double s = c.softmax_scale();
  DSK_FUZZ_CHECK(std::isfinite(s) && s > 0);
  DSK_FUZZ_CHECK(c.qk_head_dim() > 0);
  if (c.rope_scaling.enabled) {
    DSK_FUZZ_CHECK(c.rope_scaling.factor >= 1 && std::isfinite(c.rope_scaling.factor));
    DSK_FUZZ_CHECK(c.rope_scaling.beta_fast > 0 && c.rope_scaling.beta_slow > 0);
    DSK_FUZZ_CHECK(in(c.rope_scaling.original_max_position_embeddings, 1, L::positions));
    const double m = c.yarn_mscale(c.rope_scaling.factor, c.rope_scaling.mscale) /
                     c.yarn_mscale(c.rope_scaling.factor, c.rope_scaling.mscale_all_dim);
    DSK_FUZZ_CHECK(std::isfinite(m) && m > 0);  // nn::rope_cos_sin_scale
  }
  if (c.n_routed_experts > 0) {
    DSK_FUZZ_CHECK(in(c.n_routed_experts, 1, L::experts));
    DSK_FUZZ_CHECK(in(c.n_shared_experts, 0, L::experts));
    DSK_FUZZ_CHECK(in(c.moe_intermediate_size, 1, L::intermediate_size));
    DSK_FUZZ_CHECK(in(c.num_experts_per_tok, 1, c.n_routed_experts));
    DSK_FUZZ_CHECK(c.n_group >= 1 && c.n_routed_experts % c.n_group == 0);
    DSK_FUZZ_CHECK(in(c.topk_group, 1, c.n_group));
    DSK_FUZZ_CHECK(in(c.first_k_dense_replace, 0, L::num_hidden_layers));
    DSK_FUZZ_CHECK(in(c.moe_layer_freq, 1, L::num_hidden_layers));
    DSK_FUZZ_CHECK(c.routed_scaling_factor > 0 && std::isfinite(c.routed_scaling_factor));
  }
  // The largest weights' element counts (what a loader allocates) fit index_t without overflow.
  index_t n = 0;
  DSK_FUZZ_CHECK(!__builtin_mul_overflow(c.vocab_size, c.hidden_size, &n));
  DSK_FUZZ_CHECK(!__builtin_mul_overflow(c.num_attention_heads, c.qk_head_dim() + c.v_head_dim, &n));
  DSK_FUZZ_CHECK(!__builtin_mul_overflow(n, std::max(c.kv_lora_rank, c.hidden_size), &n));
  index_t e = 0;
  DSK_FUZZ_CHECK(
      !__builtin_mul_overflow(c.n_routed_experts + c.n_shared_experts, c.moe_intermediate_size, &e));
  DSK_FUZZ_CHECK(!__builtin_mul_overflow(e, 3 * c.hidden_size, &e));
  DSK_FUZZ_CHECK(!__builtin_mul_overflow(e, c.num_hidden_layers, &e));
  DSK_FUZZ_CHECK(c.bos_token_id >= -1 && c.bos_token_id < L::token_id);
  for (const index_t id : c.eos_token_ids) DSK_FUZZ_CHECK(id >= 0 && id < L::token_id);
  for (index_t i = 0; i < std::min<index_t>(c.num_hidden_layers, 4); ++i) (void)c.is_moe_layer(i);
}

bool same(const dsk::io::v2_config& a, const dsk::io::v2_config& b) {
  return a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
         a.num_hidden_layers == b.num_hidden_layers && a.qk_nope_head_dim == b.qk_nope_head_dim &&
         a.n_routed_experts == b.n_routed_experts && a.eos_token_ids == b.eos_token_ids &&
         a.torch_dtype == b.torch_dtype && a.rope_scaling.enabled == b.rope_scaling.enabled &&
         (a.rope_theta == b.rope_theta);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bool ok = false;
  dsk::io::v2_config c;
  try {
    c = dsk::io::v2_config::parse(text, "fuzz/config.json");
    ok = true;
    check(c);
  } catch (const dsk::error&) {
  }
  const auto path = dsk::fuzz::scratch() / "config.json";
  dsk::fuzz::write_file(path, text);
  try {
    const auto again = dsk::io::v2_config::load(path);
    DSK_FUZZ_CHECK(ok && same(c, again));
  } catch (const dsk::error&) {
    DSK_FUZZ_CHECK(!ok);
  }
  return 0;
}
