// Bidirectional NSA (dsk/attention/nsa.hpp, nsa_config.causal = false) against the fp64 reference written
// from the formulas with explicit masks (ref::nsa_bidir): partial last compressed blocks (mean and learned
// linear), each branch alone (disabled branches and one-hot gates), the gated mix, the block selection per
// query block and GQA group (groups 1..16), lengths 0, 1, around the block sizes, 600 and 3000; the window /
// selection covering the sequence equal dense bidirectional attention; scalar == native bit for bit; argument
// errors. Also the causal family's fully masked rows (zeros, never NaN).
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "dsk/attention/flash.hpp"
#include "nsa_common.hpp"

namespace {
using dsk::index_t;
using dsk::tensor;
namespace att = dsk::attention;
using dsk::test::random_tensor;

template <att::nsa_config C>
att::ref::nsa_params params_of(double scale) {
  return dsk::test::nsa_params_of<C>(scale);
}

// The kernel writes one block list per token; all tokens of a query block must carry the same list, equal
// to the reference's, except where the reference importances of the swapped blocks tie to within the float
// rounding of their sums (up to sel_block * group probabilities: relative 1e-5).
void check_selection(const att::ref::nsa_bidir_result& want, const tensor<std::int32_t, 3>& got, index_t T,
                     index_t Hkv, index_t n, index_t block) {
  int near_ties = 0;
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < Hkv; ++h) {
      const index_t qb = t / block;
      const auto& ws = want.selected[qb * Hkv + h];
      std::vector<index_t> gs;
      for (index_t x = 0; x < n; ++x) {
        if (got(t, h, x) >= 0) gs.push_back(got(t, h, x));
        REQUIRE(got(t, h, x) == got(qb * block, h, x));  // one list per query block
      }
      INFO("t " << t << " group " << h);
      REQUIRE(gs.size() == ws.size());
      if (gs == ws || t % block != 0) continue;
      dsk::test::require_near_tie(ws, gs, want.importance[qb * Hkv + h], 1e-5, true);
      ++near_ties;
    }
  CHECK(near_ties <= 2);
}

template <att::nsa_config C>
void check_bidir(index_t T, index_t H, index_t Hkv, std::uint64_t seed, bool scalar = false) {
  static_assert(!C.causal);
  constexpr int D = C.head_dim, Dv = C.v_dim();
  INFO("T " << T << " heads " << H << "/" << Hkv << " l " << C.cmp_block << " d " << C.cmp_stride << " l' "
            << C.sel_block << " n " << C.sel_count << " w " << C.window << " branches " << C.cmp << C.sel
            << C.win << " linear " << (C.pooling == att::nsa_pooling::linear));
  const dsk::test::nsa_inputs<C> in(T, H, Hkv, seed);
  const auto &q = in.q, &k = in.k, &v = in.v, &gates = in.gates;
  const auto &w_k = in.w_k, &pe_k = in.pe_k, &w_v = in.w_v, &pe_v = in.pe_v;
  const att::nsa_weights w = in.weights();
  constexpr bool linear = C.pooling == att::nsa_pooling::linear;
  // Scale 2/sqrt(D): peaked enough that the block importances differ clearly.
  const float scale = 2.0f / std::sqrt(float(D));
  tensor<float, 3> o(T, H, Dv);
  o.fill(std::numeric_limits<float>::quiet_NaN());  // every element must be written
  tensor<std::int32_t, 3> sel(T, Hkv, C.sel_count);
  att::nsa<C>(q, k, v, gates, o, linear ? &w : nullptr, sel, {.scale = scale});
  const auto want = linear ? att::ref::nsa_bidir(q, k, v, gates, params_of<C>(scale), w_k, pe_k, w_v, pe_v)
                           : att::ref::nsa_bidir(q, k, v, gates, params_of<C>(scale));
  for (index_t i = 0; i < o.size(); ++i) REQUIRE(std::isfinite(o.data()[i]));
  if constexpr (C.sel) check_selection(want, sel, T, Hkv, C.sel_count, C.sel_block);
  if (T > 0) CHECK(dsk::test::nmse_of(want.o, o) < dsk::test::attention_nmse);
  if (scalar) {
    // The portable scalar layer mirrors AVX2 bit for bit, so the whole kernel does too.
    tensor<float, 3> os(T, H, Dv);
    att::nsa<C, dsk::simd::scalar>(q, k, v, gates, os, linear ? &w : nullptr, {}, {.scale = scale});
    CHECK(dsk::test::bit_equal(o, os));
  }
}

