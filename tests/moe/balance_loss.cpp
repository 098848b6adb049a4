// Tests of dsk/moe/balance_loss.hpp: values against the reference formulas (and a hand-computed balanced
// case), gradients with respect to the logits against central finite differences of the double reference,
// accumulation into dlogits, and rejected input.
#include "dsk/moe/balance_loss.hpp"

#include <catch2/catch.hpp>
#include <functional>

#include "common.hpp"

using namespace dsk;
using namespace dsk::moe;

namespace {
// Losses from fp32 scores (relative error ~1e-7 each) summed in double against the double reference.
constexpr double kLossTol = 1e-5;
// Central differences in double with step 1e-4 have truncation error ~1e-9; the analytic gradient uses fp32
// scores (relative error ~1e-6) and is rounded to fp32: 1e-4 relative to the largest entry covers both.
constexpr double kGradTol = 1e-4;
constexpr double kStep = 1e-4;
// Where the true gradient vanishes (a loss that is balanced across devices, say), fp32 rounding of terms of
// size alpha * O(1) leaves ~1e-7 * alpha: an absolute floor of 1e-6 * alpha.
constexpr double kGradAbs = 1e-6;

constexpr router_config softmax_cfg{};
constexpr router_config sigmoid_cfg{.score = scoring::sigmoid};

struct setup {
  tensor<float, 2> logits, scores;
  tensor<expert_id, 2> idx;
  tensor<float, 2> w;
};

template <router_config C>
setup make(index_t T, index_t E, index_t K, std::uint64_t seed) {
  setup s{moe_test::random_tensor(T, E, seed, -2.0f, 2.0f), tensor<float, 2>(T, E),
          tensor<expert_id, 2>(T, K), tensor<float, 2>(T, K)};
  route<C>(s.logits, s.scores, s.idx, s.w);
  return s;
}

// Checks `loss` (the optimized value and gradient) against `ref_loss` (a function of the double scores).
void check_grad(const setup& s, scoring sf,
                const std::function<double(view<const float, 2>, view<float, 2>)>& loss,
                const std::function<double(const ref::mat&)>& ref_loss, double alpha) {
  const index_t T = s.logits.extent(0), E = s.logits.extent(1);
  tensor<float, 2> g(T, E);
  const double L = loss(s.scores, g);
  tensor<float, 2> twice = g;
  loss(s.scores, twice);  // the loss ADDS its gradient: a second call doubles it
  auto lg = ref::to_mat<float>(s.logits);
  CHECK(L == Approx(ref_loss(ref::scores(lg, sf))).epsilon(kLossTol).margin(1e-12));
  double gmax = 0;
  for (index_t i = 0; i < g.size(); ++i) {
    gmax = std::max(gmax, std::abs(double(g.data()[i])));
    REQUIRE(twice.data()[i] == 2 * g.data()[i]);  // x + x is exact in fp32
  }
  for (index_t t = 0; t < T; ++t)
    for (index_t e = 0; e < E; ++e) {
      const double x0 = lg(t, e);
      lg(t, e) = x0 + kStep;
      const double up = ref_loss(ref::scores(lg, sf));
      lg(t, e) = x0 - kStep;
      const double dn = ref_loss(ref::scores(lg, sf));
      lg(t, e) = x0;
      const double fd = (up - dn) / (2 * kStep);
      INFO("t=" << t << " e=" << e << " grad=" << g(t, e) << " fd=" << fd);
      REQUIRE(std::abs(double(g(t, e)) - fd) <= kGradTol * gmax + kGradAbs * alpha);
    }
}

template <router_config C>
void check_all_losses(index_t T, index_t E, index_t K, index_t D, std::uint64_t seed) {
  INFO("T=" << T << " E=" << E << " K=" << K << " scoring=" << int(C.score));
  const auto s = make<C>(T, E, K, seed);
  const auto idx = moe_test::idx_rows(s.idx);
  const scoring sf = C.score;
  check_grad(
      s, sf, [&](auto sc, auto g) { return balance_loss_simple(sc, sf, g, 0.01); },
      [&](const ref::mat& m) { return ref::loss_simple(m, 0.01); }, 0.01);
  check_grad(
      s, sf, [&](auto sc, auto g) { return balance_loss_expert(sc, sf, s.idx, 0.003, g); },
      [&](const ref::mat& m) { return ref::loss_expert(m, idx, 0.003); }, 0.003);
  check_grad(
      s, sf, [&](auto sc, auto g) { return balance_loss_device(sc, sf, s.idx, D, 0.05, g); },
      [&](const ref::mat& m) { return ref::loss_device(m, idx, D, 0.05); }, 0.05);
  check_grad(
      s, sf,
      [&](auto sc, auto g) { return balance_loss_comm(sc, sf, s.idx, D, std::min<index_t>(3, D), 0.02, g); },
      [&](const ref::mat& m) { return ref::loss_comm(m, idx, D, std::min<index_t>(3, D), 0.02); }, 0.02);
  for (index_t L : {index_t{1}, T}) {
    if (L == 0) continue;
    check_grad(
        s, sf, [&](auto sc, auto g) { return balance_loss_seq_aux(sc, sf, s.idx, L, 0.001, g); },
        [&](const ref::mat& m) { return ref::loss_seq_aux(m, idx, L, 0.001); }, 0.001);
  }
}
}  // namespace

