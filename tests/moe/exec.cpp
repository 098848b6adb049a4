// Execution tags of the MoE family: every entry point run with dsk::simd::scalar (the scalar twin, through
// the public entry point) gives the same bits as with dsk::host (gate logits, route, dispatch/combine and
// their backward, the grouped expert FFN of each weight format, the whole deepseek_moe layer); expert banks
// built from per-expert matrices against the [E, I, H] ones; the operand concepts.
#include <catch2/catch.hpp>
#include <cstring>

#include "common.hpp"
#include "dsk/moe/moe.hpp"

using namespace dsk;
using namespace dsk::moe;
using moe_test::router_case;
using scalar_exec = dsk::simd::scalar;

namespace {

template <class T, std::size_t R>
bool same_bits(const tensor<T, R>& a, const tensor<T, R>& b) {
  // (memcmp of empty tensors would pass null pointers: undefined behaviour)
  return a.size() == b.size() &&
         (a.size() == 0 ||
          std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0);
}

using moe_test::random_weights;

// One separately allocated [N, K] matrix per expert with the values of t[e] (a checkpoint's per-expert
// tensors), with a row stride larger than K to show that any row stride works.
template <class W>
struct per_expert {
  std::vector<tensor<W, 2>> owned;
  std::vector<view<const W, 2>> views;
  explicit per_expert(const tensor<W, 3>& t) {
    for (index_t e = 0; e < t.extent(0); ++e) {
      tensor<W, 2> m(t.extent(1), t.extent(2) + 3);
      for (index_t i = 0; i < t.extent(1); ++i)
        for (index_t j = 0; j < t.extent(2); ++j) m(i, j) = t(e, i, j);
      owned.push_back(std::move(m));
    }
    for (const auto& m : owned) views.push_back(view<const W, 2>(m.cview()).slice(1, 0, t.extent(2)));
  }
};

struct segments {
  std::vector<index_t> count, offset;
  index_t rows() const { return offset.back(); }
};
segments make_segments(std::vector<index_t> count, index_t block) {
  segments s{std::move(count), {0}};
  for (index_t c : s.count) s.offset.push_back(s.offset.back() + (c + block - 1) / block * block);
  return s;
}

template <class Exec, class Bank>
tensor<float, 2> run_ffn(const Bank& bank, const segments& seg, const tensor<float, 2>& xs) {
  tensor<float, 2> h(seg.rows(), bank.inter()), ys(seg.rows(), bank.hidden());
  ys.fill(7.0f);
  grouped_swiglu<Exec>(xs, std::span<const index_t>(seg.offset), std::span<const index_t>(seg.count), bank, h,
                       ys);
  return ys;
}

// Segments with the awkward cases: empty, one row (the decode GEMV path), more than a row block, a tail.
const std::vector<index_t> kCounts{0, 1, 70, 5};

template <class Bank>
void check_ffn_exec(const Bank& bank, std::uint64_t seed) {
  for (index_t block : {1, 4}) {
    const auto seg = make_segments(kCounts, block);
    const auto xs = moe_test::random_tensor(seg.rows(), bank.hidden(), seed);
    const auto host_y = run_ffn<dsk::host>(bank, seg, xs), scalar_y = run_ffn<scalar_exec>(bank, seg, xs);
    INFO("block " << block);
    CHECK(same_bits(host_y, scalar_y));
  }
}

template <router_case R>
void check_route_exec(index_t T, index_t E, index_t K, std::uint64_t seed, bool with_bias) {
  INFO("T=" << T << " E=" << E << " K=" << K << " bias=" << with_bias);
  const auto logits = moe_test::separated_logits(T, E, seed);
  const auto br = moe_test::random_tensor(1, E, seed + 1, -0.1f, 0.1f);
  tensor<float, 1> bias(E);
  for (index_t e = 0; e < E; ++e) bias(e) = br(0, e);
  const view<const float, 1> b = with_bias ? view<const float, 1>(bias.cview()) : view<const float, 1>{};
  tensor<float, 2> s1(T, E), s2(T, E), w1(T, K), w2(T, K);
  tensor<expert_id, 2> i1(T, K), i2(T, K);
  route<R.cfg>(logits, b, s1, i1, w1, R.opt);
  route<R.cfg, scalar_exec>(logits, b, s2, i2, w2, R.opt);
  CHECK(same_bits(s1, s2));
  CHECK(same_bits(i1, i2));
  CHECK(same_bits(w1, w2));
}

}  // namespace

