// Tests of dsk/moe/router.hpp: hand-computed routing for the three top-k methods (ties included), bias,
// k_active, the random grid against the double reference, thread-count invariance, gate logits, the
// orthogonal initialiser, the progressive-k schedule and rejected input.
#include "dsk/moe/router.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <tuple>

#include "common.hpp"
#include "dsk/moe/ref.hpp"

using namespace dsk;
using namespace dsk::moe;

namespace {
// fp32 softmax/sigmoid (a few-ulp exp, a sum over <= 160 terms, a division) against double: relative error
// well below 1e-5.
constexpr double kScoreTol = 1e-5;
// fp32 dot products of length <= 2048 against double: NMSE of order 1e-13; 1e-10 leaves margin, catches any
// bug.
constexpr double kLogitNmse = 1e-10;

using moe_test::router_case;
constexpr router_case greedy_softmax{};
constexpr router_case greedy_sigmoid{{.score = scoring::sigmoid}, {}};
constexpr router_case norm_softmax{{}, {.norm_topk_prob = true}};
constexpr router_case scaled_softmax{{}, {.routed_scaling_factor = 16.0f}};
constexpr router_case grouped_4_2{{.method = topk_method::group_limited_greedy},
                                  {.n_group = 4, .topk_group = 2}};
constexpr router_case grouped_4_1{{.method = topk_method::group_limited_greedy},
                                  {.n_group = 4, .topk_group = 1}};
constexpr router_case v2_grouped{{.method = topk_method::group_limited_greedy},
                                 {.n_group = 8, .topk_group = 3, .routed_scaling_factor = 16.0f}};
// DeepSeek-V3: sigmoid scores, groups scored by their two best experts, normalised weights times the factor.
constexpr router_case v3_noaux{{.score = scoring::sigmoid, .method = topk_method::noaux_tc},
                               {.n_group = 8,
                                .topk_group = 4,
                                .norm_topk_prob = true,
                                .routed_scaling_factor = 2.5f,
                                .scale_normalised = true}};
constexpr router_case noaux_2_1{{.score = scoring::sigmoid, .method = topk_method::noaux_tc},
                                {.n_group = 2,
                                 .topk_group = 1,
                                 .norm_topk_prob = true,
                                 .routed_scaling_factor = 2.5f,
                                 .scale_normalised = true}};
constexpr router_case grouped_sigmoid_norm{
    {.score = scoring::sigmoid, .method = topk_method::group_limited_greedy},
    {.n_group = 4, .topk_group = 2, .norm_topk_prob = true}};

template <router_case C>
struct routed {
  tensor<float, 2> scores;
  tensor<expert_id, 2> idx;
  tensor<float, 2> w;
};

template <router_case C>
routed<C> run(const tensor<float, 2>& logits, index_t K, index_t k_active = -1,
              view<const float, 1> bias = {}) {
  routed<C> r{tensor<float, 2>(logits.extent(0), logits.extent(1)), tensor<expert_id, 2>(logits.extent(0), K),
              tensor<float, 2>(logits.extent(0), K)};
  router_options opt = C.opt;
  opt.k_active = k_active;
  route<C.cfg>(logits, bias, r.scores, r.idx, r.w, opt);
  return r;
}

tensor<float, 2> row(std::initializer_list<float> v) {
  tensor<float, 2> t(1, static_cast<index_t>(v.size()));
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

template <router_case C>
void check_against_ref(index_t T, index_t E, index_t K, std::uint64_t seed, bool with_bias = false) {
  INFO("T=" << T << " E=" << E << " K=" << K << " bias " << with_bias);
  const auto logits = moe_test::separated_logits(T, E, seed);
  // A bias of distinct multiples of 1/64 (exact in f32): it reorders the choice without creating ties.
  tensor<float, 1> bias(with_bias ? E : 0);
  std::vector<double> bias_d;
  for (index_t e = 0; e < bias.extent(0); ++e) {
    bias(e) = static_cast<float>((e * 37) % E - E / 2) / 64.0f;
    bias_d.push_back(bias(e));
  }
  const auto got = run<C>(logits, K, -1, bias.cview());
  const auto s = ref::scores(ref::to_mat<float>(logits), C.cfg.score);
  const auto want = ref::route(s, bias_d, C.cfg, C.opt, K, K);
  for (index_t t = 0; t < T; ++t) {
    for (index_t e = 0; e < E; ++e) REQUIRE(got.scores(t, e) == Approx(s(t, e)).epsilon(kScoreTol));
    for (index_t k = 0; k < K; ++k) {
      REQUIRE(got.idx(t, k) == want.idx[t][k]);
      REQUIRE(got.w(t, k) == Approx(want.w[t][k]).epsilon(kScoreTol));
    }
  }
}
}  // namespace

TEST_CASE("route: greedy top-k, hand computed", "[moe][router]") {
  // exp(logits) = 1, 2, 3, 1 -> scores 1/7, 2/7, 3/7, 1/7.
  const auto logits = row({0.0f, std::log(2.0f), std::log(3.0f), 0.0f});
  auto r = run<greedy_softmax>(logits, 2);
  CHECK(r.scores(0, 0) == Approx(1.0 / 7).epsilon(kScoreTol));
  CHECK(r.scores(0, 2) == Approx(3.0 / 7).epsilon(kScoreTol));
  CHECK(r.idx(0, 0) == 2);
  CHECK(r.idx(0, 1) == 1);
  CHECK(r.w(0, 0) == Approx(3.0 / 7).epsilon(kScoreTol));
  CHECK(r.w(0, 1) == Approx(2.0 / 7).epsilon(kScoreTol));

  auto n = run<norm_softmax>(logits, 2);  // 3/7 and 2/7 renormalised
  CHECK(n.w(0, 0) == Approx(0.6).epsilon(kScoreTol));
  CHECK(n.w(0, 1) == Approx(0.4).epsilon(kScoreTol));
  auto n1 = run<norm_softmax>(logits, 1);  // K = 1: no normalisation (DeepSeek's rule), factor 1
  CHECK(n1.w(0, 0) == Approx(3.0 / 7).epsilon(kScoreTol));

  auto sc = run<scaled_softmax>(logits, 2);
  CHECK(sc.w(0, 0) == Approx(48.0 / 7).epsilon(kScoreTol));
  CHECK(sc.w(0, 1) == Approx(32.0 / 7).epsilon(kScoreTol));

  // Sigmoid: sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75.
  auto sg = run<greedy_sigmoid>(logits, 1);
  CHECK(sg.idx(0, 0) == 2);
  CHECK(sg.w(0, 0) == Approx(0.75).epsilon(kScoreTol));
  CHECK(sg.scores(0, 3) == Approx(0.5).epsilon(kScoreTol));
}

TEST_CASE("route: ties go to the lower expert index", "[moe][router]") {
  const auto logits = row({1.0f, 1.0f, 0.0f, 1.0f});
  auto r = run<greedy_softmax>(logits, 3);
  CHECK(r.idx(0, 0) == 0);
  CHECK(r.idx(0, 1) == 1);
  CHECK(r.idx(0, 2) == 3);
  // All equal: experts in index order.
  auto all = run<greedy_softmax>(row({2.0f, 2.0f, 2.0f, 2.0f, 2.0f}), 5);
  for (index_t k = 0; k < 5; ++k) CHECK(all.idx(0, k) == k);
}

TEST_CASE("route: group_limited_greedy, hand computed", "[moe][router]") {
  // Groups of 2: maxima g0 = 5, g1 = 4.6, g2 = 4.9, g3 = 0. Keeping 2 groups leaves experts {0, 1, 4, 5};
  // the third pick is a tie (0, 0) between experts 1 and 5 -> 1. Greedy instead takes expert 2 (4.6).
  const auto logits = row({5.0f, 0.0f, 4.6f, 4.5f, 4.9f, 0.0f, 0.0f, 0.0f});
  auto g = run<grouped_4_2>(logits, 3);
  CHECK(g.idx(0, 0) == 0);
  CHECK(g.idx(0, 1) == 4);
  CHECK(g.idx(0, 2) == 1);
  auto gr = run<greedy_softmax>(logits, 3);
  CHECK(gr.idx(0, 2) == 2);
  // Weights are the (unmasked) softmax scores of the chosen experts.
  CHECK(g.w(0, 2) == Approx(gr.scores(0, 1)).epsilon(kScoreTol));

  // Tied group maxima: the lower group wins.
  auto t = run<grouped_4_1>(row({1.0f, 0.0f, 1.0f, 0.5f, 0.5f, 0.0f, 0.0f, 0.0f}), 2);
  CHECK(t.idx(0, 0) == 0);
  CHECK(t.idx(0, 1) == 1);
}

TEST_CASE("route: noaux_tc (DeepSeek-V3) scores groups by their two best experts, hand computed",
          "[moe][router]") {
  // sigmoid(3) = 0.952574, sigmoid(2) = 0.880797, sigmoid(-3) = 0.047426. Group 0 = {0.95, 0.05, 0.05, 0.05}
  // (max 0.95, top-2 sum 1.0), group 1 = {0.88, 0.88, 0.05, 0.05} (max 0.88, top-2 sum 1.76): V3's rule keeps
  // group 1 (experts 4, 5), V2's max rule would keep group 0 (experts 0, then 1 of the tied 0.05s).
  const auto logits = row({3.0f, -3.0f, -3.0f, -3.0f, 2.0f, 2.0f, -3.0f, -3.0f});
  auto v3 = run<noaux_2_1>(logits, 2);
  CHECK(v3.idx(0, 0) == 4);
  CHECK(v3.idx(0, 1) == 5);
  // Normalised (0.5 each), then times routed_scaling_factor 2.5 (V3 scales normalised weights too).
  CHECK(v3.w(0, 0) == Approx(1.25).epsilon(kScoreTol));
  CHECK(v3.w(0, 1) == Approx(1.25).epsilon(kScoreTol));
  constexpr router_case v2_rule{{.score = scoring::sigmoid, .method = topk_method::group_limited_greedy},
                                noaux_2_1.opt};
  auto v2 = run<v2_rule>(logits, 2);
  CHECK(v2.idx(0, 0) == 0);
  CHECK(v2.idx(0, 1) == 1);
  // Without scale_normalised (V2's rule) the normalised weights are not scaled: 0.5 each.
  constexpr router_case v2_weights{
      noaux_2_1.cfg, {.n_group = 2, .topk_group = 1, .norm_topk_prob = true, .routed_scaling_factor = 2.5f}};
  CHECK(run<v2_weights>(logits, 2).w(0, 0) == Approx(0.5).epsilon(kScoreTol));

  // The correction bias moves the group choice and the expert choice but not the weights: +1 on expert 2
  // makes group 0's top-2 sum 0.95 + 1.05 = 2.0 > 1.76, so experts 2 (1.05) and 0 (0.95) are chosen, with
  // weights from the unbiased 0.047 and 0.953 (normalised to sum 1, times 2.5).
  tensor<float, 1> bias(8);
  bias(2) = 1.0f;
  auto b = run<noaux_2_1>(logits, 2, -1, bias.cview());
  CHECK(b.idx(0, 0) == 2);
  CHECK(b.idx(0, 1) == 0);
  const double s3 = 1 / (1 + std::exp(-3.0)), sm3 = 1 / (1 + std::exp(3.0));
  CHECK(b.w(0, 0) == Approx(2.5 * sm3 / (s3 + sm3)).epsilon(kScoreTol));
  CHECK(b.w(0, 1) == Approx(2.5 * s3 / (s3 + sm3)).epsilon(kScoreTol));

  // Tied group scores: the lower group wins; tied experts: the lower index.
  auto t = run<noaux_2_1>(row({1.0f, 1.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f}), 3);
  CHECK(t.idx(0, 0) == 0);
  CHECK(t.idx(0, 1) == 1);
  CHECK(t.idx(0, 2) == 2);
}

TEST_CASE("route: the bias steers selection only", "[moe][router]") {
  const auto logits = row({0.0f, std::log(2.0f), std::log(3.0f), 0.0f});
  tensor<float, 1> bias(4);
  bias(0) = 10.0f;
  auto r = run<greedy_softmax>(logits, 2, -1, bias.cview());
  CHECK(r.idx(0, 0) == 0);
  CHECK(r.idx(0, 1) == 2);
  CHECK(r.w(0, 0) == Approx(1.0 / 7).epsilon(kScoreTol));
  CHECK(r.w(0, 1) == Approx(3.0 / 7).epsilon(kScoreTol));
  // A negative bias hides the best expert from the choice.
  bias(0) = 0.0f;
  bias(2) = -1.0f;
  auto r2 = run<greedy_softmax>(logits, 1, -1, bias.cview());
  CHECK(r2.idx(0, 0) == 1);
}

TEST_CASE("route: k_active fills the remaining slots with -1 and 0", "[moe][router]") {
  const auto logits = moe_test::separated_logits(5, 16, 7);
  auto full = run<greedy_softmax>(logits, 6);
  auto part = run<greedy_softmax>(logits, 6, 2);
  for (index_t t = 0; t < 5; ++t)
    for (index_t k = 0; k < 6; ++k) {
      CHECK(part.idx(t, k) == (k < 2 ? full.idx(t, k) : -1));
      CHECK(part.w(t, k) == (k < 2 ? full.w(t, k) : 0.0f));
    }
}

TEST_CASE("route: random grid against the double reference", "[moe][router]") {
  std::uint64_t seed = 100;
  for (index_t E : {1, 4, 64, 160})
    for (index_t K : {index_t{1}, index_t{2}, index_t{6}, E})
      for (index_t T : {0, 1, 7, 512}) {
        if (K > E || (T == 512 && E * K > 1024)) continue;  // the largest grid points add time, not coverage
        check_against_ref<greedy_softmax>(T, E, K, ++seed);
        check_against_ref<greedy_sigmoid>(T, E, K, ++seed);
        if (K > 1) check_against_ref<norm_softmax>(T, E, K, ++seed);
      }
  for (index_t E : {64, 160})
    for (index_t K : {1, 2, 6})
      for (index_t T : {1, 7, 512}) {
        check_against_ref<v2_grouped>(T, E, K, ++seed);
        check_against_ref<grouped_sigmoid_norm>(T, E, K, ++seed);
      }
  for (index_t E : {64, 256})  // V3: 256 experts in 8 groups, 4 kept, K = 8
    for (index_t K : {1, 2, 8})
      for (index_t T : {1, 7, 300})
        for (bool bias : {false, true}) check_against_ref<v3_noaux>(T, E, K, ++seed, bias);
  check_against_ref<grouped_4_2>(33, 8, 4, ++seed);  // K = all experts of the kept groups
  check_against_ref<noaux_2_1>(33, 8, 4, ++seed, true);
}

TEST_CASE("route: identical results with 1 and 2 threads", "[moe][router]") {
  const auto logits = moe_test::separated_logits(2500, 64, 3);  // > 1024 tokens: routing forks
  routed<v2_grouped> a, b;
  {
    thread_count_scope one(1);
    a = run<v2_grouped>(logits, 6);
  }
  {
    thread_count_scope two(2);
    b = run<v2_grouped>(logits, 6);
  }
  CHECK(std::equal(a.idx.data(), a.idx.data() + a.idx.size(), b.idx.data()));
  CHECK(std::memcmp(a.w.data(), b.w.data(), sizeof(float) * static_cast<std::size_t>(a.w.size())) == 0);
  CHECK(std::memcmp(a.scores.data(), b.scores.data(),
                    sizeof(float) * static_cast<std::size_t>(a.scores.size())) == 0);
}

TEST_CASE("gate_logits against the double reference", "[moe][router]") {
  std::uint64_t seed = 500;
  for (index_t T : {0, 1, 7, 33})
    for (index_t H : {1, 13, 64, 200})
      for (index_t E : {1, 4, 64}) {
        INFO("T=" << T << " H=" << H << " E=" << E);
        const auto x = moe_test::random_tensor(T, H, ++seed), w = moe_test::random_tensor(E, H, ++seed);
        tensor<float, 2> l(T, E);
        gate_logits(x, w, l);
        const auto want = ref::gate_logits(ref::to_mat<float>(x), ref::to_mat<float>(w));
        CHECK(dsk::test::nmse(std::span<const double>(want.v), std::span<const float>(l.span())) <
              kLogitNmse);
      }
}

TEST_CASE("orthogonal_init: orthonormal rows or columns times gain, deterministic", "[moe][router]") {
  for (auto [R, C, gain] : {std::tuple{8, 32, 1.0f}, std::tuple{64, 64, 0.5f}, std::tuple{48, 16, 2.0f}}) {
    INFO("R=" << R << " C=" << C);
    tensor<float, 2> w(R, C);
    orthogonal_init(w, 42, gain);
    const bool rows = R <= C;
    const index_t n = rows ? R : C, len = rows ? C : R;
    double worst = 0;
    for (index_t a = 0; a < n; ++a)
      for (index_t b = 0; b < n; ++b) {
        double d = 0;
        for (index_t i = 0; i < len; ++i) d += rows ? double(w(a, i)) * w(b, i) : double(w(i, a)) * w(i, b);
        worst = std::max(worst, std::abs(d - (a == b ? double(gain) * gain : 0.0)));
      }
    // The double result is rounded to fp32 once: errors of a few 1e-7 per entry, summed over <= 64 terms.
    CHECK(worst < 1e-5 * gain * gain);
    tensor<float, 2> w2(R, C), w3(R, C);
    orthogonal_init(w2, 42, gain);
    orthogonal_init(w3, 43, gain);
    CHECK(std::equal(w.data(), w.data() + w.size(), w2.data()));
    CHECK(!std::equal(w.data(), w.data() + w.size(), w3.data()));
  }
}

TEST_CASE("topk_schedule: linear ramp of k", "[moe][router]") {
  const topk_schedule s{.k_start = 1, .k_final = 6, .warmup_steps = 100};
  CHECK(s.k_at(0) == 1);
  CHECK(s.k_at(19) == 1);  // 1 + floor(5 * 19 / 100)
  CHECK(s.k_at(20) == 2);
  CHECK(s.k_at(50) == 3);  // 1 + floor(2.5)
  CHECK(s.k_at(99) == 5);  // 1 + floor(4.95)
  CHECK(s.k_at(100) == 6);
  CHECK(s.k_at(1000000) == 6);
  CHECK(topk_schedule{.k_start = 6, .k_final = 6, .warmup_steps = 0}.k_at(0) == 6);
  CHECK_THROWS_WITH((topk_schedule{.k_start = 7, .k_final = 6, .warmup_steps = 10}.k_at(0)),
                    Catch::Contains("k_start"));
  CHECK_THROWS_WITH(s.k_at(-1), Catch::Contains("step"));
}

TEST_CASE("route: bad input is rejected with a clear error", "[moe][router]") {
  const auto logits = moe_test::separated_logits(3, 8, 1);
  tensor<float, 2> scores(3, 8), w9(3, 9), w2(3, 2);
  tensor<expert_id, 2> idx9(3, 9), idx2(3, 2);
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, scores, idx9, w9),
                    Catch::Contains("K = extent(1) in [1, E]"));
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, scores, idx2, w9), Catch::Contains("topk_w"));
  tensor<float, 2> bad_scores(3, 7);
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, bad_scores, idx2, w2), Catch::Contains("scores"));
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, scores, idx2, w2, {.k_active = 3}),
                    Catch::Contains("k_active"));
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, scores, idx2, w2, {.k_active = 0}),
                    Catch::Contains("k_active"));
  tensor<float, 1> bias(5);
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, bias.cview(), scores, idx2, w2),
                    Catch::Contains("bias"));
  auto nan_logits = logits;
  nan_logits(1, 2) = NAN;
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(nan_logits, scores, idx2, w2),
                    Catch::Contains("non-finite value at (1, 2)"));
  const auto l6 = moe_test::separated_logits(3, 6, 1);
  tensor<float, 2> s6(3, 6);
  CHECK_THROWS_WITH(route<grouped_4_2.cfg>(l6, s6, idx2, w2, grouped_4_2.opt),
                    Catch::Contains("divisible by n_group"));
  tensor<expert_id, 2> idx5(3, 5);
  tensor<float, 2> w5(3, 5);
  CHECK_THROWS_WITH(route<grouped_4_2.cfg>(logits, scores, idx5, w5, grouped_4_2.opt),
                    Catch::Contains("topk_group"));
  CHECK_THROWS_WITH(route<v3_noaux.cfg>(logits, scores, idx2, w2, v3_noaux.opt),  // 8 experts in 8 groups
                    Catch::Contains("noaux_tc scores a group by its two best experts: E / n_group >= 2"));
  tensor<float, 2> x(3, 16), gw(8, 15), l(3, 8);
  CHECK_THROWS_WITH(gate_logits(x, gw, l), Catch::Contains("'w'"));
  // Router options are runtime values: checked at run time, the message names the field.
  constexpr router_config grouped{.method = topk_method::group_limited_greedy};
  CHECK_THROWS_WITH(route<grouped>(logits, scores, idx2, w2, {.n_group = 0}), Catch::Contains("opt.n_group"));
  CHECK_THROWS_WITH(route<grouped>(logits, scores, idx2, w2, {.n_group = 4, .topk_group = 5}),
                    Catch::Contains("opt.topk_group"));
  CHECK_THROWS_WITH(route<grouped>(logits, scores, idx2, w2, {.n_group = 4, .topk_group = 0}),
                    Catch::Contains("opt.topk_group"));
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, scores, idx2, w2, {.routed_scaling_factor = 0.0f}),
                    Catch::Contains("opt.routed_scaling_factor"));
  CHECK_THROWS_WITH(route<greedy_softmax.cfg>(logits, scores, idx2, w2, {.routed_scaling_factor = NAN}),
                    Catch::Contains("opt.routed_scaling_factor"));
}