// l 16, d 8 (overlapping compressed blocks), l' 32, n 5 (1 initial + 3 local + 1 chosen), w 20.
constexpr att::nsa_config bidir_cfg{.head_dim = 64,
                                    .cmp_block = 16,
                                    .cmp_stride = 8,
                                    .sel_block = 32,
                                    .sel_count = 5,
                                    .init_blocks = 1,
                                    .local_blocks = 2,
                                    .window = 20,
                                    .causal = false};
constexpr att::nsa_config with(bool cmp, bool sel, bool win, att::nsa_pooling pool = att::nsa_pooling::mean) {
  att::nsa_config c = bidir_cfg;
  c.cmp = cmp;
  c.sel = sel;
  c.win = win;
  c.pooling = pool;
  return c;
}
}  // namespace

TEST_CASE("bidirectional NSA: each branch alone equals the fp64 masked formulas, partial last blocks",
          "[attention][nsa][bidir]") {
  constexpr att::nsa_config cmp_only = with(true, false, false);
  constexpr att::nsa_config cmp_linear = with(true, false, false, att::nsa_pooling::linear);
  constexpr att::nsa_config sel_only = with(false, true, false);
  constexpr att::nsa_config win_only = with(false, false, true);
  // 61 = (not a multiple of d or l) a partial last compressed block; 15 < l: one partial block only.
  for (index_t T : {index_t{1}, index_t{15}, index_t{16}, index_t{17}, index_t{61}, index_t{150}}) {
    check_bidir<cmp_only>(T, 4, 2, 10 + std::uint64_t(T));
    check_bidir<cmp_linear>(T, 2, 1, 20 + std::uint64_t(T));
    check_bidir<sel_only>(T, 4, 2, 30 + std::uint64_t(T));
    check_bidir<win_only>(T, 4, 2, 40 + std::uint64_t(T));
  }
}

TEST_CASE("bidirectional NSA: gated mix, GQA groups 1..16, lengths 0 .. 600", "[attention][nsa][bidir]") {
  constexpr att::nsa_config mix = bidir_cfg;
  constexpr att::nsa_config mix_linear = with(true, true, true, att::nsa_pooling::linear);
  // 0, 1, around the selection block (31, 32, 33) and the compressed block, two query blocks and a partial.
  std::uint64_t seed = 100;
  for (index_t T : {0, 1, 7, 31, 32, 33, 64, 97, 203}) check_bidir<mix>(T, 4, 2, seed++, T == 97);
  check_bidir<mix>(130, 2, 2, seed++);  // group 1
  check_bidir<mix>(130, 3, 1, seed++);  // group 3
  check_bidir<mix>(100, 8, 1, seed++);  // group 8
  check_bidir<mix>(90, 16, 1, seed++);  // group 16
  check_bidir<mix>(70, 16, 2, seed++);  // group 8, 2 KV heads
  check_bidir<mix_linear>(83, 4, 2, seed++, true);
  check_bidir<mix>(600, 2, 1, seed++);
  // The seed's bidirectional local + global + mix: global attention over mean-pooled blocks (l = d, the
  // last one partial), a local band, gates.
  constexpr att::nsa_config local_global{.head_dim = 64,
                                         .cmp_block = 16,
                                         .cmp_stride = 16,
                                         .sel_block = 16,
                                         .sel_count = 4,
                                         .window = 24,
                                         .sel = false,
                                         .causal = false};
  check_bidir<local_global>(130, 4, 2, seed++, true);
}

