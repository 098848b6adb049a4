// DeepSeek-Lite checkpoint conversion: a float V2-family checkpoint (bf16 / f16 / f32 safetensors: a V2-Lite
// directory, or the float Lite form of tools/gen_lite_golden.py, whose blocks are stored once) into the Lite
// layout (docs/models.md, "DeepSeek-Lite"):
//   <name minus ".weight">.qweight  U8  [N, ceil(K / 2)]  int4 codes of W [N, K] (two's-complement nibbles,
//                                                         column 2j in the low nibble of byte j)
//   <name minus ".weight">.scales   F16 [N, groups]       one per row, or per run of `group` columns
//   1-D tensors (norms) and router gates (mlp.gate.weight)  F16, under their own names
//   config.json: the source's, plus "share_repeats" and a "quantization" block naming the format.
// The codes are quant::quantize's (abs-max or MSE clipping search), rounded with the stored f16 scales, so a
// loader can map them and run quant::matmul on them as they are.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/int4_layout.hpp"
#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/quant/quantize.hpp"

namespace dsk_lite {

using namespace dsk;
namespace fs = std::filesystem;

struct convert_options {
  quant::int4_range range = quant::int4_range::sym7;
  int group = 0;  // 0 (per output channel), 32, 64 or 128
  quant::range_method method = quant::range_method::absmax;
  index_t share_repeats = 0;  // 0: the source config's "share_repeats" (1 when it has none)
};

struct convert_stats {
  std::int64_t quantized_params = 0;  // elements of the int4 matrices
  std::int64_t code_bytes = 0, scale_bytes = 0;
  std::int64_t f16_params = 0;  // norms and router gates
  std::int64_t tensors_quantized = 0, tensors_f16 = 0;
  std::int64_t int4_bytes() const { return code_bytes + scale_bytes; }
  std::int64_t file_bytes() const { return int4_bytes() + 2 * f16_params; }
  std::int64_t params() const { return quantized_params + f16_params; }
  // Storage bits per weight over every weight (scales and the f16 tensors included), and the size of the
  // same weights in bf16 / f32 over the Lite size.
  double bits_per_weight() const { return params() ? 8.0 * double(file_bytes()) / double(params()) : 0.0; }
  double compression_vs_bf16() const {
    return file_bytes() ? 2.0 * double(params()) / double(file_bytes()) : 0;
  }
  double compression_vs_f32() const {
    return file_bytes() ? 4.0 * double(params()) / double(file_bytes()) : 0;
  }
};

inline quant::range_method parse_method(std::string_view s) {
  if (s == "absmax") return quant::range_method::absmax;
  if (s == "mse") return quant::range_method::mse;
  throw unsupported("dsk_lite_convert: --clip '" + std::string(s) +
                    "' is not supported; choices: absmax, mse");
}
inline quant::int4_range parse_range(std::string_view s) {
  if (s == "sym7") return quant::int4_range::sym7;
  if (s == "full8") return quant::int4_range::full8;
  throw unsupported("dsk_lite_convert: --range '" + std::string(s) +
                    "' is not supported; choices: sym7, full8");
}

// Which tensors become int4: every 2-D tensor except the router gates (kept f16: routing is sensitive to them
// and they are small).
inline bool is_quantized_tensor(const std::string& name, std::size_t rank) {
  constexpr std::string_view gate = "mlp.gate.weight";
  const bool router =
      name.size() >= gate.size() && name.compare(name.size() - gate.size(), gate.size(), gate) == 0;
  return rank == 2 && !router;
}
using dsk_examples::base_name;

namespace detail {
template <quant::quantize_config C>
void add_quantized(io::safetensors_writer& out, const io::checkpoint& ck, const std::string& name,
                   convert_stats& st) {
  const auto& info = ck.info(name);
  const std::array<index_t, 2> shape{info.shape[0], info.shape[1]};
  quant::quantized_weight<C.fmt> q;
  switch (info.dtype) {
    case io::st_dtype::BF16:
      q = quant::quantize<C>(ck.view<bf16, 2>(name, shape));
      break;
    case io::st_dtype::F16:
      q = quant::quantize<C>(ck.view<f16, 2>(name, shape));
      break;
    case io::st_dtype::F32:
      q = quant::quantize<C>(ck.read<float, 2>(name, shape).cview());
      break;
    default:
      fail("dsk_lite_convert: tensor '", name, "' has dtype ", io::name(info.dtype),
           "; a float checkpoint (BF16, F16 or F32) was expected");
  }
  const std::string b = base_name(name);
  const index_t N = q.rows(), row = quant::code_row_bytes(C.fmt, q.cols());
  out.add(b + ".qweight", io::st_dtype::U8, {N, row},
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(q.codes()),
                                     static_cast<std::size_t>(q.code_bytes())));
  out.add(b + ".scales", io::st_dtype::F16, {N, q.groups()},
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(q.scales()),
                                     static_cast<std::size_t>(q.scale_bytes())));
  st.quantized_params += N * q.cols();
  st.code_bytes += q.code_bytes();
  st.scale_bytes += q.scale_bytes();
  ++st.tensors_quantized;
  ck.release(name);
}

