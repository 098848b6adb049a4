#include "dsk/core/packed_int4.hpp"

#include <vector>

#include <catch2/catch.hpp>

TEST_CASE("packed int4 views round-trip every value, odd widths and padded rows", "[int4]") {
  for (dsk::index_t cols : {1, 2, 7, 8, 33}) {
    const dsk::index_t stride = dsk::packed_int4_view<dsk::int4x2>::row_bytes(cols) + 3;
    std::vector<dsk::int4x2> buf(static_cast<std::size_t>(5 * stride));
    const dsk::packed_int4_view<dsk::int4x2> v(buf.data(), 5, cols, stride);
    auto value = [](dsk::index_t i, dsk::index_t j) { return static_cast<int>((i * 7 + j * 3) % 16) - 8; };
    for (dsk::index_t i = 0; i < 5; ++i)
      for (dsk::index_t j = 0; j < cols; ++j) v.set(i, j, value(i, j));
    const dsk::packed_int4_view<const dsk::int4x2> cv = v;
    for (dsk::index_t i = 0; i < 5; ++i)
      for (dsk::index_t j = 0; j < cols; ++j) {
        REQUIRE(cv.get(i, j) == value(i, j));
        // documented nibble order: element j in byte j/2, low nibble when j is even
        const auto byte = buf[static_cast<std::size_t>(i * stride + j / 2)];
        REQUIRE(((j % 2 == 0) ? byte.lo() : byte.hi()) == value(i, j));
      }
  }
  std::vector<dsk::int4x2> buf(1);
  const dsk::packed_int4_view<dsk::int4x2> v(buf.data(), 1, 2);
  v.set(0, 0, -8);
  v.set(0, 1, 7);
  REQUIRE(buf[0].bits == 0x78);
  REQUIRE_THROWS_WITH(v.set(0, 0, 8), Catch::Contains("expected a value in [-8, 7], got 8"));
  REQUIRE_THROWS_WITH(v.set(0, 1, -9), Catch::Contains("got -9"));
  REQUIRE_THROWS_WITH((dsk::packed_int4_view<dsk::int4x2>(buf.data(), 2, 8, 3)),
                      Catch::Contains("'row_stride_bytes': expected >= 4 for 8 columns, got 3"));
#if DSK_CHECKED
  REQUIRE_THROWS_WITH(v.get(0, 2), Catch::Contains("out of range"));
#endif
}
