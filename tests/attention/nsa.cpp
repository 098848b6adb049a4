// NSA dynamic block attention (dsk/attention/nsa.hpp) against the fp64 reference written from the paper's
// formulas (ref::nsa): compression (mean and learned linear), each branch alone, the gated mix, the block
// selection, GQA groups; selection and window branches equal dense attention when they cover everything;
// token-by-token decode equals prefill; argument errors.
#include "dsk/attention/nsa.hpp"

#include <limits>

#include <catch2/catch.hpp>

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

double nmse_part(const tensor<double, 3>& want, const tensor<float, 3>& got) {
  return dsk::test::nmse_of(want, got);
}

// Checks the kernel's block choice against the reference: equal, except where the reference importances of
// the differing blocks tie to within float rounding of a sum of probabilities.
void check_selection(const att::ref::nsa_result& want, const tensor<std::int32_t, 3>& got, index_t T,
                     index_t Hkv, index_t n) {
  int near_ties = 0;
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < Hkv; ++h) {
      const auto& ws = want.selected[t * Hkv + h];
      std::vector<index_t> gs;
      for (index_t x = 0; x < n; ++x)
        if (got(t, h, x) >= 0) gs.push_back(got(t, h, x));
      REQUIRE(gs.size() == ws.size());
      if (gs == ws) continue;
      // Allowed only for near-ties: the importance of every swapped block within 1e-5 of the weakest kept
      // one.
      INFO("t " << t << " group " << h);
      dsk::test::require_near_tie(ws, gs, want.importance[t * Hkv + h], 1e-5, false);
      ++near_ties;
    }
  CHECK(near_ties <= 2);
}

template <att::nsa_config C>
void check_nsa(index_t T, index_t H, index_t Hkv, std::uint64_t seed) {
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
  tensor<std::int32_t, 3> sel(T, Hkv, C.sel_count);
  att::nsa<C>(q, k, v, gates, o, linear ? &w : nullptr, sel, {.scale = scale});
  const auto want = linear ? att::ref::nsa(q, k, v, gates, params_of<C>(scale), w_k, pe_k, w_v, pe_v)
                           : att::ref::nsa(q, k, v, gates, params_of<C>(scale));
  if constexpr (C.sel) check_selection(want, sel, T, Hkv, C.sel_count);
  CHECK(nmse_part(want.o, o) < dsk::test::attention_nmse);
}
}  // namespace

TEST_CASE("NSA compression (mean and learned linear) equals the formula", "[attention][nsa]") {
  constexpr att::nsa_config Cm{
      .head_dim = 64, .cmp_block = 16, .cmp_stride = 8, .sel_block = 32, .sel_count = 4, .window = 32};
  constexpr att::nsa_config Cl{.head_dim = 64,
                               .value_dim = 32,
                               .cmp_block = 16,
                               .cmp_stride = 8,
                               .sel_block = 32,
                               .sel_count = 4,
                               .window = 32,
                               .pooling = att::nsa_pooling::linear};
  const index_t T = 61, Hkv = 2;
  const auto k = random_tensor<3>({T, Hkv, 64}, 1), v = random_tensor<3>({T, Hkv, 64}, 2),
             v32 = random_tensor<3>({T, Hkv, 32}, 3);
  const auto q = random_tensor<3>({T, 2, 64}, 4), gates = random_tensor<3>({T, 2, 3}, 5);
  tensor<float, 3> o(T, 2, 64), o32(T, 2, 32);
  att::nsa_cache cm(Hkv, 64, 64);
  att::nsa_step<Cm>(cm, q, k, v, gates, o);
  REQUIRE(cm.compressed_size() == (T - 16) / 8 + 1);
  auto compare = [](const tensor<double, 3>& want, dsk::view<const float, 3> got) {
    REQUIRE(want.extent(0) == got.extent(0));
    double num = 0, den = 0;
    for (index_t i = 0; i < got.extent(0); ++i)
      for (index_t h = 0; h < got.extent(1); ++h)
        for (index_t c = 0; c < got.extent(2); ++c) {
          num += std::pow(want(i, h, c) - got(i, h, c), 2);
          den += std::pow(want(i, h, c), 2);
        }
    CHECK(num / den < 1e-12);  // sums of 16..1024 fp32 products: relative error ~1e-7
  };
  compare(att::ref::nsa_compress(k, 16, 8), cm.k_cmp());
  compare(att::ref::nsa_compress(v, 16, 8), cm.v_cmp());
  const auto wk = random_tensor<2>({64, 16 * 64}, 6), pek = random_tensor<2>({16, 64}, 7);
  const auto wv = random_tensor<2>({32, 16 * 32}, 8), pev = random_tensor<2>({16, 32}, 9);
  const att::nsa_weights w{wk, pek, wv, pev};
  att::nsa_cache cl(Hkv, 64, 32);
  att::nsa_step<Cl>(cl, q, k, v32, gates, o32, &w);
  compare(att::ref::nsa_compress(k, 16, 8, wk, pek), cl.k_cmp());
  compare(att::ref::nsa_compress(v32, 16, 8, wv, pev), cl.v_cmp());
}