// Calls f.template operator()<C>() with the compile-time quantize_config of the options.
template <class F>
void with_config(const convert_options& o, F&& f) {
  auto by_group = [&]<quant::int4_range R, quant::range_method M>() {
    constexpr auto cfg = [](int g) {
      return quant::quantize_config{.fmt = {quant::qtype::int4, g, quant::scale_type::f16, R}, .method = M};
    };
    switch (o.group) {
      case 0:
        return f.template operator()<cfg(0)>();
      case 32:
        return f.template operator()<cfg(32)>();
      case 64:
        return f.template operator()<cfg(64)>();
      case 128:
        return f.template operator()<cfg(128)>();
      default:
        throw unsupported("dsk_lite_convert: --group " + std::to_string(o.group) +
                          " is not supported; choices: 0 (per channel), 32, 64, 128");
    }
  };
  auto by_method = [&]<quant::int4_range R>() {
    if (o.method == quant::range_method::mse)
      by_group.template operator()<R, quant::range_method::mse>();
    else
      by_group.template operator()<R, quant::range_method::absmax>();
  };
  if (o.range == quant::int4_range::full8)
    by_method.template operator()<quant::int4_range::full8>();
  else
    by_method.template operator()<quant::int4_range::sym7>();
}
}  // namespace detail

// The "quantization" block of config.json for these options.
inline nlohmann::json quantization_block(const convert_options& o) {
  return {
      {"format", "int4"},
      {"range", o.range == quant::int4_range::full8 ? "full8" : "sym7"},
      {"group", o.group},
      {"scale_dtype", "f16"},
      {"method", o.method == quant::range_method::mse ? "mse" : "absmax"},
      {"packing", "two's-complement nibbles, column 2j in the low nibble of byte j, rows ceil(K/2) bytes"}};
}

// Converts the checkpoint directory src (config.json + safetensors) into dst (created): dst/config.json and
// dst/model.safetensors. Returns the sizes. Every tensor is converted one at a time (the writer keeps the
// converted bytes until the file is written: peak memory ~ the Lite size).
inline convert_stats convert(const fs::path& src, const fs::path& dst, const convert_options& o) {
  nlohmann::json cfg;
  {
    std::ifstream in(src / "config.json");
    if (!in) fail("dsk_lite_convert: cannot read '", (src / "config.json").string(), "'");
    cfg = nlohmann::json::parse(in, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object())
      fail("dsk_lite_convert: '", (src / "config.json").string(), "' is not a JSON object");
  }
  const io::checkpoint ck(src);
  convert_stats st;
  io::safetensors_writer out;
  detail::with_config(o, [&]<quant::quantize_config C>() {
    for (const auto& name : ck.names()) {
      const auto& info = ck.info(name);
      if (is_quantized_tensor(name, info.shape.size())) {
        detail::add_quantized<C>(out, ck, name, st);
        continue;
      }
      // Norms [n] and router gates [E, D] in f16.
      std::vector<float> v;
      if (info.shape.size() == 1) {
        const auto t = ck.read<float, 1>(name);
        v.assign(t.data(), t.data() + t.size());
      } else if (info.shape.size() == 2) {
        const auto t = ck.read<float, 2>(name);
        v.assign(t.data(), t.data() + t.size());
      } else {
        fail("dsk_lite_convert: tensor '", name, "' has shape ", io::shape_string(info.shape),
             "; a V2-family checkpoint holds only 1-D and 2-D tensors");
      }
      std::vector<f16> h(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) h[i] = f16(v[i]);
      out.add(name, io::st_dtype::F16, info.shape,
              std::span<const std::byte>(reinterpret_cast<const std::byte*>(h.data()), 2 * h.size()));
      ck.release(name);
      st.f16_params += static_cast<std::int64_t>(h.size());
      ++st.tensors_f16;
    }
  });
  const index_t r = o.share_repeats > 0 ? o.share_repeats : cfg.value("share_repeats", index_t{1});
  cfg["share_repeats"] = r;
  if (!ck.contains("lm_head.weight")) cfg["tie_word_embeddings"] = true;
  cfg["quantization"] = quantization_block(o);
  cfg["torch_dtype"] = "float16";
  fs::create_directories(dst);
  out.set_metadata("format", "dsk-lite");
  out.write(dst / "model.safetensors");
  std::ofstream c(dst / "config.json");
  c << cfg.dump(2) << "\n";
  if (!c) fail("dsk_lite_convert: cannot write '", (dst / "config.json").string(), "'");
  return st;
}

}  // namespace dsk_lite
