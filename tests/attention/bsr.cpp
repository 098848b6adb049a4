// Block-sparse attention (dsk/attention/bsr.hpp): with every block present it equals dense attention; with a
// random block table it equals the fp64 reference with the same mask (ref::bsr); table errors are reported.
#include "dsk/attention/bsr.hpp"

#include <limits>
#include <random>

#include <catch2/catch.hpp>

#include "common.hpp"
#include "dsk/attention/ref.hpp"

namespace {
using dsk::index_t;
using dsk::tensor;
namespace att = dsk::attention;
using dsk::test::random_tensor;

struct table_data {
  std::vector<std::int32_t> row_ptr, col_idx;
  att::bsr_table view() const { return {row_ptr, col_idx}; }
};

// density 1: every key block; otherwise each block kept with that probability (row 0 may end up empty).
table_data make_table(index_t q_blocks, index_t k_blocks, double density, std::uint64_t seed) {
  auto g = dsk::test::rng(seed);
  std::bernoulli_distribution keep(density);
  table_data t;
  t.row_ptr.push_back(0);
  for (index_t i = 0; i < q_blocks; ++i) {
    for (index_t b = 0; b < k_blocks; ++b)
      if (density >= 1.0 || keep(g)) t.col_idx.push_back(static_cast<std::int32_t>(b));
    t.row_ptr.push_back(static_cast<std::int32_t>(t.col_idx.size()));
  }
  return t;
}

template <att::bsr_config C>
void check(index_t T, index_t L, index_t H, index_t Hkv, double density, std::uint64_t seed) {
  constexpr int D = C.head_dim, Dv = C.v_dim();
  INFO("block " << C.block << " causal " << C.causal << " T " << T << " L " << L << " heads " << H << "/"
                << Hkv << " density " << density);
  const auto q = random_tensor<3>({T, H, D}, seed), k = random_tensor<3>({L, Hkv, D}, seed + 1),
             v = random_tensor<3>({L, Hkv, Dv}, seed + 2);
  const index_t B = C.block;
  const table_data tab = make_table((T + B - 1) / B, (L + B - 1) / B, density, seed + 3);
  tensor<float, 3> o(T, H, Dv);
  tensor<float, 2> lse(T, H);
  att::bsr<C>(q, k, v, tab.view(), o, lse, {.scale = 0.5f});
  tensor<double, 3> want(T, H, Dv);
  tensor<double, 2> want_lse(T, H);
  att::ref::bsr(q, k, v, want, want_lse, 0.5, tab.row_ptr, tab.col_idx, B, C.causal);
  CHECK(dsk::test::nmse_of(want, o) < dsk::test::attention_nmse);
  for (index_t i = 0; i < lse.size(); ++i) {
    const double w = want_lse.data()[i];
    if (std::isinf(w)) {
      REQUIRE(lse.data()[i] == -std::numeric_limits<float>::infinity());
    } else {
      REQUIRE(std::abs(lse.data()[i] - w) < dsk::test::lse_abs * std::max(1.0, std::abs(w)));
    }
  }
  if (density >= 1.0) {
    // All blocks present: the same tiles as dense attention when the block is the 64-key tile.
    tensor<float, 3> od(T, H, Dv);
    att::dense<att::dense_config{.head_dim = D, .value_dim = C.value_dim, .causal = C.causal}>(
        q, k, v, od, {}, {.scale = 0.5f});
    if constexpr (C.block == 64) {
      CHECK(dsk::test::bit_equal(o, od));
    } else {
      double num = 0, den = 0;
      for (index_t i = 0; i < o.size(); ++i) {
        num += std::pow(double(o.data()[i]) - od.data()[i], 2);
        den += std::pow(double(od.data()[i]), 2);
      }
      CHECK(num / den < dsk::test::attention_nmse);
    }
  }
}
}  // namespace

TEST_CASE("block-sparse attention with all blocks equals dense attention", "[attention][bsr]") {
  check<att::bsr_config{.head_dim = 64, .block = 64, .causal = true}>(150, 150, 4, 2, 1.0, 1);
  check<att::bsr_config{.head_dim = 64, .block = 64, .causal = false}>(70, 130, 2, 1, 1.0, 2);
  check<att::bsr_config{.head_dim = 128, .block = 16, .causal = true}>(77, 77, 8, 1, 1.0, 3);
  check<att::bsr_config{.head_dim = 64, .block = 8, .causal = true}>(1, 41, 2, 2, 1.0, 4);
}