TEST_CASE("route: n_group / topk_group are runtime (one compiled config, any grouping)", "[moe][router]") {
  // The same compiled router_config runs 4x2, 4x1, 8x3 groupings; each matches the reference.
  std::uint64_t seed = 900;
  check_against_ref<grouped_4_1>(9, 8, 2, ++seed);
  check_against_ref<grouped_4_2>(9, 8, 3, ++seed);
  check_against_ref<router_case{{.method = topk_method::group_limited_greedy},
                                {.n_group = 2, .topk_group = 1}}>(9, 8, 4, ++seed);
  check_against_ref<router_case{{.method = topk_method::group_limited_greedy},
                                {.n_group = 8, .topk_group = 8}}>(9, 8, 8, ++seed);
  // Greedy ignores the grouping: (n_group, topk_group) = (8, 3) routes as (1, 1).
  const auto logits = moe_test::separated_logits(9, 16, ++seed);
  const auto a = run<greedy_softmax>(logits, 6);
  const auto b = run<router_case{{}, {.n_group = 8, .topk_group = 3}}>(logits, 6);
  CHECK(std::equal(a.idx.data(), a.idx.data() + a.idx.size(), b.idx.data()));
  CHECK(std::memcmp(a.w.data(), b.w.data(), sizeof(float) * static_cast<std::size_t>(a.w.size())) == 0);
}

