// Tests of dsk/moe/dispatch.hpp: layout and dispatch plans on hand-made routings, capacity dropping against
// the reference mask, dispatch + combine against a direct double computation over a grid (E, K, T, block,
// capacity), adjoint identities for both backward passes, thread-count invariance and rejected input.
#include "dsk/moe/dispatch.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <limits>

#include "common.hpp"

using namespace dsk;
using namespace dsk::moe;

namespace {
// fp32 sums of <= 160 weighted terms against double, relative to the magnitude of the terms.
constexpr double kCombineTol = 1e-5;

tensor<expert_id, 2> idx_of(std::initializer_list<std::initializer_list<int>> rows) {
  tensor<expert_id, 2> t(static_cast<index_t>(rows.size()), static_cast<index_t>(rows.begin()->size()));
  index_t i = 0;
  for (auto r : rows) {
    index_t j = 0;
    for (int e : r) t(i, j++) = e;
    ++i;
  }
  return t;
}

// Random routing: K distinct experts per token (or -1 with probability 1/8 when `holes`).
tensor<expert_id, 2> random_idx(index_t T, index_t E, index_t K, std::uint64_t seed, bool holes) {
  tensor<expert_id, 2> idx(T, K);
  auto g = dsk::test::rng(seed);
  std::vector<int> p(static_cast<std::size_t>(E));
  for (index_t t = 0; t < T; ++t) {
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), g);
    for (index_t k = 0; k < K; ++k) idx(t, k) = holes && g() % 8 == 0 ? -1 : p[k];
  }
  return idx;
}

// The expert owning row r, from the segment offsets.
index_t expert_of_row(const dispatch_handle& h, index_t r) {
  index_t e = 0;
  while (h.offset[e + 1] <= r) ++e;
  return e;
}

void check_case(index_t T, index_t E, index_t K, index_t H, const dispatch_options& opt, std::uint64_t seed) {
  INFO("T=" << T << " E=" << E << " K=" << K << " H=" << H << " block=" << opt.block
            << " cf=" << opt.capacity_factor << " cap=" << opt.capacity);
  const auto idx = random_idx(T, E, K, seed, true);
  const auto x = moe_test::random_tensor(T, H, seed + 1),
             w = moe_test::random_tensor(T, K, seed + 2, 0.0f, 1.0f);
  const auto shared = moe_test::random_tensor(T, H, seed + 3);
  const auto h = plan_dispatch(idx, E, opt);
  const index_t cap = opt.capacity >= 0 ? opt.capacity
                      : opt.capacity_factor > 0
                          ? static_cast<index_t>(std::ceil(opt.capacity_factor * double(T * K) / double(E)))
                          : -1;
  REQUIRE(h.capacity == cap);
  const auto kept = ref::kept_pairs(moe_test::idx_rows(idx), E, cap);
  index_t dropped = 0;
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k) {
      const bool routed = idx(t, k) >= 0;
      dropped += routed && !kept[t][k];
      REQUIRE((h.pair_row[t * K + k] >= 0) == (routed && kept[t][k]));
    }
  REQUIRE(h.dropped == dropped);
  for (index_t e = 0; e < E; ++e) {
    REQUIRE((h.offset[e + 1] - h.offset[e]) % opt.block == 0);
    REQUIRE(h.offset[e + 1] - h.offset[e] - h.count[e] < opt.block);
  }

  tensor<float, 2> xs(h.rows(), H), ys(h.rows(), H), y(T, H);
  dispatch_tokens(x, h, xs);
  // A stand-in expert whose output identifies it: ys[r] = (e + 1) * xs[r].
  for (index_t r = 0; r < h.rows(); ++r) {
    const float f = static_cast<float>(expert_of_row(h, r) + 1);
    for (index_t j = 0; j < H; ++j) {
      if (h.row_token[r] < 0) REQUIRE(xs(r, j) == 0.0f);
      ys(r, j) = f * xs(r, j);
    }
  }
  combine_tokens(ys, h, w, y, shared);
  for (index_t t = 0; t < T; ++t)
    for (index_t j = 0; j < H; ++j) {
      double want = shared(t, j), mag = std::abs(want);
      for (index_t k = 0; k < K; ++k)
        if (idx(t, k) >= 0 && kept[t][k]) {
          const double term = double(w(t, k)) * double(idx(t, k) + 1) * double(x(t, j));
          want += term;
          mag += std::abs(term);
        }
      REQUIRE(std::abs(y(t, j) - want) <= kCombineTol * (mag + 1e-30));
    }
}