constexpr att::nsa_config small_cfg{.head_dim = 64,
                                    .cmp_block = 16,
                                    .cmp_stride = 8,
                                    .sel_block = 32,
                                    .sel_count = 4,
                                    .init_blocks = 1,
                                    .local_blocks = 2,
                                    .window = 40};
constexpr att::nsa_config with_branches(bool cmp, bool sel, bool win) {
  att::nsa_config c = small_cfg;
  c.cmp = cmp;
  c.sel = sel;
  c.win = win;
  return c;
}
constexpr att::nsa_config linear_cfg = [] {
  att::nsa_config c = small_cfg;
  c.pooling = att::nsa_pooling::linear;
  return c;
}();

TEST_CASE("NSA branches alone and mixed equal the fp64 formulas, GQA groups 1..16", "[attention][nsa]") {
  constexpr att::nsa_config small = small_cfg;
  constexpr att::nsa_config cmp_only = with_branches(true, false, false);
  constexpr att::nsa_config sel_only = with_branches(false, true, false);
  constexpr att::nsa_config win_only = with_branches(false, false, true);
  check_nsa<cmp_only>(150, 4, 2, 10);
  check_nsa<sel_only>(150, 4, 2, 20);
  check_nsa<win_only>(150, 4, 2, 30);
  check_nsa<small>(1, 2, 1, 40);
  check_nsa<small>(15, 2, 1, 41);   // before the first compressed block ends
  check_nsa<small>(203, 2, 2, 42);  // group 1
  check_nsa<small>(64, 16, 1, 43);  // group 16
  check_nsa<small>(90, 6, 2, 44);   // group 3
  check_nsa<linear_cfg>(80, 4, 2, 45);
  // Paper defaults (l 32, d 16, l' 64, n 16, w 512) at a length where selection actually drops blocks.
  // head_dim 16 keeps the fp64 reference quick; the selection logic does not depend on it.
  constexpr att::nsa_config paper{.head_dim = 16};
  check_nsa<paper>(1060, 1, 1, 46);
  // The seed's local + global + mix: global attention over mean-pooled blocks (l = d), local window, gates.
  constexpr att::nsa_config local_global{.head_dim = 64,
                                         .cmp_block = 16,
                                         .cmp_stride = 16,
                                         .sel_block = 16,
                                         .sel_count = 3,
                                         .window = 32,
                                         .sel = false};
  check_nsa<local_global>(130, 4, 2, 47);
}

