// DeepSeek-Lite (examples/lite): the converter's int4 layout, checked element by element against an
// independent abs-max quantizer written here, on the float Lite tiny of tools/gen_lite_golden.py.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include <unistd.h>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "dsk/quant/fake_quant.hpp"
#include "lite/checkpoint.hpp"
#include "lite/convert.hpp"
#include "lite/float_model.hpp"
#include "lite/model.hpp"
#include "lite/presets.hpp"

using namespace dsk;

namespace {
struct temp_dir {
  std::filesystem::path p;
  explicit temp_dir(const std::string& tag)
      : p(std::filesystem::temp_directory_path() / ("dsk_lite_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(p);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
  }
};

// n greedy tokens after prompt, decoded with the cache; min_margin: the smallest top-1 minus top-2 logit seen
// (a near tie would make a token comparison fragile across ISAs).
std::vector<std::int32_t> greedy(const dsk_v2::model& m, std::span<const std::int32_t> prompt, std::size_t n,
                                 double& min_margin) {
  const index_t V = m.config().vocab_size;
  auto cache = m.new_cache(static_cast<index_t>(prompt.size() + n));
  tensor<float, 2> logits(std::array<index_t, 2>{1, V});
  m.forward(prompt, cache, logits.view());
  std::vector<std::int32_t> got;
  for (std::size_t i = 0; i < n; ++i) {
    index_t best = 0;
    for (index_t v = 1; v < V; ++v)
      if (logits(0, v) > logits(0, best)) best = v;
    float second = -1e30f;
    for (index_t v = 0; v < V; ++v)
      if (v != best) second = std::max(second, logits(0, v));
    min_margin = std::min(min_margin, double(logits(0, best) - second));
    got.push_back(static_cast<std::int32_t>(best));
    if (i + 1 == n) break;
    const std::int32_t t = got.back();
    m.forward(std::span<const std::int32_t>(&t, 1), cache, logits.view());
  }
  return got;
}

// The nibble of column j in a packed row: low nibble for even j, two's complement.
int nibble(const std::uint8_t* row, index_t j) {
  const int b = (row[j / 2] >> (4 * (j % 2))) & 0xF;
  return b >= 8 ? b - 16 : b;
}
}  // namespace

TEST_CASE("lite: dsk_lite_convert writes int4 codes and f16 scales of abs-max per-channel quantization",
          "[models][lite]") {
  const auto src = dsk::test::models_data("lite_tiny");
  temp_dir out("convert");
  const dsk_lite::convert_options o{};  // sym7, per channel, abs-max, share_repeats from the config
  const auto st = dsk_lite::convert(src, out.p, o);
  const io::checkpoint in(src), lite(out.p / "model.safetensors");

  index_t quantized = 0, f16s = 0;
  for (const auto& name : in.names()) {
    const auto& info = in.info(name);
    INFO(name);
    if (!dsk_lite::is_quantized_tensor(name, info.shape.size())) {
      REQUIRE(lite.contains(name));
      CHECK(lite.info(name).dtype == io::st_dtype::F16);
      CHECK(lite.info(name).shape == info.shape);
      ++f16s;
      continue;
    }
    const std::string b = dsk_lite::base_name(name);
    REQUIRE(lite.contains(b + ".qweight"));
    REQUIRE(lite.contains(b + ".scales"));
    CHECK_FALSE(lite.contains(name));
    const index_t N = info.shape[0], K = info.shape[1];
    REQUIRE(lite.info(b + ".qweight").dtype == io::st_dtype::U8);
    REQUIRE(lite.info(b + ".qweight").shape == std::vector<index_t>{N, (K + 1) / 2});
    REQUIRE(lite.info(b + ".scales").dtype == io::st_dtype::F16);
    REQUIRE(lite.info(b + ".scales").shape == std::vector<index_t>{N, 1});
    const auto w = in.read<float, 2>(name);
    const auto codes = lite.bytes(b + ".qweight");
    const auto scales = lite.read<float, 2>(b + ".scales");  // f16 widened exactly
    index_t wrong_scale = 0, wrong_code = 0;
    for (index_t i = 0; i < N; ++i) {
      float amax = 0;
      for (index_t j = 0; j < K; ++j) amax = std::max(amax, std::abs(w(i, j)));
      const float s = float(f16(amax / 7.0f));  // the stored scale is the one the codes use
      if (scales(i, 0) != s) ++wrong_scale;
      const auto* row = reinterpret_cast<const std::uint8_t*>(codes.data()) + i * ((K + 1) / 2);
      for (index_t j = 0; j < K; ++j) {
        const float c = s == 0 ? 0.0f : std::clamp(std::nearbyint(w(i, j) / s), -7.0f, 7.0f);
        if (nibble(row, j) != int(c)) ++wrong_code;
      }
    }
    CHECK(wrong_scale == 0);
    CHECK(wrong_code == 0);
    ++quantized;
  }
  CHECK(st.tensors_quantized == quantized);
  CHECK(st.tensors_f16 == f16s);
  CHECK_FALSE(lite.contains("lm_head.weight"));  // tied: the embedding is the head
  REQUIRE(lite.contains("model.embed_tokens.qweight"));

  std::ifstream cf(out.p / "config.json");
  const auto cfg = nlohmann::json::parse(cf);
  CHECK(cfg.at("share_repeats") == 2);
  CHECK(cfg.at("tie_word_embeddings") == true);
  CHECK(cfg.at("num_hidden_layers") == dsk_lite::tiny.num_hidden_layers);
  const auto& q = cfg.at("quantization");
  CHECK(q.at("format") == "int4");
  CHECK(q.at("range") == "sym7");
  CHECK(q.at("group") == 0);
  CHECK(q.at("scale_dtype") == "f16");
  CHECK(q.at("method") == "absmax");

  // Sizes: the file holds what the stats say; ~4 bits per weight plus scales of rows of 16-48 columns and
  // the f16 norms / gates, i.e. about 5.4 here (lite_card's rows of 512-2048 give ~4.02).
  std::int64_t bytes = 0;
  for (const auto& n : lite.names()) bytes += static_cast<std::int64_t>(lite.bytes(n).size());
  CHECK(bytes == st.file_bytes());
  CHECK(st.bits_per_weight() > 4.0);
  CHECK(st.bits_per_weight() < 6.0);
  CHECK(st.compression_vs_f32() == Approx(2.0 * st.compression_vs_bf16()));
  // The preset describes this checkpoint: its constexpr int4 size is the converter's.
  CHECK(dsk_lite::int4_weight_bytes(dsk_lite::tiny) == st.int4_bytes());
}

TEST_CASE("lite: MSE clipping never has a larger squared error than abs-max; grouped scales",
          "[models][lite]") {
  const auto src = dsk::test::models_data("lite_tiny");
  temp_dir a("absmax"), m("mse");
  dsk_lite::convert_options oa{}, om{};
  oa.group = om.group = 32;
  om.method = quant::range_method::mse;
  dsk_lite::convert(src, a.p, oa);
  dsk_lite::convert(src, m.p, om);
  const io::checkpoint in(src), la(a.p / "model.safetensors"), lm(m.p / "model.safetensors");
  double ea = 0, em = 0;
  index_t smaller = 0;
  for (const auto& name : in.names()) {
    if (!dsk_lite::is_quantized_tensor(name, in.info(name).shape.size())) continue;
    const std::string b = dsk_lite::base_name(name);
    const auto w = in.read<float, 2>(name);
    const index_t N = w.extent(0), K = w.extent(1), G = (K + 31) / 32;
    REQUIRE(la.info(b + ".scales").shape == std::vector<index_t>{N, G});
    auto err = [&](const io::checkpoint& l) {
      const auto sc = l.read<float, 2>(b + ".scales");
      const auto* codes = reinterpret_cast<const std::uint8_t*>(l.bytes(b + ".qweight").data());
      double e = 0;
      for (index_t i = 0; i < N; ++i)
        for (index_t j = 0; j < K; ++j) {
          const double d = w(i, j) - nibble(codes + i * ((K + 1) / 2), j) * double(sc(i, j / 32));
          e += d * d;
        }
      return e;
    };
    const double xa = err(la), xm = err(lm);
    CHECK(xm <= xa * (1 + 1e-6));
    smaller += xm < xa;
    ea += xa, em += xm;
  }
  CHECK(smaller > 0);  // the search does find smaller ranges on these random weights
  CHECK(em < ea);
}

TEST_CASE("lite: dsk_lite_convert rejects bad options and inputs with clear errors", "[models][lite]") {
  temp_dir out("bad");
  dsk_lite::convert_options o{};
  o.group = 48;
  CHECK_THAT(dsk::test::error_of([&] { dsk_lite::convert(dsk::test::models_data("lite_tiny"), out.p, o); }),
             Catch::Contains("--group 48") && Catch::Contains("32, 64, 128"));
  CHECK_THAT(dsk::test::error_of([&] { dsk_lite::parse_method("minmax"); }),
             Catch::Contains("--clip 'minmax'") && Catch::Contains("absmax, mse"));
  CHECK_THAT(dsk::test::error_of([&] { dsk_lite::parse_range("sym8"); }), Catch::Contains("sym7, full8"));
  CHECK_THAT(dsk::test::error_of([&] { dsk_lite::convert(out.p / "nowhere", out.p / "o", {}); }),
             Catch::Contains("config.json"));
}

// The float Lite tiny (2 stored blocks run twice, tied head) against transformers' DeepseekV2ForCausalLM with
// 4 layers whose repeated layers hold identical weights (tools/gen_lite_golden.py): the same 1e-4 as the V2
// golden cases (both sides f32 from the same bf16 weights).
TEST_CASE("lite: float Lite tiny matches transformers with repeated layers (prefill, decode, greedy tokens)",
          "[models][lite]") {
  const auto g = dsk::test::load_golden("lite_tiny");
  INFO("golden from transformers " << g.transformers_version);
  auto m = dsk_lite::load_float(dsk::test::models_data("lite_tiny"), dsk_v2::weight_format::checkpoint);
  REQUIRE(m.config().num_hidden_layers == dsk_lite::tiny.num_hidden_layers);
  REQUIRE(g.logits.extent(1) == m.config().vocab_size);
  CHECK(std::abs(m.config().softmax_scale() - g.softmax_scale) < 1e-12);
  m.set_prefill_form(dsk_v2::attention_form::expanded);
  CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), g.logits) < 1e-4);
  m.set_prefill_form(dsk_v2::attention_form::absorbed);
  CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), g.logits) < 1e-4);
  // Cached decode (absorbed MLA over the latent cache, one token at a time) == the recompute of transformers.
  CHECK(dsk::test::max_abs(dsk::test::decode_logits(m, g.tokens), g.logits) < 1e-4);

  // Greedy continuation with the cache against transformers' (full recompute each step, argmax). The expected
  // tokens come from transformers, not from dsk: the same check runs in the aarch64 build under qemu
  // (tests/models is in DSK_AARCH64_TEST_FAMILIES), so ARM's tokens = transformers' = x86's.
  std::ifstream in(dsk::test::models_data("lite_tiny") / "golden.json");
  const auto want = nlohmann::json::parse(in).at("greedy").get<std::vector<std::int32_t>>();
  REQUIRE(want.size() == 12);
  double min_margin = 1e9;
  CHECK(greedy(m, g.tokens, want.size(), min_margin) == want);
  INFO("smallest top-1 / top-2 margin " << min_margin);
  CHECK(min_margin > 1e-3);
}

