#include "dsk/core/format.hpp"

#include <catch2/catch.hpp>

TEST_CASE("fmt formatters", "[format]") {
  REQUIRE(fmt::format("{}", dsk::bf16(1.5f)) == "1.5");
  REQUIRE(fmt::format("{:.2f}", dsk::f16(0.25f)) == "0.25");
  REQUIRE(fmt::format("{}", dsk::int4x2::pack(-8, 7)) == "(-8, 7)");
  REQUIRE(fmt::format("{}", dsk::dtype::bf16) == "bf16");
  REQUIRE(fmt::format("{}", dsk::extents<2, dsk::dynamic_extent>(5)) == "[2, 5]");
  dsk::tensor<float, 2> t(2, 3);
  t(1, 2) = 4.5f;
  REQUIRE(fmt::format("{}", t) == "[[0, 0, 0], [0, 0, 4.5]]");
  dsk::tensor<int, 1> long_row(20);
  long_row(19) = 9;
  REQUIRE(fmt::format("{}", long_row) == "[0, 0, 0, 0, 0, 0, 0, 0, ..., 9]");
}
