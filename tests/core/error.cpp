#include "dsk/core/error.hpp"

#include <vector>

#include <catch2/catch.hpp>

#include "dsk/core/view.hpp"

TEST_CASE("contract messages name the kernel, the argument and the expectation", "[error]") {
  std::vector<float> buf(64);
  const dsk::dense_view<const float, 2> x(buf.data(), 4, 8), w(buf.data(), 3, 7);
  const dsk::contract c{"gemm::matmul"};
  REQUIRE_NOTHROW(c.extent("x", x, 1, 8, "K"));
  REQUIRE_THROWS_WITH(c.extent("w", w, 1, x.extent(1), "x.extent(1)"),
                      "gemm::matmul: argument 'w': extent(1) must be 8 (x.extent(1)), got 7 (shape [3, 7])");
  REQUIRE_THROWS_WITH(c.require(false, "k", "k <= E = 4", 6),
                      "gemm::matmul: argument 'k': expected k <= E = 4, got 6");
  REQUIRE_THROWS_WITH(c.in_range("group", 3, 1, 2),
                      "gemm::matmul: argument 'group': expected a value in [1, 2], got 3");
  const dsk::view<const float, 2> cols(buf.data(), dsk::dims<2>(4, 4), {1, 4});
  REQUIRE_THROWS_WITH(c.unit_inner_stride("x", cols),
                      Catch::Contains("expected a unit inner stride, got stride 4"));
  REQUIRE_THROWS_AS(c.require(false, "a", "b"), dsk::error);
  REQUIRE_THROWS_AS(dsk::fail_unsupported("nope"), dsk::unsupported);
  STATIC_REQUIRE(std::is_base_of_v<std::runtime_error, dsk::error>);
  STATIC_REQUIRE(std::is_base_of_v<dsk::error, dsk::unsupported>);
}