TEST_CASE("lite: a float Lite checkpoint whose share_repeats does not divide the layers is rejected",
          "[models][lite]") {
  nlohmann::json c = {{"num_hidden_layers", 4}, {"share_repeats", 3}};
  CHECK_THAT(dsk::test::error_of([&] { dsk_lite::share_repeats(c, "config.json"); }),
             Catch::Contains("share_repeats = 3") && Catch::Contains("num_hidden_layers = 4"));
  c["share_repeats"] = 0;
  CHECK_THAT(dsk::test::error_of([&] { dsk_lite::share_repeats(c, "config.json"); }),
             Catch::Contains("positive integer"));
}

// The converted checkpoint read back through dsk_lite::int4_weight: views into the mapping (no copy) whose
// dequantized values are the codes x scales of the file, for per-channel and grouped formats.
TEST_CASE("lite: int4 weights are viewed in the mapped checkpoint without conversion", "[models][lite]") {
  const auto src = dsk::test::models_data("lite_tiny");
  temp_dir out("view");
  dsk_lite::convert_options o{};
  o.group = 32;
  o.range = quant::int4_range::full8;
  dsk_lite::convert(src, out.p, o);
  std::ifstream cf(out.p / "config.json");
  const auto fmt = dsk_lite::parse_quantization(nlohmann::json::parse(cf), "config.json");
  constexpr quant::format F{quant::qtype::int4, 32, quant::scale_type::f16, quant::int4_range::full8};
  REQUIRE(fmt == F);
  const io::checkpoint in(src), lite(out.p / "model.safetensors");
  index_t n = 0;
  for (const auto& name : in.names()) {
    const auto& info = in.info(name);
    if (!dsk_lite::is_quantized_tensor(name, info.shape.size())) continue;
    const std::string b = dsk_lite::base_name(name);
    const index_t N = info.shape[0], K = info.shape[1];
    const auto q = dsk_lite::int4_weight<F>(lite, b, N, K);
    CHECK(reinterpret_cast<const std::byte*>(q.codes) == lite.bytes(b + ".qweight").data());
    CHECK(reinterpret_cast<const std::byte*>(q.scales) == lite.bytes(b + ".scales").data());
    tensor<float, 2> d(std::array<index_t, 2>{N, K});
    quant::dequantize(q, d.view());
    const auto sc = lite.read<float, 2>(b + ".scales");
    const auto* codes = reinterpret_cast<const std::uint8_t*>(lite.bytes(b + ".qweight").data());
    index_t wrong = 0;
    for (index_t i = 0; i < N; ++i)
      for (index_t j = 0; j < K; ++j)
        wrong += d(i, j) != float(nibble(codes + i * ((K + 1) / 2), j)) * sc(i, j / 32);
    CHECK(wrong == 0);
    ++n;
  }
  CHECK(n == 39);
}

