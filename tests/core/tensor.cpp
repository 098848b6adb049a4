#include "dsk/core/tensor.hpp"

#include <cstdint>

#include <catch2/catch.hpp>

#include "dsk/core/dtype.hpp"

namespace {
float sum(dsk::view<const float, 2> v) {  // a kernel-like consumer taking a read-only strided view
  float s = 0;
  for (dsk::index_t i = 0; i < v.extent(0); ++i)
    for (dsk::index_t j = 0; j < v.extent(1); ++j) s += v(i, j);
  return s;
}
}  // namespace

TEST_CASE("owning tensors are zeroed, aligned and convert to views", "[tensor]") {
  dsk::tensor<float, 2> t(3, 5);
  REQUIRE(t.size() == 15);
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  for (float x : t.span()) REQUIRE(x == 0.0f);
  t(2, 4) = 7.0f;
  t.view()(0, 0) = 1.0f;
  REQUIRE(sum(t) == 8.0f);
  const dsk::tensor<float, 2> copy = t;  // deep copy
  t(2, 4) = 0.0f;
  REQUIRE(copy(2, 4) == 7.0f);
  REQUIRE(copy.shape() == std::array<dsk::index_t, 2>{3, 5});

  dsk::tensor<dsk::bf16, 1> h({4}, dsk::uninitialized);
  h.fill(dsk::bf16(2.0f));
  REQUIRE(float(h(3)) == 2.0f);
  REQUIRE(reinterpret_cast<std::uintptr_t>(h.data()) % 64 == 0);

  const dsk::tensor<int, 3> empty(0, 4, 2);
  REQUIRE(empty.empty());
  REQUIRE_THROWS_WITH((dsk::tensor<float, 2>(-1, 2)), Catch::Contains("extent(0) must be >= 0, got -1"));
  REQUIRE_THROWS_WITH((dsk::tensor<float, 2>(std::int64_t{1} << 40, std::int64_t{1} << 40)),
                      Catch::Contains("overflow"));
}
