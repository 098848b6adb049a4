// config.json of DeepSeek-V2 / V2-Lite and of the DeepSeek-V3 family (model_type deepseek_v3: V3, R1,
// Moonlight; Hugging Face format, DeepSeek's remote code or transformers): parsed into v2_config with every
// field the model needs checked for presence, type, range and consistency. Accepts rope_scaling and
// transformers v5's rope_parameters, topk_method "greedy" and its historical spelling "gready", V3's
// "noaux_tc" with sigmoid scores, and V3's FP8 quantization_config. Host only; checked in
// tests/io/config.cpp against the published V2, V2-Lite and V3 configs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"
#include "dsk/io/fp8.hpp"
#include "dsk/io/mapped_file.hpp"
#include "dsk/kernels/config.hpp"

namespace dsk::io {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

// The architecture generation: deepseek_v2 (V2, V2-Lite) or deepseek_v3 (V3, R1, Moonlight: sigmoid
// scores with a correction bias, noaux_tc routing, normalised weights times routed_scaling_factor).
enum class model_type : std::uint8_t { deepseek_v2, deepseek_v3 };

// How routed experts are picked from the scores (DeepSeekMoE).
enum class topk_method : std::uint8_t {
  greedy,                // top-k of all scores
  group_limited_greedy,  // keep the topk_group groups with the best max score, then top-k among them
  noaux_tc,              // V3: groups scored by the sum of their two best biased scores, then top-k
};
// Expert scores from the gate logits: softmax (V2) or sigmoid (V3).
enum class scoring_func : std::uint8_t { softmax, sigmoid };

// quantization_config of an FP8 checkpoint (DeepSeek-V3: {"quant_method": "fp8", "fmt": "e4m3",
// "weight_block_size": [128, 128], "activation_scheme": "dynamic"}): the weights are FP8 codes with one
// inverse scale per block (io/fp8.hpp). dsk dequantizes them on load and computes in f32 / bf16, so the
// activation scheme does not apply.
struct fp8_quantization {
  bool e5m2 = false;  // fmt: e4m3 (default) or e5m2
  fp8_block_size block{};
};

// YaRN context extension (Peng et al. 2023, arXiv 2309.00071) as DeepSeek-V2 configures it. enabled = false:
// plain RoPE with rope_theta.
struct yarn_config {
  bool enabled = false;
  double factor = 1.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
  index_t original_max_position_embeddings = 4096;
};

struct v2_config {
  io::model_type model_type = io::model_type::deepseek_v2;
  index_t vocab_size = 0;
  index_t hidden_size = 0;
  index_t intermediate_size = 0;      // dense MLP width
  index_t moe_intermediate_size = 0;  // width of one routed or shared expert
  index_t num_hidden_layers = 0;
  index_t num_attention_heads = 0;
  // MLA
  index_t kv_lora_rank = 0;
  index_t q_lora_rank = 0;  // 0: no query compression (V2-Lite's null): q_proj instead of q_a_proj/q_b_proj
  index_t qk_nope_head_dim = 0;
  index_t qk_rope_head_dim = 0;
  index_t v_head_dim = 0;
  // DeepSeekMoE (n_routed_experts == 0: every layer is dense)
  index_t n_routed_experts = 0;
  index_t n_shared_experts = 0;
  index_t num_experts_per_tok = 0;
  io::topk_method topk_method = io::topk_method::greedy;
  io::scoring_func scoring_func = io::scoring_func::softmax;
  index_t n_group = 1;
  index_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = false;
  index_t first_k_dense_replace = 0;
  index_t moe_layer_freq = 1;
  double aux_loss_alpha = 0.001;  // training only
  bool seq_aux = true;            // training only
  // V3's multi-token-prediction modules, stored as layers num_hidden_layers .. + n - 1: dsk predicts the
  // next token only and skips them on load.
  index_t num_nextn_predict_layers = 0;
  std::optional<fp8_quantization> quantization;  // FP8 block-scaled weights
  // Norms, positions, tokens
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  index_t max_position_embeddings = 2048;
  yarn_config rope_scaling;
  index_t bos_token_id = -1;           // -1: none
  std::vector<index_t> eos_token_ids;  // one or more
  std::string torch_dtype;             // as written ("bfloat16"), empty when absent

