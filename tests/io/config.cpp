#include "dsk/io/config.hpp"

#include <cmath>
#include <functional>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "io_test_util.hpp"

using dsk::io::topk_method;
using dsk::io::v2_config;
using dsk::test::io_data;

namespace {
// The released configs give the scale as 192^-0.5 * (0.1 * 0.707 * ln 40 + 1)^2 = 0.11472139 (reference
// sheet, 8 significant digits): compare to half a unit of the last digit.
constexpr double kScaleTol = 5e-9;

nlohmann::json lite_json() {
  return dsk::io::parse_json(dsk::io::read_text_file(io_data("config_v2_lite.json"), "config"), "lite");
}
// The message of parsing `j` ("" when it parses).
std::string error_of(const nlohmann::json& j) {
  try {
    (void)v2_config::parse(j.dump(), "cfg.json");
  } catch (const dsk::error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("config: DeepSeek-V2-Lite's config.json", "[io][config]") {
  const v2_config c = v2_config::load(io_data("config_v2_lite.json"));
  CHECK(c.vocab_size == 102400);
  CHECK(c.hidden_size == 2048);
  CHECK(c.intermediate_size == 10944);
  CHECK(c.moe_intermediate_size == 1408);
  CHECK(c.num_hidden_layers == 27);
  CHECK(c.num_attention_heads == 16);
  CHECK(c.n_routed_experts == 64);
  CHECK(c.n_shared_experts == 2);
  CHECK(c.num_experts_per_tok == 6);
  CHECK(c.kv_lora_rank == 512);
  CHECK(c.q_lora_rank == 0);  // null: q_proj
  CHECK(c.qk_nope_head_dim == 128);
  CHECK(c.qk_rope_head_dim == 64);
  CHECK(c.v_head_dim == 128);
  CHECK(c.qk_head_dim() == 192);
  CHECK(c.topk_method == topk_method::greedy);
  CHECK(c.n_group == 1);
  CHECK(c.topk_group == 1);
  CHECK(c.routed_scaling_factor == 1.0);
  CHECK(!c.norm_topk_prob);
  CHECK(c.first_k_dense_replace == 1);
  CHECK(c.moe_layer_freq == 1);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.max_position_embeddings == 163840);
  CHECK(c.rope_scaling.enabled);
  CHECK(c.rope_scaling.factor == 40.0);
  CHECK(c.rope_scaling.beta_fast == 32.0);
  CHECK(c.rope_scaling.beta_slow == 1.0);
  CHECK(c.rope_scaling.mscale == 0.707);
  CHECK(c.rope_scaling.mscale_all_dim == 0.707);
  CHECK(c.rope_scaling.original_max_position_embeddings == 4096);
  CHECK(c.bos_token_id == 100000);
  CHECK(c.eos_token_ids == std::vector<dsk::index_t>{100001});
  CHECK(c.torch_dtype == "bfloat16");
  CHECK(!c.is_moe_layer(0));
  CHECK(c.is_moe_layer(1));
  CHECK(c.is_moe_layer(26));
  CHECK(std::abs(c.softmax_scale() - 0.11472139) < kScaleTol);
  // Loading the directory reads DIR/config.json.
  dsk::test::temp_dir dir;
  std::filesystem::copy_file(io_data("config_v2_lite.json"), dir / "config.json");
  CHECK(v2_config::load(dir.path()).hidden_size == 2048);
}

TEST_CASE("config: DeepSeek-V2's config.json (q_lora_rank, group-limited routing)", "[io][config]") {
  const v2_config c = v2_config::load(io_data("config_v2.json"));
  CHECK(c.hidden_size == 5120);
  CHECK(c.intermediate_size == 12288);
  CHECK(c.moe_intermediate_size == 1536);
  CHECK(c.num_hidden_layers == 60);
  CHECK(c.num_attention_heads == 128);
  CHECK(c.n_routed_experts == 160);
  CHECK(c.n_shared_experts == 2);
  CHECK(c.num_experts_per_tok == 6);
  CHECK(c.q_lora_rank == 1536);
  CHECK(c.kv_lora_rank == 512);
  CHECK(c.topk_method == topk_method::group_limited_greedy);
  CHECK(c.n_group == 8);
  CHECK(c.topk_group == 3);
  CHECK(c.routed_scaling_factor == 16.0);
  CHECK(std::abs(c.softmax_scale() - 0.11472139) < kScaleTol);
}

TEST_CASE("config: DeepSeek-V3's config.json (noaux_tc, sigmoid, FP8 quantization_config, MTP layer)",
          "[io][config]") {
  const v2_config c = v2_config::load(io_data("config_v3.json"));
  CHECK(c.model_type == dsk::io::model_type::deepseek_v3);
  CHECK(c.hidden_size == 7168);
  CHECK(c.num_hidden_layers == 61);
  CHECK(c.n_routed_experts == 256);
  CHECK(c.num_experts_per_tok == 8);
  CHECK(c.topk_method == topk_method::noaux_tc);
  CHECK(c.scoring_func == dsk::io::scoring_func::sigmoid);
  CHECK(c.n_group == 8);
  CHECK(c.topk_group == 4);
  CHECK(c.norm_topk_prob);
  CHECK(c.routed_scaling_factor == 2.5);
  CHECK(c.scale_normalised_weights());
  CHECK(c.first_k_dense_replace == 3);
  CHECK(c.num_nextn_predict_layers == 1);
  REQUIRE(c.quantization.has_value());
  CHECK(!c.quantization->e5m2);
  CHECK(c.quantization->block == dsk::io::fp8_block_size{128, 128});
  CHECK(c.vocab_size == 129280);
  // mscale = mscale_all_dim = 1: 192^-0.5 * (0.1 * ln 40 + 1)^2.
  const double m = 0.1 * std::log(40.0) + 1.0;
  CHECK(std::abs(c.softmax_scale() - m * m / std::sqrt(192.0)) < 1e-12);
  // V2 configs keep V2's rules.
  const v2_config v2 = v2_config::load(io_data("config_v2.json"));
  CHECK(v2.model_type == dsk::io::model_type::deepseek_v2);
  CHECK(v2.scoring_func == dsk::io::scoring_func::softmax);
  CHECK(!v2.scale_normalised_weights());
  CHECK(!v2.quantization);
  CHECK(v2.num_nextn_predict_layers == 0);
}

TEST_CASE("config: V3-family errors name the field", "[io][config]") {
  const auto v3 = [] {
    return dsk::io::parse_json(dsk::io::read_text_file(io_data("config_v3.json"), "config"), "v3");
  };
  const std::pair<std::function<void(nlohmann::json&)>, const char*> cases[] = {
      {[](auto& j) { j["topk_method"] = "group_limited_greedy"; },
       "field 'topk_method': unsupported value 'group_limited_greedy' for model_type deepseek_v3 (expected "
       "'noaux_tc')"},
      {[](auto& j) { j["scoring_func"] = "softmax"; }, "DeepSeek-V3 uses 'sigmoid'"},
      {[](auto& j) { j["moe_layer_freq"] = 2; },
       "field 'moe_layer_freq': expected 1 for model_type deepseek_v3"},
      {[](auto& j) { j["n_group"] = 256, j["topk_group"] = 128; },
       "noaux_tc scores a group by its two best experts"},
      {[](auto& j) { j["quantization_config"]["quant_method"] = "gptq"; },
       "field 'quantization_config.quant_method': unsupported quantization 'gptq'"},
      {[](auto& j) { j["quantization_config"]["fmt"] = "e3m4"; }, "expected 'e4m3' or 'e5m2', got 'e3m4'"},
      {[](auto& j) { j["quantization_config"]["weight_block_size"] = {128}; }, "expected [rows, columns]"},
      {[](auto& j) {
         j["quantization_config"]["weight_block_size"] = {0, 128};
       },
       "expected an integer >= 1"},
      {[](auto& j) { j["quantization_config"].erase("weight_block_size"); }, "names its block shape"},
      {[](auto& j) { j["quantization_config"]["activation_scheme"] = "static"; },
       "unsupported value 'static'"},
      {[](auto& j) { j["num_nextn_predict_layers"] = -1; }, "field 'num_nextn_predict_layers'"},
      {[](auto& j) { j["model_type"] = "deepseek_v4"; }, "expected \"deepseek_v2\" or \"deepseek_v3\""},
  };
  for (const auto& [edit, message] : cases) {
    auto j = v3();
    edit(j);
    INFO(j.dump());
    CHECK_THAT(error_of(j), Catch::Contains(message));
  }
  auto j = lite_json();
  j["topk_method"] = "noaux_tc";
  CHECK_THAT(error_of(j), Catch::Contains("'noaux_tc' is DeepSeek-V3's"));
}

TEST_CASE("config: transformers v5 rope_parameters, the 'gready' spelling, eos lists", "[io][config]") {
  const v2_config c = v2_config::load(io_data("config_v2_lite_rope_parameters.json"));
  CHECK(c.topk_method == topk_method::greedy);
  CHECK(c.rope_scaling.enabled);
  CHECK(c.rope_scaling.factor == 40.0);
  CHECK(c.rope_scaling.mscale_all_dim == 0.707);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.torch_dtype == "bfloat16");
  CHECK(c.eos_token_ids == std::vector<dsk::index_t>{100001, 100002});
  CHECK(std::abs(c.softmax_scale() - 0.11472139) < kScaleTol);

  auto j = lite_json();
  j["rope_scaling"] = nullptr;  // plain RoPE: no mscale
  const v2_config plain = v2_config::parse(j.dump());
  CHECK(!plain.rope_scaling.enabled);
  CHECK(plain.softmax_scale() == 1.0 / std::sqrt(192.0));
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 50000.0}};
  CHECK(v2_config::parse(j.dump()).rope_theta == 50000.0);
}