double dot(const tensor<float, 2>& a, const tensor<float, 2>& b) {
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += double(a.data()[i]) * b.data()[i];
  return s;
}
}  // namespace

TEST_CASE("dispatch_layout: tokens per expert and per rank, hand computed", "[moe][dispatch]") {
  const auto idx = idx_of({{0, 3}, {1, -1}, {3, 2}});
  tensor<index_t, 1> per_expert(4), per_rank(2);
  tensor<std::uint8_t, 2> in_rank(3, 2);
  dispatch_layout(idx, 4, per_expert, per_rank, in_rank);
  CHECK(per_expert(0) == 1);
  CHECK(per_expert(1) == 1);
  CHECK(per_expert(2) == 1);
  CHECK(per_expert(3) == 2);
  CHECK(per_rank(0) == 2);
  CHECK(per_rank(1) == 2);
  CHECK(in_rank(0, 0) == 1);
  CHECK(in_rank(0, 1) == 1);
  CHECK(in_rank(1, 0) == 1);
  CHECK(in_rank(1, 1) == 0);
  CHECK(in_rank(2, 0) == 0);
  CHECK(in_rank(2, 1) == 1);
  tensor<index_t, 1> bad_ranks(3);
  CHECK_THROWS_WITH(dispatch_layout(idx, 4, per_expert, bad_ranks, in_rank),
                    Catch::Contains("tokens_per_rank"));
}

TEST_CASE("plan_dispatch: counting sort by expert, padding, hand computed", "[moe][dispatch]") {
  const auto idx = idx_of({{0, 3}, {1, -1}, {3, 2}});
  const auto h = plan_dispatch(idx, 4);
  CHECK(h.offset == std::vector<index_t>{0, 1, 2, 3, 5});
  CHECK(h.row_token == std::vector<std::int32_t>{0, 1, 2, 0, 2});
  CHECK(h.row_slot == std::vector<std::int32_t>{0, 0, 1, 1, 0});
  CHECK(h.pair_row == std::vector<index_t>{0, 3, 1, -1, 4, 2});
  CHECK(h.dropped == 0);

  const auto p = plan_dispatch(idx, 5, {.block = 4});  // expert 4 gets nothing: an empty segment
  CHECK(p.offset == std::vector<index_t>{0, 4, 8, 12, 16, 16});
  CHECK(p.count == std::vector<index_t>{1, 1, 1, 2, 0});
  CHECK(p.row_token[0] == 0);
  CHECK(p.row_token[1] == -1);
  CHECK(p.row_token[13] == 2);
  CHECK(p.row_token[14] == -1);
}

TEST_CASE("plan_dispatch: capacity keeps the earliest pairs and counts the dropped", "[moe][dispatch]") {
  // Every token picks expert 0 in slot 0 and expert 1 in slot 1; capacity = ceil(0.5 * 6 * 2 / 2) = 3.
  const auto idx = idx_of({{0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}});
  const auto h = plan_dispatch(idx, 2, {.capacity_factor = 0.5});
  CHECK(h.capacity == 3);
  CHECK(h.dropped == 6);
  CHECK(h.routed == std::vector<index_t>{6, 6});
  CHECK(h.count == std::vector<index_t>{3, 3});
  for (index_t t = 0; t < 6; ++t) {
    CHECK((h.pair_row[t * 2] >= 0) == (t < 3));
    CHECK((h.pair_row[t * 2 + 1] >= 0) == (t < 3));
  }
  const auto zero = plan_dispatch(idx, 2, {.capacity = 0});
  CHECK(zero.rows() == 0);
  CHECK(zero.dropped == 12);
  // A factor of 1.25: ceil(1.25 * 12 / 2) = 8 >= 6, nothing dropped.
  CHECK(plan_dispatch(idx, 2, {.capacity_factor = 1.25}).dropped == 0);
}

TEST_CASE("dispatch + combine against a direct double computation", "[moe][dispatch]") {
  std::uint64_t seed = 1000;
  for (index_t E : {1, 4, 64, 160})
    for (index_t K : {index_t{1}, index_t{2}, index_t{6}, E})
      for (index_t T : {0, 1, 7, 512}) {
        if (K > E || (T == 512 && K > 6)) continue;
        const index_t H = T == 512 ? 9 : 20;
        check_case(T, E, K, H, {}, seed += 10);
        check_case(T, E, K, H, {.block = 4}, seed += 10);
        check_case(T, E, K, H, {.block = 3, .capacity_factor = 1.0}, seed += 10);
        check_case(T, E, K, H, {.capacity_factor = 0.3}, seed += 10);
        check_case(T, E, K, H, {.capacity = 0}, seed += 10);
      }
}

