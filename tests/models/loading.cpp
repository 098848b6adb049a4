// dsk_v2's load-time and run-time checks on crafted checkpoints (copies of a golden case with one edit): a
// NaN / infinity in a weight names the tensor and the first bad element (f32, bf16, f16; dense, expert,
// quantized paths), non-finite logits name the position, the layers of the checkpoint must match
// num_hidden_layers (before anything is allocated), a tokenizer larger than the model is rejected, ids the
// tokenizer lacks decode as nothing, the built-in prompt explains itself against a small vocabulary.
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>

#include "common.hpp"

using namespace dsk;
namespace fs = std::filesystem;

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Copies golden case `name` into dir; edit(ck, name, dtype, bytes, shape) may change a tensor's dtype, bytes
// and shape, or drop it (return false); cfg_edit changes config.json.
template <class Edit, class CfgEdit>
void copy_tensor_case(const std::string& name, const fs::path& dir, Edit edit, CfgEdit cfg_edit) {
  const io::checkpoint ck(dsk::test::models_data(name));
  io::safetensors_writer w;
  std::ifstream in(dsk::test::models_data(name) / "config.json");
  auto cfg = nlohmann::json::parse(in);
  cfg_edit(cfg);
  for (const auto& n : ck.names()) {
    const auto& info = ck.info(n);
    io::st_dtype dt = info.dtype;
    auto shape = info.shape;
    const auto b = ck.bytes(n);
    std::vector<std::byte> bytes(b.begin(), b.end());
    if (!edit(n, dt, bytes, shape)) continue;
    w.add(n, dt, shape, std::span<const std::byte>(bytes));
  }
  w.write(dir / "model.safetensors");
  std::ofstream(dir / "config.json") << cfg.dump(2);
}
auto no_cfg_edit = [](nlohmann::json&) {};
auto keep_tensors = [](const std::string&, io::st_dtype&, std::vector<std::byte>&, std::vector<index_t>&) {
  return true;
};

// Sets element k of a BF16 tensor's bytes to v.
void set_bf16(std::vector<std::byte>& bytes, std::size_t k, float v) {
  const std::uint16_t b = bf16(v).bits;
  std::memcpy(bytes.data() + 2 * k, &b, 2);
}
// BF16 bytes -> F32 / F16 bytes (the same values), for the other dtypes' paths.
std::vector<std::byte> bf16_to(io::st_dtype to, const std::vector<std::byte>& bytes) {
  const std::size_t n = bytes.size() / 2;
  std::vector<std::byte> out(n * (to == io::st_dtype::F32 ? 4 : 2));
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    const float f = static_cast<float>(bf16::from_bits(h));
    if (to == io::st_dtype::F32) {
      std::memcpy(out.data() + 4 * i, &f, 4);
    } else {
      const std::uint16_t g = f16(f).bits;
      std::memcpy(out.data() + 2 * i, &g, 2);
    }
  }
  return out;
}

using dsk::test::error_of;
std::string load_error(const fs::path& p, dsk_v2::weight_format fmt = dsk_v2::weight_format::checkpoint) {
  return error_of([&] { dsk_v2::model::load(p, fmt); });
}
}  // namespace