TEST_CASE("balance losses: a perfectly balanced router, hand computed", "[moe][loss]") {
  // Equal logits: every score is 1/E. Token t picks experts 2t, 2t+1 (mod E): each expert chosen equally
  // often.
  const index_t T = 8, E = 8, K = 2;
  tensor<float, 2> scores(T, E), g(T, E);
  scores.fill(1.0f / E);
  tensor<expert_id, 2> idx(T, K);
  for (index_t t = 0; t < T; ++t)
    idx(t, 0) = static_cast<expert_id>(2 * t % E), idx(t, 1) = static_cast<expert_id>((2 * t + 1) % E);
  CHECK(balance_loss_simple(scores, scoring::softmax, g) == Approx(0.0).margin(1e-15));
  for (index_t i = 0; i < g.size(); ++i) CHECK(g.data()[i] == Approx(0.0).margin(1e-12));
  // f_i = E/(K T) * 2 = 1, P_i = 1/E: sum_i f_i P_i = 1.
  CHECK(balance_loss_expert(scores, scoring::softmax, idx, 0.003, {}) == Approx(0.003));
  // 4 devices of 2 experts: f'_d = 1, P'_d = 1/4 -> 1.
  CHECK(balance_loss_device(scores, scoring::softmax, idx, 4, 0.05, {}) == Approx(0.05));
  // Each token touches 1 device (experts 2t, 2t+1 share one): f''_d = D/(M T) * 2 = 4/(1*8)*2 = 1 -> sum 1.
  CHECK(balance_loss_comm(scores, scoring::softmax, idx, 4, 1, 0.02, {}) == Approx(0.02));
  // seq_aux over 2 sequences of 4: each sequence picks 8 distinct experts once: ce = 1 / (4*2/8) = 1 -> 1.
  CHECK(balance_loss_seq_aux(scores, scoring::softmax, idx, 4, 0.001, {}) == Approx(0.001));
  // The gradient of the expert loss at uniform softmax scores is zero (a constant shift of the scores).
  g.fill(0.0f);
  balance_loss_expert(scores, scoring::softmax, idx, 0.003, g);
  for (index_t i = 0; i < g.size(); ++i) CHECK(g.data()[i] == Approx(0.0).margin(1e-12));
  // All tokens on expert 0: f_0 = E / K, everything else 0.
  tensor<expert_id, 2> one(T, 1);
  one.fill(0);
  CHECK(balance_loss_expert(scores, scoring::softmax, one, 1.0, {}) == Approx(1.0));  // f_0 = 8, P_0 = 1/8
}

TEST_CASE("balance losses and gradients: formulas and finite differences", "[moe][loss]") {
  check_all_losses<softmax_cfg>(7, 4, 2, 2, 11);
  check_all_losses<sigmoid_cfg>(7, 4, 2, 2, 12);
  check_all_losses<softmax_cfg>(12, 16, 6, 4, 13);
  check_all_losses<sigmoid_cfg>(12, 16, 6, 8, 14);
  check_all_losses<softmax_cfg>(1, 1, 1, 1, 15);
  check_all_losses<softmax_cfg>(5, 8, 8, 2, 16);
}

TEST_CASE("balance losses: empty input and bad input", "[moe][loss]") {
  tensor<float, 2> scores(0, 4), g(0, 4);
  tensor<expert_id, 2> idx(0, 2);
  CHECK(balance_loss_simple(scores, scoring::softmax, g) == 0.0);
  CHECK(balance_loss_expert(scores, scoring::softmax, idx, 1.0, g) == 0.0);
  tensor<float, 2> s(3, 4), gbad(3, 5);
  tensor<expert_id, 2> i3(3, 2), ibad(2, 2);
  CHECK_THROWS_WITH(balance_loss_simple(s, scoring::softmax, gbad), Catch::Contains("'dlogits'"));
  CHECK_THROWS_WITH(balance_loss_expert(s, scoring::softmax, ibad, 1.0, {}), Catch::Contains("'topk_idx'"));
  i3(1, 1) = 4;
  CHECK_THROWS_WITH(balance_loss_expert(s, scoring::softmax, i3, 1.0, {}), Catch::Contains("4 at (1, 1)"));
  i3(1, 1) = 0;
  CHECK_THROWS_WITH(balance_loss_device(s, scoring::softmax, i3, 3, 1.0, {}), Catch::Contains("'devices'"));
  CHECK_THROWS_WITH(balance_loss_comm(s, scoring::softmax, i3, 2, 3, 1.0, {}),
                    Catch::Contains("'max_devices'"));
  CHECK_THROWS_WITH(balance_loss_seq_aux(s, scoring::softmax, i3, 2, 1.0, {}), Catch::Contains("'seq_len'"));
  // The gradient added over the scores it is computed from.
  CHECK_THROWS_WITH(balance_loss_simple(s, scoring::softmax, s.view()),
                    Catch::Contains("argument 'dlogits'") && Catch::Contains("does not overlap scores"));
  CHECK_THROWS_WITH(balance_loss_seq_aux(s, scoring::softmax, i3, 3, 1.0, s.view()),
                    Catch::Contains("does not overlap scores"));
}
