// nn::embedding: rows copied and widened exactly for f32/bf16/f16 tables, 32- and 64-bit ids; out-of-range
// ids and shape mismatches rejected.
#include "dsk/nn/embedding.hpp"

#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"

#include "support/compare.hpp"

using dsk::index_t;

TEMPLATE_TEST_CASE("embedding gathers table rows", "[nn][embedding]", float, dsk::bf16, dsk::f16) {
  using W = TestType;
  const index_t vocab = 50, dim = 13;
  auto v = dsk::test::random_floats(std::size_t(vocab * dim), 3);
  dsk::tensor<W, 2> table(vocab, dim);
  for (index_t i = 0; i < vocab * dim; ++i) table.data()[i] = dsk::from_float<W>(v[std::size_t(i)]);
  const std::vector<std::int32_t> ids32 = {0, 49, 7, 7};
  const std::vector<std::int64_t> ids64 = {3, 0};
  dsk::tensor<float, 2> y(4, dim), y64(2, dim);
  dsk::nn::embedding(table.cview(), ids32, y);
  dsk::nn::embedding(table.cview(), ids64, y64);
  for (index_t t = 0; t < 4; ++t)
    for (index_t i = 0; i < dim; ++i) REQUIRE(y(t, i) == dsk::to_float(table(ids32[std::size_t(t)], i)));
  for (index_t t = 0; t < 2; ++t)
    for (index_t i = 0; i < dim; ++i) REQUIRE(y64(t, i) == dsk::to_float(table(ids64[std::size_t(t)], i)));
}

TEST_CASE("embedding rejects out-of-range ids and wrong shapes", "[nn][embedding][errors]") {
  dsk::tensor<float, 2> table(10, 4), y(2, 4), ybad(2, 5);
  const std::vector<std::int32_t> bad = {1, 10}, neg = {-1, 0}, ok = {1, 2};
  REQUIRE_THROWS_WITH(dsk::nn::embedding(table.cview(), bad, y), Catch::Contains("ids[1] = 10"));
  REQUIRE_THROWS_WITH(dsk::nn::embedding(table.cview(), neg, y), Catch::Contains("ids[0] = -1"));
  REQUIRE_THROWS_WITH(dsk::nn::embedding(table.cview(), ok, ybad), Catch::Contains("'y'"));
}
