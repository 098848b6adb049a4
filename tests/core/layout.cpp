#include "dsk/core/layout.hpp"

#include <catch2/catch.hpp>

TEST_CASE("layout_right is row-major and contiguous", "[layout]") {
  const dsk::layout_right::mapping<dsk::dims<3>> m(dsk::dims<3>(2, 3, 4));
  REQUIRE(m.stride(0) == 12);
  REQUIRE(m.stride(1) == 4);
  REQUIRE(m.stride(2) == 1);
  REQUIRE(m(1, 2, 3) == 23);
  REQUIRE(m.required_span_size() == 24);
  REQUIRE(m.is_contiguous());
}

TEST_CASE("layout_stride takes any non-negative strides", "[layout]") {
  using M = dsk::layout_stride::mapping<dsk::dims<2>>;
  const M padded(dsk::dims<2>(3, 5), {8, 1});  // rows of 5 with a row stride of 8
  REQUIRE(padded(2, 4) == 20);
  REQUIRE(padded.required_span_size() == 21);
  REQUIRE(!padded.is_contiguous());
  const M transposed(dsk::dims<2>(5, 3), {1, 5});
  REQUIRE(transposed(4, 2) == 14);
  REQUIRE(M(dsk::dims<2>(0, 3), {3, 1}).required_span_size() == 0);
  REQUIRE(M(dsk::dims<2>(1, 3), {100, 1}).is_contiguous());  // a single row: the row stride is irrelevant
  REQUIRE_THROWS_WITH(M(dsk::dims<2>(2, 2), {-1, 1}), Catch::Contains("stride(0) must be >= 0, got -1"));
  const M from_right = dsk::layout_right::mapping<dsk::dims<2>>(dsk::dims<2>(4, 6));
  REQUIRE(from_right.stride(0) == 6);
  REQUIRE(from_right.is_contiguous());
}
