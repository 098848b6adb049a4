// The float form of DeepSeek-Lite run by dsk_v2::model: the stored blocks of a float Lite checkpoint
// (tools/gen_lite_golden.py, or any V2-family checkpoint with "share_repeats" in config.json and a tied head)
// are expanded into a V2 checkpoint in a temporary file, block b written as layers b*r .. b*r + r - 1 and the
// embedding also as lm_head.weight, and loaded through dsk_v2's loader. This is the float reference of the
// sharing semantics (checked against transformers in tests/models/lite.cpp); it holds each block r times in
// memory, unlike the int4 Lite model, which is not written yet.
#pragma once

#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <unistd.h>
#include <nlohmann/json.hpp>

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

// Loads the float Lite checkpoint in dir as a dsk_v2::model (weights in fmt).
inline dsk_v2::model load_float(const fs::path& dir, dsk_v2::weight_format fmt) {
  nlohmann::json cfg;
  {
    std::ifstream in(dir / "config.json");
    if (!in) dsk::fail("dsk_lite: cannot read '", (dir / "config.json").string(), "'");
    cfg = nlohmann::json::parse(in, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object())
      dsk::fail("dsk_lite: '", (dir / "config.json").string(), "' is not a JSON object");
  }
  const dsk::index_t r = share_repeats(cfg, dir / "config.json");
  const bool tied = cfg.value("tie_word_embeddings", false);
  const dsk::io::checkpoint ck(dir);
  dsk::io::safetensors_writer w;
  constexpr std::string_view prefix = "model.layers.";
  for (const auto& n : ck.names()) {
    const auto& info = ck.info(n);
    const auto bytes = ck.bytes(n);
    if (n.compare(0, prefix.size(), prefix) == 0) {
      const auto dot = n.find('.', prefix.size());
      dsk::index_t b = -1;
      const char* first = n.data() + prefix.size();
      const char* last = dot == std::string::npos ? first : n.data() + dot;
      const auto [p, ec] = std::from_chars(first, last, b);
      if (dot == std::string::npos || p != last || ec != std::errc{} || b < 0 || b >= (1 << 20))
        dsk::fail("dsk_lite: tensor '", n, "' in '", dir.string(),
                  "' is not model.layers.<block>.<name> with a block number below 2^20");
      for (dsk::index_t k = 0; k < r; ++k)
        w.add(std::string(prefix) + std::to_string(b * r + k) + n.substr(dot), info.dtype, info.shape, bytes);
    } else {
      w.add(n, info.dtype, info.shape, bytes);
      if (tied && n == "model.embed_tokens.weight") w.add("lm_head.weight", info.dtype, info.shape, bytes);
    }
  }
  if (tied && ck.contains("lm_head.weight"))
    dsk::fail("dsk_lite: '", dir.string(), "' has tie_word_embeddings = true but also an lm_head.weight");
  const fs::path tmp = fs::temp_directory_path() / ("dsk_lite_float_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(reinterpret_cast<std::uintptr_t>(&w)));
  struct remover {
    fs::path p;
    ~remover() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } rm{tmp};
  fs::create_directories(tmp);
  w.write(tmp / "model.safetensors");
  cfg["tie_word_embeddings"] = false;  // the expanded checkpoint has its lm_head
  cfg.erase("share_repeats");
  cfg.erase("quantization");
  std::ofstream(tmp / "config.json") << cfg.dump(2) << "\n";
  // The model keeps the file mapped; Linux keeps an unlinked file's pages while mapped.
  return dsk_v2::model::load(tmp, fmt);
}

}  // namespace dsk_lite
