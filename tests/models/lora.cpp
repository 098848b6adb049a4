// PEFT LoRA adapters in dsk_v2::model (load_options::lora, the runners' --lora / --lora-merge): logits
// against the `peft` package's PeftModel (adapter applied on the fly) and its merge_and_unload() on the V2
// and V3 golden checkpoints (tools/gen_lora_golden.py: rank 16 on every attention projection; plain alpha / r
// and rsLoRA with an alpha_pattern); malformed adapters give named errors.
#include <catch2/catch.hpp>
#include <fstream>

#include "common.hpp"

using namespace dsk;

namespace {
// As in golden.cpp: both sides compute in f32 from the same weights; the adapter adds two small f32 GEMMs
// (merged: one f32 sum per weight). Measured max |diff| ~5e-6.
constexpr double lora_tol = 1e-4;

tensor<float, 2> logits_field(const std::filesystem::path& file, const char* key) {
  std::ifstream in(file);
  const auto rows = nlohmann::json::parse(in).at(key);
  tensor<float, 2> t(std::array<index_t, 2>{index_t(rows.size()), index_t(rows.at(0).size())});
  for (index_t i = 0; i < t.extent(0); ++i)
    for (index_t j = 0; j < t.extent(1); ++j) t(i, j) = rows.at(i).at(j).get<float>();
  return t;
}
}  // namespace

TEST_CASE("lora: logits match peft's PeftModel (fused) and merge_and_unload (merged)", "[models][lora]") {
  for (const std::string base : {"v2_qlora_group", "v3_bf16_moonlight"}) {
    INFO("case " << base);
    const auto dir = dsk::test::models_data(base), adapter = dsk::test::models_data(base + "_lora");
    const auto golden = adapter / "golden_lora.json";
    const auto g = dsk::test::load_golden(base);
    const auto fused_want = logits_field(golden, "logits_fused"),
               merged_want = logits_field(golden, "logits_merged");
    {
      std::ifstream in(golden);
      const auto j = nlohmann::json::parse(in);
      INFO("peft " << j.at("versions").at("peft").get<std::string>());
      CHECK(j.at("max_abs_change_from_adapter").get<double>() > 100 * lora_tol);  // the adapter is visible
    }
    // Fused: the checkpoint's bf16 weights, the adapters attached (kv_b_proj's merged, kept in f32).
    auto fused = dsk_v2::model::load(dir, dsk_v2::weight_format::checkpoint, {.lora = adapter});
    CHECK(fused.lora_weights() > 0);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(fused, g.tokens), fused_want) < lora_tol);
    fused.set_prefill_form(dsk_v2::attention_form::absorbed);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(fused, g.tokens), fused_want) < lora_tol);
    CHECK(dsk::test::max_abs(dsk::test::decode_logits(fused, g.tokens), fused_want) < lora_tol);
    // Merged into f32 weights, as merge_and_unload does.
    auto merged = dsk_v2::model::load(dir, dsk_v2::weight_format::f32, {.lora = adapter, .lora_merge = true});
    CHECK(merged.lora_weights() == fused.lora_weights());
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(merged, g.tokens), merged_want) < lora_tol);
    CHECK(dsk::test::max_abs(dsk::test::decode_logits(merged, g.tokens), merged_want) < lora_tol);
    // int4 base weights with the f32 adapters attached: the adapter's contribution is the same function
    // as on the bf16 base (its inputs differ by the int4 rounding upstream), so the logits move towards
    // the adapted ones: closer to peft's fused logits than the int4 model without the adapter.
    auto q4 = dsk_v2::model::load(dir, dsk_v2::weight_format::int4, {.lora = adapter});
    auto q4_plain = dsk_v2::model::load(dir, dsk_v2::weight_format::int4);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(q4, g.tokens), fused_want) <
          dsk::test::max_abs(dsk::test::prefill_logits(q4_plain, g.tokens), fused_want));
  }
}

