// PEFT LoRA adapters for the example runners: a directory as the `peft` package saves it
// (adapter_config.json + adapter_model.safetensors) read into nn::lora_adapters keyed by the base weight they
// adapt ("model.layers.0.self_attn.q_a_proj.weight"). The loader (runner.hpp) attaches them to nn::linear
// layers (--lora) or merges them into the weights (--lora-merge; always for weights that are not an
// nn::linear: kv_b_proj, router gates, expert banks). Checked in tests/models/lora.cpp against peft.
#pragma once

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/nn/linear.hpp"

namespace dsk_examples {

using namespace dsk;

struct lora_set {
  std::string label;                                // the adapter directory, for messages
  std::map<std::string, nn::lora_adapter> weights;  // base weight name -> adapter
};

namespace detail {
// PEFT's pattern rule (rank_pattern / alpha_pattern keys): the key matches the end of the module name after a
// dot or the whole name, as peft's re.match(rf"(.*\.)?({key})$", name).
inline bool peft_pattern_matches(const std::string& key, const std::string& module, std::string_view source) {
  try {
    return std::regex_match(module, std::regex("(.*\\.)?(" + key + ")"));
  } catch (const std::regex_error&) {
    fail(source, ": pattern '", key, "' is not a regular expression dsk can read (ECMAScript syntax)");
  }
}
}  // namespace detail

// Reads a PEFT LoRA adapter directory. Supported: peft_type LORA, bias "none", no DoRA, no fan_in_fan_out, no
// modules_to_save, lora_alpha / r with rank_pattern / alpha_pattern, use_rslora (scale alpha / sqrt(r)).
// Tensors must be base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r] pairs (F32,
// BF16 or F16). Anything else (embedding adapters, DoRA magnitudes, PEFT's adapters on fused expert tensors)
// is a dsk::error naming the tensor or field; shapes against the model are checked when the model attaches
// them.
inline lora_set read_peft_adapter(const std::filesystem::path& dir, std::string_view runner = "dsk") {
  namespace fs = std::filesystem;
  const fs::path cfg_path = dir / "adapter_config.json", st_path = dir / "adapter_model.safetensors";
  const std::string cfg_label = cfg_path.string();
  if (!fs::is_regular_file(cfg_path))
    fail(runner, ": --lora '", dir.string(),
         "' has no adapter_config.json (expected a PEFT adapter directory)");
  const nlohmann::json j = io::parse_json(io::read_text_file(cfg_path, "adapter config"), cfg_label);
  const io::config_reader c(j, cfg_label);
  if (!j.is_object()) c.error_general("expected a JSON object");
  if (const auto t = c.string_or("peft_type", "LORA"); t != "LORA")
    c.error("peft_type", "unsupported adapter type '", t, "' (dsk reads LoRA adapters)");
  if (const auto b = c.string_or("bias", "none"); b != "none")
    c.error("bias", "unsupported value '", b, "' (dsk's adapters have no bias terms; expected \"none\")");
  if (c.bool_or("use_dora", false)) c.error("use_dora", "DoRA adapters are not supported");
  if (c.bool_or("lora_bias", false)) c.error("lora_bias", "adapters with a bias on lora_B are not supported");
  if (c.bool_or("fan_in_fan_out", false))
    c.error("fan_in_fan_out",
            "transposed (Conv1D-style) adapters are not supported: DeepSeek's layers are Linear");
  if (const auto* m = c.get("modules_to_save"); m && !(m->is_array() && m->empty()))
    c.error("modules_to_save", "fully trained modules in an adapter are not supported");
  const index_t r = c.required_int("r", 1, index_t{1} << 16);
  const double alpha = c.to_double("lora_alpha", c.require("lora_alpha"));
  const bool rslora = c.bool_or("use_rslora", false);
  auto pattern_map = [&](const char* key) {
    std::map<std::string, double> out;
    if (const auto* p = c.get(key)) {
      if (!p->is_object()) c.error(key, "expected an object of pattern: value");
      for (const auto& [k, v] : p->items()) out[k] = c.to_double(key, v);
    }
    return out;
  };
  const auto rank_pattern = pattern_map("rank_pattern"), alpha_pattern = pattern_map("alpha_pattern");

  const io::safetensors_file f(st_path);
  lora_set set;
  set.label = dir.string();
  constexpr std::string_view prefix = "base_model.model.", a_suffix = ".lora_A.weight",
                             b_suffix = ".lora_B.weight";
  std::map<std::string, std::pair<std::string, std::string>> modules;  // module -> (A name, B name)
  for (const auto& info : f.tensors()) {
    const std::string& name = info.name;
    const bool is_a = name.ends_with(a_suffix), is_b = name.ends_with(b_suffix);
    if (!name.starts_with(prefix) || !(is_a || is_b))
      fail(
          runner, ": adapter tensor '", name, "' in '", st_path.string(),
          "' is not a LoRA pair member (base_model.model.<module>.lora_A.weight / .lora_B.weight); embedding "
          "adapters and DoRA magnitudes are not supported");
    const std::string module = name.substr(prefix.size(), name.size() - prefix.size() - a_suffix.size());
    if (module.ends_with(".experts") || module.ends_with(".experts.base_layer"))
      fail(
          runner, ": adapter tensor '", name,
          "' adapts the fused routed-expert tensors (peft's target_parameters); dsk attaches adapters to the "
          "attention projections, dense and shared MLPs and the head only");
    (is_a ? modules[module].first : modules[module].second) = name;
  }
  for (const auto& [module, names] : modules) {
    if (names.first.empty() || names.second.empty())
      fail(runner, ": adapter '", set.label, "' has ", names.first.empty() ? "no lora_A" : "no lora_B",
           " tensor for module '", module, "'");
    nn::lora_adapter l;
    l.a = f.read<float, 2>(names.first);
    l.b = f.read<float, 2>(names.second);
    double rank = static_cast<double>(r), a = alpha;
    for (const auto& [k, v] : rank_pattern)
      if (detail::peft_pattern_matches(k, module, cfg_label)) rank = v;
    for (const auto& [k, v] : alpha_pattern)
      if (detail::peft_pattern_matches(k, module, cfg_label)) a = v;
    if (l.a.extent(0) != static_cast<index_t>(rank) || l.b.extent(1) != l.a.extent(0))
      fail(runner, ": adapter tensors of '", module, "' have rank ", l.a.extent(0), " (lora_A ",
           io::shape_string(std::vector<index_t>{l.a.extent(0), l.a.extent(1)}), ", lora_B ",
           io::shape_string(std::vector<index_t>{l.b.extent(0), l.b.extent(1)}),
           "), adapter_config.json says ", rank);
    l.scale = static_cast<float>(rslora ? a / std::sqrt(rank) : a / rank);
    set.weights.emplace(module + ".weight", std::move(l));
  }
  if (set.weights.empty()) fail(runner, ": adapter '", set.label, "' holds no LoRA tensors");
  return set;
}

}  // namespace dsk_examples
