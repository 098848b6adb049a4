#include "dsk/core/view.hpp"

#include <numeric>
#include <vector>

#include <catch2/catch.hpp>

TEST_CASE("views index, convert and slice", "[view]") {
  std::vector<float> data(24);
  std::iota(data.begin(), data.end(), 0.0f);
  const dsk::dense_view<float, 3> v(data.data(), 2, 3, 4);
  REQUIRE(v.rank() == 3);
  REQUIRE(v.size() == 24);
  REQUIRE(v(1, 2, 3) == 23.0f);
  v(0, 0, 1) = 42.0f;
  REQUIRE(data[1] == 42.0f);

  // mutable -> const, dense -> strided: implicit; the reverse is not.
  const dsk::view<const float, 3> cv = v;
  REQUIRE(cv(1, 2, 3) == 23.0f);
  STATIC_REQUIRE(std::is_convertible_v<dsk::dense_view<float, 2>, dsk::view<const float, 2>>);
  STATIC_REQUIRE(!std::is_convertible_v<dsk::view<const float, 2>, dsk::view<float, 2>>);
  STATIC_REQUIRE(!std::is_convertible_v<dsk::view<float, 2>, dsk::dense_view<float, 2>>);
  STATIC_REQUIRE(std::is_same_v<decltype(cv(0, 0, 0)), const float&>);

  const auto row = v[1];  // rank 2, strided
  REQUIRE(row.rank() == 2);
  REQUIRE(row(0, 0) == 12.0f);
  const auto s = v.slice(2, 1, 3);  // columns 1..2 of every row
  REQUIRE(s.extent(2) == 2);
  REQUIRE(s(1, 2, 1) == 22.0f);
  REQUIRE(!s.is_contiguous());
  REQUIRE_THROWS_WITH(v.slice(2, 2, 5), Catch::Contains("0 <= begin <= end <= 4, got [2, 5)"));

  const dsk::mdview<float, dsk::extents<2, 12>> st(data.data());
  REQUIRE(st(1, 11) == 23.0f);
}

TEST_CASE("a strided view of a padded matrix", "[view]") {
  std::vector<int> data(3 * 8, -1);
  const dsk::view<int, 2> m(data.data(), dsk::dims<2>(3, 5), {8, 1});
  for (dsk::index_t i = 0; i < 3; ++i)
    for (dsk::index_t j = 0; j < 5; ++j) m(i, j) = static_cast<int>(10 * i + j);
  REQUIRE(data[8 * 2 + 4] == 24);
  REQUIRE(data[5] == -1);  // padding untouched
  REQUIRE(m.required_span_size() == 21);
  REQUIRE(dsk::row_ptr(m, 2) == data.data() + 16);
}

#if DSK_CHECKED
TEST_CASE("checked builds bounds-check element access", "[view]") {
  std::vector<float> data(6);
  const dsk::dense_view<float, 2> v(data.data(), 2, 3);
  REQUIRE_THROWS_WITH(v(2, 0), Catch::Contains("index 2 out of range [0, 2) in dimension 0"));
  REQUIRE_THROWS_WITH(v(0, -1), Catch::Contains("index -1 out of range [0, 3) in dimension 1"));
  REQUIRE_THROWS_AS(v[5], dsk::error);
}
#endif