TEST_CASE("lite: malformed Lite checkpoints give clear errors", "[models][lite]") {
  using nlohmann::json;
  constexpr quant::format F{quant::qtype::int4, 0, quant::scale_type::f16, quant::int4_range::sym7};
  // Unknown or malformed formats in config.json.
  auto cfg_error = [](json q) {
    return dsk::test::error_of([&] { dsk_lite::parse_quantization(q, "cfg.json"); });
  };
  CHECK_THAT(cfg_error(json::object()), Catch::Contains("no \"quantization\""));
  CHECK_THAT(cfg_error({{"quantization", {{"format", "int3"}}}}),
             Catch::Contains("quantization.format = \"int3\"") && Catch::Contains("int4"));
  CHECK_THAT(cfg_error({{"quantization", {{"format", "int4"}, {"group", 48}}}}),
             Catch::Contains("quantization.group = 48"));
  CHECK_THAT(cfg_error({{"quantization", {{"format", "int4"}, {"range", "sym8"}}}}),
             Catch::Contains("quantization.range = \"sym8\""));
  CHECK_THAT(cfg_error({{"quantization", {{"format", "int4"}, {"scale_dtype", "bf16"}}}}),
             Catch::Contains("scale_dtype"));
  CHECK_THAT(cfg_error({{"quantization", {{"format", "int4"}, {"group", "32"}}}}),
             Catch::Contains("must be an integer"));

  // Tensors: W [6, 10] -> codes U8 [6, 5], scales F16 [6, 1].
  temp_dir dir("malformed");
  std::filesystem::create_directories(dir.p);
  auto write = [&](const std::string& file, std::vector<index_t> code_shape, io::st_dtype code_dtype,
                   std::vector<index_t> scale_shape, io::st_dtype scale_dtype, bool with_scales) {
    io::safetensors_writer w;
    std::vector<std::byte> cb(
        static_cast<std::size_t>(code_shape[0] * code_shape[1]) * io::size_of(code_dtype), std::byte{0x21});
    w.add("w.qweight", code_dtype, code_shape, cb);
    if (with_scales) {
      std::int64_t ns = 1;
      for (auto e : scale_shape) ns *= e;
      std::vector<std::byte> sb(static_cast<std::size_t>(ns * io::size_of(scale_dtype)), std::byte{0});
      w.add("w.scales", scale_dtype, scale_shape, sb);
    }
    w.write(dir.p / file);
    return io::checkpoint(dir.p / file);
  };
  auto load = [&](const io::checkpoint& ck) {
    return dsk::test::error_of([&] { (void)dsk_lite::int4_weight<F>(ck, "w", 6, 10); });
  };
  CHECK(load(write("ok.safetensors", {6, 5}, io::st_dtype::U8, {6, 1}, io::st_dtype::F16, true)) ==
        "(no error)");
  CHECK_THAT(load(write("code_size.safetensors", {6, 4}, io::st_dtype::U8, {6, 1}, io::st_dtype::F16, true)),
             Catch::Contains("w.qweight") && Catch::Contains("[6, 5]"));
  CHECK_THAT(
      load(write("code_dtype.safetensors", {6, 5}, io::st_dtype::I16, {6, 1}, io::st_dtype::F16, true)),
      Catch::Contains("w.qweight") && Catch::Contains("U8"));
  CHECK_THAT(load(write("no_scales.safetensors", {6, 5}, io::st_dtype::U8, {6, 1}, io::st_dtype::F16, false)),
             Catch::Contains("no 'w.scales'"));
  CHECK_THAT(
      load(write("scale_count.safetensors", {6, 5}, io::st_dtype::U8, {6, 2}, io::st_dtype::F16, true)),
      Catch::Contains("w.scales") && Catch::Contains("needs [6, 1]"));
  CHECK_THAT(load(write("scale_rows.safetensors", {6, 5}, io::st_dtype::U8, {5, 1}, io::st_dtype::F16, true)),
             Catch::Contains("w.scales") && Catch::Contains("needs [6, 1]"));
  CHECK_THAT(
      load(write("scale_dtype.safetensors", {6, 5}, io::st_dtype::U8, {6, 1}, io::st_dtype::F32, true)),
      Catch::Contains("w.scales") && Catch::Contains("F16"));
  {
    io::safetensors_writer w;
    w.add("other", io::st_dtype::U8, {1}, std::vector<std::byte>(1));
    w.write(dir.p / "no_codes.safetensors");
    CHECK_THAT(load(io::checkpoint(dir.p / "no_codes.safetensors")), Catch::Contains("no 'w.qweight'"));
  }
}

