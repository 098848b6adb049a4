// FP8 decoding (dsk::fp8_e4m3_to_float / fp8_e5m2_to_float) and DeepSeek-V3 block-scaled weights
// (io::read_fp8_block_scaled): every bit pattern against a closed-form decoding written here and against
// torch's float8 types (tools/gen_fp8_golden.py); the block dequantization against torch's
// weight.float() * scale; malformed FP8 tensors and scales give errors naming them.
#include "dsk/io/fp8.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "dsk/io/safetensors_writer.hpp"
#include "io_test_util.hpp"

using dsk::index_t;
using dsk::io::st_dtype;
using dsk::test::io_data;
using dsk::test::temp_dir;

namespace {

// Sign, exponent and mantissa fields by the formats' definitions (OCP FP8, 2023): a normal number is
// (-1)^s * 2^(e - bias) * (1 + m / 2^mbits), a subnormal (e = 0) (-1)^s * 2^(1 - bias) * (m / 2^mbits).
double closed_form(unsigned b, int ebits, int mbits, bool ieee_specials) {
  const int bias = (1 << (ebits - 1)) - 1;
  const unsigned s = b >> 7, e = (b >> mbits) & ((1u << ebits) - 1), m = b & ((1u << mbits) - 1);
  const double sign = s ? -1.0 : 1.0;
  if (ieee_specials && e == (1u << ebits) - 1)
    return m == 0 ? sign * std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (!ieee_specials && e == (1u << ebits) - 1 && m == (1u << mbits) - 1)
    return std::numeric_limits<double>::quiet_NaN();  // E4M3 "fn": only S.1111.111 is NaN, no infinities
  if (e == 0) return sign * std::ldexp(static_cast<double>(m), 1 - bias - mbits);
  return sign * std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -mbits), static_cast<int>(e) - bias);
}

nlohmann::json cases() {
  return dsk::io::parse_json(dsk::io::read_text_file(io_data("fp8_cases.json"), "golden"), "golden");
}

bool same(double want, float got) {
  if (std::isnan(want)) return std::isnan(got);
  return static_cast<double>(got) == want && std::signbit(got) == std::signbit(want);
}

double torch_value(const nlohmann::json& v) {
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (v.is_string()) return v.get<std::string>() == "inf" ? INFINITY : -INFINITY;
  return v.get<double>();
}

}  // namespace

TEST_CASE("io: FP8 E4M3 and E5M2 decode every bit pattern exactly", "[io][fp8]") {
  const auto g = cases();
  INFO("torch " << g.at("versions").at("torch").get<std::string>());
  for (unsigned b = 0; b < 256; ++b) {
    INFO("byte " << b);
    const auto u = static_cast<std::uint8_t>(b);
    const float e4 = dsk::fp8_e4m3_to_float(u), e5 = dsk::fp8_e5m2_to_float(u);
    CHECK(same(closed_form(b, 4, 3, false), e4));
    CHECK(same(closed_form(b, 5, 2, true), e5));
    CHECK(same(torch_value(g.at("e4m3").at(b)), e4));
    CHECK(same(torch_value(g.at("e5m2").at(b)), e5));
    CHECK(dsk::fp8_e4m3_is_nan(u) == std::isnan(e4));
    CHECK(dsk::fp8_e5m2_is_nan(u) == std::isnan(e5));
    CHECK(dsk::fp8_e5m2_is_nonfinite(u) == !std::isfinite(e5));
  }
  // The landmarks, by hand: E4M3 max 448 = 1.75 * 2^8, min subnormal 2^-9, 1.0 = 0x38; E5M2 max 57344 =
  // 1.75 * 2^15, min subnormal 2^-16, 1.0 = 0x3c, infinity 0x7c.
  CHECK(dsk::fp8_e4m3_to_float(0x7e) == 448.0f);
  CHECK(dsk::fp8_e4m3_to_float(0xfe) == -448.0f);
  CHECK(dsk::fp8_e4m3_to_float(0x01) == 0x1p-9f);
  CHECK(dsk::fp8_e4m3_to_float(0x38) == 1.0f);
  CHECK(std::isnan(dsk::fp8_e4m3_to_float(0x7f)));
  CHECK(std::signbit(dsk::fp8_e4m3_to_float(0x80)));
  CHECK(dsk::fp8_e5m2_to_float(0x7b) == 57344.0f);
  CHECK(dsk::fp8_e5m2_to_float(0x01) == 0x1p-16f);
  CHECK(dsk::fp8_e5m2_to_float(0x3c) == 1.0f);
  CHECK(dsk::fp8_e5m2_to_float(0xfc) == -INFINITY);
}