TEST_CASE("models: a NaN or infinity in a weight is an error at load naming the tensor and element",
          "[models][finite]") {
  using dsk::test::model_temp_dir;
  const std::string name = "v2_qlora_group";  // [hidden 32, intermediate 48] dense layer 0, MoE layers 1, 2

  SECTION("the unmodified copy loads and its weights were all scanned") {
    model_temp_dir d;
    copy_tensor_case(name, d.path(), keep_tensors, no_cfg_edit);
    const auto m = dsk_v2::model::load(d.path(), dsk_v2::weight_format::checkpoint);
    std::int64_t all = 0;
    const io::checkpoint ck(d.path());
    for (const auto& n : ck.names()) all += static_cast<std::int64_t>(ck.bytes(n).size());
    CHECK(m.checked_bytes() == all);  // every tensor of these checkpoints is a weight the model uses
    const auto off =
        dsk_v2::model::load(d.path(), dsk_v2::weight_format::checkpoint, {.check_finite = false});
    CHECK(off.checked_bytes() == 0);
  }
  SECTION("one NaN in a dense MLP weight (bf16), every weight format") {
    model_temp_dir d;
    const std::string bad = "model.layers.0.mlp.down_proj.weight";  // [32, 48]
    copy_tensor_case(
        name, d.path(),
        [&](const std::string& n, io::st_dtype&, std::vector<std::byte>& bytes, std::vector<index_t>& shape) {
          if (n == bad) {
            REQUIRE(shape == std::vector<index_t>{32, 48});
            set_bf16(bytes, 2 * 48 + 5, kNaN);
          }
          return true;
        },
        no_cfg_edit);
    for (auto fmt : {dsk_v2::weight_format::checkpoint, dsk_v2::weight_format::f32,
                     dsk_v2::weight_format::bf16, dsk_v2::weight_format::int8, dsk_v2::weight_format::int4}) {
      INFO("format " << int(fmt));
      const auto e = load_error(d.path(), fmt);
      CHECK_THAT(e, Catch::Contains("tensor '" + bad + "'") && Catch::Contains("model.safetensors") &&
                        Catch::Contains("non-finite") && Catch::Contains("element 101 [2, 5] = nan"));
    }
  }
  SECTION("infinities in f32 and f16 tensors: the first one is named") {
    for (auto dt : {io::st_dtype::F32, io::st_dtype::F16}) {
      INFO("dtype " << io::name(dt));
      model_temp_dir d;
      const std::string bad = "model.layers.1.self_attn.o_proj.weight";  // [32, H * v]
      copy_tensor_case(
          name, d.path(),
          [&](const std::string& n, io::st_dtype& t, std::vector<std::byte>& bytes, std::vector<index_t>&) {
            if (n == bad) {
              set_bf16(bytes, 40, -kInf);
              set_bf16(bytes, 70, kNaN);
              bytes = bf16_to(dt, bytes);
              t = dt;
            }
            return true;
          },
          no_cfg_edit);
      const auto e = load_error(d.path());
      CHECK_THAT(e, Catch::Contains("tensor '" + bad + "'") && Catch::Contains(std::string(io::name(dt))) &&
                        Catch::Contains("element 40 ") && Catch::Contains("= -inf"));
    }
  }
  SECTION("NaN in a routed expert (viewed in place), the router gate, the embedding, a norm") {
    for (const std::string bad :
         {"model.layers.2.mlp.experts.3.up_proj.weight", "model.layers.1.mlp.shared_experts.down_proj.weight",
          "model.layers.1.mlp.gate.weight", "model.embed_tokens.weight",
          "model.layers.2.input_layernorm.weight", "model.layers.0.self_attn.kv_b_proj.weight",
          "lm_head.weight"}) {
      INFO(bad);
      model_temp_dir d;
      copy_tensor_case(
          name, d.path(),
          [&](const std::string& n, io::st_dtype&, std::vector<std::byte>& bytes, std::vector<index_t>&) {
            if (n == bad) set_bf16(bytes, bytes.size() / 2 - 1, kNaN);  // the last element
            return true;
          },
          no_cfg_edit);
      for (auto fmt : {dsk_v2::weight_format::checkpoint, dsk_v2::weight_format::int4}) {
        const auto e = load_error(d.path(), fmt);
        CHECK_THAT(e, Catch::Contains("tensor '" + bad + "'") && Catch::Contains("= nan"));
      }
    }
  }
  SECTION("with the check off, NaN weights show as non-finite logits naming the position") {
    model_temp_dir d;
    copy_tensor_case(
        name, d.path(),
        [&](const std::string& n, io::st_dtype&, std::vector<std::byte>& bytes, std::vector<index_t>&) {
          if (n == "lm_head.weight") set_bf16(bytes, 7 * 32 + 3, kNaN);  // row 7: the logit of token 7
          return true;
        },
        no_cfg_edit);
    const auto m = dsk_v2::model::load(d.path(), dsk_v2::weight_format::checkpoint, {.check_finite = false});
    const std::vector<std::int32_t> toks = {0, 5, 17};
    CHECK_THAT(error_of([&] { dsk::test::prefill_logits(m, toks); }),
               Catch::Contains("dsk_v2::model::forward") &&
                   Catch::Contains("logits of position 0 (token id 0") &&
                   Catch::Contains("logits[0, 7] = nan"));
    // Only the last token's logits (decode): its position is named.
    auto cache = m.new_cache(8);
    tensor<float, 2> last(std::array<index_t, 2>{1, m.config().vocab_size});
    CHECK_THAT(error_of([&] { m.forward(toks, cache, last.view()); }),
               Catch::Contains("logits of position 2 (token id 17, input 2 of this call)"));
  }
}