// The int4 Lite model (codes viewed in the mapped file, blocks shared, head tied) against transformers run on
// the fake-quantized weights (tools/gen_lite_int4_golden.py quantizes in numpy: abs-max f16 scales, ties to
// even, clamp to [-7, 7]; w' = code x scale): the same 1e-4 as the float golden (both sides f32 products of
// the same weights). Greedy tokens of two prompts come from transformers too, so under qemu-aarch64 the int4
// model's ARM tokens = transformers' = x86's.
TEST_CASE("lite: int4 Lite tiny matches transformers on fake-quantized weights (prefill, decode, greedy)",
          "[models][lite]") {
  const auto g = dsk::test::load_golden("lite_tiny", "golden_int4.json");
  temp_dir dir("int4_golden");
  dsk_lite::convert(dsk::test::models_data("lite_tiny"), dir.p, {});
  auto m = dsk_lite::load(dir.p);
  REQUIRE(m.stored_structure().share_repeats == 2);
  REQUIRE(m.stored_structure().tied_head);
  REQUIRE(m.config().num_hidden_layers == dsk_lite::tiny.num_hidden_layers);
  m.set_prefill_form(dsk_v2::attention_form::expanded);
  CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), g.logits) < 1e-4);
  m.set_prefill_form(dsk_v2::attention_form::absorbed);
  CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), g.logits) < 1e-4);
  CHECK(dsk::test::max_abs(dsk::test::decode_logits(m, g.tokens), g.logits) < 1e-4);

  std::ifstream in(dsk::test::models_data("lite_tiny") / "golden_int4.json");
  const auto j = nlohmann::json::parse(in);
  double min_margin = 1e9;
  CHECK(greedy(m, g.tokens, 12, min_margin) == j.at("greedy").get<std::vector<std::int32_t>>());
  const auto p2 = j.at("prompt2").get<std::vector<std::int32_t>>();
  CHECK(greedy(m, p2, 12, min_margin) == j.at("greedy2").get<std::vector<std::int32_t>>());
  INFO("smallest top-1 / top-2 margin " << min_margin);
  CHECK(min_margin > 1e-3);

  // Stored once: the model holds the file's codes + scales (viewed), kv_b_proj dequantized to f32 and the
  // router gate in f32 (norms are not counted), not share_repeats copies.
  const io::checkpoint ck(dir.p / "model.safetensors");
  std::int64_t int4 = 0;
  for (const auto& n : ck.names())
    if ((n.ends_with(".qweight") || n.ends_with(".scales")) && n.find("kv_b_proj") == std::string::npos)
      int4 += static_cast<std::int64_t>(ck.bytes(n).size());
  const std::int64_t kv_b_f32 = 2 * 4 * (4 * (8 + 8)) * 16;  // 2 blocks x f32 [H (nope + v), kv_lora_rank]
  const std::int64_t gates_f32 = 4 * 8 * 32;                 // 1 MoE block's router [8, 32] in f32
  CHECK(m.weight_bytes() == int4 + kv_b_f32 + gates_f32);
}