TEST_CASE("route: dsk::dispatch maps a runtime method onto compiled router_configs", "[moe][router]") {
  constexpr router_config greedy{}, grouped{.method = topk_method::group_limited_greedy};
  const auto logits = moe_test::separated_logits(5, 16, 77);
  tensor<float, 2> scores(5, 16), w(5, 4), w_direct(5, 4);
  tensor<expert_id, 2> idx(5, 4), idx_direct(5, 4);
  const router_options opt{.n_group = 4, .topk_group = 2, .routed_scaling_factor = 2.5f};
  const router_config want{.method = topk_method::group_limited_greedy};
  dsk::dispatch<greedy, grouped>("router", want,
                                 [&](auto c) { route<decltype(c)::value>(logits, scores, idx, w, opt); });
  route<grouped>(logits, scores, idx_direct, w_direct, opt);
  CHECK(std::equal(idx.data(), idx.data() + idx.size(), idx_direct.data()));
  CHECK(std::memcmp(w.data(), w_direct.data(), sizeof(float) * static_cast<std::size_t>(w.size())) == 0);
  const router_config sigmoid_grouped{.score = scoring::sigmoid, .method = topk_method::group_limited_greedy};
  CHECK_THROWS_WITH((dsk::dispatch<greedy, grouped>("router", sigmoid_grouped, [](auto) {})),
                    Catch::Contains("router = sigmoid/group_limited_greedy is not supported") &&
                        Catch::Contains("softmax/greedy, softmax/group_limited_greedy"));
}

