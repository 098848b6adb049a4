// gemm::packed_weights: the panel layout (element (p, k, j) = w[16p + j][k], zero padding) and the SwiGLU
// interleaving (gate rows 8p..8p+7 then up rows), element by element against the definition in packed.hpp.
#include "dsk/gemm/packed.hpp"

#include <catch2/catch.hpp>

#include "support/compare.hpp"

namespace {
template <class W>
dsk::tensor<W, 2> random_matrix(dsk::index_t r, dsk::index_t c, std::uint64_t seed) {
  dsk::tensor<W, 2> t(r, c);
  auto v = dsk::test::random_floats(static_cast<std::size_t>(r * c), seed);
  for (dsk::index_t i = 0; i < r * c; ++i) t.data()[i] = dsk::from_float<W>(v[static_cast<std::size_t>(i)]);
  return t;
}
}  // namespace

TEMPLATE_TEST_CASE("packed_weights holds W in 16-column k-major panels", "[gemm][packed]", float, dsk::bf16,
                   dsk::f16) {
  using W = TestType;
  for (dsk::index_t n : {1, 16, 17, 40})
    for (dsk::index_t k : {1, 9}) {
      auto w = random_matrix<W>(n, k, 7);
      const dsk::gemm::packed_weights<W> p(w.cview());
      REQUIRE(p.kind() == dsk::gemm::panel_kind::plain);
      REQUIRE(p.out_features() == n);
      REQUIRE(p.in_features() == k);
      REQUIRE(p.panels() == (n + 15) / 16);
      REQUIRE(p.bytes() == p.panels() * 16 * k * dsk::index_t(sizeof(W)));
      for (dsk::index_t pi = 0; pi < p.panels(); ++pi)
        for (dsk::index_t kk = 0; kk < k; ++kk)
          for (dsk::index_t j = 0; j < 16; ++j) {
            const W got = p.panel(pi)[kk * 16 + j];
            const dsk::index_t row = pi * 16 + j;
            REQUIRE(got == (row < n ? w(row, kk) : W{}));
          }
    }
}

TEMPLATE_TEST_CASE("packed_weights::swiglu interleaves 8 gate and 8 up rows per panel", "[gemm][packed]",
                   float, dsk::bf16) {
  using W = TestType;
  const dsk::index_t n = 21, k = 5;
  auto g = random_matrix<W>(n, k, 1), u = random_matrix<W>(n, k, 2);
  const auto p = dsk::gemm::packed_weights<W>::swiglu(g.cview(), u.cview());
  REQUIRE(p.kind() == dsk::gemm::panel_kind::swiglu);
  REQUIRE(p.out_features() == n);
  REQUIRE(p.panels() == 3);
  for (dsk::index_t pi = 0; pi < p.panels(); ++pi)
    for (dsk::index_t kk = 0; kk < k; ++kk)
      for (dsk::index_t j = 0; j < 16; ++j) {
        const dsk::index_t row = pi * 8 + j % 8;
        const W want = row < n ? (j < 8 ? g(row, kk) : u(row, kk)) : W{};
        REQUIRE(p.panel(pi)[kk * 16 + j] == want);
      }
}

TEST_CASE("packed_weights rejects bad arguments", "[gemm][packed]") {
  dsk::tensor<float, 2> big(8, 8), other(7, 4);
  const auto strided =
      dsk::view<const float, 2>(big.data(), dsk::dims<2>(4, 4), std::array<dsk::index_t, 2>{8, 2});
  REQUIRE_THROWS_WITH(dsk::gemm::packed_weights<float>(strided), Catch::Contains("unit inner stride"));
  REQUIRE_THROWS_WITH(dsk::gemm::packed_weights<float>::swiglu(big.cview(), other.cview()),
                      Catch::Contains("w_up"));
}