// Quantization-aware training deploys without surprise: the float model run on quant::fake_quantize'd weights
// (the float form, dsk_lite::load_float, f32 GEMMs) against the int4 model on the codes with the same scales.
// fake_quantize(w, s) is code x s bit for bit (tests/quant/qat.cpp), so the two compute the same function of
// the same weights and differ only by fp32 summation order: a bound of 1e-5 on logits of magnitude ~3 (the
// GEMM-level error is ~K u |x| |w| ~ 1e-6 here). Against the unquantized float model the difference is the
// quantization error itself, orders of magnitude larger: the comparison can tell them apart.
TEST_CASE(
    "lite: float model on fake-quantized weights gives the int4 model's logits (QAT deploys as trained)",
    "[models][lite][qat]") {
  const auto src = dsk::test::models_data("lite_tiny");
  const auto g = dsk::test::load_golden("lite_tiny");
  for (const bool grouped : {false, true}) {
    CAPTURE(grouped);
    dsk_lite::convert_options o{};
    if (grouped) o.group = 128, o.range = quant::int4_range::full8;
    temp_dir lite_dir(grouped ? "qat_int4_g" : "qat_int4"), float_dir(grouped ? "qat_fq_g" : "qat_fq");
    dsk_lite::convert(src, lite_dir.p, o);
    const io::checkpoint in(src), lite(lite_dir.p / "model.safetensors");
    // The fake-quantized float Lite checkpoint: every int4 weight through quant::fake_quantize with the
    // scales the Lite file stores; the f16 tensors as stored.
    io::safetensors_writer w;
    std::vector<tensor<float, 2>> keep;
    index_t minus8 = 0;
    for (const auto& name : in.names()) {
      const auto& info = in.info(name);
      if (!dsk_lite::is_quantized_tensor(name, info.shape.size())) {
        if (info.shape.size() == 1)
          w.add(name, lite.read<float, 1>(name));
        else
          w.add(name, lite.read<float, 2>(name));
        continue;
      }
      const auto x = in.read<float, 2>(name);
      const auto s = lite.read<float, 2>(dsk_lite::base_name(name) + ".scales");
      keep.emplace_back(std::array<index_t, 2>{x.extent(0), x.extent(1)});
      auto run = [&]<quant::quantize_config C>() {
        quant::fake_quantize<C>(x.cview(), s.cview(), keep.back().view());
      };
      if (grouped)
        run.template operator()<quant::quantize_config{
            .fmt = {quant::qtype::int4, 128, quant::scale_type::f16, quant::int4_range::full8}}>();
      else
        run.template
        operator()<quant::quantize_config{.fmt = {quant::qtype::int4, 0, quant::scale_type::f16}}>();
      for (index_t i = 0; i < x.extent(0); ++i)
        for (index_t k = 0; k < x.extent(1); ++k)
          minus8 += keep.back()(i, k) == -8.0f * s(i, 0) && s(i, 0) > 0;
      w.add(name, keep.back());
    }
    if (grouped) CHECK(minus8 > 0);  // full8 uses the code -8: the products must read it
    std::filesystem::create_directories(float_dir.p);
    w.write(float_dir.p / "model.safetensors");
    std::filesystem::copy_file(src / "config.json", float_dir.p / "config.json");

    const auto fq = dsk_lite::load_float(float_dir.p, dsk_v2::weight_format::f32);
    const auto plain = dsk_lite::load_float(src, dsk_v2::weight_format::f32);
    const auto m = dsk_lite::load(lite_dir.p);
    const auto want = dsk::test::prefill_logits(fq, g.tokens);
    const double d_int4 = dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), want);
    const double d_cached = dsk::test::max_abs(dsk::test::decode_logits(m, g.tokens), want);
    const double d_plain = dsk::test::max_abs(dsk::test::prefill_logits(plain, g.tokens), want);
    INFO("int4 vs fake-quant float " << d_int4 << " (cached decode " << d_cached << "), unquantized float "
                                     << d_plain);
    CHECK(d_int4 < 1e-5);
    CHECK(d_cached < 1e-5);
    CHECK(d_plain > 1e-2);
  }
}