TEST_CASE("dispatch + combine: all tokens to one expert", "[moe][dispatch]") {
  const index_t T = 37, H = 11, E = 8;
  tensor<expert_id, 2> idx(T, 1);
  idx.fill(5);
  const auto x = moe_test::random_tensor(T, H, 1), w = moe_test::random_tensor(T, 1, 2);
  const auto h = plan_dispatch(idx, E, {.block = 16});
  CHECK(h.count[5] == T);
  CHECK(h.rows() == 48);
  for (index_t e = 0; e < E; ++e)
    if (e != 5) CHECK(h.count[e] == 0);
  tensor<float, 2> xs(h.rows(), H), y(T, H);
  dispatch_tokens(x, h, xs);
  combine_tokens(xs, h, w, y);
  for (index_t t = 0; t < T; ++t)
    for (index_t j = 0; j < H; ++j) CHECK(y(t, j) == w(t, 0) * x(t, j));  // one product: exact
}

TEST_CASE("backward passes are the adjoints of dispatch and combine", "[moe][dispatch]") {
  const index_t T = 45, E = 16, K = 6, H = 19;
  const auto idx = random_idx(T, E, K, 9, true);
  const auto h = plan_dispatch(idx, E, {.block = 4, .capacity_factor = 0.8});
  REQUIRE(h.dropped > 0);
  const auto x = moe_test::random_tensor(T, H, 10), dxs = moe_test::random_tensor(h.rows(), H, 11);
  const auto ys = moe_test::random_tensor(h.rows(), H, 12), dy = moe_test::random_tensor(T, H, 13);
  const auto w = moe_test::random_tensor(T, K, 14);
  // <dispatch_tokens(x), dxs> = <x, dispatch_tokens_backward(dxs)>.
  tensor<float, 2> xs(h.rows(), H), dx(T, H);
  dispatch_tokens(x, h, xs);
  dispatch_tokens_backward(dxs, h, dx);
  CHECK(dot(xs, dxs) == Approx(dot(x, dx)).epsilon(1e-5));
  // <combine_tokens(ys, w), dy> = <ys, dys> = sum_{t,k} w[t,k] dw[t,k] (combine is linear in ys and in w).
  tensor<float, 2> y(T, H), dys(h.rows(), H), dw(T, K);
  combine_tokens(ys, h, w, y);
  combine_tokens_backward(dy, ys, h, w, dys, dw);
  CHECK(dot(y, dy) == Approx(dot(ys, dys)).epsilon(1e-5));
  CHECK(dot(y, dy) == Approx(dot(w, dw)).epsilon(1e-5));
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k) {
      const index_t r = h.pair_row[t * K + k];
      double want = 0;
      for (index_t j = 0; r >= 0 && j < H; ++j) want += double(dy(t, j)) * ys(r, j);
      CHECK(dw(t, k) == Approx(want).margin(1e-5));
    }
  for (index_t r = 0; r < h.rows(); ++r)
    if (h.row_token[r] < 0)
      for (index_t j = 0; j < H; ++j) CHECK(dys(r, j) == 0.0f);
}

TEST_CASE("dispatch / combine: identical results with 1 and 2 threads", "[moe][dispatch]") {
  const index_t T = 2000, E = 64, K = 6, H = 40;  // > 936 tokens: combine forks
  const auto idx = random_idx(T, E, K, 21, false);
  const auto x = moe_test::random_tensor(T, H, 22), w = moe_test::random_tensor(T, K, 23);
  const auto h = plan_dispatch(idx, E, {.block = 8});
  auto run = [&](int threads) {
    thread_count_scope s(threads);
    tensor<float, 2> xs(h.rows(), H), y(T, H);
    dispatch_tokens(x, h, xs);
    combine_tokens(xs, h, w, y, x);
    return y;
  };
  const auto a = run(1), b = run(2);
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<std::size_t>(a.size())) == 0);
}

