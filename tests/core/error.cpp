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

TEST_CASE("overlap of byte ranges: exact for row slices of one buffer, conservative otherwise", "[error]") {
  using dsk::index_t;
  std::vector<float> buf(8 * 16);
  float* p = buf.data();
  using v2 = dsk::view<const float, 2>;
  const auto rows = [&](index_t off, index_t r, index_t cols, index_t stride) {
    return v2(p + off, dsk::dims<2>(r, cols), {stride, 1});
  };
  using dsk::bytes_of;
  using dsk::overlap;
  // Columns [0, 6) and [6, 16) of the same 8 rows: interleaved spans, disjoint elements.
  CHECK_FALSE(overlap(bytes_of(rows(0, 8, 6, 16)), bytes_of(rows(6, 8, 10, 16))));
  CHECK(overlap(bytes_of(rows(0, 8, 7, 16)), bytes_of(rows(6, 8, 10, 16))));
  // Either order; a single row inside the other's gap; a shifted block of rows.
  CHECK_FALSE(overlap(bytes_of(rows(6, 8, 10, 16)), bytes_of(rows(0, 8, 6, 16))));
  CHECK_FALSE(overlap(bytes_of(rows(0, 8, 6, 16)), bytes_of(rows(16 * 3 + 6, 1, 10, 16))));
  CHECK(overlap(bytes_of(rows(0, 8, 6, 16)), bytes_of(rows(16 * 3 + 5, 1, 10, 16))));
  CHECK(overlap(bytes_of(rows(0, 4, 16, 16)), bytes_of(rows(16 * 3, 4, 16, 16))));
  CHECK_FALSE(overlap(bytes_of(rows(0, 4, 16, 16)), bytes_of(rows(16 * 4, 4, 16, 16))));
  // Different pitches whose spans meet: reported (conservative).
  CHECK(overlap(bytes_of(rows(0, 4, 4, 16)), bytes_of(rows(8, 4, 4, 32))));
  // Empty and null views never overlap; one-run ranges from pointers.
  CHECK_FALSE(overlap(bytes_of(rows(0, 0, 16, 16)), bytes_of(rows(0, 8, 16, 16))));
  CHECK_FALSE(overlap(bytes_of(v2{}), bytes_of(rows(0, 8, 16, 16))));
  CHECK(overlap(bytes_of(p + 1, 4), bytes_of(rows(0, 1, 2, 16))));
  CHECK_FALSE(overlap(bytes_of(p + 2, 4), bytes_of(rows(0, 1, 2, 16))));
  // same_memory: same address, extents and byte strides.
  CHECK(dsk::same_memory(rows(0, 4, 8, 16), rows(0, 4, 8, 16)));
  CHECK_FALSE(dsk::same_memory(rows(0, 4, 8, 16), rows(0, 4, 8, 8)));
  // A dimension of extent 1 addresses nothing through its stride: one row with row stride 16 or 8 is the
  // same.
  CHECK(dsk::same_memory(rows(0, 1, 8, 16), rows(0, 1, 8, 8)));
  CHECK_FALSE(dsk::same_memory(rows(0, 1, 8, 16), rows(0, 1, 7, 16)));
  CHECK_FALSE(dsk::same_memory(rows(0, 2, 8, 16), rows(16, 2, 8, 16)));
  const dsk::contract c{"k::op"};
  CHECK_THROWS_WITH(c.disjoint("y", rows(0, 2, 8, 16), "x", rows(4, 2, 8, 16)),
                    "k::op: argument 'y': expected memory that does not overlap x");
  CHECK_NOTHROW(c.disjoint_or_same("y", rows(0, 2, 8, 16), "x", rows(0, 2, 8, 16)));
  CHECK_THROWS_WITH(c.disjoint_or_same("y", rows(0, 2, 8, 16), "x", rows(1, 2, 8, 16)),
                    "k::op: argument 'y': expected memory that does not overlap x, or exactly x (in place)");
}
