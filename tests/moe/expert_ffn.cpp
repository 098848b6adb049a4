// Tests of dsk/moe/expert_ffn.hpp: grouped SwiGLU over expert segments (empty, single-row, multi-block,
// padded) against ref::swiglu in double, for f32, bf16, int8 and int4 weights; thread-count invariance; bad
// input.
#include "dsk/moe/expert_ffn.hpp"

#include <catch2/catch.hpp>
#include <cstring>

#include "common.hpp"

using namespace dsk;
using namespace dsk::moe;

namespace {
// fp32 products of length <= 130 and an fp32 intermediate against double with the same (rounded or
// dequantized) weights: NMSE ~1e-13; 1e-10 catches any indexing or scaling bug (those give NMSE ~1).
constexpr double kNmse = 1e-10;
// W8A8 / W4A8: activations rounded per row to int8 with step amax/127. x (uniform) loses ~1.5e-5 (NMSE), but
// the down projection's input h = silu(g) * u is heavy-tailed (amax ~ 5-8x its rms): NMSE ~ (8/127)^2 / 12 ~
// 3e-4. A bound of 1e-3 still fails any indexing or scaling bug (NMSE ~ 1).
constexpr double kNmseA8 = 1e-3;

constexpr quant::quantize_config q8{quant::int8_per_channel};
constexpr quant::quantize_config q4{quant::int4_per_channel};

using moe_test::random_weights;

template <class W>
ref::mat expert_mat(const tensor<W, 3>& t, index_t e) {
  ref::mat m(t.extent(1), t.extent(2));
  for (index_t i = 0; i < m.rows; ++i)
    for (index_t j = 0; j < m.cols; ++j) m(i, j) = static_cast<float>(t(e, i, j));
  return m;
}

template <quant::format F>
ref::mat dequant(const quant::quantized_weight<F>& q) {
  ref::mat m(q.rows(), q.cols());
  for (index_t i = 0; i < m.rows; ++i)
    for (index_t j = 0; j < m.cols; ++j) m(i, j) = double(q.code(i, j)) * double(q.scale(i, 0));
  return m;
}

// Runs grouped_swiglu on `counts` rows per expert (segments padded to `block`) and compares every row with
// the reference expert of its segment; padding rows must come back zero.
template <class Bank>
void check_bank(const Bank& bank, const std::vector<ref::expert>& want, const std::vector<index_t>& counts,
                index_t block, std::uint64_t seed, double tol = kNmse) {
  const index_t E = bank.experts(), H = bank.hidden(), I = bank.inter();
  std::vector<index_t> offset(static_cast<std::size_t>(E + 1), 0);
  for (index_t e = 0; e < E; ++e) offset[e + 1] = offset[e] + (counts[e] + block - 1) / block * block;
  const index_t rows = offset[E];
  const auto xs = moe_test::random_tensor(rows, H, seed);
  tensor<float, 2> h(rows, I), ys(rows, H);
  ys.fill(7.0f);
  grouped_swiglu(xs, std::span<const index_t>(offset), std::span<const index_t>(counts), bank, h, ys);
  for (index_t e = 0; e < E; ++e) {
    std::vector<double> got, exp;
    for (index_t r = offset[e]; r < offset[e + 1]; ++r) {
      if (r - offset[e] >= counts[e]) {
        for (index_t j = 0; j < H; ++j) REQUIRE(ys(r, j) == 0.0f);
        continue;
      }
      std::vector<double> x(xs.data() + r * H, xs.data() + (r + 1) * H);
      const auto o = ref::swiglu(x, want[e].gate, want[e].up, want[e].down);
      exp.insert(exp.end(), o.begin(), o.end());
      got.insert(got.end(), ys.data() + r * H, ys.data() + (r + 1) * H);
    }
    INFO("expert " << e << " rows " << counts[e]);
    const double err = dsk::test::nmse(std::span<const double>(exp), std::span<const double>(got));
    CHECK(err < tol);
    if (tol > kNmse && !exp.empty()) CHECK(err > 0.0);  // the int8 path really rounds the activations
  }
}

template <class W>
void check_dense(index_t E, index_t H, index_t I, const std::vector<index_t>& counts, index_t block,
                 std::uint64_t seed) {
  INFO("dense E=" << E << " H=" << H << " I=" << I << " block=" << block);
  const auto g = random_weights<W>(E, I, H, seed), u = random_weights<W>(E, I, H, seed + 1),
             d = random_weights<W>(E, H, I, seed + 2);
  std::vector<ref::expert> want;
  for (index_t e = 0; e < E; ++e) want.push_back({expert_mat(g, e), expert_mat(u, e), expert_mat(d, e)});
  check_bank(dense_experts<W>(g.cview(), u.cview(), d.cview()), want, counts, block, seed + 3);
}

template <quant::quantize_config C>
void check_quant(index_t E, index_t H, index_t I, const std::vector<index_t>& counts, std::uint64_t seed) {
  INFO("quantized E=" << E << " H=" << H << " I=" << I << " bits=" << quant::code_bits(C.fmt));
  const auto g = random_weights<float>(E, I, H, seed), u = random_weights<float>(E, I, H, seed + 1),
             d = random_weights<float>(E, H, I, seed + 2);
  const quantized_expert_store<C> store(g.cview(), u.cview(), d.cview());
  std::vector<ref::expert> want;
  for (index_t e = 0; e < E; ++e)
    want.push_back({dequant(store.gate()[e]), dequant(store.up()[e]), dequant(store.down()[e])});
  check_bank(store.bank(), want, counts, 1, seed + 3);
  check_bank(store.bank(true), want, counts, 1, seed + 3, kNmseA8);
}
}  // namespace