TEST_CASE("block-sparse attention with a random table equals attention under the same mask",
          "[attention][bsr]") {
  std::uint64_t seed = 10;
  for (double density : {0.0, 0.2, 0.6}) {
    check<att::bsr_config{.head_dim = 64, .block = 16, .causal = true}>(100, 100, 4, 2, density, seed += 5);
    check<att::bsr_config{.head_dim = 64, .block = 8, .causal = false}>(33, 90, 2, 1, density, seed += 5);
    check<att::bsr_config{.head_dim = 128, .block = 64, .causal = true}>(130, 130, 8, 2, density, seed += 5);
    check<att::bsr_config{.head_dim = 192, .value_dim = 128, .block = 32, .causal = false}>(
        40, 70, 2, 2, density, seed += 5);
  }
}

TEST_CASE("block-sparse attention rejects malformed block tables", "[attention][bsr][errors]") {
  constexpr att::bsr_config C{.head_dim = 64, .block = 16};
  tensor<float, 3> q(20, 2, 64), k(40, 1, 64), v(40, 1, 64), o(20, 2, 64);
  auto run = [&](std::vector<std::int32_t> rp, std::vector<std::int32_t> ci) {
    att::bsr<C>(q, k, v, att::bsr_table{rp, ci}, o);
  };
  CHECK_NOTHROW(run({0, 1, 3}, {0, 1, 2}));
  CHECK_THROWS_WITH(run({0, 1}, {0}),
                    Catch::Contains("row_ptr") && Catch::Contains("ceil(q_len / block) + 1"));
  CHECK_THROWS_WITH(run({0, 1, 2}, {0, 3}), Catch::Contains("col_idx"));
  CHECK_THROWS_WITH(run({0, 2, 2}, {1, 1}), Catch::Contains("strictly increasing"));
  CHECK_THROWS_WITH(run({0, 2, 1}, {0, 1}), Catch::Contains("row_ptr"));
  CHECK_THROWS_WITH(run({0, 1, 3}, {0, 1}), Catch::Contains("col_idx.size()"));
}

TEST_CASE("block-sparse attention rejects absurd query offsets and overlapping outputs",
          "[attention][bsr][errors]") {
  constexpr att::bsr_config C{.head_dim = 64, .block = 16, .causal = true};
  tensor<float, 3> q(20, 2, 64), k(40, 1, 64), v(40, 1, 64), o(20, 2, 64);
  const std::vector<std::int32_t> rp{0, 1, 3}, ci{0, 1, 2};
  const att::bsr_table table{rp, ci};
  CHECK_NOTHROW(att::bsr<C>(q, k, v, table, o));
  CHECK_THROWS_WITH(att::bsr<C>(q, k, v, table, o, {}, {.query_offset = std::numeric_limits<index_t>::max()}),
                    Catch::Contains("attention::bsr: argument 'opts.query_offset'"));
  CHECK_THROWS_WITH(att::bsr<C>(q, k, v, table, q.view()),
                    Catch::Contains("argument 'o'") && Catch::Contains("does not overlap q"));
  CHECK_THROWS_WITH(
      att::bsr<C>(q, k, v, table, dsk::view<float, 3>(v.data(), dsk::dims<3>(20, 2, 64), {128, 64, 1})),
      Catch::Contains("does not overlap v"));
  // lse written over the block table (one query block: row_ptr {0, 1}, 8 bytes = lse [1, 2]).
  std::vector<std::int32_t> rp1{0, 1};
  const std::vector<std::int32_t> ci1{0};
  const dsk::view<float, 2> lse_on_table(reinterpret_cast<float*>(rp1.data()), dsk::dims<2>(1, 2), {2, 1});
  tensor<float, 3> q1(1, 2, 64), o1(1, 2, 64);
  CHECK_THROWS_WITH(att::bsr<C>(q1, k, v, att::bsr_table{rp1, ci1}, o1, lse_on_table),
                    Catch::Contains("argument 'lse'") && Catch::Contains("does not overlap table.row_ptr"));
}
