// nn::sample / nn::sampler: for each option, the empirical frequencies of 40000 seeded draws over a small
// vocabulary against the exact renormalised probabilities computed here from the definitions (Pearson
// chi-square at significance 1e-4), tokens outside the kept set never drawn; the generator's known outputs;
// seed reproducibility; greedy and edge cases; errors.
#include "dsk/nn/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/core/tensor.hpp"

namespace {
using dsk::index_t;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kDraws = 40000;

// Upper 1e-4 quantiles of the chi-square distribution, df = 1..11 (regularised incomplete gamma, checked
// against published tables: df 1 -> 15.137, df 9 -> 33.720). A correct sampler fails a test with
// probability 1e-4; a wrong probability of 0.01 over 40000 draws moves the statistic by ~ 40.
constexpr double kChi2Crit[] = {0,      15.137, 18.421, 21.108, 23.513, 25.745,
                                27.856, 29.878, 31.828, 33.720, 35.564, 37.367};

// The distribution sample() must draw from, written from the definitions: penalty, temperature, the top-k
// set (ties: lower id), renormalise, top-p prefix, min-p relative to the maximum, renormalise.
std::vector<double> expected(const std::vector<float>& logits, const dsk::nn::sampling_options& o,
                             const std::vector<std::int32_t>& history = {}) {
  const std::size_t V = logits.size();
  std::vector<double> z(logits.begin(), logits.end());
  std::vector<bool> pen(V, false);
  for (auto id : history) pen[static_cast<std::size_t>(id)] = true;
  for (std::size_t i = 0; i < V; ++i)
    if (pen[i]) z[i] = z[i] > 0 ? z[i] / o.repetition_penalty : z[i] * o.repetition_penalty;
  std::vector<std::size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return z[a] > z[b]; });
  std::vector<bool> keep(V, false);
  std::size_t k = o.top_k > 0 ? std::min<std::size_t>(static_cast<std::size_t>(o.top_k), V) : V;
  for (std::size_t i = 0; i < k; ++i) keep[order[i]] = !std::isinf(z[order[i]]);
  std::vector<double> p(V, 0.0);
  double s = 0;
  for (std::size_t i = 0; i < V; ++i)
    if (keep[i]) s += (p[i] = std::exp(z[i] / o.temperature));
  for (double& v : p) v /= s;
  if (o.top_p < 1.0) {
    double acc = 0;
    bool done = false;
    for (std::size_t i = 0; i < V; ++i) {
      const std::size_t t = order[i];
      if (done) p[t] = 0;
      acc += p[t];
      if (acc >= o.top_p) done = true;
    }
  }
  const double pmax = *std::max_element(p.begin(), p.end());
  for (double& v : p)
    if (v < o.min_p * pmax) v = 0;
  s = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& v : p) v /= s;
  return p;
}

// Draws kDraws tokens with a fixed seed; requires zero draws where want is 0 and the chi-square statistic
// over the others below the 1e-4 critical value.
void check_distribution(const std::vector<float>& logits, const dsk::nn::sampling_options& o,
                        const std::vector<std::int32_t>& history = {}) {
  const auto want = expected(logits, o, history);
  std::vector<int> count(logits.size(), 0);
  dsk::nn::rng g(20261201);
  const dsk::view<const float, 1> lv(logits.data(), dsk::dims<1>(static_cast<index_t>(logits.size())), {1});
  for (int d = 0; d < kDraws; ++d) ++count[static_cast<std::size_t>(dsk::nn::sample(lv, o, g, history))];
  double chi2 = 0;
  int cells = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i, want[i], count[i]);
    if (want[i] == 0) {
      REQUIRE(count[i] == 0);
      continue;
    }
    const double e = want[i] * kDraws;
    REQUIRE(e >= 5.0);  // the chi-square approximation needs >= 5 expected per cell
    chi2 += (count[i] - e) * (count[i] - e) / e;
    ++cells;
  }
  REQUIRE(cells >= 2);
  CAPTURE(chi2, cells - 1);
  REQUIRE(chi2 < kChi2Crit[cells - 1]);
}

const std::vector<float> kLogits = {1.0f, 2.5f, -0.5f, 0.3f, 2.5f, -1.0f, 1.7f, 0.0f, -kInf, 0.9f};
}  // namespace