TEST_CASE("route: scores may be computed in place over the logits; other overlaps are rejected",
          "[moe][router][errors]") {
  const index_t T = 40, E = 16, K = 4;
  const auto logits = moe_test::separated_logits(T, E, 9);
  tensor<float, 2> scores(T, E), w(T, K), bias(1, E);
  tensor<expert_id, 2> idx(T, K);
  route<router_config{}>(logits, scores, idx, w);
  // scores == logits: each row is read before it is written, so the same bits.
  tensor<float, 2> inplace = logits, w2(T, K);
  tensor<expert_id, 2> idx2(T, K);
  route<router_config{}>(inplace, inplace, idx2, w2);
  CHECK(std::memcmp(inplace.data(), scores.data(), sizeof(float) * static_cast<std::size_t>(scores.size())) ==
        0);
  CHECK(std::equal(idx.data(), idx.data() + idx.size(), idx2.data()));
  CHECK(std::memcmp(w.data(), w2.data(), sizeof(float) * static_cast<std::size_t>(w.size())) == 0);
  // topk_w over the logits: later rows would be routed from overwritten logits.
  tensor<float, 2> l2 = logits;
  const view<float, 2> w_on_l(l2.data(), dims<2>(T, K), {K, 1});
  CHECK_THROWS_WITH(
      route<router_config{}>(l2, scores, idx, w_on_l),
      Catch::Contains("moe::route: argument 'topk_w'") && Catch::Contains("does not overlap logits"));
  // scores over the bias, topk_idx over the scores, scores shifted over the logits.
  const view<const float, 1> bias_in_scores(scores.data() + E, dims<1>(E), {1});
  CHECK_THROWS_WITH(route<router_config{}>(logits, bias_in_scores, scores, idx, w),
                    Catch::Contains("argument 'scores'") && Catch::Contains("does not overlap bias"));
  const view<expert_id, 2> idx_on_scores(reinterpret_cast<expert_id*>(scores.data()), dims<2>(T, K), {K, 1});
  CHECK_THROWS_WITH(route<router_config{}>(logits, scores, idx_on_scores, w),
                    Catch::Contains("argument 'topk_idx'") && Catch::Contains("does not overlap scores"));
  tensor<float, 2> buf(T + 1, E);
  CHECK_THROWS_WITH(route<router_config{}>(buf.cview().slice(0, 0, T), buf.view().slice(0, 1, T + 1), idx, w),
                    Catch::Contains("does not overlap logits, or exactly logits (in place)"));
  // gate_logits: logits over x (the decode path computes dot products row by row, the GEMM path packs x).
  tensor<float, 2> x(2, E), gw(E, E);
  CHECK_THROWS_WITH(gate_logits(x, gw, x.view()), Catch::Contains("moe::gate_logits: argument 'logits'") &&
                                                      Catch::Contains("does not overlap x"));
  CHECK_THROWS_WITH(gate_logits(x, gw, gw.view().slice(0, 0, 2)), Catch::Contains("does not overlap w"));
}