TEST_CASE("NSA selection / window covering everything equal dense causal attention", "[attention][nsa]") {
  constexpr att::nsa_config all_sel{.head_dim = 64,
                                    .cmp_block = 16,
                                    .cmp_stride = 8,
                                    .sel_block = 32,
                                    .sel_count = 64,
                                    .window = 10000,
                                    .cmp = false,
                                    .win = false};
  constexpr att::nsa_config all_win{.head_dim = 64,
                                    .cmp_block = 16,
                                    .cmp_stride = 8,
                                    .sel_block = 32,
                                    .sel_count = 4,
                                    .window = 10000,
                                    .cmp = false,
                                    .sel = false};
  const index_t T = 250, H = 4, Hkv = 2;
  const auto q = random_tensor<3>({T, H, 64}, 51), k = random_tensor<3>({T, Hkv, 64}, 52),
             v = random_tensor<3>({T, Hkv, 64}, 53);
  tensor<float, 3> gates(T, H, 3);
  gates.fill(1.0f);
  tensor<float, 3> dense(T, H, 64), o1(T, H, 64), o2(T, H, 64);
  att::dense<att::dense_config{.head_dim = 64, .causal = true}>(q, k, v, dense);
  att::nsa<all_sel>(q, k, v, gates, o1);
  att::nsa<all_win>(q, k, v, gates, o2);
  double n1 = 0, n2 = 0, den = 0;
  for (index_t i = 0; i < dense.size(); ++i) {
    n1 += std::pow(double(dense.data()[i]) - o1.data()[i], 2);
    n2 += std::pow(double(dense.data()[i]) - o2.data()[i], 2);
    den += std::pow(double(dense.data()[i]), 2);
  }
  CHECK(n1 / den < dsk::test::attention_nmse);
  CHECK(n2 / den < dsk::test::attention_nmse);
}

TEST_CASE("NSA decode token by token (growing compressed cache) equals prefill", "[attention][nsa]") {
  constexpr att::nsa_config C{
      .head_dim = 64, .cmp_block = 16, .cmp_stride = 8, .sel_block = 32, .sel_count = 4, .window = 40};
  const index_t T = 120, H = 4, Hkv = 2;
  const auto q = random_tensor<3>({T, H, 64}, 61), k = random_tensor<3>({T, Hkv, 64}, 62),
             v = random_tensor<3>({T, Hkv, 64}, 63), gates = random_tensor<3>({T, H, 3}, 64, 0.0f, 1.0f);
  tensor<float, 3> prefill(T, H, 64), decode(T, H, 64);
  att::nsa<C>(q, k, v, gates, prefill);
  att::nsa_cache cache(Hkv, 64, 64);
  // 120 tiny steps: one thread avoids OpenMP start-up per step on the shared CI cores.
  dsk::thread_count_scope one_thread(1);
  // Mixed step sizes: single tokens and a chunk.
  for (index_t t = 0; t < T;) {
    const index_t n = (t == 50) ? 17 : 1;
    att::nsa_step<C>(cache, q.cview().slice(0, t, t + n), k.cview().slice(0, t, t + n),
                     v.cview().slice(0, t, t + n), gates.cview().slice(0, t, t + n),
                     decode.view().slice(0, t, t + n));
    t += n;
    REQUIRE(cache.compressed_size() == att::nsa_compressed_count(t, 16, 8));
  }
  CHECK(dsk::test::bit_equal(prefill, decode));
}

TEST_CASE("NSA rejects bad arguments", "[attention][nsa][errors]") {
  constexpr att::nsa_config C{
      .head_dim = 64, .cmp_block = 16, .cmp_stride = 8, .sel_block = 32, .sel_count = 4, .window = 40};
  constexpr att::nsa_config L = linear_cfg;
  tensor<float, 3> q(5, 4, 64), k(5, 2, 64), v(5, 2, 64), g(5, 4, 3), o(5, 4, 64);
  CHECK_THROWS_WITH(att::nsa<C>(q, k, v, tensor<float, 3>(5, 4, 2), o), Catch::Contains("'gates'"));
  CHECK_THROWS_WITH(att::nsa<C>(q, tensor<float, 3>(5, 3, 64), tensor<float, 3>(5, 3, 64), g, o),
                    Catch::Contains("multiple of cache.kv_heads()"));
  CHECK_THROWS_WITH(att::nsa<L>(q, k, v, g, o), Catch::Contains("'weights'"));
  att::nsa_cache wrong(2, 128, 128);
  CHECK_THROWS_WITH(att::nsa_step<C>(wrong, q, k, v, g, o), Catch::Contains("'cache'"));
}