TEST_CASE("rng: xoshiro256** seeded by splitmix64 gives the published streams", "[nn][sampling]") {
  // splitmix64(0)'s first output is 0xe220a8397b1dcdaf (Vigna's splitmix64.c); the xoshiro outputs below are
  // the reference algorithm's, computed with Python integers from the same state.
  dsk::nn::rng g(0);
  REQUIRE(g.state()[0] == 0xe220a8397b1dcdafull);
  REQUIRE(g.state()[3] == 0xf88bb8a8724c81ecull);
  REQUIRE(g.next() == 0x99ec5f36cb75f2b4ull);
  REQUIRE(g.next() == 0xbf6e1f784956452aull);
  REQUIRE(g.next() == 0x1a5f849d4933e6e0ull);
  REQUIRE(g.next() == 0x6aa594f1262d2d2cull);
  dsk::nn::rng h(20261201);
  REQUIRE(h.next() == 0x3de3f7d6b4ce87ebull);
  for (int i = 0; i < 1000; ++i) {
    const double u = h.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("sample: each option draws the renormalised distribution (chi-square, p = 1e-4)",
          "[nn][sampling]") {
  using O = dsk::nn::sampling_options;
  SECTION("temperature 1") { check_distribution(kLogits, O{}); }
  SECTION("temperature 0.7") { check_distribution(kLogits, O{.temperature = 0.7}); }
  SECTION("temperature 2") { check_distribution(kLogits, O{.temperature = 2.0}); }
  SECTION("top_k 4 (a tie at 2.5)") { check_distribution(kLogits, O{.top_k = 4}); }
  SECTION("top_k larger than vocab") { check_distribution(kLogits, O{.top_k = 50}); }
  SECTION("top_p 0.8") { check_distribution(kLogits, O{.temperature = 0.9, .top_p = 0.8}); }
  SECTION("min_p 0.15") { check_distribution(kLogits, O{.min_p = 0.15}); }
  SECTION("repetition penalty 1.8 on positive and negative logits") {
    check_distribution(kLogits, O{.repetition_penalty = 1.8}, {1, 2, 1, 6, 8});
  }
  SECTION("all together") {
    check_distribution(
        kLogits, O{.temperature = 0.8, .top_k = 7, .top_p = 0.95, .min_p = 0.05, .repetition_penalty = 1.3},
        {4, 5, 9});
  }
}

TEST_CASE("sample: seeded reproducibility and greedy edge cases", "[nn][sampling]") {
  const dsk::view<const float, 1> lv(kLogits.data(), dsk::dims<1>(10), {1});
  const dsk::nn::sampling_options o{.temperature = 1.3, .top_p = 0.9};
  auto stream = [&](std::uint64_t seed) {
    dsk::nn::sampler s(o, seed);
    std::vector<index_t> v;
    for (int i = 0; i < 200; ++i) v.push_back(s.sample(lv));
    return v;
  };
  REQUIRE(stream(7) == stream(7));
  REQUIRE(stream(7) != stream(8));
  // Greedy = argmax, first maximum on ties (ids 1 and 4 hold 2.5); it consumes no random numbers.
  dsk::nn::rng g(1), g0(1);
  REQUIRE(dsk::nn::sample(lv, {.temperature = 0.0}, g) == 1);
  REQUIRE(g.state() == g0.state());
  // The penalty applies before greedy: id 1 penalised leaves id 4.
  const std::int32_t hist[] = {1};
  REQUIRE(dsk::nn::sample(lv, {.temperature = 0.0, .repetition_penalty = 2.0}, g, hist) == 4);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(dsk::nn::sample(lv, {.temperature = 1.0, .top_k = 1}, g) == 1);        // top_k 1 == argmax
    REQUIRE(dsk::nn::sample(lv, {.temperature = 5.0, .top_p = 1e-9}, g) == 1);     // top_p tiny: the top
    const index_t t = dsk::nn::sample(lv, {.temperature = 1.0, .min_p = 1.0}, g);  // only the tied maxima
    REQUIRE((t == 1 || t == 4));
  }
  // One finite logit among -inf; a one-token vocabulary.
  const std::vector<float> one_finite = {-kInf, -kInf, 3.0f, -kInf};
  const dsk::view<const float, 1> of(one_finite.data(), dsk::dims<1>(4), {1});
  for (int i = 0; i < 20; ++i) REQUIRE(dsk::nn::sample(of, {}, g) == 2);
  const float single = -7.0f;
  REQUIRE(dsk::nn::sample(dsk::view<const float, 1>(&single, dsk::dims<1>(1), {1}), {}, g) == 0);
  // The sampler takes the last row of [rows, vocab] logits.
  dsk::tensor<float, 2> rows(2, 4);
  for (index_t i = 0; i < 4; ++i) rows(0, i) = i == 0 ? 9.0f : 0.0f, rows(1, i) = i == 3 ? 9.0f : 0.0f;
  dsk::nn::sampler greedy({.temperature = 0.0});
  REQUIRE(greedy.sample(rows.cview()) == 3);
}

TEST_CASE("sample: bad logits and options are errors naming the argument", "[nn][sampling][errors]") {
  dsk::nn::rng g(3);
  const std::vector<float> all_inf(5, -kInf), nan = {0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f},
                                              pinf = {0.0f, kInf};
  auto v = [](const std::vector<float>& x) {
    return dsk::view<const float, 1>(x.data(), dsk::dims<1>(static_cast<index_t>(x.size())), {1});
  };
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(all_inf), {}, g),
                      Catch::Contains("'logits'") && Catch::Contains("-inf"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(all_inf), {.temperature = 0.0}, g), Catch::Contains("every logit"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(nan), {}, g),
                      Catch::Contains("'logits'") && Catch::Contains("index 1"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(pinf), {}, g), Catch::Contains("'logits'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(std::vector<float>{}), {}, g), Catch::Contains("'logits'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.temperature = -0.1}, g),
                      Catch::Contains("'temperature'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.temperature = std::nan("")}, g),
                      Catch::Contains("'temperature'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.top_k = -1}, g), Catch::Contains("'top_k'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.top_p = 0.0}, g), Catch::Contains("'top_p'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.top_p = 1.5}, g), Catch::Contains("'top_p'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.min_p = -0.5}, g), Catch::Contains("'min_p'"));
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.repetition_penalty = 0.0}, g),
                      Catch::Contains("'repetition_penalty'"));
  const std::int32_t bad[] = {3, 10};
  REQUIRE_THROWS_WITH(dsk::nn::sample(v(kLogits), {.repetition_penalty = 1.2}, g, bad),
                      Catch::Contains("'history'") && Catch::Contains("history[1]"));
  dsk::tensor<float, 2> none(0, 4);
  dsk::nn::sampler s;
  REQUIRE_THROWS_WITH(s.sample(none.cview()), Catch::Contains("'logits'"));
}
