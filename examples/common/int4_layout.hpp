// Reading the DeepSeek-Lite int4 layout (docs/models.md, "Lite safetensors layout") without conversion: the
// "quantization" block of config.json parsed into a quant::format, and each weight's packed codes and f16
// scales viewed in place in the memory-mapped checkpoint as a quant::qweight_view (what quant::matmul reads).
// The loader of examples/common (runner.hpp) builds dsk_v2's model on these views for a Lite checkpoint.
// Every mismatch (missing codes or scales, wrong code size, scale count, dtype, unknown format) is a
// dsk::error naming the tensor or field and what was expected.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "dsk/core.hpp"
#include "dsk/io/io.hpp"
#include "dsk/quant/format.hpp"

#include <type_traits>

namespace dsk_examples {

// The storage format named by config.json's "quantization" block (file: for messages).
inline dsk::quant::format parse_quantization(const nlohmann::json& cfg, const std::string& file) {
  using namespace dsk;
  if (!cfg.contains("quantization") || !cfg.at("quantization").is_object())
    fail("dsk_lite: '", file,
         "' has no \"quantization\" object: not a Lite int4 checkpoint (dsk_lite_convert "
         "makes one from a float checkpoint)");
  const auto& q = cfg.at("quantization");
  auto str = [&](const char* k, const char* def) {
    if (!q.contains(k)) return std::string(def);
    if (!q.at(k).is_string())
      fail("dsk_lite: '", file, "': quantization.", k, " must be a string, got ", q.at(k).dump());
    return q.at(k).get<std::string>();
  };
  const std::string f = str("format", "");
  if (f != "int4")
    fail("dsk_lite: '", file, "': quantization.format = \"", f, "\" is not supported; expected \"int4\"");
  const std::string r = str("range", "sym7");
  if (r != "sym7" && r != "full8")
    fail("dsk_lite: '", file, "': quantization.range = \"", r, "\" is not supported; expected sym7 or full8");
  const std::string s = str("scale_dtype", "f16");
  if (s != "f16") fail("dsk_lite: '", file, "': quantization.scale_dtype = \"", s, "\"; expected f16");
  int g = 0;
  if (q.contains("group")) {
    if (!q.at("group").is_number_integer())
      fail("dsk_lite: '", file, "': quantization.group must be an integer, got ", q.at("group").dump());
    g = q.at("group").get<int>();
  }
  if (g != 0 && g != 32 && g != 64 && g != 128)
    fail("dsk_lite: '", file, "': quantization.group = ", g,
         " is not supported; expected 0 (per channel), 32, "
         "64 or 128");
  return {quant::qtype::int4, g, quant::scale_type::f16,
          r == "full8" ? quant::int4_range::full8 : quant::int4_range::sym7};
}

// "X.weight" -> "X": the base of a weight's .qweight / .scales tensors in the Lite layout.
inline std::string base_name(const std::string& name) {
  constexpr std::string_view w = ".weight";
  if (name.size() > w.size() && name.compare(name.size() - w.size(), w.size(), w) == 0)
    return name.substr(0, name.size() - w.size());
  return name;
}

// The int4 formats a Lite checkpoint's weights run in (each instantiates the MoE and linear products): f16
// scales per output channel (dsk_lite_convert's default) or per group of 128. The range (sym7 / full8) only
// matters while quantizing: the products read any two's-complement nibble, so both run as the sym7 type.
inline constexpr dsk::quant::format int4_layout_formats[] = {
    {dsk::quant::qtype::int4, 0, dsk::quant::scale_type::f16, dsk::quant::int4_range::sym7},
    {dsk::quant::qtype::int4, 128, dsk::quant::scale_type::f16, dsk::quant::int4_range::sym7}};

// Calls fn(std::integral_constant<quant::format, F>{}) with the compiled format F that runs f; anything else
// is dsk::unsupported naming the group and the compiled choices.
template <class Fn>
decltype(auto) with_int4_format(dsk::quant::format f, Fn&& fn) {
  using namespace dsk;
  f.range = quant::int4_range::sym7;
  if (f == int4_layout_formats[0]) return fn(std::integral_constant<quant::format, int4_layout_formats[0]>{});
  if (f == int4_layout_formats[1]) return fn(std::integral_constant<quant::format, int4_layout_formats[1]>{});
  throw unsupported("dsk_lite: the checkpoint's quantization (int4, group " + std::to_string(f.group) +
                    ", f16 scales) is not compiled into the model; compiled: group 0 (per channel) and 128 "
                    "(dsk_lite_convert --group 0 or 128)");
}

// W [rows, cols] of format F, stored as <base>.qweight and <base>.scales: viewed in the mapping, not copied.
template <dsk::quant::format F>
dsk::quant::qweight_view<F> int4_weight(const dsk::io::checkpoint& ck, const std::string& base,
                                        dsk::index_t rows, dsk::index_t cols) {
  using namespace dsk;
  static_assert(F.type == quant::qtype::int4 && F.scale == quant::scale_type::f16);
  const std::string qn = base + ".qweight", sn = base + ".scales";
  if (!ck.contains(qn))
    fail("dsk_lite: checkpoint '", ck.label(), "' has no '", qn, "' (the int4 codes of ", base, ", U8 [",
         rows, ", ", (cols + 1) / 2, "])");
  if (!ck.contains(sn))
    fail("dsk_lite: checkpoint '", ck.label(), "' has '", qn, "' but no '", sn, "' (its f16 scales, [", rows,
         ", ", quant::groups_per_row(F, cols), "])");
  const auto codes = ck.int4_view(qn, rows, cols);  // checks dtype U8 / I8 and [rows, ceil(cols / 2)]
  const auto& si = ck.info(sn);
  const index_t G = quant::groups_per_row(F, cols);
  if (si.dtype != io::st_dtype::F16)
    fail("dsk_lite: tensor '", sn, "' in '", ck.label(), "' has dtype ", io::name(si.dtype),
         "; expected F16 scales");
  if (si.shape != std::vector<index_t>{rows, G})
    fail("dsk_lite: tensor '", sn, "' in '", ck.label(), "' has shape ", io::shape_string(si.shape), " (",
         si.shape.empty() ? 0 : si.shape.back(), " scales per row); the config's format (group ", F.group,
         ") over ", cols, " columns needs [", rows, ", ", G, "]");
  const auto sb = ck.bytes(sn);
  if (reinterpret_cast<std::uintptr_t>(sb.data()) % alignof(f16) != 0)
    fail("dsk_lite: tensor '", sn, "' in '", ck.label(), "' is not 2-byte aligned in the file");
  return {reinterpret_cast<const quant::code_t<F>*>(codes.data()),
          reinterpret_cast<const f16*>(sb.data()),
          rows,
          cols,
          quant::code_row_bytes(F, cols),
          G};
}

}  // namespace dsk_examples
