// DeepSeek-V1 (examples/v1) checkpoint directories: config.json parsing (every field checked, errors naming
// the file and the field), the directory dsk_v1 --save-random writes loads to the same model as the built-in
// weights, and a config that does not describe the checkpoint is refused naming the tensor.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support.hpp"
#include "support/grid.hpp"
#if DSK_TEST_SMALL_GRID
#define DSK_V1_TINY_SHAPES_ONLY 1
#endif
#include "v1/model.hpp"

namespace v1_config_test {
using namespace dsk;
using Catch::Matchers::Contains;
using dsk::test::error_of;

std::string with(const std::string& key, const nlohmann::json& value) {
  nlohmann::json j = dsk_v1::to_json(dsk_v1::tiny);
  if (key.rfind("dba.", 0) == 0)
    j["dynamic_block_attention"][key.substr(4)] = value;
  else
    j[key] = value;
  return j.dump();
}
std::string without(const std::string& key) {
  nlohmann::json j = dsk_v1::to_json(dsk_v1::tiny);
  if (key.rfind("dba.", 0) == 0)
    j["dynamic_block_attention"].erase(key.substr(4));
  else
    j.erase(key);
  return j.dump();
}
std::string parse_error(const std::string& text) {
  return error_of([&] { (void)dsk_v1::parse_config(text, "v1/config.json"); });
}

TEST_CASE("v1 config.json: the written config parses back to the preset", "[models][v1]") {
  for (bool learned : {false, true}) {
    dsk_v1::preset p = dsk_v1::mid;
    p.learned_compression = learned;
    p.rope_theta = 50000.0;
    const dsk_v1::preset q = dsk_v1::parse_config(dsk_v1::to_json(p).dump());
    CHECK(q.vocab_size == p.vocab_size);
    CHECK(q.hidden_size == p.hidden_size);
    CHECK(q.intermediate_size == p.intermediate_size);
    CHECK(q.encoder_layers == p.encoder_layers);
    CHECK(q.decoder_layers == p.decoder_layers);
    CHECK(q.num_heads == p.num_heads);
    CHECK(q.num_kv_heads == p.num_kv_heads);
    CHECK(q.head_dim == p.head_dim);
    CHECK(q.cmp_block == p.cmp_block);
    CHECK(q.cmp_stride == p.cmp_stride);
    CHECK(q.sel_block == p.sel_block);
    CHECK(q.sel_count == p.sel_count);
    CHECK(q.window == p.window);
    CHECK(q.learned_compression == learned);
    CHECK(q.rope_theta == 50000.0);
    CHECK(q.rms_norm_eps == p.rms_norm_eps);
  }
  // Optional fields take their defaults: MHA, theta 10000, mean pooling.
  nlohmann::json j = dsk_v1::to_json(dsk_v1::tiny);
  j.erase("num_key_value_heads");
  j.erase("rope_theta");
  j["dynamic_block_attention"].erase("compression");
  const dsk_v1::preset q = dsk_v1::parse_config(j.dump());
  CHECK(q.num_kv_heads == q.num_heads);
  CHECK(q.rope_theta == 10000.0);
  CHECK_FALSE(q.learned_compression);
}

TEST_CASE("v1 config.json: bad fields give errors naming the file and the field", "[models][v1]") {
  CHECK_THAT(parse_error("{"), Contains("v1/config.json") && Contains("not valid JSON"));
  CHECK_THAT(parse_error("[1, 2]"), Contains("must be a JSON object"));
  CHECK_THAT(parse_error(with("model_type", "deepseek_v2")),
             Contains("'model_type'") && Contains("\"dsk_v1\"") && Contains("deepseek_v2"));
  CHECK_THAT(parse_error(without("model_type")), Contains("missing required field 'model_type'"));
  CHECK_THAT(parse_error(without("hidden_size")), Contains("missing required field 'hidden_size'"));
  CHECK_THAT(parse_error(with("hidden_size", "64")),
             Contains("'hidden_size'") && Contains("expected an integer"));
  CHECK_THAT(parse_error(with("hidden_size", 0)), Contains("'hidden_size'") && Contains(">= 1"));
  CHECK_THAT(parse_error(with("vocab_size", 1LL << 40)), Contains("'vocab_size'") && Contains("dsk's limit"));
  CHECK_THAT(parse_error(with("num_decoder_layers", 0)), Contains("'num_decoder_layers'"));
  CHECK_THAT(parse_error(with("num_key_value_heads", 3)),
             Contains("'num_key_value_heads'") && Contains("divisor of num_attention_heads = 4"));
  CHECK_THAT(parse_error(with("num_key_value_heads", 8)),
             Contains("'num_key_value_heads'") && Contains("<= 4"));
  CHECK_THAT(parse_error(with("rope_theta", -1.0)), Contains("'rope_theta'") && Contains("positive"));
  CHECK_THAT(parse_error(with("rms_norm_eps", 0.0)), Contains("'rms_norm_eps'"));
  CHECK_THAT(parse_error(with("tie_word_embeddings", false)), Contains("'tie_word_embeddings'"));
  CHECK_THAT(parse_error(without("dynamic_block_attention")),
             Contains("missing required field 'dynamic_block_attention'"));
  CHECK_THAT(parse_error(with("dynamic_block_attention", 64)), Contains("'dynamic_block_attention'"));
  CHECK_THAT(parse_error(without("dba.select_block")),
             Contains("missing required field 'dynamic_block_attention.select_block'"));
  CHECK_THAT(parse_error(with("dba.compress_stride", 9)),
             Contains("'dynamic_block_attention.compress_stride'") && Contains("<= 8"));
  CHECK_THAT(parse_error(with("dba.window", -1)), Contains("'dynamic_block_attention.window'"));
  CHECK_THAT(parse_error(with("dba.compression", "max")),
             Contains("'dynamic_block_attention.compression'") && Contains("\"mean\" or \"linear\""));
}

TEST_CASE("v1 checkpoint directory: --save-random's directory loads to the built-in model", "[models][v1]") {
  const dsk::test::model_temp_dir dir;
  const std::uint64_t seed = 7;
  dsk_v1::model::write_random_directory(dsk_v1::tiny, dir.path(), seed);
  const auto from_dir = dsk_v1::model::load(dir.path(), dsk_examples::weight_format::f32);
  const auto built_in = dsk_v1::model::random(dsk_v1::tiny, dsk_examples::weight_format::f32, seed);
  std::vector<std::int32_t> src(70), tgt(9);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::int32_t>((i * 31 + 5) % 512);
  for (std::size_t i = 0; i < tgt.size(); ++i) tgt[i] = static_cast<std::int32_t>((i * 17 + 2) % 512);
  auto logits_of = [&](const dsk_v1::model& m) {
    tensor<float, 2> out(std::array<index_t, 2>{static_cast<index_t>(tgt.size()), 512});
    const auto mem = m.encode(src);
    auto st = m.start(mem.cview());
    m.decode(tgt, st, out.view());
    return out;
  };
  const auto a = logits_of(from_dir), b = logits_of(built_in);
  CHECK(dsk::test::max_abs(a, b) == 0.0);  // the same weights, the same kernels: bit for bit

  // A config that does not describe the checkpoint: the loader names the tensor and both shapes.
  dsk_v1::preset wide = dsk_v1::tiny;
  wide.intermediate_size = 96;
  dsk_v1::write_config(wide, dir.path() / "config.json");
  CHECK_THAT(error_of([&] { (void)dsk_v1::model::load(dir.path(), dsk_examples::weight_format::f32); }),
             Contains("mlp.gate_proj.weight"));
  // A block shape that is not compiled: dsk::unsupported listing the compiled ones, before any tensor is
  // read.
  dsk_v1::preset odd = dsk_v1::tiny;
  odd.window = 24;
  dsk_v1::write_config(odd, dir.path() / "config.json");
  CHECK_THAT(error_of([&] { (void)dsk_v1::model::load(dir.path(), dsk_examples::weight_format::f32); }),
             Contains("window 24") && Contains("is not compiled; choices"));
  // No config.json at all.
  std::filesystem::remove(dir.path() / "config.json");
  CHECK_THAT(error_of([&] { (void)dsk_v1::model::load(dir.path(), dsk_examples::weight_format::f32); }),
             Contains("config.json"));
}

}  // namespace v1_config_test