TEST_CASE("config: missing, mistyped, unknown or inconsistent fields are clear errors", "[io][config]") {
  struct bad_case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* message;
  };
  const std::vector<bad_case> cases = {
      {"missing hidden_size", [](auto& j) { j.erase("hidden_size"); },
       "missing required field 'hidden_size'"},
      {"missing q_lora_rank", [](auto& j) { j.erase("q_lora_rank"); },
       "missing required field 'q_lora_rank'"},
      {"missing kv_lora_rank", [](auto& j) { j.erase("kv_lora_rank"); },
       "missing required field 'kv_lora_rank'"},
      {"missing topk_method", [](auto& j) { j.erase("topk_method"); },
       "missing required field 'topk_method'"},
      {"string size", [](auto& j) { j["hidden_size"] = "2048"; },
       "field 'hidden_size': expected an integer, got \"2048\""},
      {"fractional size", [](auto& j) { j["vocab_size"] = 102400.5; },
       "field 'vocab_size': expected an integer"},
      {"zero heads", [](auto& j) { j["num_attention_heads"] = 0; },
       "field 'num_attention_heads': expected an integer >= 1, got 0"},
      {"null hidden_size", [](auto& j) { j["hidden_size"] = nullptr; },
       "field 'hidden_size': must not be null"},
      {"unknown topk_method", [](auto& j) { j["topk_method"] = "noaux_tc"; },
       "field 'topk_method': unsupported value 'noaux_tc'"},
      {"group-limited without n_group",
       [](auto& j) {
         j["topk_method"] = "group_limited_greedy";
         j.erase("n_group");
       },
       "missing required field 'n_group'"},
      {"n_group not dividing", [](auto& j) { j["n_group"] = 5; },
       "field 'n_group': must divide n_routed_experts (64)"},
      {"topk_group > n_group", [](auto& j) { j["topk_group"] = 2; },
       "field 'topk_group': expected <= n_group (1)"},
      {"too few experts kept",
       [](auto& j) {
         j["topk_method"] = "group_limited_greedy";
         j["n_group"] = 16;
         j["topk_group"] = 1;
       },
       "group-limited routing keeps topk_group * n_routed_experts / n_group = 4 experts, fewer than 6"},
      {"top-k > experts", [](auto& j) { j["num_experts_per_tok"] = 65; },
       "field 'num_experts_per_tok': expected <= n_routed_experts (64)"},
      {"sigmoid scoring", [](auto& j) { j["scoring_func"] = "sigmoid"; },
       "field 'scoring_func': unsupported value"},
      {"other model", [](auto& j) { j["model_type"] = "llama"; },
       "field 'model_type': expected \"deepseek_v2\" or \"deepseek_v3\", got \"llama\""},
      {"a V2 config labelled V3", [](auto& j) { j["model_type"] = "deepseek_v3"; },
       "field 'topk_method': unsupported value 'greedy' for model_type deepseek_v3"},
      {"gelu", [](auto& j) { j["hidden_act"] = "gelu"; },
       "field 'hidden_act': unsupported activation 'gelu'"},
      {"tied embeddings", [](auto& j) { j["tie_word_embeddings"] = true; }, "field 'tie_word_embeddings'"},
      {"bias", [](auto& j) { j["attention_bias"] = true; }, "field 'attention_bias'"},
      {"GQA", [](auto& j) { j["num_key_value_heads"] = 4; },
       "MLA needs num_key_value_heads == num_attention_heads (16), got 4"},
      {"odd rope dim", [](auto& j) { j["qk_rope_head_dim"] = 63; }, "RoPE needs an even dimension"},
      {"dynamic rope", [](auto& j) { j["rope_scaling"]["type"] = "dynamic"; },
       "field 'rope_scaling.rope_type': unsupported rope type 'dynamic'"},
      {"unknown rope key", [](auto& j) { j["rope_scaling"]["attention_factor"] = 1.0; },
       "field 'rope_scaling.attention_factor': unknown rope parameter"},
      {"rope factor < 1", [](auto& j) { j["rope_scaling"]["factor"] = 0.5; },
       "field 'rope_scaling.factor': expected >= 1"},
      {"rope not an object", [](auto& j) { j["rope_scaling"] = 3; },
       "field 'rope_scaling' must be an object or null"},
      {"eps string", [](auto& j) { j["rms_norm_eps"] = "1e-6"; }, "field 'rms_norm_eps': expected a number"},
      {"negative eps", [](auto& j) { j["rms_norm_eps"] = -1.0; }, "field 'rms_norm_eps': expected > 0"},
      {"bool as int", [](auto& j) { j["norm_topk_prob"] = 0; },
       "field 'norm_topk_prob': expected true or false"},
      {"eos list of strings", [](auto& j) { j["eos_token_id"] = {"x"}; },
       "field 'eos_token_id': expected an integer"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto j = lite_json();
    c.edit(j);
    REQUIRE_THAT(error_of(j), Catch::Contains(c.message) && Catch::Contains("cfg.json"));
  }
  REQUIRE_THAT(error_of(nlohmann::json::array()), Catch::Contains("expected a JSON object, got array"));
  REQUIRE_THROWS_WITH(v2_config::parse("{\"hidden_size\": ", "cfg.json"),
                      Catch::Contains("'cfg.json' is not valid JSON"));
  REQUIRE_THROWS_WITH(v2_config::load(io_data("no_such_config.json")),
                      Catch::Contains("cannot open config file") && Catch::Contains("no_such_config.json"));
  // A dense model (no routed experts) needs none of the MoE fields.
  auto j = lite_json();
  for (const char* k : {"n_routed_experts", "moe_intermediate_size", "num_experts_per_tok", "topk_method"})
    j.erase(k);
  const v2_config dense = v2_config::parse(j.dump());
  CHECK(dense.n_routed_experts == 0);
  CHECK(!dense.is_moe_layer(5));
}

