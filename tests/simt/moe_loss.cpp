// moe balance losses on the CUDA backend (under the SIMT emulation in test_simt; natively when nvcc builds
// this file into test_cuda) against the host functions: the loss to 1e-12 relative and every dlogits element
// to within one float ulp. Both sides evaluate the same double expressions in the same order; what may differ
// is where the compiler contracts a * b + c into an FMA (g++ and nvcc both may, not always in the same
// places), which moves a double by an ulp and, rarely, the float it is rounded to. The gradient is added to a
// non-zero dlogits (the functions accumulate). Softmax and sigmoid scores from route(), E in {4, 64, 160},
// K in {1, 6}, T in {0, 1, 7, 512}, seq_aux over sequences of 1, 7 and 64 tokens; bad input rejected.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "dsk/moe/balance_loss.hpp"
#include "dsk/moe/cuda/balance_loss.cuh"
#include "dsk/moe/router.hpp"
#include "simt/harness.hpp"

using dsk::index_t;
using namespace dsk::test;
namespace moe = dsk::moe;

namespace {

bool within_one_ulp(float want, float got) {
  return got == want || got == std::nextafter(want, INFINITY) || got == std::nextafter(want, -INFINITY);
}
bool close_loss(double want, double got) { return std::fabs(want - got) <= 1e-12 * std::fabs(want) + 1e-300; }

struct problem {
  dsk::tensor<float, 2> scores, dlogits0;
  dsk::tensor<moe::expert_id, 2> idx;
};

template <moe::scoring Sf>
problem make_problem(index_t T, index_t E, index_t K, std::uint64_t seed) {
  problem p{dsk::tensor<float, 2>(T, E), dsk::tensor<float, 2>(T, E), dsk::tensor<moe::expert_id, 2>(T, K)};
  dsk::tensor<float, 2> logits(T, E), w(T, K);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (index_t i = 0; i < logits.size(); ++i) logits.data()[i] = u(g);
  for (index_t i = 0; i < p.dlogits0.size(); ++i) p.dlogits0.data()[i] = 0.1f * u(g);
  moe::route<moe::router_config{Sf, moe::topk_method::greedy}, dsk::simd::scalar>(logits, p.scores, p.idx, w);
  if (T > 0 && K > 1) p.idx(0, K - 1) = -1;  // an empty slot
  return p;
}

template <class Host, class Device>
void compare(const char* name, const problem& p, Host&& host, Device&& device) {
  using B = dsk::cuda;
  INFO(name);
  auto dl_h = p.dlogits0;
  const double L_h = host(p.scores.cview(), p.idx.cview(), dl_h.view());
  const auto s_d = put<B>(p.scores);
  const auto i_d = put<B>(p.idx);
  auto dl_d = put<B>(p.dlogits0);
  const double L_d = device(s_d.cview(), i_d.cview(), dl_d.view());
  CHECK(close_loss(L_h, L_d));
  const auto dl = get(dl_d);
  index_t bad = 0;
  for (index_t i = 0; i < dl.size(); ++i) bad += !within_one_ulp(dl_h.data()[i], dl.data()[i]);
  CHECK(bad == 0);
  // Without a gradient: the same loss, nothing written.
  const dsk::view<float, 2> none{};
  CHECK(close_loss(L_h, device(s_d.cview(), i_d.cview(), none)));
}

template <moe::scoring Sf>
void run_losses(index_t T, index_t E, index_t K, std::uint64_t seed) {
  using B = dsk::cuda;
  INFO("scoring " << (Sf == moe::scoring::softmax ? "softmax" : "sigmoid") << " T=" << T << " E=" << E
                  << " K=" << K);
  const auto p = make_problem<Sf>(T, E, K, seed);
  using S = dsk::view<const float, 2>;
  using I = dsk::view<const moe::expert_id, 2>;
  using D = dsk::view<float, 2>;
  compare(
      "simple", p, [&](S s, I, D d) { return moe::balance_loss_simple(s, Sf, d, 0.02); },
      [&](S s, I, D d) { return moe::balance_loss_simple<B>(s, Sf, d, 0.02); });
  compare(
      "expert", p, [&](S s, I i, D d) { return moe::balance_loss_expert(s, Sf, i, 0.003, d); },
      [&](S s, I i, D d) { return moe::balance_loss_expert<B>(s, Sf, i, 0.003, d); });
  const index_t D4 = E % 4 == 0 ? 4 : 1;
  compare(
      "device", p, [&](S s, I i, D d) { return moe::balance_loss_device(s, Sf, i, D4, 0.05, d); },
      [&](S s, I i, D d) { return moe::balance_loss_device<B>(s, Sf, i, D4, 0.05, d); });
  const index_t M = D4 > 1 ? 3 : 1;
  compare(
      "comm", p, [&](S s, I i, D d) { return moe::balance_loss_comm(s, Sf, i, D4, M, 0.02, d); },
      [&](S s, I i, D d) { return moe::balance_loss_comm<B>(s, Sf, i, D4, M, 0.02, d); });
  for (const index_t len : {index_t{1}, index_t{7}, index_t{64}})
    if (T % len == 0)
      compare(
          "seq_aux", p, [&](S s, I i, D d) { return moe::balance_loss_seq_aux(s, Sf, i, len, 0.001, d); },
          [&](S s, I i, D d) { return moe::balance_loss_seq_aux<B>(s, Sf, i, len, 0.001, d); });
}

}  // namespace

TEST_CASE("moe balance losses on CUDA equal the host's", "[moe][cuda][loss]") {
  std::uint64_t seed = 3100;
  for (const index_t T : {0, 1, 7, 512})
    for (const index_t E : {4, 64, 160})
      for (const index_t K : {1, 6}) {
        if (K > E) continue;
        run_losses<moe::scoring::softmax>(T, E, K, seed += 10);
        run_losses<moe::scoring::sigmoid>(T, E, K, seed += 10);
      }
}

TEST_CASE("moe balance losses on CUDA reject bad input", "[moe][cuda][loss]") {
  using B = dsk::cuda;
  dsk::tensor<float, 2> scores(4, 8);
  dsk::tensor<moe::expert_id, 2> idx(4, 2);
  idx(3, 1) = 8;  // E = 8
  const auto s_d = put<B>(scores);
  const auto i_d = put<B>(idx);
  auto dl = put<B>(dsk::tensor<float, 2>(4, 8));
  CHECK_THROWS_WITH(
      moe::balance_loss_expert<B>(s_d.cview(), moe::scoring::softmax, i_d.cview(), 0.1, dl.view()),
      Catch::Matchers::Contains("'topk_idx'") && Catch::Matchers::Contains("(3, 1)"));
  auto dl_bad = put<B>(dsk::tensor<float, 2>(4, 7));
  CHECK_THROWS_WITH(moe::balance_loss_simple<B>(s_d.cview(), moe::scoring::softmax, dl_bad.view()),
                    Catch::Matchers::Contains("'dlogits'"));
  idx(3, 1) = 1;
  const auto i_ok = put<B>(idx);
  CHECK_THROWS_WITH(
      moe::balance_loss_seq_aux<B>(s_d.cview(), moe::scoring::softmax, i_ok.cview(), 3, 0.1, dl.view()),
      Catch::Matchers::Contains("'seq_len'"));
}
