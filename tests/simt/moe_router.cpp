// moe::route on the CUDA backend (under the SIMT emulation in test_simt; natively when nvcc builds this file
// into test_cuda) against route<C, simd::scalar> on the host, bit for bit: scores, topk_idx, topk_w. Every
// router_config (softmax / sigmoid x greedy / group_limited_greedy / noaux_tc), with and without a selection
// bias, normalised or scaled weights, k_active < K, scores in place; E in {1, 4, 64, 160, 256, 2048}, K from
// 1 to E, T in {0, 1, 7, 512}; logits with exact ties (so the lower-index rule decides); bad input rejected.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "dsk/moe/cuda/router.cuh"
#include "dsk/moe/router.hpp"
#include "simt/harness.hpp"

using dsk::index_t;
using namespace dsk::test;
namespace moe = dsk::moe;

namespace {

struct route_case {
  index_t T, E, K;
  bool ties, with_bias;
  moe::router_options opt;
};

// Logits in [-4, 4]; with ties, rounded to multiples of 0.5 so that many experts share a score.
dsk::tensor<float, 2> make_logits(const route_case& c, std::uint64_t seed) {
  dsk::tensor<float, 2> x(c.T, c.E);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  for (index_t i = 0; i < x.size(); ++i) {
    const float v = u(g);
    x.data()[i] = c.ties ? std::round(v * 2.0f) / 2.0f : v;
  }
  return x;
}

template <class T, std::size_t R>
bool same_bits(const dsk::tensor<T, R>& a, const dsk::tensor<T, R>& b) {
  return a.size() == b.size() &&
         (a.size() == 0 ||
          std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(T)) == 0);
}

template <moe::router_config C>
void run_case(const route_case& c, std::uint64_t seed) {
  using B = dsk::cuda;
  INFO(moe::to_string(C) << " T=" << c.T << " E=" << c.E << " K=" << c.K << " ties=" << c.ties
                         << " bias=" << c.with_bias << " n_group=" << c.opt.n_group
                         << " topk_group=" << c.opt.topk_group << " norm=" << c.opt.norm_topk_prob
                         << " k_active=" << c.opt.k_active << " backend " << backend_name<B>());
  const auto logits = make_logits(c, seed);
  dsk::tensor<float, 1> bias(c.with_bias ? c.E : 0);
  for (index_t e = 0; e < bias.extent(0); ++e) bias(e) = 0.01f * static_cast<float>((e * 7) % 5);
  dsk::tensor<float, 2> scores_h(c.T, c.E), w_h(c.T, c.K);
  dsk::tensor<moe::expert_id, 2> idx_h(c.T, c.K);
  moe::route<C, dsk::simd::scalar>(logits, bias.cview(), scores_h, idx_h, w_h, c.opt);

  const auto logits_d = put<B>(logits);
  const auto bias_d = put<B>(bias);
  auto scores_d = put<B>(dsk::tensor<float, 2>(c.T, c.E));
  auto w_d = put<B>(dsk::tensor<float, 2>(c.T, c.K));
  auto idx_d = put<B>(dsk::tensor<moe::expert_id, 2>(c.T, c.K));
  moe::route<C, B>(logits_d.cview(), bias_d.cview(), scores_d.view(), idx_d.view(), w_d.view(), c.opt);
  CHECK(same_bits(scores_h, get(scores_d)));
  CHECK(same_bits(idx_h, get(idx_d)));
  CHECK(same_bits(w_h, get(w_d)));

  // In place: scores overwrite the logits.
  auto inplace = put<B>(logits);
  moe::route<C, B>(inplace.cview(), bias_d.cview(), inplace.view(), idx_d.view(), w_d.view(), c.opt);
  CHECK(same_bits(scores_h, get(inplace)));
  CHECK(same_bits(idx_h, get(idx_d)));
}