TEST_CASE("grouped_swiglu: f32 / bf16 / f16 weights against the double reference", "[moe][ffn]") {
  // Segments: empty, one row, more than one row block (64), a few rows; I = 130 spans two column blocks.
  check_dense<float>(4, 24, 130, {0, 1, 70, 5}, 1, 1);
  check_dense<float>(4, 24, 130, {3, 0, 9, 1}, 8, 2);
  check_dense<bf16>(4, 33, 17, {2, 70, 0, 1}, 4, 3);
  check_dense<f16>(2, 8, 5, {1, 12}, 1, 4);
  check_dense<float>(1, 300, 9, {1}, 1, 5);       // H spans two down-projection column blocks (256)
  check_dense<float>(3, 16, 8, {0, 0, 0}, 1, 6);  // no rows at all
}

TEST_CASE("grouped_swiglu: int8 / int4 weights against the dequantized double reference", "[moe][ffn]") {
  check_quant<q8>(4, 40, 130, {0, 1, 70, 5}, 11);
  check_quant<q4>(4, 40, 130, {0, 1, 70, 5}, 12);
  check_quant<q4>(3, 33, 17, {2, 9, 1}, 13);  // odd row lengths: half-used bytes
}

TEST_CASE("grouped_swiglu: identical results with 1 and 2 threads", "[moe][ffn]") {
  const index_t E = 8, H = 64, I = 96;
  const auto g = random_weights<bf16>(E, I, H, 1), u = random_weights<bf16>(E, I, H, 2),
             d = random_weights<bf16>(E, H, I, 3);
  const dense_experts<bf16> bank(g.cview(), u.cview(), d.cview());
  // Skewed load: expert 2 has most rows.
  const std::vector<index_t> count{3, 0, 150, 1, 7, 20, 2, 9}, offset{0, 3, 3, 153, 154, 161, 181, 183, 192};
  const auto xs = moe_test::random_tensor(192, H, 4);
  auto run = [&](int threads) {
    thread_count_scope s(threads);
    tensor<float, 2> h(192, I), ys(192, H);
    grouped_swiglu(xs, std::span<const index_t>(offset), std::span<const index_t>(count), bank, h, ys);
    return ys;
  };
  const auto a = run(1), b = run(2);
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0);
}