TEST_CASE("io: FP8 tensors written by torch read with their dtype names, unscaled and block-scaled",
          "[io][fp8]") {
  const auto g = cases();
  const dsk::io::safetensors_file f(io_data("st_fp8.safetensors"));
  CHECK(f.info("e4m3").dtype == st_dtype::F8_E4M3);
  CHECK(f.info("e5m2").dtype == st_dtype::F8_E5M2);
  const auto e4 = f.read<float, 2>("e4m3");
  const auto e5 = f.read<float, 2>("e5m2");
  for (index_t b = 0; b < 256; ++b) {
    INFO("byte " << b);
    CHECK(same(torch_value(g.at("e4m3").at(b)), e4(b / 16, b % 16)));
    CHECK(same(torch_value(g.at("e5m2").at(b)), e5(b / 16, b % 16)));
  }
  const auto& want = g.at("dequantized");
  const dsk::io::fp8_block_size block{g.at("block").at(0).get<index_t>(), g.at("block").at(1).get<index_t>()};
  const auto w = dsk::io::read_fp8_block_scaled<float>(f, "w.weight", {5, 7}, block);
  const auto wb = dsk::io::read_fp8_block_scaled<dsk::bf16>(f, "w.weight", {5, 7}, block);
  for (index_t r = 0; r < 5; ++r)
    for (index_t c = 0; c < 7; ++c) {
      INFO(r << ", " << c);
      const float t = want.at(r).at(c).get<float>();
      CHECK(w(r, c) == t);                        // the same f32 product as torch's
      CHECK(wb(r, c).bits == dsk::bf16(t).bits);  // rounded once
    }
}

namespace {
// A weight [R, C] of E4M3 codes with scales [sr, sc] written by dsk's writer (scale dtype, NaN code
// optional).
std::filesystem::path write_fp8(const temp_dir& d, index_t R, index_t C, index_t sr, index_t sc,
                                st_dtype scale_dtype = st_dtype::F32, bool with_scales = true,
                                std::uint8_t first_code = 0x38, float first_scale = 0.5f) {
  dsk::io::safetensors_writer wr;
  std::vector<std::byte> codes(static_cast<std::size_t>(R * C));
  for (std::size_t i = 0; i < codes.size(); ++i)
    codes[i] = std::byte(static_cast<std::uint8_t>((i * 37) % 0x7e));
  codes[0] = std::byte(first_code);
  wr.add("x.weight", st_dtype::F8_E4M3, {R, C}, codes);
  if (with_scales) {
    std::vector<float> s(static_cast<std::size_t>(sr * sc), 0.25f);
    s[0] = first_scale;
    std::vector<std::byte> sb(s.size() * 4);
    std::memcpy(sb.data(), s.data(), sb.size());
    if (scale_dtype == st_dtype::F32)
      wr.add("x.weight_scale_inv", st_dtype::F32, {sr, sc}, sb);
    else
      wr.add("x.weight_scale_inv", scale_dtype, {sr, sc}, std::vector<std::byte>(s.size(), std::byte{1}));
  }
  wr.add("plain", st_dtype::F32, {1, 1}, std::vector<std::byte>(4));
  const auto p = d / "fp8.safetensors";
  wr.write(p);
  return p;
}
}  // namespace

TEST_CASE("io: block-scaled FP8 dequantization by hand, partial edge blocks", "[io][fp8]") {
  const temp_dir d;
  // R = 5, C = 7 with 2 x 3 blocks: the last block row has one row, the last block column one column.
  const dsk::io::safetensors_file f(write_fp8(d, 5, 7, 3, 3));
  const auto w = dsk::io::read_fp8_block_scaled<float>(f, "x.weight", {5, 7}, {2, 3});
  const auto codes = f.bytes("x.weight");
  for (index_t r = 0; r < 5; ++r)
    for (index_t c = 0; c < 7; ++c) {
      const auto b = static_cast<unsigned>(codes[static_cast<std::size_t>(r * 7 + c)]);
      const double s = (r < 2 && c < 3) ? 0.5 : 0.25;  // only block (0, 0) has scale 0.5
      CHECK(w(r, c) == static_cast<float>(closed_form(b, 4, 3, false) * s));
    }
  CHECK(w(0, 0) == 0.5f);  // code 0x38 = 1.0
}

TEST_CASE("io: malformed block-scaled FP8 weights are named errors", "[io][fp8]") {
  using Catch::Matchers::Contains;
  const temp_dir d;
  auto read = [&](const std::filesystem::path& p, std::array<index_t, 2> shape,
                  std::string_view name = "x.weight", dsk::io::fp8_block_size b = {2, 3}) {
    const dsk::io::safetensors_file f(p);
    (void)dsk::io::read_fp8_block_scaled<float>(f, name, shape, b);
  };
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 2), {5, 7}),
                    Contains("'x.weight_scale_inv'") && Contains("have shape [3, 2], expected [3, 3]"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3, st_dtype::F32, false), {5, 7}),
                    Contains("has no inverse scales 'x.weight_scale_inv'"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3, st_dtype::I8), {5, 7}),
                    Contains("have dtype I8, expected F32"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3), {7, 5}), Contains("has shape [5, 7], expected [7, 5]"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3), {1, 1}, "plain"),
                    Contains("'plain'") && Contains("has dtype F32, expected F8_E4M3 or F8_E5M2"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3, st_dtype::F32, true, 0x7f), {5, 7}),
                    Contains("element [0, 0] is NaN (code 0x7f)"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3, st_dtype::F32, true, 0x38, INFINITY), {5, 7}),
                    Contains("element [0, 0] = inf is not finite"));
  CHECK_THROWS_WITH(read(write_fp8(d, 5, 7, 3, 3), {5, 7}, "x.weight", {0, 3}),
                    Contains("expected positive rows and columns"));
}