// A malformed Lite checkpoint fails at load with an error naming the tensor or field, never a crash (also run
// under ASan): an expert's scales removed, a code tensor cut short, a format that is not compiled in, a
// quantization block missing from config.json, and a weight format other than the stored one.
TEST_CASE("lite: the int4 model rejects malformed Lite checkpoints at load", "[models][lite]") {
  const auto src = dsk::test::models_data("lite_tiny");
  temp_dir good("load_good");
  dsk_lite::convert(src, good.p, {});
  const io::checkpoint ck(good.p / "model.safetensors");
  // A copy of the checkpoint with `change` applied to each tensor (name, dtype, shape, bytes); false drops
  // it.
  auto rewrite = [&](const std::string& tag, auto&& change) {
    temp_dir d(tag);
    std::filesystem::create_directories(d.p);
    std::filesystem::copy_file(good.p / "config.json", d.p / "config.json");
    dsk::test::write_changed_tensors(ck, d.p / "model.safetensors", change);
    return dsk::test::error_of([&] { (void)dsk_lite::load(d.p); });
  };
  CHECK_THAT(rewrite("no_scales", [](const std::string& n, auto&,
                                     auto&) { return n != "model.layers.1.mlp.experts.3.up_proj.scales"; }),
             Catch::Contains("model.layers.1.mlp.experts.3.up_proj.scales"));
  CHECK_THAT(rewrite("short_codes",
                     [](const std::string& n, std::vector<index_t>& shape, std::vector<std::byte>& bytes) {
                       if (n == "model.layers.0.self_attn.o_proj.qweight") {
                         shape[1] -= 1;
                         bytes.resize(static_cast<std::size_t>(shape[0] * shape[1]));
                       }
                       return true;
                     }),
             Catch::Contains("model.layers.0.self_attn.o_proj.qweight"));
  auto with_config = [&](const std::string& tag, auto&& edit) {
    temp_dir d(tag);
    std::filesystem::create_directories(d.p);
    std::filesystem::copy_file(good.p / "model.safetensors", d.p / "model.safetensors");
    std::ifstream in(good.p / "config.json");
    auto cfg = nlohmann::json::parse(in);
    edit(cfg);
    std::ofstream(d.p / "config.json") << cfg.dump();
    return dsk::test::error_of([&] { (void)dsk_lite::load(d.p); });
  };
  CHECK_THAT(dsk::test::error_of([&] { (void)dsk_lite::load_float(good.p, dsk_v2::weight_format::f32); }),
             Catch::Contains("\"quantization\" block") && Catch::Contains("dsk_lite::load"));
  CHECK_THAT(with_config("group32", [](auto& c) { c["quantization"]["group"] = 32; }),
             Catch::Contains("group 32") && Catch::Contains("compiled"));
  CHECK_THAT(with_config("noquant", [](auto& c) { c.erase("quantization"); }),
             Catch::Contains("no \"quantization\""));
  CHECK_THAT(with_config("repeats", [](auto& c) { c["share_repeats"] = 3; }),
             Catch::Contains("share_repeats"));
  CHECK_THAT(with_config("untied", [](auto& c) { c["tie_word_embeddings"] = false; }),
             Catch::Contains("lm_head"));
  CHECK_THAT(dsk::test::error_of([&] {
               (void)dsk_v2::model(dsk_lite::read_config(good.p).model,
                                   std::make_shared<const io::checkpoint>(good.p),
                                   dsk_v2::weight_format::int4, {}, dsk_lite::read_config(good.p).structure);
             }),
             Catch::Contains("--weights must be checkpoint"));
}