template <moe::router_config C>
void run_grid(bool grouped) {
  std::vector<route_case> cases;
  if (!grouped) {
    cases = {
        {0, 4, 2, false, false, {}},
        {1, 1, 1, false, false, {}},
        {7, 4, 4, true, false, {}},
        {7, 64, 6, true, true, {.norm_topk_prob = true}},
        {512, 160, 6, false, false, {.routed_scaling_factor = 16.0f}},
        {33,
         160,
         6,
         true,
         true,
         {.norm_topk_prob = true, .routed_scaling_factor = 2.5f, .scale_normalised = true}},
        {9, 64, 6, false, false, {.k_active = 2}},
        {5, 2048, 8, true, false, {.norm_topk_prob = true}},
        {3, 37, 37, true, true, {}},  // K = E, E not a multiple of 32
    };
  } else {
    cases = {
        {0, 64, 2, false, false, {.n_group = 8, .topk_group = 3}},
        {1, 4, 1, false, false, {.n_group = 2, .topk_group = 1}},
        {7, 64, 6, true, true, {.n_group = 8, .topk_group = 3, .norm_topk_prob = true}},
        {512, 160, 6, false, false, {.n_group = 8, .topk_group = 3, .routed_scaling_factor = 16.0f}},
        {33,
         256,
         8,
         true,
         true,
         {.n_group = 8,
          .topk_group = 4,
          .norm_topk_prob = true,
          .routed_scaling_factor = 2.5f,
          .scale_normalised = true}},
        {9, 64, 6, false, true, {.n_group = 64 / 2, .topk_group = 5, .k_active = 3}},
        {4, 128, 8, true, false, {.n_group = 64, .topk_group = 64}},  // every group kept; n_group at the
                                                                      // limit
    };
  }
  std::uint64_t seed = 2100;
  for (const auto& c : cases) run_case<C>(c, seed += 10);
}

}  // namespace

TEST_CASE("moe route on CUDA equals the host bit for bit", "[moe][cuda][router]") {
  using moe::scoring, moe::topk_method;
  run_grid<moe::router_config{scoring::softmax, topk_method::greedy}>(false);
  run_grid<moe::router_config{scoring::sigmoid, topk_method::greedy}>(false);
  run_grid<moe::router_config{scoring::softmax, topk_method::group_limited_greedy}>(true);
  run_grid<moe::router_config{scoring::sigmoid, topk_method::noaux_tc}>(true);
}

TEST_CASE("moe route on CUDA rejects bad input", "[moe][cuda][router]") {
  using B = dsk::cuda;
  constexpr moe::router_config C{};
  dsk::tensor<float, 2> logits(3, 8);
  logits(2, 5) = std::numeric_limits<float>::quiet_NaN();
  const auto l_d = put<B>(logits);
  auto scores = put<B>(dsk::tensor<float, 2>(3, 8));
  auto w = put<B>(dsk::tensor<float, 2>(3, 2));
  auto idx = put<B>(dsk::tensor<moe::expert_id, 2>(3, 2));
  CHECK_THROWS_WITH((moe::route<C, B>(l_d.cview(), scores.view(), idx.view(), w.view())),
                    Catch::Matchers::Contains("'logits'") && Catch::Matchers::Contains("row 2"));
  logits(2, 5) = 0.0f;
  const auto ok = put<B>(logits);
  dsk::tensor<float, 1> bias(8);
  bias(3) = std::numeric_limits<float>::infinity();
  const auto b_d = put<B>(bias);
  CHECK_THROWS_WITH((moe::route<C, B>(ok.cview(), b_d.cview(), scores.view(), idx.view(), w.view())),
                    Catch::Matchers::Contains("'bias'") && Catch::Matchers::Contains("at 3"));
  auto w_bad = put<B>(dsk::tensor<float, 2>(3, 3));
  CHECK_THROWS_WITH((moe::route<C, B>(ok.cview(), scores.view(), idx.view(), w_bad.view())),
                    Catch::Matchers::Contains("'topk_w'"));
  constexpr moe::router_config G{moe::scoring::softmax, moe::topk_method::group_limited_greedy};
  auto big_logits = put<B>(dsk::tensor<float, 2>(1, 130));
  auto big_scores = put<B>(dsk::tensor<float, 2>(1, 130));
  const auto route_65_groups = [&] {
    moe::route<G, B>(big_logits.cview(), big_scores.view(), idx.view().slice(0, 0, 1),
                     w.view().slice(0, 0, 1), {.n_group = 65, .topk_group = 1});
  };
  CHECK_THROWS_WITH(route_65_groups(), Catch::Matchers::Contains("n_group"));
}