TEST_CASE("models: non-finite logits are an error naming the position and token", "[models][finite]") {
  tensor<float, 2> l(std::array<index_t, 2>{3, 10});
  l.fill(1.0f);
  const std::vector<std::int32_t> toks = {4, 8, 15, 16, 23};  // logits are of the last 3: positions 12..14
  CHECK(error_of([&] { dsk_v2::model::check_logits(l.cview(), toks, 12); }) == "(no error)");
  l(1, 9) = kInf;
  l(2, 0) = kNaN;
  CHECK_THAT(error_of([&] { dsk_v2::model::check_logits(l.cview(), toks, 12); }),
             Catch::Contains("logits of position 13 (token id 16, input 3 of this call) are not finite") &&
                 Catch::Contains("logits[1, 9] = inf"));
}

TEST_CASE("models: the checkpoint's layers must match num_hidden_layers", "[models][layers]") {
  using dsk::test::model_temp_dir;
  const std::string name = "lite_greedy";  // 3 layers
  auto layers = [&](index_t n) { return [n](nlohmann::json& cfg) { cfg["num_hidden_layers"] = n; }; };

  SECTION("a config with more layers than the checkpoint: rejected before allocating the layers") {
    for (index_t n : {index_t{4}, index_t{100}}) {
      model_temp_dir d;
      copy_tensor_case(name, d.path(), keep_tensors, layers(n));
      CHECK_THAT(load_error(d.path()), Catch::Contains("has no tensors of layer 3 (model.layers.3.*)") &&
                                           Catch::Contains("num_hidden_layers = " + std::to_string(n)) &&
                                           Catch::Contains("holds 3 layers"));
    }
    // Absurd counts (1e6 allocated 1.1 GB of layers before the first missing tensor, 1e7 threw a bare
    // std::bad_alloc): a dsk::error naming num_hidden_layers (from the config's bounds or from this check).
    for (index_t n : {index_t{1000000}, index_t{10000000}}) {
      model_temp_dir d;
      copy_tensor_case(name, d.path(), keep_tensors, layers(n));
      CHECK_THAT(load_error(d.path()), Catch::Contains("num_hidden_layers"));
    }
  }
  SECTION("a config with fewer layers than the checkpoint: rejected naming the extra layer") {
    model_temp_dir d;
    copy_tensor_case(name, d.path(), keep_tensors, layers(2));
    CHECK_THAT(load_error(d.path()), Catch::Contains("holds tensors of layer 2 (e.g. 'model.layers.2.") &&
                                         Catch::Contains("beyond config.json's num_hidden_layers = 2"));
  }
  SECTION("a layer missing in the middle") {
    model_temp_dir d;
    copy_tensor_case(
        name, d.path(),
        [](const std::string& n, io::st_dtype&, std::vector<std::byte>&, std::vector<index_t>&) {
          return n.rfind("model.layers.1.", 0) != 0;
        },
        no_cfg_edit);
    CHECK_THAT(load_error(d.path()), Catch::Contains("has no tensors of layer 1 (model.layers.1.*)") &&
                                         Catch::Contains("num_hidden_layers = 3"));
  }
  // The case plus extra tensors (copies of model.norm.weight) under the given names.
  auto with_extra = [&](const fs::path& dir, std::vector<std::string> extra) {
    copy_tensor_case(name, dir, keep_tensors, no_cfg_edit);
    const io::checkpoint src(dsk::test::models_data(name));
    const auto& norm = src.info("model.norm.weight");
    io::safetensors_writer w;
    for (const auto& n : src.names()) w.add(n, src.info(n).dtype, src.info(n).shape, src.bytes(n));
    for (const auto& n : extra) w.add(n, norm.dtype, norm.shape, src.bytes("model.norm.weight"));
    w.write(dir / "model.safetensors");
  };
  SECTION("a stray tensor of a huge layer index") {
    model_temp_dir d;
    with_extra(d.path(), {"model.layers.123456789012345678901234567890.input_layernorm.weight"});
    CHECK_THAT(load_error(d.path()),
               Catch::Contains("holds tensors of layer 123456789012345678901234567890 (e.g. "
                               "'model.layers.123456789012345678901234567890.input_layernorm.weight')") &&
                   Catch::Contains("beyond config.json's num_hidden_layers = 3"));
  }
  SECTION("the first extra layer is the one named") {
    model_temp_dir d;
    with_extra(d.path(),
               {"model.layers.9.input_layernorm.weight", "model.layers.4.post_attention_layernorm.weight"});
    CHECK_THAT(load_error(d.path()), Catch::Contains("holds tensors of layer 4 (e.g. "
                                                     "'model.layers.4.post_attention_layernorm.weight')"));
  }
  SECTION("names that only look like layers are not counted") {
    model_temp_dir d;
    with_extra(d.path(), {"model.layers.rotary.inv_freq", "model.layers.7", "model.layers.-1.weight",
                          "model.layers.", "model.layersx.3.weight"});
    CHECK(load_error(d.path()) == "(no error)");
  }
}