// W4A8: the same int4 codes with activations quantized per token to int8 (the u8 x s8 products; each kernel
// is checked bit for bit against its reference in tests/quant/matmul.cpp and tests/moe). At model level the
// activations' rounding moves the logits a little, never grossly: uniform rounding noise of s / 2 (s = amax /
// 127, amax ~ 4 standard deviations) is ~8e-5 of each product input's variance, and a token's path through
// the 4 layers and the head crosses ~20 quantized products, so the NMSE of the logits against the
// f32-activation model should be ~2e-3 at most (measured 4.9e-4); the bound is 5e-3 (an indexing or scale bug
// gives ~1) and the difference must not be zero (the int8 path really runs). The structure refuses int8
// activations without int4 weights.
TEST_CASE("lite: W4A8 (int8 activations) stays close to the weight-only int4 model", "[models][lite]") {
  const auto g = dsk::test::load_golden("lite_tiny", "golden_int4.json");
  temp_dir dir("a8");
  dsk_lite::convert(dsk::test::models_data("lite_tiny"), dir.p, {});
  const auto f32 = dsk_lite::load(dir.p);
  const auto a8 = dsk_lite::load(dir.p, {}, quant::activations::int8);
  REQUIRE(a8.stored_structure().activations == quant::activations::int8);
  const auto want = dsk::test::prefill_logits(f32, g.tokens);
  for (const auto& got : {dsk::test::prefill_logits(a8, g.tokens), dsk::test::decode_logits(a8, g.tokens)}) {
    double err = 0, ref = 0;
    for (index_t i = 0; i < want.size(); ++i) {
      err += std::pow(double(got.data()[i]) - want.data()[i], 2);
      ref += std::pow(double(want.data()[i]), 2);
    }
    INFO("NMSE of the W4A8 logits against weight-only int4: " << err / ref);
    CHECK(err / ref < 5e-3);
    CHECK(err > 0);
  }
  dsk_v2::structure st;
  st.activations = quant::activations::int8;
  CHECK_THAT(dsk::test::error_of([&] {
               (void)dsk_v2::model(
                   dsk_v2::to_config(dsk_v2::tiny),
                   std::make_shared<const io::checkpoint>(dsk::test::models_data("lite_greedy")),
                   dsk_v2::weight_format::checkpoint, {}, st);
             }),
             Catch::Contains("structure.activations"));
}