TEST_CASE("exec: gate_logits with simd::scalar gives the host bits", "[moe][exec]") {
  std::uint64_t seed = 10;
  for (index_t T : {0, 1, 4, 5, 33})  // <= 4 tokens: per-row dots; more: dsk::gemm (GEMV, then blocked)
    for (index_t H : {1, 13, 200})
      for (index_t E : {1, 9, 64}) {
        INFO("T=" << T << " H=" << H << " E=" << E);
        const auto x = moe_test::random_tensor(T, H, ++seed), w = moe_test::random_tensor(E, H, ++seed);
        tensor<float, 2> a(T, E), b(T, E);
        gate_logits(x, w, a);
        gate_logits<scalar_exec>(x, w, b);
        CHECK(same_bits(a, b));
      }
}

TEST_CASE("exec: route with simd::scalar gives the host bits", "[moe][exec]") {
  constexpr router_case softmax_norm{{}, {.norm_topk_prob = true}};
  constexpr router_case sigmoid_scaled{{.score = scoring::sigmoid}, {.routed_scaling_factor = 2.5f}};
  constexpr router_case v2{{.method = topk_method::group_limited_greedy},
                           {.n_group = 8, .topk_group = 3, .routed_scaling_factor = 16.0f}};
  constexpr router_case v3ish{{.score = scoring::sigmoid, .method = topk_method::group_limited_greedy},
                              {.n_group = 4, .topk_group = 2, .norm_topk_prob = true}};
  constexpr router_case v3{{.score = scoring::sigmoid, .method = topk_method::noaux_tc},
                           {.n_group = 4,
                            .topk_group = 2,
                            .norm_topk_prob = true,
                            .routed_scaling_factor = 2.5f,
                            .scale_normalised = true}};
  std::uint64_t seed = 100;
  for (index_t E : {1, 13, 64, 160})  // 13: a tail of 5 lanes in softmax / sigmoid
    for (index_t T : {0, 1, 7})
      for (bool bias : {false, true}) {
        check_route_exec<softmax_norm>(T, E, std::min<index_t>(E, 6), ++seed, bias);
        check_route_exec<sigmoid_scaled>(T, E, 1, ++seed, bias);
        if (E % 8 == 0) check_route_exec<v2>(T, E, 6, ++seed, bias);
        if (E % 4 == 0) check_route_exec<v3ish>(T, E, 4, ++seed, bias);
        if (E % 8 == 0) check_route_exec<v3>(T, E, 6, ++seed, bias);
      }
  check_route_exec<v2>(1500, 64, 6, ++seed, true);  // > 1024 tokens: routing forks
}

