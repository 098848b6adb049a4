// The DeepSeek-Lite int4 model: a Lite checkpoint (docs/models.md, "Lite safetensors layout") run by dsk_v2's
// model code with its structure: stored block b as logical layers b*r .. b*r + r - 1, the head tied to the
// embedding, and every int4 weight viewed in the memory-mapped file (quant::qweight_view; no conversion, no
// copy: resident memory grows with the pages a token touches). kv_b_proj is dequantized to f32 at load
// (MLA reads it per head); norms and router gates are the file's f16, widened to f32.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/int4_layout.hpp"
#include "config.hpp"
#include "convert.hpp"
#include "presets.hpp"
#include "v2/model.hpp"

namespace dsk_lite {

// act: the int4 products' activations (f32: weight-only; int8: W4A8).
inline dsk_v2::model load(const fs::path& dir, dsk_v2::load_options opts = {},
                          dsk::quant::activations act = dsk::quant::activations::f32) {
  lite_config c = read_config(dir);
  c.structure.activations = act;
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

// Writes preset p's Lite layout on deterministic random weights straight to a safetensors file (no float
// stage, so that lite_card's 2.8 GB takes seconds): uniform codes in [-7, 7] (std 4.32) with f16 scales
// 0.02 / 4.32 x U[0.5, 1.5) per row (weights of std ~0.02, like dsk_v2's initialiser), f16 norms of 1 and
// f16 router gates ~ N(0, 0.02). Per output channel (quant_group 0) or groups of p.quant_group.
inline void write_random_checkpoint(const preset& p, const fs::path& path, std::uint64_t seed) {
  using namespace dsk;
  io::safetensors_writer w;
  std::uint64_t state = seed;
  auto next = [&] {  // splitmix64
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  // A random byte -> two codes in [-7, 7]: nibble values 0..14 are codes -7..7, 15 becomes 0.
  std::array<std::uint8_t, 256> pack{};
  for (int b = 0; b < 256; ++b) {
    auto code = [](int n) { return n == 15 ? 0 : n - 7; };
    pack[static_cast<std::size_t>(b)] =
        static_cast<std::uint8_t>((code(b & 15) & 15) | ((code(b >> 4) & 15) << 4));
  }
  std::vector<std::byte> buf;
  auto int4 = [&](const std::string& base, index_t n, index_t k) {
    const index_t row = (k + 1) / 2,
                  groups = p.quant_group == 0 ? 1 : (k + p.quant_group - 1) / p.quant_group;
    buf.resize(static_cast<std::size_t>(n * row));
    for (std::size_t i = 0; i < buf.size(); i += 8) {
      std::uint64_t r = next();
      for (std::size_t j = i; j < std::min(buf.size(), i + 8); ++j, r >>= 8)
        buf[j] = static_cast<std::byte>(pack[r & 255]);
    }
    if (k % 2)  // the pad nibble of odd rows is zero
      for (index_t i = 0; i < n; ++i) buf[static_cast<std::size_t>(i * row + row - 1)] &= std::byte{0x0F};
    w.add(base + ".qweight", io::st_dtype::U8, {n, row}, buf);
    std::vector<f16> sc(static_cast<std::size_t>(n * groups));
    for (auto& v : sc) v = f16(0.02f / 4.32f * (0.5f + static_cast<float>(next() >> 40) * 0x1p-24f));
    w.add(base + ".scales", io::st_dtype::F16, {n, groups},
          std::span(reinterpret_cast<const std::byte*>(sc.data()), 2 * sc.size()));
  };
  auto f16_tensor = [&](const std::string& name, std::vector<index_t> shape, bool ones) {
    std::int64_t count = 1;
    for (auto e : shape) count *= e;
    std::vector<f16> v(static_cast<std::size_t>(count), f16(1.0f));
    if (!ones)
      for (std::size_t i = 0; i < v.size(); i += 2) {  // Box-Muller, std 0.02
        const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1p-53, u2 = (next() >> 11) * 0x1p-53;
        const double r = std::sqrt(-2.0 * std::log(u1)) * 0.02;
        v[i] = f16(static_cast<float>(r * std::cos(2 * M_PI * u2)));
        if (i + 1 < v.size()) v[i + 1] = f16(static_cast<float>(r * std::sin(2 * M_PI * u2)));
      }
    w.add(name, io::st_dtype::F16, std::move(shape),
          std::span(reinterpret_cast<const std::byte*>(v.data()), 2 * v.size()));
  };
  using kind = dsk_v2::model::tensor_kind;
  dsk_v2::model::for_each_checkpoint_tensor(to_v2_preset(p, true), false,
                                            [&](const std::string& name, index_t r, index_t c, kind k) {
                                              if (k == kind::matrix)
                                                int4(base_name(name), r, c);
                                              else if (k == kind::router_gate)
                                                f16_tensor(name, {r, c}, false);
                                              else
                                                f16_tensor(name, {r}, true);
                                            });
  w.set_metadata("format", "dsk-lite");
  w.write(path);
}

// The model's structure for a preset.
inline dsk_v2::structure structure_of(const preset& p,
                                      dsk::quant::activations act = dsk::quant::activations::f32) {
  dsk_v2::structure st;
  st.activations = act;
  st.share_repeats = p.share_repeats;
  st.tied_head = true;
  st.int4_layout = dsk::quant::format{dsk::quant::qtype::int4, p.quant_group, dsk::quant::scale_type::f16,
                                      p.full8 ? dsk::quant::int4_range::full8 : dsk::quant::int4_range::sym7};
  return st;
}

// Preset p on deterministic random int4 weights (write_random_checkpoint), loaded from a temporary file like
// a checkpoint (the file is removed; the mapping keeps its pages).
inline dsk_v2::model random(const preset& p, dsk::quant::activations act = dsk::quant::activations::f32,
                            std::uint64_t seed = 20261203) {
  return dsk_v2::model(
      dsk_v2::to_config(to_v2_preset(p, false)),
      dsk_examples::temporary_checkpoint(
          "dsk_lite", seed, [&](const fs::path& path) { write_random_checkpoint(p, path, seed); }),
      dsk_v2::weight_format::checkpoint, {}, structure_of(p, act));
}

}  // namespace dsk_lite