namespace {
// A minimal byte-level BPE tokenizer: ids 0 'a', 1 'b', 2 'ab', 3 'Ã' (byte 0xC3), 4 '©' (byte 0xA9;
// together "é"), 6 the special token "<eos>"; id 5 is a hole. (io bounds ids by the tokens the file declares,
// vocab plus added_tokens: the added "ab", which repeats its vocab entry, makes that 7.)
io::tokenizer small_tokenizer() {
  const auto j = nlohmann::json::parse(R"({
    "added_tokens": [{"id": 6, "content": "<eos>", "special": true, "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false},
                     {"id": 2, "content": "ab", "special": false, "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u00c3": 3, "\u00a9": 4}, "merges": ["a b"]}
  })");
  return io::tokenizer::parse(j.dump(), "small/tokenizer.json");
}
}  // namespace

TEST_CASE("models: a tokenizer larger than the model is rejected naming both files", "[models][tokenizer]") {
  const auto tok = small_tokenizer();
  REQUIRE(tok.vocab_size() == 7);
  CHECK(error_of([&] { dsk_v2::check_tokenizer(tok, 7, "small/tokenizer.json", "small/config.json"); }) ==
        "(no error)");
  CHECK(error_of([&] { dsk_v2::check_tokenizer(tok, 96, "small/tokenizer.json", "small/config.json"); }) ==
        "(no error)");  // smaller than the model: normal (padded embedding)
  CHECK_THAT(error_of([&] { dsk_v2::check_tokenizer(tok, 6, "small/tokenizer.json", "small/config.json"); }),
             Catch::Contains("tokenizer 'small/tokenizer.json' has 7 ids") &&
                 Catch::Contains("vocab_size = 6 ('small/config.json')"));
}

TEST_CASE("models: generated ids the tokenizer lacks decode as nothing", "[models][tokenizer]") {
  const auto tok = small_tokenizer();
  CHECK(dsk_v2::has_token(tok, 0));
  CHECK(dsk_v2::has_token(tok, 6));
  CHECK_FALSE(dsk_v2::has_token(tok, 5));  // a hole
  CHECK_FALSE(dsk_v2::has_token(tok, 7));  // past the tokenizer (a padded embedding row)
  CHECK_FALSE(dsk_v2::has_token(tok, -1));
  dsk_v2::text_stream s(tok);
  CHECK(s.push(0, false) == "a");
  CHECK(s.push(95, false).empty());  // the model's vocab is larger: nothing, and generation goes on
  CHECK(s.push(5, false).empty());
  CHECK(s.push(2, false) == "ab");
  CHECK(s.push(6, false).empty());  // a special token: skipped
  CHECK(s.push(3, false).empty());  // the first byte of "é": held back until the character is complete
  CHECK(s.push(100000, false).empty());
  CHECK(s.push(4, false) == "\xC3\xA9");
  CHECK(s.push(3, true) == "\xEF\xBF\xBD");  // an incomplete character at the end is printed as U+FFFD
  CHECK(s.text() == "aab\xC3\xA9\xEF\xBF\xBD");
  CHECK(s.unknown() == 3);
}

TEST_CASE("models: the built-in prompt against a small vocabulary says what to do", "[models]") {
  CHECK(dsk_v2::builtin_prompt(100) == std::vector<std::int32_t>{0, 17, 42, 7, 99, 3});
  CHECK_THAT(error_of([] { dsk_v2::builtin_prompt(96); }),
             Catch::Contains("built-in prompt") && Catch::Contains("need vocab_size >= 100") &&
                 Catch::Contains("vocab_size 96") && Catch::Contains("--tokens"));
}
