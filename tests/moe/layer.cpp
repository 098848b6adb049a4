// Tests of dsk/moe/layer.hpp: the whole DeepSeekMoE layer against ref::moe_layer (every expert on every
// token, masked by the routing) over E in {1, 4, 64, 160}, k in {1, 2, 6, E}, group-limited routing, token
// counts 0, 1, 7, 512, capacity dropping, all tokens on one expert, bf16 and int4 experts, 1 vs 2 threads.
#include "dsk/moe/layer.hpp"

#include <catch2/catch.hpp>
#include <cstring>

#include "common.hpp"

using namespace dsk;
using namespace dsk::moe;

namespace {
// Three chained fp32 products (lengths <= 32) and fp32 combine against double with identical weights.
constexpr double kNmse = 1e-9;

using moe_test::router_case;
constexpr router_case greedy{};
constexpr router_case grouped{{.method = topk_method::group_limited_greedy},
                              {.n_group = 4, .topk_group = 2, .routed_scaling_factor = 2.0f}};
constexpr router_case norm_sigmoid{{.score = scoring::sigmoid}, {.norm_topk_prob = true}};

template <class W>
tensor<W, 3> weights(index_t E, index_t N, index_t K, std::uint64_t seed) {
  return moe_test::random_weights<W>(E, N, K, seed);
}
template <class W>
ref::expert ref_expert(const tensor<W, 3>& g, const tensor<W, 3>& u, const tensor<W, 3>& d, index_t e) {
  auto m = [&](const tensor<W, 3>& t) {
    ref::mat r(t.extent(1), t.extent(2));
    for (index_t i = 0; i < r.rows; ++i)
      for (index_t j = 0; j < r.cols; ++j) r(i, j) = static_cast<float>(t(e, i, j));
    return r;
  };
  return {m(g), m(u), m(d)};
}

struct model {
  index_t E, H, I;
  tensor<float, 2> gate;
  tensor<bf16, 3> g, u, d, sg, su, sd;  // routed and shared (one merged expert of width 2I)
};

model make_model(index_t E, index_t H, index_t I, std::uint64_t seed) {
  model m{E,
          H,
          I,
          moe_test::random_tensor(E, H, seed, -1.0f, 1.0f),
          weights<bf16>(E, I, H, seed + 1),
          weights<bf16>(E, I, H, seed + 2),
          weights<bf16>(E, H, I, seed + 3),
          weights<bf16>(1, 2 * I, H, seed + 4),
          weights<bf16>(1, 2 * I, H, seed + 5),
          weights<bf16>(1, H, 2 * I, seed + 6)};
  return m;
}

template <router_case R>
void check_layer(index_t T, index_t E, index_t K, const dispatch_options& opt, bool with_shared,
                 std::uint64_t seed, view<const float, 1> bias = {}) {
  INFO("T=" << T << " E=" << E << " K=" << K << " cf=" << opt.capacity_factor << " shared=" << with_shared);
  const index_t H = 24, I = 12;
  const auto m = make_model(E, H, I, seed);
  using bank = dense_experts<bf16>;
  const deepseek_moe<R.cfg, bank> layer(
      m.gate, bank(m.g.cview(), m.u.cview(), m.d.cview()),
      with_shared ? std::optional<bank>(bank(m.sg.cview(), m.su.cview(), m.sd.cview())) : std::nullopt, K,
      {.route = R.opt, .dispatch = opt}, bias);
  const auto x = moe_test::random_tensor(T, H, seed + 7);
  tensor<float, 2> y(T, H);
  moe_workspace ws;
  const index_t dropped = layer.forward(x, y, ws);

  std::vector<ref::expert> experts;
  for (index_t e = 0; e < E; ++e) experts.push_back(ref_expert(m.g, m.u, m.d, e));
  const auto shared = ref_expert(m.sg, m.su, m.sd, 0);
  ref::routing r;
  r.idx = moe_test::idx_rows(ws.topk_idx);
  for (index_t t = 0; t < T; ++t) r.w.emplace_back(ws.topk_w.data() + t * K, ws.topk_w.data() + (t + 1) * K);
  const auto kept = ref::kept_pairs(r.idx, E, ws.handle.capacity);
  index_t want_dropped = 0;
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k) want_dropped += r.idx[t][k] >= 0 && !kept[t][k];
  CHECK(dropped == want_dropped);
  const auto want = ref::moe_layer(ref::to_mat<float>(x), experts, with_shared ? &shared : nullptr, r, kept);
  CHECK(dsk::test::nmse(std::span<const double>(want.v), std::span<const float>(y.span())) < kNmse);
}
}  // namespace

TEST_CASE("deepseek_moe: the layer against the every-expert-masked reference", "[moe][layer]") {
  std::uint64_t seed = 1;
  for (index_t E : {1, 4, 64, 160})
    for (index_t K : {index_t{1}, index_t{2}, index_t{6}, E})
      for (index_t T : {0, 1, 7, 512}) {
        if (K > E || (T == 512 && (E > 64 || K > 6))) continue;  // the ref costs T * E expert evaluations
        check_layer<greedy>(T, E, K, {}, true, seed += 10);
        if (E % 4 == 0 && K <= 2 * E / 4) check_layer<grouped>(T, E, K, {.block = 4}, false, seed += 10);
        if (K > 1) check_layer<norm_sigmoid>(T, E, K, {.capacity_factor = 0.5}, true, seed += 10);
      }
  check_layer<greedy>(512, 160, 6, {.capacity_factor = 1.0}, true, seed += 10);
}