TEST_CASE("bidirectional NSA: one-hot gates pick each branch of the full config", "[attention][nsa][bidir]") {
  // All three branches enabled, gates one-hot: the output is that branch alone (ref's o_cmp / o_sel / o_win);
  // then one-hot per head (head h takes branch h % 3) in one call.
  constexpr att::nsa_config C = bidir_cfg;
  const index_t T = 141, H = 6, Hkv = 2;
  const auto q = random_tensor<3>({T, H, 64}, 91), k = random_tensor<3>({T, Hkv, 64}, 92),
             v = random_tensor<3>({T, Hkv, 64}, 93);
  const float scale = 0.25f;
  tensor<float, 3> gates(T, H, 3);
  gates.fill(0.0f);
  const auto want = att::ref::nsa_bidir(q, k, v, gates, params_of<C>(scale));
  const tensor<double, 3>* branch[3] = {&want.o_cmp, &want.o_sel, &want.o_win};
  for (int b = 0; b < 3; ++b) {
    INFO("branch " << b);
    gates.fill(0.0f);
    for (index_t t = 0; t < T; ++t)
      for (index_t h = 0; h < H; ++h) gates(t, h, b) = 1.0f;
    tensor<float, 3> o(T, H, 64);
    att::nsa<C>(q, k, v, gates, o, nullptr, {}, {.scale = scale});
    CHECK(dsk::test::nmse_of(*branch[b], o) < dsk::test::attention_nmse);
  }
  gates.fill(0.0f);
  tensor<double, 3> per_head(T, H, 64);
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < H; ++h) {
      gates(t, h, h % 3) = 1.0f;
      for (index_t c = 0; c < 64; ++c) per_head(t, h, c) = (*branch[h % 3])(t, h, c);
    }
  tensor<float, 3> o(T, H, 64);
  att::nsa<C>(q, k, v, gates, o, nullptr, {}, {.scale = scale});
  CHECK(dsk::test::nmse_of(per_head, o) < dsk::test::attention_nmse);
}

TEST_CASE("bidirectional NSA at paper sizes over 3000 tokens (selection drops blocks)",
          "[attention][nsa][bidir]") {
  // Paper defaults (l 32, d 16, l' 64, n 16, w 512) bidirectional; head_dim 16 keeps the fp64 reference
  // quick (the selection logic does not depend on it). 3000 = 46 full query blocks + a partial one.
  constexpr att::nsa_config paper{.head_dim = 16, .causal = false};
  check_bidir<paper>(3000, 1, 1, 300);  // one head: the fp64 reference dominates under ASan
}

TEST_CASE("bidirectional NSA: the window or the selection covering the sequence equal dense attention",
          "[attention][nsa][bidir]") {
  constexpr att::nsa_config all_win{.head_dim = 64,
                                    .cmp_block = 16,
                                    .cmp_stride = 8,
                                    .sel_block = 32,
                                    .sel_count = 4,
                                    .window = 249,  // |i - j| <= T - 1
                                    .cmp = false,
                                    .sel = false,
                                    .causal = false};
  constexpr att::nsa_config all_sel{.head_dim = 64,
                                    .cmp_block = 16,
                                    .cmp_stride = 8,
                                    .sel_block = 32,
                                    .sel_count = 8,  // = ceil(250 / 32): every block
                                    .window = 1,
                                    .cmp = false,
                                    .win = false,
                                    .causal = false};
  const index_t T = 250, H = 4, Hkv = 2;
  const auto q = random_tensor<3>({T, H, 64}, 51), k = random_tensor<3>({T, Hkv, 64}, 52),
             v = random_tensor<3>({T, Hkv, 64}, 53);
  tensor<float, 3> gates(T, H, 3);
  gates.fill(1.0f);
  tensor<float, 3> dense(T, H, 64), o1(T, H, 64), o2(T, H, 64);
  att::dense<att::dense_config{.head_dim = 64, .causal = false}>(q, k, v, dense);
  att::nsa<all_win>(q, k, v, gates, o1);
  att::nsa<all_sel>(q, k, v, gates, o2);
  tensor<double, 3> want(T, H, 64);
  att::ref::dense(q, k, v, want, {}, 1.0 / 8.0, false);
  CHECK(dsk::test::nmse_of(want, dense) < dsk::test::attention_nmse);
  CHECK(dsk::test::nmse_of(want, o1) < dsk::test::attention_nmse);
  CHECK(dsk::test::nmse_of(want, o2) < dsk::test::attention_nmse);
  // One window tile (all 250 keys visible to every row) walks the keys as dense does.
  CHECK(dsk::test::bit_equal(dense, o1));
}