TEST_CASE("exec: dispatch / combine and their backward with simd::scalar give the host bits", "[moe][exec]") {
  for (index_t H : {1, 13, 64}) {
    const index_t T = 37, E = 8, K = 3;
    INFO("H=" << H);
    const auto logits = moe_test::separated_logits(T, E, 5);
    tensor<float, 2> scores(T, E), w(T, K);
    tensor<expert_id, 2> idx(T, K);
    route<router_config{}>(logits, scores, idx, w, {.k_active = 2});  // slot 2 is -1 everywhere
    const auto h = plan_dispatch(idx, E, {.block = 4, .capacity_factor = 0.9});
    const auto x = moe_test::random_tensor(T, H, 6), shared = moe_test::random_tensor(T, H, 7);
    tensor<float, 2> xs1(h.rows(), H), xs2(h.rows(), H);
    dispatch_tokens(x, h, xs1);
    dispatch_tokens<scalar_exec>(x, h, xs2);
    CHECK(same_bits(xs1, xs2));
    const auto ys = moe_test::random_tensor(h.rows(), H, 8);
    tensor<float, 2> y1(T, H), y2(T, H), y3(T, H), y4(T, H);
    combine_tokens(ys, h, w, y1, shared);
    combine_tokens<scalar_exec>(ys, h, w, y2, shared);
    combine_tokens(ys, h, w, y3);
    combine_tokens<scalar_exec>(ys, h, w, y4);
    CHECK(same_bits(y1, y2));
    CHECK(same_bits(y3, y4));
    const auto dy = moe_test::random_tensor(T, H, 9);
    tensor<float, 2> dx1(T, H), dx2(T, H), dys1(h.rows(), H), dys2(h.rows(), H), dw1(T, K), dw2(T, K);
    dispatch_tokens_backward(ys, h, dx1);
    dispatch_tokens_backward<scalar_exec>(ys, h, dx2);
    CHECK(same_bits(dx1, dx2));
    combine_tokens_backward(dy, ys, h, w, dys1, dw1);
    combine_tokens_backward<scalar_exec>(dy, ys, h, w, dys2, dw2);
    CHECK(same_bits(dys1, dys2));
    CHECK(same_bits(dw1, dw2));
  }
}

TEST_CASE("exec: grouped_swiglu with simd::scalar gives the host bits, every weight format", "[moe][exec]") {
  const index_t E = 4, H = 40, I = 130;  // I spans two gate/up column blocks; tails everywhere
  {
    const auto g = random_weights<float>(E, I, H, 1), u = random_weights<float>(E, I, H, 2),
               d = random_weights<float>(E, H, I, 3);
    check_ffn_exec(dense_experts<float>(g.cview(), u.cview(), d.cview()), 4);
  }
  {
    const auto g = random_weights<bf16>(E, I, H, 5), u = random_weights<bf16>(E, I, H, 6),
               d = random_weights<bf16>(E, H, I, 7);
    check_ffn_exec(dense_experts<bf16>(g.cview(), u.cview(), d.cview()), 8);
  }
  {
    const auto g = random_weights<f16>(E, I, H, 9), u = random_weights<f16>(E, I, H, 10),
               d = random_weights<f16>(E, H, I, 11);
    check_ffn_exec(dense_experts<f16>(g.cview(), u.cview(), d.cview()), 12);
  }
  const auto g = random_weights<float>(E, I, H, 13), u = random_weights<float>(E, I, H, 14),
             d = random_weights<float>(E, H, I, 15);
  {
    const quantized_expert_store<quant::quantize_config{quant::int8_per_channel}> q8(g.cview(), u.cview(),
                                                                                     d.cview());
    check_ffn_exec(q8.bank(), 16);
    check_ffn_exec(q8.bank(true), 17);
  }
  {
    const quantized_expert_store<quant::quantize_config{quant::int4_per_channel}> q4(g.cview(), u.cview(),
                                                                                     d.cview());
    check_ffn_exec(q4.bank(), 18);
    check_ffn_exec(q4.bank(true), 19);
  }
}