TEST_CASE("dispatch: bad input is rejected with a clear error", "[moe][dispatch]") {
  const auto bad_hi = idx_of({{0, 4}}), bad_lo = idx_of({{-2, 0}});
  CHECK_THROWS_WITH(plan_dispatch(bad_hi, 4), Catch::Contains("4 at (0, 1)"));
  CHECK_THROWS_WITH(plan_dispatch(bad_lo, 4), Catch::Contains("-2 at (0, 0)"));
  const auto idx = idx_of({{0, 1}, {2, 3}});
  CHECK_THROWS_WITH(plan_dispatch(idx, 4, {.block = 0}), Catch::Contains("opt.block"));
  CHECK_THROWS_WITH(plan_dispatch(idx, 4, {.capacity_factor = -1.0}), Catch::Contains("opt.capacity_factor"));
  CHECK_THROWS_WITH(plan_dispatch(idx, 4, {.capacity_factor = NAN}), Catch::Contains("opt.capacity_factor"));
  const auto h = plan_dispatch(idx, 4);
  tensor<float, 2> x(3, 8), xs(4, 8), xs_bad(5, 8), ys(4, 8), y(2, 8), w(2, 2), w_bad(2, 3);
  CHECK_THROWS_WITH(dispatch_tokens(x, h, xs), Catch::Contains("'x'"));
  tensor<float, 2> x2(2, 8);
  CHECK_THROWS_WITH(dispatch_tokens(x2, h, xs_bad), Catch::Contains("'xs'"));
  CHECK_THROWS_WITH(combine_tokens(ys, h, w_bad, y), Catch::Contains("'topk_w'"));
  tensor<float, 2> shared_bad(2, 7);
  CHECK_THROWS_WITH(combine_tokens(ys, h, w, y, shared_bad), Catch::Contains("'shared'"));
  dispatch_handle forged = h;
  forged.pair_row.pop_back();
  CHECK_THROWS_WITH(combine_tokens(ys, forged, w, y), Catch::Contains("'handle'"));
}

TEST_CASE("plan_dispatch: absurd capacity factors and blocks are handled or rejected",
          "[moe][dispatch][errors]") {
  const auto idx = idx_of({{0, 1}, {2, 3}, {1, 0}});
  // A capacity beyond T * K keeps every pair: the same plan as dropless, capacity recorded as T * K.
  const auto huge = plan_dispatch(idx, 4, {.capacity_factor = 1e300});
  const auto dropless = plan_dispatch(idx, 4);
  CHECK(huge.capacity == 6);
  CHECK(huge.dropped == 0);
  CHECK(huge.pair_row == dropless.pair_row);
  CHECK(plan_dispatch(idx, 4, {.capacity_factor = 1.7976931348623157e308}).dropped == 0);
  CHECK_THROWS_WITH(
      plan_dispatch(idx, 4, {.block = std::numeric_limits<index_t>::max()}),
      Catch::Contains("moe::plan_dispatch: argument 'opt.block'") && Catch::Contains("[1, 65536]"));
  CHECK_THROWS_WITH(plan_dispatch(idx, 4, {.block = 65537}), Catch::Contains("'opt.block'"));
  CHECK_NOTHROW(plan_dispatch(idx, 4, {.block = 65536}));
  CHECK_THROWS_WITH(plan_dispatch(idx, index_t{1} << 40), Catch::Contains("argument 'E'"));
  // More dispatched rows than the int32 tables hold: 2^15 experts with a pair each, padded to 2^16 rows.
  const index_t T = index_t{1} << 15;
  tensor<expert_id, 2> one_each(T, 1);
  for (index_t t = 0; t < T; ++t) one_each(t, 0) = static_cast<expert_id>(t);
  CHECK_THROWS_WITH(plan_dispatch(one_each, T, {.block = 65536}),
                    Catch::Contains("'opt.block'") && Catch::Contains("2147483647"));
}

TEST_CASE("combine and dispatch validate a handle modified after planning", "[moe][dispatch][errors]") {
  const index_t H = 8;
  const auto idx = idx_of({{0, 1}, {2, 3}, {1, -1}});
  const auto h = plan_dispatch(idx, 4, {.block = 2});
  const auto x = moe_test::random_tensor(3, H, 1), w = moe_test::random_tensor(3, 2, 2);
  tensor<float, 2> xs(h.rows(), H), y(3, H), dys(h.rows(), H), dw(3, 2);
  dispatch_tokens(x, h, xs);
  combine_tokens(xs, h, w, y);  // the original is fine
  auto rejected = [&](const dispatch_handle& bad, const char* what) {
    INFO(what);
    CHECK_THROWS_WITH(combine_tokens(xs, bad, w, y),
                      Catch::Contains("moe::combine_tokens: argument 'handle'") && Catch::Contains(what));
    CHECK_THROWS_WITH(dispatch_tokens(x, bad, xs), Catch::Contains("argument 'handle'"));
    CHECK_THROWS_WITH(dispatch_tokens_backward(xs, bad, y), Catch::Contains("argument 'handle'"));
    CHECK_THROWS_WITH(combine_tokens_backward(y, xs, bad, w, dys, dw), Catch::Contains("argument 'handle'"));
  };
  dispatch_handle b = h;
  b.pair_row[2] = 1000000;  // combine would read row 10^6 of ys: the heap overflow
  rejected(b, "pair_row[2] = 1000000");
  b = h;
  b.row_token[0] = 7;  // dispatch would copy token 7 of 3
  rejected(b, "row 0");
  b = h;
  b.offset[2] = b.offset[1] - 2;  // not monotone
  rejected(b, "offset[2]");
  b = h;
  b.count[0] = 5;  // more rows than the segment
  rejected(b, "count[0] = 5");
  b = h;
  b.count[3] = 0;  // the counts no longer cover the routed pairs
  rejected(b, "padding row");
  b = h;
  b.pair_row[0] = h.pair_row[1];  // two pairs on one row
  rejected(b, "pair");
  b = h;
  b.tokens = 4;  // tables sized for 3 tokens
  rejected(b, "pair_row entries");
  b = h;
  b.offset.back() = 1000;
  rejected(b, "for 1000 rows");
}

