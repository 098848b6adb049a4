// The DeepSeek-Lite int4 model: a Lite checkpoint (docs/models.md, "Lite safetensors layout") run by dsk_v2's
// model code with its structure: stored block b as logical layers b*r .. b*r + r - 1, the head tied to the
// embedding, and every int4 weight viewed in the memory-mapped file (quant::qweight_view; no conversion, no
// copy: resident memory grows with the pages a token touches). kv_b_proj is dequantized to f32 at load
// (MLA reads it per head); norms and router gates are the file's f16, widened to f32.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/int4_layout.hpp"
#include "convert.hpp"
#include "float_model.hpp"
#include "presets.hpp"
#include "v2/model.hpp"

namespace dsk_lite {

// config.json of a Lite checkpoint directory as the model's config and structure.
struct lite_config {
  dsk::io::v2_config model;
  dsk_v2::structure structure;
};

inline lite_config read_config(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  std::ifstream in(file);
  if (!in) dsk::fail("dsk_lite: cannot read '", file.string(), "'");
  nlohmann::json cfg = nlohmann::json::parse(in, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object())
    dsk::fail("dsk_lite: '", file.string(), "' is not a JSON object");
  lite_config c;
  c.structure.share_repeats = share_repeats(cfg, file);
  c.structure.int4_layout = dsk_examples::parse_quantization(cfg, file.string());
  const auto& tie =
      cfg.contains("tie_word_embeddings") ? cfg.at("tie_word_embeddings") : nlohmann::json(false);
  if (!tie.is_boolean())
    dsk::fail("dsk_lite: '", file.string(), "': tie_word_embeddings must be true or false, got ", tie.dump());
  c.structure.tied_head = tie.get<bool>();
  // The V2 fields are checked by V2's parser; the Lite ones are this structure.
  cfg.erase("tie_word_embeddings");
  cfg.erase("share_repeats");
  cfg.erase("quantization");
  c.model = dsk::io::v2_config::parse(cfg.dump(), file.string());
  return c;
}

// Loads the Lite int4 checkpoint in dir (config.json + model.safetensors).
inline dsk_v2::model load(const fs::path& dir, dsk_v2::load_options opts = {}) {
  const lite_config c = read_config(dir);
  return dsk_v2::model(c.model, std::make_shared<const dsk::io::checkpoint>(dir),
                       dsk_v2::weight_format::checkpoint, opts, c.structure);
}

// A Lite preset as V2 hyperparameters: logical layers (what runs), or the stored blocks (what is written).
inline dsk_v2::preset to_v2_preset(const preset& p, bool stored_blocks) {
  dsk_v2::preset d;
  d.name = p.name;
  d.vocab_size = p.vocab_size;
  d.hidden_size = p.hidden_size;
  d.intermediate_size = p.intermediate_size;
  d.moe_intermediate_size = p.moe_intermediate_size;
  d.num_hidden_layers = stored_blocks ? p.num_blocks() : p.num_hidden_layers;
  d.num_attention_heads = p.num_attention_heads;
  d.q_lora_rank = p.q_lora_rank;
  d.kv_lora_rank = p.kv_lora_rank;
  d.qk_nope_head_dim = p.qk_nope_head_dim;
  d.qk_rope_head_dim = p.qk_rope_head_dim;
  d.v_head_dim = p.v_head_dim;
  d.n_routed_experts = p.n_routed_experts;
  d.n_shared_experts = p.n_shared_experts;
  d.num_experts_per_tok = p.num_experts_per_tok;
  d.first_k_dense_replace =
      stored_blocks ? p.first_k_dense_replace / p.share_repeats : p.first_k_dense_replace;
  return d;
}

// Preset p on deterministic random weights: random bf16 blocks (dsk_v2's initialiser, no lm_head) converted
// to the Lite layout (abs-max, p's group and range) in a temporary directory, then loaded like a checkpoint
// (the directory is removed; the mapping keeps the file's pages).
inline dsk_v2::model random(const preset& p, std::uint64_t seed = 20261203) {
  const fs::path tmp = fs::temp_directory_path() /
                       ("dsk_lite_random_" + std::to_string(::getpid()) + "_" + std::to_string(seed));
  struct remover {
    fs::path p;
    ~remover() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } rm{tmp};
  fs::create_directories(tmp / "float");
  dsk_v2::model::write_random_checkpoint(to_v2_preset(p, true), tmp / "float" / "model.safetensors", seed,
                                         /*lm_head=*/false);
  std::ofstream(tmp / "float" / "config.json") << nlohmann::json::object().dump() << "\n";
  convert_options o;
  o.group = p.quant_group;
  o.range = p.full8 ? dsk::quant::int4_range::full8 : dsk::quant::int4_range::sym7;
  o.share_repeats = p.share_repeats;
  convert(tmp / "float", tmp / "lite", o);
  dsk_v2::structure st;
  st.share_repeats = p.share_repeats;
  st.tied_head = true;
  st.int4_layout =
      dsk::quant::format{dsk::quant::qtype::int4, p.quant_group, dsk::quant::scale_type::f16, o.range};
  return dsk_v2::model(dsk_v2::to_config(to_v2_preset(p, false)),
                       std::make_shared<const dsk::io::checkpoint>(tmp / "lite" / "model.safetensors"),
                       dsk_v2::weight_format::checkpoint, {}, st);
}

}  // namespace dsk_lite