TEST_CASE("exec: deepseek_moe with simd::scalar gives the host bits", "[moe][exec]") {
  const index_t E = 16, H = 48, I = 24, K = 4;
  const auto gate = moe_test::random_tensor(E, H, 1);
  const auto g = random_weights<bf16>(E, I, H, 2), u = random_weights<bf16>(E, I, H, 3),
             d = random_weights<bf16>(E, H, I, 4);
  const auto sg = random_weights<bf16>(1, 2 * I, H, 5), su = random_weights<bf16>(1, 2 * I, H, 6),
             sd = random_weights<bf16>(1, H, 2 * I, 7);
  using bank = dense_experts<bf16>;
  const bank routed(g.cview(), u.cview(), d.cview()), shared(sg.cview(), su.cview(), sd.cview());
  constexpr router_config grouped{.method = topk_method::group_limited_greedy};
  const moe_options opt{.route = {.n_group = 4, .topk_group = 2, .routed_scaling_factor = 16.0f},
                        .dispatch = {.block = 4}};
  const deepseek_moe<grouped, bank> host_layer(gate, routed, shared, K, opt);
  const deepseek_moe<grouped, bank, bank, scalar_exec> scalar_layer(gate, routed, shared, K, opt);
  const auto fg = random_weights<float>(E, I, H, 8), fu = random_weights<float>(E, I, H, 9),
             fd = random_weights<float>(E, H, I, 10);
  constexpr quant::quantize_config q4{quant::int4_per_channel};
  const quantized_expert_store<q4> store(fg.cview(), fu.cview(), fd.cview());
  using qbank = quantized_experts<q4.fmt>;
  const deepseek_moe<router_config{}, qbank> host_q(gate, store.bank(true), std::nullopt, K);
  const deepseek_moe<router_config{}, qbank, qbank, scalar_exec> scalar_q(gate, store.bank(true),
                                                                          std::nullopt, K);
  for (index_t T : {1, 3, 40}) {
    INFO("T=" << T);
    const auto x = moe_test::random_tensor(T, H, 11 + T);
    tensor<float, 2> y1(T, H), y2(T, H), y3(T, H), y4(T, H);
    moe_workspace ws1, ws2;
    host_layer.forward(x, y1, ws1);
    scalar_layer.forward(x, y2, ws2);
    CHECK(same_bits(ws1.topk_idx, ws2.topk_idx));
    CHECK(same_bits(ws1.topk_w, ws2.topk_w));
    CHECK(same_bits(y1, y2));
    host_q.forward(x, y3, ws1);
    scalar_q.forward(x, y4, ws2);
    CHECK(same_bits(y3, y4));
  }
}

TEST_CASE("expert banks from per-expert matrices: the same bits as the [E, I, H] bank", "[moe][ffn]") {
  const index_t E = 4, H = 33, I = 130;
  auto check = [&]<class W>(W, std::uint64_t seed) {
    const auto g = random_weights<W>(E, I, H, seed), u = random_weights<W>(E, I, H, seed + 1),
               d = random_weights<W>(E, H, I, seed + 2);
    const per_expert<W> pg(g), pu(u), pd(d);
    const dense_experts<W> stacked(g.cview(), u.cview(), d.cview());
    const dense_experts<W> separate(pg.views, pu.views, pd.views);
    CHECK(separate.experts() == E);
    CHECK(separate.hidden() == H);
    CHECK(separate.inter() == I);
    CHECK(separate.expert_bytes() == stacked.expert_bytes());
    for (index_t block : {1, 8}) {
      const auto seg = make_segments(kCounts, block);
      const auto xs = moe_test::random_tensor(seg.rows(), H, seed + 3);
      CHECK(same_bits(run_ffn<dsk::host>(stacked, seg, xs), run_ffn<dsk::host>(separate, seg, xs)));
    }
  };
  check(float{}, 1);
  check(bf16{}, 10);
  check(f16{}, 20);
}