TEST_CASE("lora: malformed or mismatched adapters are named errors at load", "[models][lora]") {
  using Catch::Matchers::Contains;
  const auto dir = dsk::test::models_data("v2_qlora_group"),
             src = dsk::test::models_data("v2_qlora_group_lora");
  auto load = [&](const std::filesystem::path& adapter, const std::filesystem::path& model_dir) {
    return dsk::test::error_of(
        [&] { (void)dsk_v2::model::load(model_dir, dsk_v2::weight_format::checkpoint, {.lora = adapter}); });
  };
  // The V2 adapter targets q_a_proj, which the Moonlight-shaped model (q_proj) does not have.
  CHECK_THAT(load(src, dsk::test::models_data("v3_bf16_moonlight")),
             Contains("targets 'model.layers.") && Contains("which this model does not have"));
  CHECK_THAT(load(dsk::test::models_data("v2_qlora_group"), dir), Contains("has no adapter_config.json"));
  // Edited copies: adapter_config.json changed by edit, tensors by change (false drops one).
  const io::safetensors_file st(src / "adapter_model.safetensors");
  auto edited = [&](auto&& edit, auto&& change) {
    const dsk::test::model_temp_dir d;
    dsk::test::write_edited_json(src / "adapter_config.json", d.path() / "adapter_config.json", edit);
    dsk::test::write_changed_tensors(st, d.path() / "adapter_model.safetensors", change);
    return load(d.path(), dir);
  };
  auto keep_cfg = [](auto&) {};
  auto keep_all = [](std::string&, auto&, auto&) { return true; };
  CHECK(edited(keep_cfg, keep_all) == "(no error)");
  CHECK_THAT(edited([](auto& c) { c["r"] = 8; }, keep_all), Contains("have rank 16") && Contains("says 8"));
  CHECK_THAT(edited([](auto& c) { c["use_dora"] = true; }, keep_all), Contains("DoRA"));
  CHECK_THAT(edited([](auto& c) { c["peft_type"] = "IA3"; }, keep_all),
             Contains("unsupported adapter type 'IA3'"));
  CHECK_THAT(edited([](auto& c) { c["bias"] = "all"; }, keep_all), Contains("field 'bias'"));
  CHECK_THAT(edited([](auto& c) { c["modules_to_save"] = {"lm_head"}; }, keep_all),
             Contains("modules_to_save"));
  CHECK_THAT(edited([](auto& c) { c.erase("lora_alpha"); }, keep_all), Contains("lora_alpha"));
  const std::string qa = "base_model.model.model.layers.1.self_attn.q_a_proj.lora_B.weight";
  CHECK_THAT(edited(keep_cfg, [&](std::string& n, auto&, auto&) { return n != qa; }),
             Contains("no lora_B tensor for module 'model.layers.1.self_attn.q_a_proj'"));
  CHECK_THAT(edited(keep_cfg,
                    [&](std::string& n, auto&, auto&) {
                      if (n == qa) n = "base_model.model.model.layers.1.mlp.experts.base_layer.lora_B.weight";
                      return true;
                    }),
             Contains("fused routed-expert tensors"));
  CHECK_THAT(edited(keep_cfg,
                    [&](std::string& n, auto&, auto&) {
                      if (n == qa) n = "base_model.model.model.embed_tokens.lora_embedding_B";
                      return true;
                    }),
             Contains("not a LoRA pair member"));
  // lora_A of o_proj with one column fewer: the layer names the weight and the expected in_features.
  CHECK_THAT(
      edited(keep_cfg,
             [&](std::string& n, std::vector<index_t>& shape, std::vector<std::byte>& bytes) {
               if (n == "base_model.model.model.layers.2.self_attn.o_proj.lora_A.weight") {
                 shape[1] -= 1;
                 bytes.resize(static_cast<std::size_t>(shape[0] * shape[1] * 4));
               }
               return true;
             }),
      Contains("for weight 'model.layers.2.self_attn.o_proj.weight' [32, 32]") && Contains("in_features"));
  auto nan_b = [&](std::string& n, auto&, std::vector<std::byte>& bytes) {
    if (n == qa) {
      const float v = NAN;
      std::memcpy(bytes.data(), &v, 4);
    }
    return true;
  };
  CHECK_THAT(edited(keep_cfg, nan_b), Contains("q_a_proj.weight") && Contains("non-finite"));
}

