#include "dsk/core/extents.hpp"

#include <catch2/catch.hpp>

TEST_CASE("extents mix static and dynamic dimensions", "[extents]") {
  using E = dsk::extents<4, dsk::dynamic_extent, 3>;
  STATIC_REQUIRE(E::rank() == 3);
  STATIC_REQUIRE(E::rank_dynamic() == 1);
  STATIC_REQUIRE(E::static_extent(0) == 4);
  STATIC_REQUIRE(E::static_extent(1) == dsk::dynamic_extent);

  const E e(5);  // the dynamic extents only
  REQUIRE(e.extent(0) == 4);
  REQUIRE(e.extent(1) == 5);
  REQUIRE(e.extent(2) == 3);
  REQUIRE(e.size() == 60);
  REQUIRE(E(4, 5, 3) == e);  // all extents, static ones checked
  REQUIRE_THROWS_WITH(E(4, 5, 2), Catch::Contains("dimension 2 is static with extent 3, got 2"));
  REQUIRE_THROWS_WITH(E(-1), Catch::Contains("dimension 1 must be >= 0, got -1"));

  constexpr dsk::extents<2, 3> s;
  STATIC_REQUIRE(s.size() == 6);
}

TEST_CASE("dims<R> is all-dynamic and converts from static extents", "[extents]") {
  STATIC_REQUIRE(dsk::dims<3>::rank_dynamic() == 3);
  const dsk::dims<2> d = dsk::extents<2, 3>{};  // implicit: nothing to check
  REQUIRE(d.extent(0) == 2);
  REQUIRE(d.extent(1) == 3);
  const auto back = dsk::extents<2, 3>(d);  // explicit: checked
  REQUIRE(back == d);
  REQUIRE_THROWS_AS((dsk::extents<2, 4>(d)), dsk::error);
  REQUIRE(dsk::dims<2>(0, 7).size() == 0);
  STATIC_REQUIRE(!std::is_convertible_v<dsk::dims<2>, dsk::extents<2, 3>>);
}