  index_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // DeepSeek-V3's weight rule: routed_scaling_factor multiplies the normalised top-k weights too.
  bool scale_normalised_weights() const { return model_type == io::model_type::deepseek_v3; }
  // Layer i uses DeepSeekMoE (else the dense SwiGLU MLP of width intermediate_size).
  bool is_moe_layer(index_t i) const {
    return n_routed_experts > 0 && i >= first_k_dense_replace && i % moe_layer_freq == 0;
  }
  // YaRN's attention temperature mscale(factor, m) = 0.1 m ln(factor) + 1 (1 when factor <= 1).
  static double yarn_mscale(double factor, double m) {
    return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
  }
  // Attention softmax scale: qk_head_dim^-1/2, times mscale(factor, mscale_all_dim)^2 under YaRN when
  // mscale_all_dim != 0 (DeepSeek's modeling_deepseek.py; 0.11472139 for the released V2 and V2-Lite
  // configs).
  double softmax_scale() const {
    double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
    if (rope_scaling.enabled && rope_scaling.mscale_all_dim != 0.0) {
      const double m = yarn_mscale(rope_scaling.factor, rope_scaling.mscale_all_dim);
      s *= m * m;
    }
    return s;
  }

  // Parses config.json text; `source` names it in errors. Throws dsk::error on bad JSON, a missing required
  // field, a field of the wrong type or out of range, an unsupported value (another model_type, scoring_func,
  // hidden_act, rope type), or inconsistent sizes.
  static v2_config parse(std::string_view json_text, std::string_view source = "config.json");
  // Reads a config.json file, or DIR/config.json when given a directory.
  static v2_config load(const std::filesystem::path& path);
};

// Upper bounds of v2_config's sizes (parse rejects larger values naming the field). Several times the largest
// released DeepSeek model (V2 / V3: vocab 102400 / 129280, hidden 5120 / 7168, 60 / 61 layers, 128 heads,
// 160 / 256 experts, head dims <= 192): headroom for new checkpoints, yet small enough that every product of
// a few fields (a weight's element count, vocab x hidden, layers x experts x width x hidden) fits index_t.
struct config_limits {
  static constexpr index_t vocab_size = index_t{1} << 24;         // 16,777,216
  static constexpr index_t hidden_size = index_t{1} << 16;        // 65,536
  static constexpr index_t intermediate_size = index_t{1} << 18;  // 262,144 (dense and expert MLP width)
  static constexpr index_t num_hidden_layers = 1024;
  static constexpr index_t num_attention_heads = 1024;
  static constexpr index_t lora_rank = index_t{1} << 16;  // kv_lora_rank, q_lora_rank
  static constexpr index_t head_dim = 4096;               // qk_nope, qk_rope, v head dims
  static constexpr index_t experts = 4096;                // n_routed_experts, n_shared_experts
  static constexpr index_t positions = index_t{1} << 24;  // (original_)max_position_embeddings
  static constexpr index_t token_id = index_t{1} << 31;   // bos / eos ids below this (and vocab)
};

// Checked reads of one JSON object's fields (a model's config.json): each accessor names the file and the
// field in its error and bounds integers by the caller's limit. v2_config::parse is built on it; other
// model configs (examples/v1) use it too.
class config_reader {
 public:
  config_reader(const nlohmann::json& j, std::string_view source, std::string prefix = {})
      : j_(j), source_(source), prefix_(std::move(prefix)) {}

  template <class... Parts>
  [[noreturn]] void error(std::string_view key, const Parts&... parts) const {
    fail("dsk::io::config: '", source_, "': field '", prefix_, key, "': ", parts...);
  }
  template <class... Parts>
  [[noreturn]] void error_general(const Parts&... parts) const {
    fail("dsk::io::config: '", source_, "': ", parts...);
  }