TEST_CASE("lora: adapters on a dense MLP, a shared and a routed expert equal a checkpoint merged by hand",
          "[models][lora]") {
  // The paths peft does not produce here (see docs/models.md): the dense MLP's three adapted layers
  // (attached), the expert banks (always merged). Oracle: the same weights with W + scale B A formed in
  // double and written as f32, loaded without an adapter.
  const io::checkpoint ck(dsk::test::models_data("v2_qlora_group") / "model.safetensors");
  const std::map<std::string, std::pair<index_t, index_t>> targets = {
      {"model.layers.0.mlp.gate_proj", {48, 32}},
      {"model.layers.0.mlp.down_proj", {32, 48}},
      {"model.layers.1.mlp.shared_experts.down_proj", {32, 16}},
      {"model.layers.2.mlp.experts.3.up_proj", {16, 32}}};
  constexpr index_t r = 4;
  constexpr float alpha = 6.0f, scale = alpha / r;
  const dsk::test::model_temp_dir base, merged, adapter;
  io::safetensors_writer wa, wb, wl;
  std::uint64_t state = 12345;
  auto uniform = [&] {  // deterministic values in [-0.25, 0.25)
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(state >> 11) * 0x1.0p-53 - 0.5) * 0.5f;
  };
  for (const auto& name : ck.names()) {
    const auto& info = ck.info(name);
    if (info.shape.size() == 1) {
      const auto t = ck.read<float, 1>(name);
      wa.add(name, t), wb.add(name, t);
      continue;
    }
    const auto w = ck.read<float, 2>(name);
    wa.add(name, w);
    const std::string module = name.substr(0, name.size() - std::string(".weight").size());
    const auto it = targets.find(module);
    if (it == targets.end()) {
      wb.add(name, w);
      continue;
    }
    const auto [out, in] = it->second;
    tensor<float, 2> a(std::array<index_t, 2>{r, in}), b(std::array<index_t, 2>{out, r}), m = w;
    for (index_t i = 0; i < a.size(); ++i) a.data()[i] = uniform();
    for (index_t i = 0; i < b.size(); ++i) b.data()[i] = uniform();
    for (index_t o = 0; o < out; ++o)
      for (index_t i = 0; i < in; ++i) {
        double d = 0;
        for (index_t k = 0; k < r; ++k) d += double(b(o, k)) * a(k, i);
        m(o, i) = static_cast<float>(double(w(o, i)) + d * scale);
      }
    wb.add(name, m);
    wl.add("base_model.model." + module + ".lora_A.weight", a);
    wl.add("base_model.model." + module + ".lora_B.weight", b);
  }
  wa.write(base.path() / "model.safetensors");
  wb.write(merged.path() / "model.safetensors");
  wl.write(adapter.path() / "adapter_model.safetensors");
  for (const auto* d : {&base, &merged})
    std::filesystem::copy_file(dsk::test::models_data("v2_qlora_group") / "config.json",
                               d->path() / "config.json");
  std::ofstream(adapter.path() / "adapter_config.json")
      << nlohmann::json{{"peft_type", "LORA"}, {"r", r}, {"lora_alpha", alpha}}.dump();

  const auto g = dsk::test::load_golden("v2_qlora_group");
  const auto want =
      dsk::test::prefill_logits(dsk_v2::model::load(merged.path(), dsk_v2::weight_format::f32), g.tokens);
  for (const bool merge : {false, true}) {
    INFO("lora_merge " << merge);
    const auto m = dsk_v2::model::load(base.path(), dsk_v2::weight_format::f32,
                                       {.lora = adapter.path(), .lora_merge = merge});
    CHECK(m.lora_weights() == 4);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), want) < lora_tol);
  }
  // And the adapter is visible: without it the logits differ.
  const auto plain = dsk_v2::model::load(base.path(), dsk_v2::weight_format::f32);
  CHECK(dsk::test::max_abs(dsk::test::prefill_logits(plain, g.tokens), want) > 100 * lora_tol);
}