TEST_CASE("deepseek_moe: all tokens on one expert, capacity drops the rest", "[moe][layer]") {
  tensor<float, 1> bias(8);
  bias(3) = 100.0f;  // every token picks expert 3 first
  check_layer<greedy>(40, 8, 1, {}, true, 5, bias.cview());
  check_layer<greedy>(40, 8, 2, {.capacity = 10}, false, 6, bias.cview());
}

TEST_CASE("deepseek_moe: int4 experts against the dequantized reference", "[moe][layer]") {
  const index_t T = 33, E = 8, H = 40, I = 16, K = 2;
  const auto g = weights<float>(E, I, H, 1), u = weights<float>(E, I, H, 2), d = weights<float>(E, H, I, 3);
  const auto gate = moe_test::random_tensor(E, H, 4);
  constexpr quant::quantize_config q4{quant::int4_per_channel};
  const quantized_expert_store<q4> store(g.cview(), u.cview(), d.cview());
  const deepseek_moe<greedy.cfg, quantized_experts<q4.fmt>> layer(gate, store.bank(), std::nullopt, K);
  const auto x = moe_test::random_tensor(T, H, 5);
  tensor<float, 2> y(T, H);
  moe_workspace ws;
  layer.forward(x, y, ws);
  auto deq = [](const quant::quantized_weight<q4.fmt>& q) {
    ref::mat m(q.rows(), q.cols());
    for (index_t i = 0; i < m.rows; ++i)
      for (index_t j = 0; j < m.cols; ++j) m(i, j) = double(q.code(i, j)) * double(q.scale(i, 0));
    return m;
  };
  std::vector<ref::expert> experts;
  for (index_t e = 0; e < E; ++e)
    experts.push_back({deq(store.gate()[e]), deq(store.up()[e]), deq(store.down()[e])});
  ref::routing r;
  r.idx = moe_test::idx_rows(ws.topk_idx);
  for (index_t t = 0; t < T; ++t) r.w.emplace_back(ws.topk_w.data() + t * K, ws.topk_w.data() + (t + 1) * K);
  const auto want = ref::moe_layer(ref::to_mat<float>(x), experts, nullptr, r, {});
  CHECK(dsk::test::nmse(std::span<const double>(want.v), std::span<const float>(y.span())) < kNmse);
}

TEST_CASE("deepseek_moe: identical results with 1 and 2 threads", "[moe][layer]") {
  const auto m = make_model(16, 48, 40, 9);
  using bank = dense_experts<bf16>;
  const deepseek_moe<greedy.cfg, bank> layer(m.gate, bank(m.g.cview(), m.u.cview(), m.d.cview()),
                                             bank(m.sg.cview(), m.su.cview(), m.sd.cview()), 6,
                                             {.dispatch = {.block = 8}});
  const auto x = moe_test::random_tensor(200, 48, 10);
  auto run = [&](int threads) {
    thread_count_scope s(threads);
    tensor<float, 2> y(200, 48);
    moe_workspace ws;
    layer.forward(x, y, ws);
    return y;
  };
  const auto a = run(1), b = run(2);
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0);
}

TEST_CASE("deepseek_moe: bad input is rejected with a clear error", "[moe][layer]") {
  const auto m = make_model(4, 8, 4, 1);
  using bank = dense_experts<bf16>;
  const bank routed(m.g.cview(), m.u.cview(), m.d.cview());
  CHECK_THROWS_WITH((deepseek_moe<greedy.cfg, bank>(m.gate, routed, std::nullopt, 5)),
                    Catch::Contains("top_k"));
  tensor<float, 2> bad_gate(4, 9);
  CHECK_THROWS_WITH((deepseek_moe<greedy.cfg, bank>(bad_gate, routed, std::nullopt, 2)),
                    Catch::Contains("'gate'"));
  const deepseek_moe<greedy.cfg, bank> layer(m.gate, routed, std::nullopt, 2);
  tensor<float, 2> x(3, 8), y(3, 7);
  moe_workspace ws;
  CHECK_THROWS_WITH(layer.forward(x, y, ws), Catch::Contains("'y'"));
  CHECK_THROWS_WITH(layer.forward(x, x, ws, 3), Catch::Contains("k_active"));
}

TEST_CASE("deepseek_moe: forward in place (y == x) gives the same bits", "[moe][layer]") {
  const auto m = make_model(8, 32, 24, 21);
  using bank = dense_experts<bf16>;
  const deepseek_moe<greedy.cfg, bank> layer(m.gate, bank(m.g.cview(), m.u.cview(), m.d.cview()),
                                             bank(m.sg.cview(), m.su.cview(), m.sd.cview()), 2);
  const auto x = moe_test::random_tensor(10, 32, 22);
  tensor<float, 2> y(10, 32);
  moe_workspace ws;
  layer.forward(x, y, ws);
  tensor<float, 2> xy = x;
  layer.forward(xy, xy, ws);
  CHECK(std::memcmp(xy.data(), y.data(), sizeof(float) * static_cast<std::size_t>(y.size())) == 0);
  // y over the workspace the combine reads is rejected there.
  CHECK_THROWS_WITH(
      layer.combine(ws, ws.ys.view().slice(0, 0, 10)),
      Catch::Contains("moe::combine_tokens: argument 'y'") && Catch::Contains("does not overlap ys"));
}