TEST_CASE("config: sizes have documented upper bounds, numbers are reported as written", "[io][config]") {
  using L = dsk::io::config_limits;
  struct bad_case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    std::string message;
  };
  const std::vector<bad_case> cases = {
      {"head dim 2^63 - 1", [](auto& j) { j["qk_nope_head_dim"] = INT64_MAX; },
       "field 'qk_nope_head_dim': expected an integer <= 4096 (dsk's limit for this field), got "
       "9223372036854775807"},
      {"vocab 2^64 - 1", [](auto& j) { j["vocab_size"] = UINT64_MAX; },
       "field 'vocab_size': expected an integer <= 16777216 (dsk's limit for this field), got "
       "18446744073709551615"},
      {"vocab 2^63", [](auto& j) { j["vocab_size"] = std::uint64_t{1} << 63; },
       "field 'vocab_size': expected an integer <= 16777216 (dsk's limit for this field), got "
       "9223372036854775808"},
      {"a million layers", [](auto& j) { j["num_hidden_layers"] = 1000000; },
       "field 'num_hidden_layers': expected an integer <= 1024 (dsk's limit for this field), got 1000000"},
      {"ten million layers", [](auto& j) { j["num_hidden_layers"] = 10000000; },
       "field 'num_hidden_layers': expected an integer <= 1024"},
      {"hidden", [](auto& j) { j["hidden_size"] = 65537; },
       "field 'hidden_size': expected an integer <= 65536"},
      {"intermediate", [](auto& j) { j["intermediate_size"] = 1 << 19; },
       "field 'intermediate_size': expected an integer <= 262144"},
      {"expert width", [](auto& j) { j["moe_intermediate_size"] = 1 << 19; },
       "field 'moe_intermediate_size': expected an integer <= 262144"},
      {"heads", [](auto& j) { j["num_attention_heads"] = 1025; },
       "field 'num_attention_heads': expected an integer <= 1024"},
      {"kv rank", [](auto& j) { j["kv_lora_rank"] = 1 << 17; },
       "field 'kv_lora_rank': expected an integer <= 65536"},
      {"q rank", [](auto& j) { j["q_lora_rank"] = 1 << 17; },
       "field 'q_lora_rank': expected an integer <= 65536"},
      {"rope dim", [](auto& j) { j["qk_rope_head_dim"] = 4098; },
       "field 'qk_rope_head_dim': expected an integer <= 4096"},
      {"v dim", [](auto& j) { j["v_head_dim"] = 4097; }, "field 'v_head_dim': expected an integer <= 4096"},
      {"experts", [](auto& j) { j["n_routed_experts"] = 4097; },
       "field 'n_routed_experts': expected an integer <= 4096"},
      {"shared experts", [](auto& j) { j["n_shared_experts"] = 4097; },
       "field 'n_shared_experts': expected an integer <= 4096"},
      {"dense replace", [](auto& j) { j["first_k_dense_replace"] = 1025; },
       "field 'first_k_dense_replace': expected an integer <= 1024"},
      {"positions", [](auto& j) { j["max_position_embeddings"] = std::int64_t{1} << 40; },
       "field 'max_position_embeddings': expected an integer <= 16777216"},
      {"yarn positions", [](auto& j) { j["rope_scaling"]["original_max_position_embeddings"] = 1LL << 40; },
       "field 'rope_scaling.original_max_position_embeddings': expected an integer <= 16777216"},
      {"bos id", [](auto& j) { j["bos_token_id"] = 1LL << 31; },
       "field 'bos_token_id': expected an integer <= 2147483647"},
      {"eos id",
       [](auto& j) {
         j["eos_token_id"] = {1, 1LL << 40};
       },
       "field 'eos_token_id': expected an integer <= 2147483647"},
      // nn::rope_inv_freq needs a base > 1: refused here, not at the first forward.
      {"rope_theta 1", [](auto& j) { j["rope_theta"] = 1.0; },
       "field 'rope_theta': expected > 1 (the RoPE base), got 1"},
      {"rope_theta 0.5", [](auto& j) { j["rope_theta"] = 0.5; },
       "field 'rope_theta': expected > 1 (the RoPE base), got 0.5"},
      {"rope_parameters theta 0.5",
       [](auto& j) {
         j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 0.5}};
       },
       "field 'rope_parameters.rope_theta': expected > 1 (the RoPE base), got 0.5"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto j = lite_json();
    c.edit(j);
    REQUIRE_THAT(error_of(j), Catch::Contains(c.message) && Catch::Contains("cfg.json"));
  }
  // YaRN temperatures that would make the softmax scale or RoPE's cos/sin multiplier 0, negative or infinite.
  for (const auto& [key, m] : {std::pair{"mscale", -100.0}, std::pair{"mscale_all_dim", -100.0},
                               std::pair{"mscale_all_dim", 1e300}}) {
    INFO(key << " = " << m);
    auto j = lite_json();
    j["rope_scaling"][key] = m;
    REQUIRE_THAT(error_of(j), Catch::Contains("'cfg.json': rope scaling: ") &&
                                  (Catch::Contains("expected > 0 and finite")));
  }
  // The bounds themselves are accepted.
  auto j = lite_json();
  j["num_hidden_layers"] = L::num_hidden_layers;
  j["qk_nope_head_dim"] = L::head_dim;
  j["vocab_size"] = L::vocab_size;
  j["rope_theta"] = 1.0001;
  const v2_config big = v2_config::parse(j.dump());
  CHECK(big.num_hidden_layers == 1024);
  CHECK(big.qk_head_dim() == 4096 + 64);
  CHECK(std::isfinite(big.softmax_scale()));
  CHECK(big.vocab_size == 16777216);
  // A mistyped value is quoted as a bounded snippet, not dumped whole.
  j["hidden_size"] = nlohmann::json::array_t(100000, 1);
  const std::string e = error_of(j);
  CHECK_THAT(e, Catch::Contains("field 'hidden_size': expected an integer, got [1,1,1"));
  CHECK(e.size() < 300);
}

TEST_CASE("config: deep nesting and a directory named config.json are clear errors", "[io][config]") {
  dsk::test::temp_dir dir;
  // 100,000 levels (200 KB) under a field whose error message quotes the value: used to overflow the stack.
  dsk::test::write_bytes(dir / "deep.json", "{\"vocab_size\": " + dsk::test::nested_json(100000) + "}");
  REQUIRE_THROWS_WITH(
      v2_config::load(dir / "deep.json"),
      Catch::Contains("deep.json") && Catch::Contains("JSON nesting deeper than the limit of 128 levels"));
  std::filesystem::create_directories(dir / "model" / "config.json");
  REQUIRE_THROWS_WITH(v2_config::load(dir / "model"),
                      Catch::Contains("config.json': is a directory, expected a file"));
}
