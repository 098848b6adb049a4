// quant/format.hpp: ranges and divisors of each format, shapes, the device-safe rounding helpers against the
// C library, and the packed int4 byte layout read through qweight_view (byte by byte, as drawn in
// docs/quantization.md).
#include "dsk/quant/format.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "support/compare.hpp"

using namespace dsk::quant;

TEST_CASE("quant format: code ranges, divisors and shapes", "[quant][format]") {
  constexpr format i8{qtype::int8}, i4{qtype::int4}, i4f{qtype::int4, 0, scale_type::f32, int4_range::full8};
  STATIC_REQUIRE(qmin(i8) == -127);
  STATIC_REQUIRE(qmax(i8) == 127);
  STATIC_REQUIRE(divisor(i8) == 127.0f);
  STATIC_REQUIRE(qmin(i4) == -7);
  STATIC_REQUIRE(qmax(i4) == 7);
  STATIC_REQUIRE(divisor(i4) == 7.0f);
  STATIC_REQUIRE(qmin(i4f) == -8);
  STATIC_REQUIRE(qmax(i4f) == 7);
  STATIC_REQUIRE(divisor(i4f) == 8.0f);
  constexpr format g32{qtype::int4, 32};
  STATIC_REQUIRE(groups_per_row(g32, 0) == 0);
  STATIC_REQUIRE(groups_per_row(g32, 1) == 1);
  STATIC_REQUIRE(groups_per_row(g32, 32) == 1);
  STATIC_REQUIRE(groups_per_row(g32, 33) == 2);
  STATIC_REQUIRE(groups_per_row(i8, 1000) == 1);
  STATIC_REQUIRE(group_span(i8, 1000) == 1000);
  STATIC_REQUIRE(code_row_bytes(i4, 7) == 4);
  STATIC_REQUIRE(code_row_bytes(i8, 7) == 7);
  STATIC_REQUIRE(sizeof(scale_t<int4_g128_f16>) == 2);
  STATIC_REQUIRE(std::is_same_v<code_t<int4_g128_f16>, dsk::int4x2>);
  STATIC_REQUIRE(clip_ratio(0) == 1.0f);
  STATIC_REQUIRE(valid_format<int4_g128_f16>);
  STATIC_REQUIRE(!valid_format<format{qtype::int4, 16}>);
}

TEST_CASE("quant format: device-safe rounding helpers equal nearbyint and round", "[quant][format]") {
  std::vector<float> v = dsk::test::random_floats(4000, 7, -300.0f, 300.0f);
  for (int i = -300; i <= 300; ++i) v.push_back(static_cast<float>(i) + 0.5f);  // exact ties
  for (float x : {0.0f, -0.0f, 0.49999997f, -0.49999997f, 8388607.5f, 8388608.0f, -8388609.0f, 1e30f, -1e30f,
                  1e-40f, 4194303.5f, 4194304.5f})
    v.push_back(x);
  for (float x : v) {
    INFO(x);
    REQUIRE(round_half_even(x) == std::nearbyint(x));
    REQUIRE(round_half_away(x) == std::round(x));
  }
}

TEST_CASE("quant format: int4 codes read through qweight_view follow the int4x2 byte layout",
          "[quant][format]") {
  // Row 0: bytes 0x78 0xF1 0x08 -> codes -8, 7, 1, -1, -8, 0; row 1 (K = 5 of 6 nibbles): 0x21 0x43 0x05.
  const std::uint8_t bytes[] = {0x78, 0xF1, 0x08, 0x21, 0x43, 0x05};
  const float scales[] = {1.0f, 2.0f};
  qweight_view<int4_per_channel> v{reinterpret_cast<const dsk::int4x2*>(bytes), scales, 2, 5, 3, 1};
  const int want0[] = {-8, 7, 1, -1, -8}, want1[] = {1, 2, 3, 4, 5};
  for (int j = 0; j < 5; ++j) {
    REQUIRE(v.code(0, j) == want0[j]);
    REQUIRE(v.code(1, j) == want1[j]);
    // Same decoding as the canonical int4x2 type.
    REQUIRE(v.code(0, j) == dsk::int4x2{bytes[j / 2]}.get(j & 1));
  }
  REQUIRE(v.scale(1, 0) == 2.0f);
  const std::int8_t b8[] = {-127, 127, 0, 5};
  qweight_view<int8_per_channel> w{b8, scales, 2, 2, 2, 1};
  REQUIRE(w.code(0, 0) == -127);
  REQUIRE(w.code(0, 1) == 127);
  REQUIRE(w.code(1, 1) == 5);
}
