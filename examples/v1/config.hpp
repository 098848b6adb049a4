// config.json of a V1 checkpoint directory (docs/models.md, V1): read into a preset with every field checked
// for presence, type and range (dsk::io::config_reader names the file and the field), and written back for
// the built-in random weights, so that a directory made by dsk_v1 --save-random loads like a real one.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dsk/core/error.hpp"
#include "dsk/io/config.hpp"
#include "dsk/io/mapped_file.hpp"
#include "presets.hpp"

namespace dsk_v1 {

inline constexpr const char* config_model_type = "dsk_v1";

// Parses config.json text; `source` names the file in errors.
inline preset parse_config(std::string_view text, std::string_view source = "config.json") {
  using L = dsk::io::config_limits;
  const nlohmann::json j = dsk::io::parse_json(text, source);
  if (!j.is_object()) dsk::fail("dsk_v1: '", source, "': config.json must be a JSON object");
  const dsk::io::config_reader c(j, source);
  if (const std::string t = c.to_string("model_type", c.require("model_type")); t != config_model_type)
    c.error("model_type", "expected \"", config_model_type, "\" (a DeepSeek-V1 encoder-decoder), got \"", t,
            "\"");
  if (!c.bool_or("tie_word_embeddings", true))
    c.error("tie_word_embeddings", "V1 ties the output head to the token embedding; false is not supported");
  preset p{.name = "config.json",
           .vocab_size = c.required_int("vocab_size", 1, L::vocab_size),
           .hidden_size = c.required_int("hidden_size", 1, L::hidden_size),
           .intermediate_size = c.required_int("intermediate_size", 1, L::intermediate_size),
           .encoder_layers = c.required_int("num_encoder_layers", 0, L::num_hidden_layers),
           .decoder_layers = c.required_int("num_decoder_layers", 1, L::num_hidden_layers),
           .num_heads = c.required_int("num_attention_heads", 1, L::num_attention_heads),
           .num_kv_heads = 0,
           .head_dim = c.required_int("head_dim", 1, L::head_dim)};
  p.num_kv_heads = c.int_or("num_key_value_heads", p.num_heads, 1, p.num_heads);
  if (p.num_heads % p.num_kv_heads != 0)
    c.error("num_key_value_heads", "expected a divisor of num_attention_heads = ", p.num_heads, ", got ",
            p.num_kv_heads);
  p.rope_theta = c.double_or("rope_theta", p.rope_theta);
  if (!(p.rope_theta > 0)) c.error("rope_theta", "expected a positive number, got ", p.rope_theta);
  p.rms_norm_eps = c.double_or("rms_norm_eps", p.rms_norm_eps);
  if (!(p.rms_norm_eps > 0)) c.error("rms_norm_eps", "expected a positive number, got ", p.rms_norm_eps);

  const nlohmann::json& a = c.require("dynamic_block_attention");
  if (!a.is_object())
    c.error("dynamic_block_attention", "expected an object of the attention's block shapes");
  const dsk::io::config_reader b(a, source, "dynamic_block_attention.");
  constexpr dsk::index_t max_block = 1 << 16, max_tokens = L::positions;
  p.cmp_block = static_cast<int>(b.required_int("compress_block", 1, max_block));
  p.cmp_stride = static_cast<int>(b.required_int("compress_stride", 1, p.cmp_block));
  p.sel_block = static_cast<int>(b.required_int("select_block", 1, max_block));
  p.sel_count = static_cast<int>(b.required_int("select_count", 1, max_block));
  p.window = static_cast<int>(b.required_int("window", 0, max_tokens));
  const std::string pooling = b.string_or("compression", "mean");
  if (pooling != "mean" && pooling != "linear")
    b.error("compression", "expected \"mean\" or \"linear\", got \"", pooling, "\"");
  p.learned_compression = pooling == "linear";
  return p;
}

// Reads DIR/config.json (or the file itself).
inline preset load_config(const std::filesystem::path& path) {
  std::error_code ec;
  const auto file = std::filesystem::is_directory(path, ec) ? path / "config.json" : path;
  return parse_config(dsk::io::read_text_file(file, "config"), file.string());
}

inline nlohmann::json to_json(const preset& p) {
  return {{"model_type", config_model_type},
          {"vocab_size", p.vocab_size},
          {"hidden_size", p.hidden_size},
          {"intermediate_size", p.intermediate_size},
          {"num_encoder_layers", p.encoder_layers},
          {"num_decoder_layers", p.decoder_layers},
          {"num_attention_heads", p.num_heads},
          {"num_key_value_heads", p.num_kv_heads},
          {"head_dim", p.head_dim},
          {"rope_theta", p.rope_theta},
          {"rms_norm_eps", p.rms_norm_eps},
          {"tie_word_embeddings", true},
          {"dynamic_block_attention",
           {{"compress_block", p.cmp_block},
            {"compress_stride", p.cmp_stride},
            {"select_block", p.sel_block},
            {"select_count", p.sel_count},
            {"window", p.window},
            {"compression", p.learned_compression ? "linear" : "mean"}}}};
}

inline void write_config(const preset& p, const std::filesystem::path& file) {
  std::ofstream out(file);
  out << to_json(p).dump(2) << "\n";
  if (!out) dsk::fail("dsk_v1: cannot write '", file.string(), "'");
}

}  // namespace dsk_v1