TEST_CASE("grouped_swiglu: bad input is rejected with a clear error", "[moe][ffn]") {
  const auto g = random_weights<float>(2, 6, 4, 1), d = random_weights<float>(2, 4, 6, 2);
  const auto bad_d = random_weights<float>(2, 4, 5, 3);
  CHECK_THROWS_WITH(dense_experts<float>(g.cview(), g.cview(), bad_d.cview()), Catch::Contains("'down'"));
  const dense_experts<float> bank(g.cview(), g.cview(), d.cview());
  tensor<float, 2> xs(4, 4), h(4, 6), ys(4, 4), ys_bad(4, 5);
  const std::vector<index_t> off{0, 2, 4}, cnt{2, 2}, bad_off{0, 2, 5}, bad_cnt{3, 1};
  auto run = [&](const std::vector<index_t>& o, const std::vector<index_t>& c, view<float, 2> y) {
    grouped_swiglu(xs, std::span<const index_t>(o), std::span<const index_t>(c), bank, h, y);
  };
  CHECK_NOTHROW(run(off, cnt, ys));
  CHECK_THROWS_WITH(run(bad_off, cnt, ys), Catch::Contains("'offset'"));
  CHECK_THROWS_WITH(run(off, bad_cnt, ys), Catch::Contains("'count'"));
  CHECK_THROWS_WITH(run(off, cnt, ys_bad), Catch::Contains("'ys'"));
  CHECK_THROWS_WITH(run(off, std::vector<index_t>{2}, ys), Catch::Contains("'count'"));
}

TEST_CASE("grouped_swiglu: ys may overlap xs; h and ys may not overlap xs, h or the weights",
          "[moe][ffn][errors]") {
  const index_t E = 3, H = 16, I = 24, rows = 12;
  const auto g = random_weights<float>(E, I, H, 1), u = random_weights<float>(E, I, H, 2),
             d = random_weights<float>(E, H, I, 3);
  const dense_experts<float> bank(g.cview(), u.cview(), d.cview());
  const std::vector<index_t> off{0, 4, 8, 12}, cnt{4, 1, 3};
  const auto xs = moe_test::random_tensor(rows, H, 4);
  tensor<float, 2> h(rows, I), ys(rows, H);
  auto run = [&](view<const float, 2> x, view<float, 2> hh, view<float, 2> y) {
    grouped_swiglu(x, std::span<const index_t>(off), std::span<const index_t>(cnt), bank, hh, y);
  };
  run(xs, h, ys);
  // ys == xs: every row of xs is read (gate/up pass) before ys is written (down pass).
  tensor<float, 2> inplace = xs;
  run(inplace, h, inplace);
  CHECK(std::memcmp(inplace.data(), ys.data(), sizeof(float) * static_cast<std::size_t>(ys.size())) == 0);
  // h over xs; ys over h; ys or h over a weight matrix.
  tensor<float, 2> big(rows, I);
  CHECK_THROWS_WITH(
      run(dsk::as_const(big.view().slice(1, 0, H)), big, ys),
      Catch::Contains("moe::grouped_swiglu: argument 'h'") && Catch::Contains("does not overlap xs"));
  CHECK_THROWS_WITH(run(xs, big, big.view().slice(1, 0, H)),
                    Catch::Contains("argument 'ys'") && Catch::Contains("does not overlap h"));
  auto d2 = d;  // a bank over d2, and ys written into d2's first expert
  const dense_experts<float> bank2(g.cview(), u.cview(), d2.cview());
  const view<float, 2> ys_on_down(d2.data(), dims<2>(rows, H), {H, 1});
  CHECK_THROWS_WITH(
      grouped_swiglu(xs, std::span<const index_t>(off), std::span<const index_t>(cnt), bank2, h, ys_on_down),
      Catch::Contains("argument 'ys'") && Catch::Contains("does not overlap the experts' down weights"));
  // Quantized banks list their codes and scales too.
  const quantized_expert_store<quant::quantize_config{quant::int8_per_channel}> store(g.cview(), u.cview(),
                                                                                      d.cview());
  const auto qbank = store.bank();
  const view<float, 2> h_on_codes(
      reinterpret_cast<float*>(const_cast<quant::code_t<quant::int8_per_channel>*>(store.gate()[1].codes())),
      dims<2>(1, I), {I, 1});
  const std::vector<index_t> off1{0, 0, 1, 1}, cnt1{0, 1, 0};
  tensor<float, 2> ys1(1, H);
  CHECK_THROWS_WITH(
      grouped_swiglu(dsk::as_const(xs.view().slice(0, 0, 1)), std::span<const index_t>(off1),
                     std::span<const index_t>(cnt1), qbank, h_on_codes, ys1),
      Catch::Contains("argument 'h'") && Catch::Contains("does not overlap the experts' gate weights"));
}
