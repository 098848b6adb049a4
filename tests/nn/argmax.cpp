// nn::argmax against the reference: ties (first wins), NaN (wins), -inf, strided rows; shape errors.
#include "dsk/nn/argmax.hpp"

#include <limits>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"

#include "dsk/nn/ref.hpp"
#include "support/compare.hpp"

using dsk::index_t;

TEST_CASE("argmax returns the first index of the row maximum", "[nn][argmax]") {
  for (index_t n : {1, 2, 9, 1000}) {
    const index_t rows = 5;
    auto v = dsk::test::random_floats(std::size_t(rows * (n + 1)), std::uint64_t(n));
    const dsk::view<const float, 2> x(v.data(), dsk::dims<2>(rows, n), {n + 1, 1});
    dsk::tensor<index_t, 1> out(rows);
    dsk::nn::argmax(x, out);
    for (index_t r = 0; r < rows; ++r) REQUIRE(out(r) == dsk::nn::ref::argmax(&x(r, 0), n));
  }
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  float rows[4][4] = {{1, 3, 3, 2}, {-inf, -inf, -inf, -inf}, {1, nan, 5, nan}, {nan, 7, 1, 1}};
  dsk::tensor<index_t, 1> out(4);
  dsk::nn::argmax(dsk::view<const float, 2>(&rows[0][0], dsk::dims<2>(4, 4), {4, 1}), out);
  REQUIRE(out(0) == 1);
  REQUIRE(out(1) == 0);
  REQUIRE(out(2) == 1);
  REQUIRE(out(3) == 0);
}

TEST_CASE("argmax rejects empty rows and a wrong output length", "[nn][argmax][errors]") {
  dsk::tensor<float, 2> x(2, 0), x3(2, 3);
  dsk::tensor<index_t, 1> out(2), out3(3);
  REQUIRE_THROWS_WITH(dsk::nn::argmax(x, out), Catch::Contains("'x'"));
  REQUIRE_THROWS_WITH(dsk::nn::argmax(x3, out3), Catch::Contains("'out'"));
}