TEST_CASE("NSA gates are sigmoid of a linear layer", "[attention][nsa]") {
  const auto x = random_tensor<2>({7, 40}, 71), w = random_tensor<2>({12, 40}, 72),
             b = random_tensor<2>({1, 12}, 73);
  tensor<float, 3> g(7, 4, 3);
  att::nsa_gates(x, w, dsk::view<const float, 1>(b.cview()[0]), g);
  for (index_t t = 0; t < 7; ++t)
    for (index_t j = 0; j < 12; ++j) {
      double z = b(0, j);
      for (index_t c = 0; c < 40; ++c) z += double(x(t, c)) * w(j, c);
      REQUIRE(std::abs(g(t, j / 3, j % 3) - 1.0 / (1.0 + std::exp(-z))) < 1e-6);
    }
}

TEST_CASE("NSA rejects overlapping outputs, keys from its own cache and absurd cache sizes",
          "[attention][nsa][errors]") {
  constexpr att::nsa_config C{
      .head_dim = 64, .cmp_block = 16, .cmp_stride = 8, .sel_block = 32, .sel_count = 4, .window = 40};
  const auto q = random_tensor<3>({5, 4, 64}, 1), k = random_tensor<3>({5, 2, 64}, 2),
             v = random_tensor<3>({5, 2, 64}, 3), g = random_tensor<3>({5, 4, 3}, 4, 0.0f, 1.0f);
  tensor<float, 3> o(5, 4, 64);
  tensor<float, 3> qo = q;
  CHECK_THROWS_WITH(
      att::nsa<C>(qo, k, v, g, qo.view()),
      Catch::Contains("attention::nsa_step: argument 'o'") && Catch::Contains("does not overlap q"));
  tensor<std::int32_t, 3> sel(5, 2, 4);
  const dsk::view<std::int32_t, 3> sel_on_o(reinterpret_cast<std::int32_t*>(o.data()), dsk::dims<3>(5, 2, 4),
                                            {8, 4, 1});
  CHECK_THROWS_WITH(att::nsa<C>(q, k, v, g, o, nullptr, sel_on_o),
                    Catch::Contains("argument 'selected'") && Catch::Contains("does not overlap o"));
  // k_new read from the cache's own keys: growing the cache may move them.
  att::nsa_cache cache(2, 64, 64);
  att::nsa_step<C>(cache, q, k, v, g, o);
  CHECK_THROWS_WITH(
      att::nsa_step<C>(cache, q, cache.k(), cache.v(), g, o),
      Catch::Contains("argument 'k_new'") && Catch::Contains("does not overlap the cache's keys"));
  CHECK_THROWS_WITH(att::nsa_cache(index_t{1} << 40, 64, 64), Catch::Contains("argument 'kv_heads'"));
  att::nsa_cache small(2, 64, 64);
  CHECK_THROWS_WITH(small.reserve(index_t{1} << 50), Catch::Contains("argument 'tokens'"));
  // nsa_gates writing over its input.
  auto x = random_tensor<2>({7, 12}, 5);
  const auto w = random_tensor<2>({12, 12}, 6);
  CHECK_THROWS_WITH(
      att::nsa_gates(x, w, {}, dsk::view<float, 3>(x.data(), dsk::dims<3>(7, 4, 3), {12, 3, 1})),
      Catch::Contains("attention::nsa_gates: argument 'g'") && Catch::Contains("does not overlap x"));
}
