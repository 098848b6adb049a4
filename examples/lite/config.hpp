// config.json of a DeepSeek-Lite checkpoint directory: the V2 hyperparameters (checked by dsk::io's V2
// parser) plus the Lite structure: "share_repeats" (each stored block runs r times in a row),
// "tie_word_embeddings" (the head is the embedding) and, for the int4 layout, the "quantization" block.
#pragma once

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../common/int4_layout.hpp"
#include "dsk/io/io.hpp"
#include "v2/model.hpp"

namespace dsk_lite {

namespace fs = std::filesystem;

// share_repeats of a Lite config.json (1 when absent); dsk::error naming the file for anything else.
inline dsk::index_t share_repeats(const nlohmann::json& cfg, const fs::path& file) {
  if (!cfg.contains("share_repeats")) return 1;
  const auto& r = cfg.at("share_repeats");
  const auto L = cfg.value("num_hidden_layers", dsk::index_t{0});
  if (!r.is_number_integer() || r.get<dsk::index_t>() < 1 || L % r.get<dsk::index_t>() != 0)
    dsk::fail("dsk_lite: '", file.string(), "': share_repeats = ", r.dump(),
              " must be a positive integer dividing num_hidden_layers = ", L);
  return r.get<dsk::index_t>();
}

// config.json of a Lite checkpoint directory as the model's config and structure.
struct lite_config {
  dsk::io::v2_config model;
  dsk_v2::structure structure;
};

// int4 = true: the int4 layout, whose "quantization" block is required; false: the float form, which must not
// have one.
inline lite_config read_config(const fs::path& dir, bool int4 = true) {
  const fs::path file = dir / "config.json";
  std::ifstream in(file);
  if (!in) dsk::fail("dsk_lite: cannot read '", file.string(), "'");
  nlohmann::json cfg = nlohmann::json::parse(in, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object())
    dsk::fail("dsk_lite: '", file.string(), "' is not a JSON object");
  lite_config c;
  c.structure.share_repeats = share_repeats(cfg, file);
  if (int4)
    c.structure.int4_layout = dsk_examples::parse_quantization(cfg, file.string());
  else if (cfg.contains("quantization"))
    dsk::fail(
        "dsk_lite: '", file.string(),
        "' has a \"quantization\" block: an int4 Lite checkpoint (load it with dsk_lite::load), not the "
        "float form");
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
}  // namespace dsk_lite