TEST_CASE("quantized_expert_store: filled one expert at a time, the same codes and bits", "[moe][ffn]") {
  const index_t E = 3, H = 33, I = 17;  // odd row lengths: half-used int4 bytes
  constexpr quant::quantize_config C{quant::int4_per_channel};
  const auto g = random_weights<bf16>(E, I, H, 1), u = random_weights<bf16>(E, I, H, 2),
             d = random_weights<bf16>(E, H, I, 3);
  const quantized_expert_store<C> stacked(g.cview(), u.cview(), d.cview());
  const per_expert<bf16> pg(g), pu(u), pd(d);
  quantized_expert_store<C> added, prequantized;
  CHECK(added.empty());
  for (index_t e = 0; e < E; ++e) {
    added.add(pg.views[e], pu.views[e], pd.views[e]);
    // What a loader does: quantize each checkpoint tensor as it is read, then hand the three over.
    prequantized.add_quantized(quant::quantize<C>(pg.views[e]), quant::quantize<C>(pu.views[e]),
                               quant::quantize<C>(pd.views[e]));
  }
  CHECK(added.experts() == E);
  CHECK(added.bytes() == stacked.bytes());
  CHECK(added.bytes() > 0);
  for (const auto* s : {&added, &prequantized})
    for (index_t e = 0; e < E; ++e)
      for (auto [a, b] :
           {std::pair{&s->gate()[e], &stacked.gate()[e]}, std::pair{&s->up()[e], &stacked.up()[e]},
            std::pair{&s->down()[e], &stacked.down()[e]}})
        for (index_t i = 0; i < a->rows(); ++i)
          for (index_t j = 0; j < a->cols(); ++j) {
            REQUIRE(a->code(i, j) == b->code(i, j));
            REQUIRE(a->scale(i, 0) == b->scale(i, 0));
          }
  const auto seg = make_segments({2, 9, 1}, 1);
  const auto xs = moe_test::random_tensor(seg.rows(), H, 4);
  CHECK(same_bits(run_ffn<dsk::host>(stacked.bank(), seg, xs), run_ffn<dsk::host>(added.bank(), seg, xs)));
  CHECK(same_bits(run_ffn<dsk::host>(stacked.bank(), seg, xs),
                  run_ffn<dsk::host>(prequantized.bank(), seg, xs)));
}

TEST_CASE("per-expert banks: bad input is rejected with a clear error", "[moe][ffn]") {
  const auto g = random_weights<float>(2, 6, 4, 1), d = random_weights<float>(2, 4, 6, 2),
             bad = random_weights<float>(2, 4, 5, 3);
  const per_expert<float> pg(g), pd(d), pbad(bad);
  using bank = dense_experts<float>;
  CHECK_NOTHROW(bank(pg.views, pg.views, pd.views));
  CHECK_THROWS_WITH(bank(std::vector<view<const float, 2>>{}, {}, {}),
                    Catch::Contains("'gate'") && Catch::Contains("at least one expert"));
  CHECK_THROWS_WITH(bank(pg.views, {pg.views[0]}, pd.views), Catch::Contains("'up'"));
  CHECK_THROWS_WITH(bank(pg.views, pg.views, {pd.views[0], pbad.views[1]}), Catch::Contains("'down[1]'"));
  CHECK_THROWS_WITH(bank(pg.views, {pg.views[0], pd.views[1]}, pd.views), Catch::Contains("'up[1]'"));
  quantized_expert_store<quant::quantize_config{quant::int8_per_channel}> store;
  store.add(pg.views[0], pg.views[0], pd.views[0]);
  CHECK_THROWS_WITH(store.add(pg.views[1], pg.views[1], pbad.views[1]),
                    Catch::Contains("'down'") && Catch::Contains("expert 1"));
  CHECK_THROWS_WITH(store.add(pd.views[1], pg.views[1], pd.views[1]), Catch::Contains("'gate'"));
  CHECK(store.experts() == 1);
}

// The operand concepts: what is and is not accepted, checked at compile time.
static_assert(expert_weight<float> && expert_weight<bf16> && expert_weight<f16>);
static_assert(!expert_weight<double> && !expert_weight<std::int8_t>);
static_assert(expert_bank<dense_experts<bf16>>);
static_assert(expert_bank<quantized_experts<quant::int4_per_channel>>);
static_assert(!expert_bank<int>);
static_assert(!expert_bank<tensor<float, 3>>);
static_assert(dsk::host_exec<dsk::host> && dsk::host_exec<scalar_exec>);
// An execution tag that is not one is not a viable call.
template <class Exec>
constexpr bool gate_logits_accepts = requires(view<const float, 2> x, view<float, 2> l) {
  gate_logits<Exec>(x, x, l);
};
template <class Exec>
constexpr bool route_accepts = requires(view<const float, 2> x, view<float, 2> s, view<expert_id, 2> i) {
  route<router_config{}, Exec>(x, s, i, s);
};
static_assert(!gate_logits_accepts<int> && !route_accepts<double> && !route_accepts<dsk::cuda>);
static_assert(gate_logits_accepts<scalar_exec> && route_accepts<scalar_exec> && route_accepts<dsk::host>);