TEST_CASE("dispatch and combine reject outputs that overlap their inputs", "[moe][dispatch][errors]") {
  // One slot per token, every token routed, block 1: rows == T, so y == ys has the right shape.
  const index_t T = 6, H = 8;
  const auto idx = idx_of({{0}, {1}, {2}, {0}, {1}, {2}});
  const auto h = plan_dispatch(idx, 3);
  REQUIRE(h.rows() == T);
  auto x = moe_test::random_tensor(T, H, 3), w = moe_test::random_tensor(T, 1, 4, 0.0f, 1.0f);
  const auto shared = moe_test::random_tensor(T, H, 5);
  tensor<float, 2> ys(T, H), y(T, H), dw(T, 1);
  dispatch_tokens(x, h, ys);
  CHECK_THROWS_WITH(
      combine_tokens(ys, h, w, ys.view()),
      Catch::Contains("moe::combine_tokens: argument 'y'") && Catch::Contains("does not overlap ys"));
  tensor<float, 2> ys1(h.rows(), 1);
  CHECK_THROWS_WITH(combine_tokens(ys1, h, w, view<float, 2>(w.data(), dims<2>(T, 1), {1, 1})),
                    Catch::Contains("does not overlap topk_w"));
  CHECK_THROWS_WITH(dispatch_tokens(x, h, x.view()), Catch::Contains("moe::dispatch_tokens: argument 'xs'") &&
                                                         Catch::Contains("does not overlap x"));
  CHECK_THROWS_WITH(dispatch_tokens_backward(ys, h, ys.view()),
                    Catch::Contains("'dx'") && Catch::Contains("does not overlap dxs"));
  CHECK_THROWS_WITH(combine_tokens_backward(y, ys, h, w, y.view(), dw.view()),
                    Catch::Contains("'dys'") && Catch::Contains("does not overlap dy"));
  CHECK_THROWS_WITH(combine_tokens_backward(y, ys, h, w, x.view(), w.view()),
                    Catch::Contains("'dtopk_w'") && Catch::Contains("does not overlap topk_w"));
  // y == shared is in place: the same bits as a separate output. A partial overlap is rejected.
  combine_tokens(ys, h, w, y, shared);
  tensor<float, 2> acc = shared;
  combine_tokens(ys, h, w, acc.view(), acc.cview());
  CHECK(std::memcmp(acc.data(), y.data(), sizeof(float) * static_cast<std::size_t>(y.size())) == 0);
  tensor<float, 2> buf(T + 1, H);
  CHECK_THROWS_WITH(combine_tokens(ys, h, w, buf.view().slice(0, 1, T + 1), buf.cview().slice(0, 0, T)),
                    Catch::Contains("does not overlap shared, or exactly shared (in place)"));
  // dispatch_layout: counts written over the routing they are computed from.
  tensor<expert_id, 2> idx2 = idx;
  tensor<index_t, 1> tpr(1);
  tensor<std::uint8_t, 2> in_rank(T, 1);
  const view<index_t, 1> tpe_on_idx(reinterpret_cast<index_t*>(idx2.data()), dims<1>(3), {1});
  CHECK_THROWS_WITH(dispatch_layout(idx2, 3, tpe_on_idx, tpr, in_rank),
                    Catch::Contains("moe::dispatch_layout: argument 'tokens_per_expert'") &&
                        Catch::Contains("does not overlap topk_idx"));
}
