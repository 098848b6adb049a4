// Helpers of the V2-family model tests: golden data (tools/gen_v2_golden.py), logits of a whole sequence (and
// support.hpp's model-independent ones).
#pragma once

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>
#include <nlohmann/json.hpp>

#include "model.hpp"
#include "support.hpp"

namespace dsk::test {

struct golden {
  std::vector<std::int32_t> tokens;
  tensor<float, 2> logits;  // [T, vocab]
  std::string transformers_version;
  double softmax_scale = 0;
};

inline golden load_golden(const std::string& name, const std::string& file = "golden.json") {
  std::ifstream in(models_data(name) / file);
  const auto j = nlohmann::json::parse(in);
  golden g;
  g.tokens = j.at("tokens").get<std::vector<std::int32_t>>();
  const auto& l = j.at("logits");
  g.logits = tensor<float, 2>(std::array<index_t, 2>{index_t(l.size()), index_t(l.at(0).size())});
  for (std::size_t t = 0; t < l.size(); ++t)
    for (std::size_t v = 0; v < l[t].size(); ++v) g.logits(index_t(t), index_t(v)) = l[t][v].get<float>();
  g.transformers_version = j.at("versions").at("transformers").get<std::string>();
  g.softmax_scale = j.value("softmax_scale", 0.0);
  return g;
}

// Logits of every token of `tokens` from one prefill into a fresh cache.
inline tensor<float, 2> prefill_logits(const dsk_v2::model& m, std::span<const std::int32_t> tokens) {
  auto cache = m.new_cache(static_cast<index_t>(tokens.size()));
  tensor<float, 2> out(std::array<index_t, 2>{index_t(tokens.size()), m.config().vocab_size});
  m.forward(tokens, cache, out.view());
  return out;
}

// Logits of every token when the sequence is fed one token at a time (absorbed decode over the cache).
inline tensor<float, 2> decode_logits(const dsk_v2::model& m, std::span<const std::int32_t> tokens) {
  auto cache = m.new_cache(static_cast<index_t>(tokens.size()));
  const index_t V = m.config().vocab_size;
  tensor<float, 2> out(std::array<index_t, 2>{index_t(tokens.size()), V});
  for (std::size_t t = 0; t < tokens.size(); ++t)
    m.forward(tokens.subspan(t, 1), cache, view<float, 2>(&out(index_t(t), 0), dims<2>(1, V), {V, 1}));
  return out;
}

// Writes src's tensors (a checkpoint or one safetensors file) to the file `out`, each after change(name,
// shape, bytes), which may rename, reshape or edit it, or return false to drop it: the crafted checkpoints
// and adapters of the malformed-input tests.
template <class Source, class Change>
void write_changed_tensors(const Source& src, const std::filesystem::path& out, Change&& change) {
  io::safetensors_writer w;
  for (const auto& n : src.names()) {
    const auto& info = src.info(n);
    std::string name = n;
    auto shape = info.shape;
    const auto b = src.bytes(n);
    std::vector<std::byte> bytes(b.begin(), b.end());
    if (change(name, shape, bytes)) w.add(name, info.dtype, shape, bytes);
  }
  w.write(out);
}

// Writes the JSON file `in` to `out` after edit(json).
template <class Edit>
void write_edited_json(const std::filesystem::path& in, const std::filesystem::path& out, Edit&& edit) {
  std::ifstream f(in);
  auto j = nlohmann::json::parse(f);
  edit(j);
  std::ofstream(out) << j.dump();
}

}  // namespace dsk::test