  // nullptr when absent or null.
  const nlohmann::json* get(std::string_view key) const {
    const auto it = j_.find(std::string(key));
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool present(std::string_view key) const { return j_.contains(std::string(key)); }
  const nlohmann::json& require(std::string_view key) const {
    const auto it = j_.find(std::string(key));
    if (it == j_.end()) fail("dsk::io::config: '", source_, "': missing required field '", prefix_, key, "'");
    return *it;
  }

  // An integer in [lo, hi] (hi: dsk's documented limit, config_limits); the message reports the number as
  // written, an unsigned one above 2^63 too.
  index_t to_int(std::string_view key, const nlohmann::json& v, index_t lo, index_t hi) const {
    if (!v.is_number_integer()) error(key, "expected an integer, got ", detail::json_snippet(v));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
      error(key, "expected an integer <= ", hi, " (dsk's limit for this field), got ",
            v.get<std::uint64_t>());
    const index_t x = v.get<index_t>();
    if (x < lo) error(key, "expected an integer >= ", lo, ", got ", x);
    if (x > hi) error(key, "expected an integer <= ", hi, " (dsk's limit for this field), got ", x);
    return x;
  }
  double to_double(std::string_view key, const nlohmann::json& v) const {
    if (!v.is_number()) error(key, "expected a number, got ", detail::json_snippet(v));
    const double x = v.get<double>();
    if (!std::isfinite(x)) error(key, "expected a finite number, got ", detail::json_snippet(v));
    return x;
  }
  bool to_bool(std::string_view key, const nlohmann::json& v) const {
    if (!v.is_boolean()) error(key, "expected true or false, got ", detail::json_snippet(v));
    return v.get<bool>();
  }
  std::string to_string(std::string_view key, const nlohmann::json& v) const {
    if (!v.is_string()) error(key, "expected a string, got ", detail::json_snippet(v));
    return v.get<std::string>();
  }

  index_t required_int(std::string_view key, index_t lo, index_t hi) const {
    const auto& v = require(key);
    if (v.is_null()) error(key, "must not be null");
    return to_int(key, v, lo, hi);
  }
  index_t int_or(std::string_view key, index_t fallback, index_t lo, index_t hi) const {
    const auto* v = get(key);
    return v ? to_int(key, *v, lo, hi) : fallback;
  }
  double double_or(std::string_view key, double fallback) const {
    const auto* v = get(key);
    return v ? to_double(key, *v) : fallback;
  }
  bool bool_or(std::string_view key, bool fallback) const {
    const auto* v = get(key);
    return v ? to_bool(key, *v) : fallback;
  }
  std::string string_or(std::string_view key, std::string fallback) const {
    const auto* v = get(key);
    return v ? to_string(key, *v) : fallback;
  }

 private:
  const nlohmann::json& j_;
  std::string_view source_;
  std::string prefix_;
};

namespace detail {

inline yarn_config parse_rope(const nlohmann::json& r, std::string_view source, std::string_view field,
                              double& theta) {
  const config_reader c(r, source, std::string(field) + ".");
  if (!r.is_object()) c.error_general("field '", field, "' must be an object or null, got ", json_snippet(r));
  for (const auto& [key, v] : r.items()) {
    (void)v;
    static constexpr std::string_view known[] = {
        "type",    "rope_type",      "rope_theta",
        "factor",  "beta_fast",      "beta_slow",
        "mscale",  "mscale_all_dim", "original_max_position_embeddings",
        "truncate"};
    if (std::find(std::begin(known), std::end(known), key) == std::end(known))
      c.error(key,
              "unknown rope parameter (dsk supports yarn's factor, beta_fast, beta_slow, mscale, "
              "mscale_all_dim, original_max_position_embeddings)");
  }
  if (c.get("rope_theta")) {
    theta = c.to_double("rope_theta", r["rope_theta"]);
    if (!(theta > 1)) c.error("rope_theta", "expected > 1 (the RoPE base), got ", theta);
  }
  std::string type = c.string_or("rope_type", "");
  if (type.empty()) type = c.string_or("type", "default");
  yarn_config y;
  if (type == "default") return y;
  if (type != "yarn")
    c.error("rope_type", "unsupported rope type '", type, "' (dsk supports 'yarn' and 'default')");
  y.enabled = true;
  y.factor = c.double_or("factor", 1.0);
  if (!(y.factor >= 1.0)) c.error("factor", "expected >= 1, got ", y.factor);
  y.beta_fast = c.double_or("beta_fast", 32.0);
  y.beta_slow = c.double_or("beta_slow", 1.0);
  if (!(y.beta_fast > 0 && y.beta_slow > 0))
    c.error("beta_fast", "beta_fast and beta_slow must be > 0, got ", y.beta_fast, " and ", y.beta_slow);
  y.mscale = c.double_or("mscale", 1.0);
  y.mscale_all_dim = c.double_or("mscale_all_dim", 0.0);
  y.original_max_position_embeddings =
      c.int_or("original_max_position_embeddings", 4096, 1, config_limits::positions);
  if (!c.bool_or("truncate", true))
    c.error("truncate", "only DeepSeek's truncated (floor/ceil) YaRN correction range is supported");
  return y;
}

inline fp8_quantization parse_fp8(const nlohmann::json& q, std::string_view source) {
  const config_reader c(q, source, "quantization_config.");
  if (!q.is_object())
    c.error_general("field 'quantization_config' must be an object or null, got ", json_snippet(q));
  const std::string method = c.string_or("quant_method", "");
  if (method != "fp8")
    c.error("quant_method", "unsupported quantization '", method,
            "' (dsk reads FP8 block-scaled checkpoints, quant_method 'fp8'; convert others to bf16)");
  fp8_quantization f;
  const std::string fmt = c.string_or("fmt", "e4m3");
  if (fmt != "e4m3" && fmt != "e5m2") c.error("fmt", "expected 'e4m3' or 'e5m2', got '", fmt, "'");
  f.e5m2 = fmt == "e5m2";
  if (const auto* b = c.get("weight_block_size")) {
    if (!b->is_array() || b->size() != 2)
      c.error("weight_block_size", "expected [rows, columns], got ", json_snippet(*b));
    f.block.rows = c.to_int("weight_block_size", (*b)[0], 1, index_t{1} << 16);
    f.block.cols = c.to_int("weight_block_size", (*b)[1], 1, index_t{1} << 16);
  } else {
    c.error("weight_block_size", "missing: an FP8 block-scaled checkpoint names its block shape");
  }
  if (const auto a = c.string_or("activation_scheme", "dynamic"); a != "dynamic")
    c.error(
        "activation_scheme", "unsupported value '", a,
        "' (dsk computes activations in f32 and reads 'dynamic' checkpoints, which carry no input scales)");
  return f;
}

}  // namespace detail

#if DSK_KERNELS_DEFINE(IO)  // compiled mode: defined once in dsk::kernels (src/kernels/io.cpp)
DSK_KERNEL_INLINE v2_config v2_config::parse(std::string_view json_text, std::string_view source) {
  const nlohmann::json j = parse_json(json_text, source);
  const config_reader c(j, source);
  if (!j.is_object()) c.error_general("expected a JSON object, got ", j.type_name());

  v2_config k;
  if (const auto* mt = c.get("model_type")) {
    const std::string t = c.to_string("model_type", *mt);
    if (t == "deepseek_v3")
      k.model_type = model_type::deepseek_v3;
    else if (t != "deepseek_v2")
      c.error("model_type", "expected \"deepseek_v2\" or \"deepseek_v3\", got ", detail::json_snippet(*mt),
              " (dsk::io::v2_config reads DeepSeek-V2 and V3-family configs)");
  }
  const bool v3 = k.model_type == model_type::deepseek_v3;
  const char* const family = v3 ? "DeepSeek-V3" : "DeepSeek-V2";
  if (const auto act = c.string_or("hidden_act", "silu"); act != "silu")
    c.error("hidden_act", "unsupported activation '", act, "' (", family, " uses 'silu')");
  if (c.bool_or("attention_bias", false))
    c.error("attention_bias", "unsupported: ", family, " projections have no bias");
  if (c.bool_or("tie_word_embeddings", false))
    c.error("tie_word_embeddings", "unsupported: ", family, " has a separate lm_head");

  using L = config_limits;
  k.vocab_size = c.required_int("vocab_size", 1, L::vocab_size);
  k.hidden_size = c.required_int("hidden_size", 1, L::hidden_size);
  k.intermediate_size = c.required_int("intermediate_size", 1, L::intermediate_size);
  k.num_hidden_layers = c.required_int("num_hidden_layers", 1, L::num_hidden_layers);
  k.num_attention_heads = c.required_int("num_attention_heads", 1, L::num_attention_heads);
  if (const index_t kvh = c.int_or("num_key_value_heads", k.num_attention_heads, 1, L::num_attention_heads);
      kvh != k.num_attention_heads)
    c.error("num_key_value_heads", "MLA needs num_key_value_heads == num_attention_heads (",
            k.num_attention_heads, "), got ", kvh);
  k.kv_lora_rank = c.required_int("kv_lora_rank", 1, L::lora_rank);
  {
    const auto& q = c.require("q_lora_rank");
    k.q_lora_rank = q.is_null() ? 0 : c.to_int("q_lora_rank", q, 1, L::lora_rank);
  }
  k.qk_nope_head_dim = c.required_int("qk_nope_head_dim", 1, L::head_dim);
  k.qk_rope_head_dim = c.required_int("qk_rope_head_dim", 1, L::head_dim);
  if (k.qk_rope_head_dim % 2 != 0)
    c.error("qk_rope_head_dim", "RoPE needs an even dimension, got ", k.qk_rope_head_dim);
  k.v_head_dim = c.required_int("v_head_dim", 1, L::head_dim);

  k.n_routed_experts = c.int_or("n_routed_experts", 0, 1, L::experts);
  if (k.n_routed_experts > 0) {
    k.moe_intermediate_size = c.required_int("moe_intermediate_size", 1, L::intermediate_size);
    k.num_experts_per_tok = c.required_int("num_experts_per_tok", 1, L::experts);
    if (k.num_experts_per_tok > k.n_routed_experts)
      c.error("num_experts_per_tok", "expected <= n_routed_experts (", k.n_routed_experts, "), got ",
              k.num_experts_per_tok);
    k.n_shared_experts = c.int_or("n_shared_experts", 0, 0, L::experts);
    const auto& tm = c.require("topk_method");
    const std::string method = c.to_string("topk_method", tm);
    if (v3) {  // DeepSeek-V3's modeling code implements noaux_tc only
      if (method != "noaux_tc")
        c.error("topk_method", "unsupported value '", method,
                "' for model_type deepseek_v3 (expected 'noaux_tc')");
      k.topk_method = topk_method::noaux_tc;
    } else if (method == "greedy" || method == "gready") {
      k.topk_method = topk_method::greedy;
    } else if (method == "group_limited_greedy") {
      k.topk_method = topk_method::group_limited_greedy;
    } else {
      c.error("topk_method", "unsupported value '", method,
              "' for model_type deepseek_v2 (supported: 'greedy' (also spelled 'gready'), "
              "'group_limited_greedy'; 'noaux_tc' is DeepSeek-V3's)");
    }
    if (k.topk_method != topk_method::greedy) {
      k.n_group = c.required_int("n_group", 1, L::experts);
      k.topk_group = c.required_int("topk_group", 1, L::experts);
    } else {
      k.n_group = c.int_or("n_group", 1, 1, L::experts);
      k.topk_group = c.int_or("topk_group", 1, 1, L::experts);
    }
    if (k.n_routed_experts % k.n_group != 0)
      c.error("n_group", "must divide n_routed_experts (", k.n_routed_experts, "), got ", k.n_group);
    if (k.topk_group > k.n_group)
      c.error("topk_group", "expected <= n_group (", k.n_group, "), got ", k.topk_group);
    if (k.topk_method != topk_method::greedy &&
        k.num_experts_per_tok > k.topk_group * (k.n_routed_experts / k.n_group))
      c.error("num_experts_per_tok", "group-limited routing keeps topk_group * n_routed_experts / n_group = ",
              k.topk_group * (k.n_routed_experts / k.n_group), " experts, fewer than ",
              k.num_experts_per_tok);
    if (k.topk_method == topk_method::noaux_tc && k.n_routed_experts / k.n_group < 2)
      c.error(
          "n_group",
          "noaux_tc scores a group by its two best experts: n_routed_experts / n_group must be >= 2, got ",
          k.n_routed_experts, " / ", k.n_group);
    const std::string expected_sf = v3 ? "sigmoid" : "softmax";
    if (const auto sf = c.string_or("scoring_func", expected_sf); sf != expected_sf)
      c.error("scoring_func", "unsupported value '", sf, "' (", family, " uses '", expected_sf, "')");
    k.scoring_func = v3 ? scoring_func::sigmoid : scoring_func::softmax;
    k.routed_scaling_factor = c.double_or("routed_scaling_factor", 1.0);
    if (!(k.routed_scaling_factor > 0))
      c.error("routed_scaling_factor", "expected > 0, got ", k.routed_scaling_factor);
    k.norm_topk_prob = c.bool_or("norm_topk_prob", false);
    k.first_k_dense_replace = c.int_or("first_k_dense_replace", 0, 0, L::num_hidden_layers);
    k.moe_layer_freq = c.int_or("moe_layer_freq", 1, 1, L::num_hidden_layers);
    if (v3 && k.moe_layer_freq != 1)  // V3's code makes every layer from first_k_dense_replace on MoE
      c.error("moe_layer_freq", "expected 1 for model_type deepseek_v3 (its modeling code ignores it), got ",
              k.moe_layer_freq);
    k.aux_loss_alpha = c.double_or("aux_loss_alpha", 0.001);
    k.seq_aux = c.bool_or("seq_aux", true);
  }

  k.rms_norm_eps = c.double_or("rms_norm_eps", 1e-6);
  if (!(k.rms_norm_eps > 0)) c.error("rms_norm_eps", "expected > 0, got ", k.rms_norm_eps);
  k.max_position_embeddings = c.int_or("max_position_embeddings", 2048, 1, L::positions);
  // nn::rope_inv_freq's rule: the base must be > 1 (base^(-2i/dim) is a decreasing frequency).
  k.rope_theta = c.double_or("rope_theta", 10000.0);
  if (!(k.rope_theta > 1)) c.error("rope_theta", "expected > 1 (the RoPE base), got ", k.rope_theta);
  // transformers v5 writes rope_parameters (rope_theta inside); older configs rope_scaling. Prefer the
  // former.
  if (const auto* rp = c.get("rope_parameters"))
    k.rope_scaling = detail::parse_rope(*rp, source, "rope_parameters", k.rope_theta);
  else if (const auto* rs = c.get("rope_scaling"))
    k.rope_scaling = detail::parse_rope(*rs, source, "rope_scaling", k.rope_theta);

  if (k.rope_scaling.enabled) {
    // The attention temperatures must be positive and finite: the softmax scale and RoPE's cos/sin multiplier
    // (nn::rope_cos_sin_scale divides by the second).
    const auto& y = k.rope_scaling;
    for (const auto& [name, m] :
         {std::pair{"mscale", y.mscale}, std::pair{"mscale_all_dim", y.mscale_all_dim}})
      if (const double t = yarn_mscale(y.factor, m); !(std::isfinite(t) && t > 0))
        c.error_general("rope scaling: ", name, " = ", m, " with factor ", y.factor,
                        " gives an attention temperature 0.1 * mscale * ln(factor) + 1 = ", t,
                        ", expected > 0 and finite");
    if (const double sc = k.softmax_scale(); !(std::isfinite(sc) && sc > 0))
      c.error_general("rope scaling: the softmax scale is ", sc, ", expected > 0 and finite");
  }
  k.bos_token_id = c.int_or("bos_token_id", -1, 0, L::token_id - 1);
  if (const auto* e = c.get("eos_token_id")) {
    if (e->is_array()) {
      if (e->size() > 1024) c.error("eos_token_id", "expected at most 1024 ids, got ", e->size());
      for (const auto& x : *e) k.eos_token_ids.push_back(c.to_int("eos_token_id", x, 0, L::token_id - 1));
    } else {
      k.eos_token_ids.push_back(c.to_int("eos_token_id", *e, 0, L::token_id - 1));
    }
  }
  k.torch_dtype = c.string_or("torch_dtype", c.string_or("dtype", ""));
  k.num_nextn_predict_layers = c.int_or("num_nextn_predict_layers", 0, 0, 64);
  if (const auto* q = c.get("quantization_config")) k.quantization = detail::parse_fp8(*q, source);
  return k;
}

DSK_KERNEL_INLINE v2_config v2_config::load(const std::filesystem::path& path) {
  std::error_code ec;
  const auto file = std::filesystem::is_directory(path, ec) ? path / "config.json" : path;
  const std::string label = file.string();
  return parse(read_text_file(file, "config"), label);
}

#endif  // DSK_KERNELS_DEFINE(IO)

DSK_ISA_END
}  // namespace dsk::io