TEST_CASE("bidirectional NSA rejects bad arguments", "[attention][nsa][bidir][errors]") {
  constexpr att::nsa_config C = bidir_cfg;
  constexpr att::nsa_config L = with(true, true, true, att::nsa_pooling::linear);
  tensor<float, 3> q(5, 4, 64), k(5, 2, 64), v(5, 2, 64), g(5, 4, 3), o(5, 4, 64);
  CHECK_THROWS_WITH(att::nsa<C>(q, k, v, tensor<float, 3>(5, 4, 2), o),
                    Catch::Contains("attention::nsa: argument 'gates'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, tensor<float, 3>(5, 3, 64), tensor<float, 3>(5, 3, 64), g, o),
                    Catch::Contains("argument 'q'") && Catch::Contains("multiple of k.extent(1)"));
  CHECK_THROWS_WITH(att::nsa<C>(q, tensor<float, 3>(6, 2, 64), v, g, o), Catch::Contains("argument 'k'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, k, tensor<float, 3>(5, 2, 32), g, o), Catch::Contains("argument 'v'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, k, v, g, tensor<float, 3>(5, 4, 32)), Catch::Contains("argument 'o'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, tensor<float, 3>(5, 0, 64), v, g, o), Catch::Contains("argument 'k'"));
  CHECK_THROWS_WITH(att::nsa<L>(q, k, v, g, o), Catch::Contains("argument 'weights'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, k, v, g, o, nullptr, tensor<std::int32_t, 3>(5, 2, 4)),
                    Catch::Contains("argument 'selected'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, k, v, g, o, nullptr, {}, {.scale = -1.0f}),
                    Catch::Contains("argument 'opts.scale'"));
  // k and v are read in place while o is written: no overlap.
  tensor<float, 3> kv(5, 4, 64);
  const dsk::view<const float, 3> k_in(kv.data(), dsk::dims<3>(5, 2, 64), {256, 64, 1});
  CHECK_THROWS_WITH(att::nsa<C>(q, k_in, v, g, kv.view()),
                    Catch::Contains("argument 'o'") && Catch::Contains("does not overlap k"));
  // Keys with a non-unit inner stride are rejected, not misread.
  tensor<float, 3> wide(5, 2, 128);
  const dsk::view<const float, 3> k_strided(wide.data(), dsk::dims<3>(5, 2, 64), {256, 128, 2});
  CHECK_THROWS_WITH(att::nsa<C>(q, k_strided, v, g, o), Catch::Contains("argument 'k'"));
  // (A decode step on a bidirectional config, att::nsa_step<C>(...), is a compile-time error: static_assert
  // "a bidirectional config (causal = false) is prefill only, call nsa()".)
}

TEST_CASE("NSA rows that see no key give zeros, never NaN (causal compressed branch)",
          "[attention][nsa][bidir]") {
  // Causal, compressed branch only: queries before the end of the first compressed block (p < l - 1) see no
  // compressed key. Bidirectional: every row sees at least one block (a partial one when T < l).
  constexpr att::nsa_config causal_cmp{.head_dim = 64,
                                       .cmp_block = 16,
                                       .cmp_stride = 8,
                                       .sel_block = 32,
                                       .sel_count = 4,
                                       .sel = false,
                                       .win = false};
  const index_t T = 20;
  const auto q = random_tensor<3>({T, 2, 64}, 81), k = random_tensor<3>({T, 1, 64}, 82),
             v = random_tensor<3>({T, 1, 64}, 83), g = random_tensor<3>({T, 2, 3}, 84, 0.0f, 1.0f);
  tensor<float, 3> o(T, 2, 64);
  o.fill(std::numeric_limits<float>::quiet_NaN());
  att::nsa<causal_cmp>(q, k, v, g, o);
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < 2; ++h)
      for (index_t c = 0; c < 64; ++c) {
        INFO("t " << t);
        REQUIRE(!std::isnan(o(t, h, c)));
        if (t < 15) REQUIRE(o(t, h, c) == 0.0f);
      }
  REQUIRE(att::nsa_compressed_count_bidir(0, 16, 8) == 0);
  REQUIRE(att::nsa_compressed_count_bidir(1, 16, 8) == 1);
  REQUIRE(att::nsa_compressed_count_bidir(16, 16, 8) == 1);
  REQUIRE(att::nsa_compressed_count_bidir(17, 16, 8) == 2);  // [0, 16), [8, 17)
  REQUIRE(att::nsa_compressed_count_bidir(24, 16, 8) == 2);
  REQUIRE(att::nsa_compressed_count_bidir(25, 16, 8) == 3);
  REQUIRE(att::nsa_compressed_count_bidir(33, 16, 16) == 3);  // [0, 16), [16, 32), [32, 33)
}
