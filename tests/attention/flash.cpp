// Dense flash attention (dsk/attention/flash.hpp) against the fp64 reference (ref::dense): head dims, GQA
// groups, causal / not, windows, cross lengths; scalar == native bit for bit; decode == prefill rows;
// paged == contiguous; merged split states == one pass; fully masked rows; argument errors.
#include "dsk/attention/flash.hpp"

#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "common.hpp"
#include "dsk/attention/ref.hpp"

namespace {
using dsk::index_t;
using dsk::tensor;
namespace att = dsk::attention;
using dsk::test::random_tensor;

struct shape {
  index_t q_len, kv_len, heads, kv_heads;
};

// Scalar = true also runs the portable packet layer (kept to a few configurations: compile time).
template <att::dense_config C, bool Scalar = false>
void check_against_ref(const shape& s, std::uint64_t seed, index_t offset = -1) {
  constexpr int D = C.head_dim, Dv = C.v_dim();
  INFO("D " << D << " Dv " << Dv << " causal " << C.causal << " window " << C.window << " q_len " << s.q_len
            << " kv_len " << s.kv_len << " heads " << s.heads << "/" << s.kv_heads << " offset " << offset);
  const auto q = random_tensor<3>({s.q_len, s.heads, D}, seed);
  const auto k = random_tensor<3>({s.kv_len, s.kv_heads, D}, seed + 1);
  const auto v = random_tensor<3>({s.kv_len, s.kv_heads, Dv}, seed + 2);
  tensor<float, 3> o(s.q_len, s.heads, Dv);
  tensor<float, 2> lse(s.q_len, s.heads);
  // A large scale sharpens the softmax so that masking and max-tracking errors show.
  const float scale = 0.5f;
  att::dense<C>(q, k, v, o, lse, {.scale = scale, .query_offset = offset});
  tensor<double, 3> want(s.q_len, s.heads, Dv);
  tensor<double, 2> want_lse(s.q_len, s.heads);
  att::ref::dense(q, k, v, want, want_lse, scale, C.causal, C.window, offset);
  CHECK(dsk::test::nmse_of(want, o) < dsk::test::attention_nmse);
  for (index_t i = 0; i < lse.size(); ++i) {
    const double w = want_lse.data()[i];
    if (std::isinf(w))
      REQUIRE(lse.data()[i] == -std::numeric_limits<float>::infinity());
    else
      REQUIRE(std::abs(lse.data()[i] - w) < dsk::test::lse_abs * std::max(1.0, std::abs(w)));
  }
  // The portable scalar layer mirrors AVX2 bit for bit, so the whole kernel does too.
  if constexpr (Scalar) {
    tensor<float, 3> o_scalar(s.q_len, s.heads, Dv);
    att::dense<C, dsk::simd::scalar>(q, k, v, o_scalar, {}, {.scale = scale, .query_offset = offset});
    CHECK(dsk::test::bit_equal(o, o_scalar));
  }
}
}  // namespace

TEST_CASE("dense attention equals fp64 softmax attention: head dims, GQA groups, causal",
          "[attention][dense]") {
  // Lengths cover 1, non-multiples of the 4-key block, the 6-row block and the 64-key tile, and decode.
  const shape small_heads[] = {{1, 1, 2, 1},     {1, 600, 2, 2}, {7, 7, 2, 1}, {65, 65, 2, 2},
                               {130, 200, 2, 1}, {5, 77, 2, 2},  {0, 5, 2, 1}, {3, 0, 2, 1}};
  std::uint64_t seed = 1;
  for (const shape& s : small_heads) {
    check_against_ref<att::dense_config{.head_dim = 64, .causal = true}, true>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 64, .causal = false}>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 128, .causal = true}>(s, seed++);
  }
  // The longest prefill once (the fp64 reference dominates the test time under sanitizers).
  check_against_ref<att::dense_config{.head_dim = 128, .causal = true}>({600, 600, 1, 1}, seed++);
  // GQA groups 1, 2, 8, 16 and MQA; 192/128 (MLA expanded) and 576/512 (MLA absorbed) head dims.
  const shape groups[] = {
      {1, 300, 16, 16}, {9, 140, 16, 8}, {9, 140, 16, 2}, {1, 333, 16, 1}, {40, 70, 16, 1}};
  for (const shape& s : groups) {
    check_against_ref<att::dense_config{.head_dim = 128, .causal = true}>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 128, .causal = false}>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 192, .value_dim = 128, .causal = true}>(s, seed++);
  }
  check_against_ref<att::dense_config{.head_dim = 576, .value_dim = 512, .causal = true}>({1, 257, 16, 1},
                                                                                          seed++);
  check_against_ref<att::dense_config{.head_dim = 576, .value_dim = 512, .causal = true}>({13, 70, 4, 1},
                                                                                          seed++);
}

TEST_CASE("decode over a long cache (split over threads and merged) equals fp64 attention",
          "[attention][dense]") {
  // kv_len >= 2048 with few (KV head, chunk) tasks: the keys are split over threads and merged by LSE.
  dsk::thread_count_scope threads(2);
  check_against_ref<att::dense_config{.head_dim = 128, .causal = true}>({1, 2500, 16, 1}, 200);
  check_against_ref<att::dense_config{.head_dim = 64, .causal = true, .window = 700}>({2, 4100, 2, 1}, 201);
  check_against_ref<att::dense_config{.head_dim = 64, .causal = false}>({3, 3000, 1, 1}, 202);
}

TEST_CASE("dense attention: sliding window, explicit query offset, cross attention", "[attention][dense]") {
  std::uint64_t seed = 100;
  for (const shape& s : {shape{1, 300, 4, 2}, shape{100, 100, 2, 1}, shape{37, 250, 4, 4}}) {
    check_against_ref<att::dense_config{.head_dim = 64, .causal = true, .window = 1}>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 64, .causal = true, .window = 50}>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 64, .causal = true, .window = 64}>(s, seed++);
  }
  // Chunked prefill placed explicitly in the middle of the keys, and queries before the first key.
  check_against_ref<att::dense_config{.head_dim = 64, .causal = true}>({20, 200, 2, 1}, seed++, 90);
  check_against_ref<att::dense_config{.head_dim = 64, .causal = true, .window = 16}>({20, 200, 2, 1}, seed++,
                                                                                     0);
  // Cross attention: different lengths, no mask.
  check_against_ref<att::dense_config{.head_dim = 128, .causal = false}>({31, 9, 8, 2}, seed++);
}

TEST_CASE("cross attention: decoder queries over a cached encoder memory (dense, no mask, any lengths)",
          "[attention][dense]") {
  // dense<{causal = false}> with q_len != kv_len: every query sees every key of the memory, whatever the
  // lengths (query_offset plays no part without a mask). Encoder lengths not a multiple of the 64-key tile
  // or the 4-key block, one decoder query (a decode step), more queries than keys; MHA and GQA.
  const shape cross[] = {{1, 1, 4, 4},   {1, 777, 8, 2},  {1, 130, 16, 1},  {5, 67, 4, 2},
                         {64, 13, 4, 1}, {200, 65, 2, 2}, {37, 1001, 4, 4}, {3, 0, 2, 1}};
  std::uint64_t seed = 400;
  for (const shape& s : cross) {
    check_against_ref<att::dense_config{.head_dim = 64, .causal = false}, true>(s, seed++);
    check_against_ref<att::dense_config{.head_dim = 128, .causal = false}>(s, seed++);
  }
  // A decoder step t reads rows of the same memory: equal to its row of the batched call, bit for bit.
  constexpr att::dense_config C{.head_dim = 64};
  const index_t Tq = 9, Tk = 333;
  const auto q = random_tensor<3>({Tq, 8, 64}, 450), k = random_tensor<3>({Tk, 2, 64}, 451),
             v = random_tensor<3>({Tk, 2, 64}, 452);
  tensor<float, 3> all(Tq, 8, 64);
  att::dense<C>(q, k, v, all);
  for (index_t t = 0; t < Tq; ++t) {
    tensor<float, 3> one(1, 8, 64);
    att::dense<C>(q.cview().slice(0, t, t + 1), k, v, one);
    for (index_t h = 0; h < 8; ++h)
      for (index_t d = 0; d < 64; ++d) REQUIRE(one(0, h, d) == all(t, h, d));
  }
}

TEST_CASE("fully masked rows give zeros and lse = -inf, never NaN", "[attention][dense]") {
  // 10 queries aligned to the end of 4 keys: the first 6 queries precede every key.
  const auto q = random_tensor<3>({10, 2, 64}, 5), k = random_tensor<3>({4, 1, 64}, 6),
             v = random_tensor<3>({4, 1, 64}, 7);
  tensor<float, 3> o(10, 2, 64);
  tensor<float, 2> lse(10, 2);
  o.fill(std::numeric_limits<float>::quiet_NaN());
  att::dense<att::dense_config{.head_dim = 64, .causal = true}>(q, k, v, o, lse);
  for (index_t t = 0; t < 10; ++t)
    for (index_t h = 0; h < 2; ++h) {
      for (index_t d = 0; d < 64; ++d) REQUIRE(!std::isnan(o(t, h, d)));
      if (t < 6) {
        REQUIRE(lse(t, h) == -std::numeric_limits<float>::infinity());
        for (index_t d = 0; d < 64; ++d) REQUIRE(o(t, h, d) == 0.0f);
      } else {
        REQUIRE(std::isfinite(lse(t, h)));
      }
    }
}

TEST_CASE("decoding token by token equals the rows of prefill", "[attention][dense]") {
  constexpr att::dense_config C{.head_dim = 128, .causal = true};
  const index_t L = 150, H = 8, Hkv = 2;
  const auto q = random_tensor<3>({L, H, 128}, 11), k = random_tensor<3>({L, Hkv, 128}, 12),
             v = random_tensor<3>({L, Hkv, 128}, 13);
  tensor<float, 3> o(L, H, 128);
  att::dense<C>(q, k, v, o);
  for (index_t t : {index_t{0}, index_t{1}, index_t{63}, index_t{64}, index_t{100}, L - 1}) {
    tensor<float, 3> od(1, H, 128);
    att::dense<C>(q.cview().slice(0, t, t + 1), k.cview().slice(0, 0, t + 1), v.cview().slice(0, 0, t + 1),
                  od);
    double num = 0, den = 0;
    for (index_t h = 0; h < H; ++h)
      for (index_t d = 0; d < 128; ++d) {
        const double a = o(t, h, d), b = od(0, h, d);
        num += (a - b) * (a - b);
        den += a * a;
      }
    INFO("t = " << t);
    CHECK(num / den < dsk::test::attention_nmse);
  }
}

TEST_CASE("paged KV cache equals the contiguous cache", "[attention][dense][paged]") {
  constexpr att::dense_config C{.head_dim = 64, .causal = true};
  for (index_t page : {index_t{1}, index_t{16}, index_t{48}}) {
    const index_t L = 203, Hkv = 2, H = 4, T = 5;
    const index_t npages = (L + page - 1) / page + 3;
    const auto k = random_tensor<3>({L, Hkv, 64}, 21), v = random_tensor<3>({L, Hkv, 64}, 22);
    const auto q = random_tensor<3>({T, H, 64}, 23);
    // Scatter the pages in reverse order, leaving unused pages in the pool.
    tensor<float, 4> kp(npages, page, Hkv, 64), vp(npages, page, Hkv, 64);
    std::vector<std::int32_t> table;
    for (index_t p = 0; p * page < L; ++p) table.push_back(static_cast<std::int32_t>(npages - 1 - p));
    for (index_t j = 0; j < L; ++j)
      for (index_t h = 0; h < Hkv; ++h)
        for (index_t d = 0; d < 64; ++d) {
          kp(table[j / page], j % page, h, d) = k(j, h, d);
          vp(table[j / page], j % page, h, d) = v(j, h, d);
        }
    tensor<float, 3> o1(T, H, 64), o2(T, H, 64);
    tensor<float, 2> l1(T, H), l2(T, H);
    att::dense<C>(q, k, v, o1, l1);
    att::dense_paged<C>(q, kp, vp, table, L, o2, l2);
    INFO("page " << page);
    CHECK(dsk::test::bit_equal(o1, o2));
    CHECK(dsk::test::bit_equal(l1, l2));
  }
}

TEST_CASE("merging split states by LSE equals one pass", "[attention][merge]") {
  constexpr att::dense_config C{.head_dim = 64};
  const index_t T = 3, H = 4, L = 301;
  const auto q = random_tensor<3>({T, H, 64}, 31), k = random_tensor<3>({L, H, 64}, 32),
             v = random_tensor<3>({L, H, 64}, 33);
  tensor<float, 3> full(T, H, 64);
  tensor<float, 2> full_lse(T, H);
  att::dense<C>(q, k, v, full, full_lse, {.scale = 0.3f});
  // Three pieces (one of them empty), merged pairwise; o / lse alias o_a / lse_a.
  const index_t cuts[] = {0, 120, 120, L};
  tensor<float, 3> acc(T, H, 64), part(T, H, 64);
  tensor<float, 2> acc_lse(T, H), part_lse(T, H);
  acc_lse.fill(-std::numeric_limits<float>::infinity());
  acc.fill(std::numeric_limits<float>::quiet_NaN());  // an empty state's o must be ignored
  for (int p = 0; p < 3; ++p) {
    att::dense<C>(q, k.cview().slice(0, cuts[p], cuts[p + 1]), v.cview().slice(0, cuts[p], cuts[p + 1]), part,
                  part_lse, {.scale = 0.3f});
    att::merge(acc, acc_lse, part, part_lse, acc, acc_lse);
  }
  double num = 0, den = 0;
  for (index_t i = 0; i < full.size(); ++i) {
    num += std::pow(double(full.data()[i]) - acc.data()[i], 2);
    den += std::pow(double(full.data()[i]), 2);
  }
  CHECK(num / den < dsk::test::attention_nmse);
  for (index_t i = 0; i < full_lse.size(); ++i)
    CHECK(std::abs(full_lse.data()[i] - acc_lse.data()[i]) < 1e-5);
}

TEST_CASE("dense attention reads strided views", "[attention][dense]") {
  // q and o are head slices of wider tensors (row stride != heads * head_dim).
  constexpr att::dense_config C{.head_dim = 64, .causal = true};
  const auto qw = random_tensor<3>({17, 6, 64}, 41);
  const auto k = random_tensor<3>({17, 1, 64}, 42), v = random_tensor<3>({17, 1, 64}, 43);
  tensor<float, 3> ow(17, 6, 64);
  att::dense<C>(qw.cview().slice(1, 2, 5), k, v, ow.view().slice(1, 1, 4));
  tensor<double, 3> want(17, 3, 64);
  const tensor<float, 3> q = [&] {
    tensor<float, 3> t(17, 3, 64);
    for (index_t a = 0; a < 17; ++a)
      for (index_t h = 0; h < 3; ++h)
        for (index_t d = 0; d < 64; ++d) t(a, h, d) = qw(a, h + 2, d);
    return t;
  }();
  att::ref::dense(q, k, v, want, {}, 1.0 / 8.0, true);
  double num = 0, den = 0;
  for (index_t a = 0; a < 17; ++a)
    for (index_t h = 0; h < 3; ++h)
      for (index_t d = 0; d < 64; ++d) {
        num += std::pow(want(a, h, d) - ow(a, h + 1, d), 2);
        den += std::pow(want(a, h, d), 2);
      }
  CHECK(num / den < dsk::test::attention_nmse);
  CHECK(ow(0, 0, 0) == 0.0f);  // untouched head
}

TEST_CASE("dense attention rejects bad shapes and unsupported head dims", "[attention][errors]") {
  constexpr att::dense_config C{.head_dim = 64};
  tensor<float, 3> q(2, 4, 64), k(5, 2, 64), v(5, 2, 64), o(2, 4, 64);
  tensor<float, 3> k3(5, 3, 64), kbad(5, 2, 32), obad(2, 4, 32);
  tensor<float, 2> lse_bad(2, 3);
  CHECK_THROWS_WITH(att::dense<C>(q, k3, k3, o), Catch::Contains("multiple of the KV heads"));
  CHECK_THROWS_WITH(att::dense<C>(q, kbad, v, o), Catch::Contains("'k'") && Catch::Contains("head_dim"));
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, obad), Catch::Contains("'o'"));
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, o, lse_bad), Catch::Contains("'lse'"));
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, o, {}, {.scale = -1.0f}), Catch::Contains("opts.scale"));
  CHECK_THROWS_AS(att::dense_dynamic(tensor<float, 3>(2, 4, 96), tensor<float, 3>(5, 2, 96),
                                     tensor<float, 3>(5, 2, 96), tensor<float, 3>(2, 4, 96)),
                  dsk::unsupported);
  CHECK_THROWS_WITH(att::dense_dynamic(tensor<float, 3>(2, 4, 96), tensor<float, 3>(5, 2, 96),
                                       tensor<float, 3>(5, 2, 96), tensor<float, 3>(2, 4, 96)),
                    Catch::Contains("(128, 128)"));
  CHECK_NOTHROW(att::dense_dynamic(q, k, v, o));
  // The message is dsk::dispatch's over the compiled dense_configs: the rejected pair, then every choice.
  CHECK_THROWS_WITH(
      att::dense_dynamic(tensor<float, 3>(2, 4, 192), tensor<float, 3>(5, 2, 192),
                         tensor<float, 3>(5, 2, 192), tensor<float, 3>(2, 4, 192)),
      "dsk: attention::dense_dynamic (head_dim, value_dim) = (192, 192) is not supported; compiled "
      "choices: (64, 64), (128, 128), (192, 128), (256, 256), (576, 512)");
  CHECK_THROWS_WITH(att::dense_dynamic<true>(tensor<float, 3>(2, 4, 96), tensor<float, 3>(5, 2, 96),
                                             tensor<float, 3>(5, 2, 96), tensor<float, 3>(2, 4, 96)),
                    Catch::Contains("(96, 96) causal") && Catch::Contains("(576, 512) causal"));
  CHECK_NOTHROW(att::dense_dynamic<true, dsk::simd::scalar>(q, k, v, o));
  static_assert(att::dense_config{.head_dim = 64} == att::dense_config{.head_dim = 64, .value_dim = 64});
  static_assert(!(att::dense_config{.head_dim = 64} == att::dense_config{.head_dim = 64, .causal = true}));
  // Paged: table too short, entry out of range.
  tensor<float, 4> kp(3, 4, 2, 64), vp(3, 4, 2, 64);
  std::vector<std::int32_t> table{0, 1};
  CHECK_THROWS_WITH(att::dense_paged<C>(q, kp, vp, table, 9, o), Catch::Contains("page_table"));
  table = {0, 1, 7};
  CHECK_THROWS_WITH(att::dense_paged<C>(q, kp, vp, table, 9, o), Catch::Contains("page_table"));
  CHECK_THROWS_WITH(att::merge(o, tensor<float, 2>(2, 4), obad, tensor<float, 2>(2, 4), o, lse_bad),
                    Catch::Contains("attention::merge"));
}

TEST_CASE("decode with the key split gives the same bits for 1, 2 and 3 threads", "[attention][dense]") {
  // The split count depends on the length only: the merged partial states are the same on every machine.
  auto run = [](auto cfg, const shape& s, int threads, std::uint64_t seed) {
    constexpr att::dense_config C = decltype(cfg)::value;
    const auto q = random_tensor<3>({s.q_len, s.heads, C.head_dim}, seed);
    const auto k = random_tensor<3>({s.kv_len, s.kv_heads, C.head_dim}, seed + 1);
    const auto v = random_tensor<3>({s.kv_len, s.kv_heads, C.v_dim()}, seed + 2);
    tensor<float, 3> o(s.q_len, s.heads, C.v_dim());
    tensor<float, 2> lse(s.q_len, s.heads);
    dsk::thread_count_scope scope(threads);
    att::dense<C>(q, k, v, o, lse);
    return std::make_pair(std::move(o), std::move(lse));
  };
  constexpr auto causal128 = dsk::constant<att::dense_config{.head_dim = 128, .causal = true}>{};
  constexpr auto full64 = dsk::constant<att::dense_config{.head_dim = 64}>{};
  // One KV head (head-major tasks split over the keys), several KV heads (the token-major decode walk, split
  // into partial states too), a few queries (chunked decode / speculative), windowed and bidirectional.
  const shape shapes[] = {{1, 5000, 16, 1}, {1, 4100, 8, 4}, {3, 3000, 2, 2}, {2, 2600, 1, 1}};
  std::uint64_t seed = 900;
  for (const shape& s : shapes) {
    INFO("q_len " << s.q_len << " kv_len " << s.kv_len << " heads " << s.heads << "/" << s.kv_heads);
    const auto one = run(causal128, s, 1, seed), two = run(causal128, s, 2, seed),
               three = run(causal128, s, 3, seed);
    CHECK(dsk::test::bit_equal(one.first, two.first));
    CHECK(dsk::test::bit_equal(one.first, three.first));
    CHECK(dsk::test::bit_equal(one.second, two.second));
    CHECK(dsk::test::bit_equal(one.second, three.second));
    const auto b1 = run(full64, s, 1, seed + 7), b3 = run(full64, s, 3, seed + 7);
    CHECK(dsk::test::bit_equal(b1.first, b3.first));
    seed += 10;
  }
}

TEST_CASE("dense attention rejects absurd query offsets and overlapping outputs", "[attention][errors]") {
  constexpr att::dense_config C{.head_dim = 64, .causal = true};
  tensor<float, 3> q(2, 4, 64), k(5, 2, 64), v(5, 2, 64), o(2, 4, 64);
  tensor<float, 2> lse(2, 4);
  const index_t huge = std::numeric_limits<index_t>::max();
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, o, {}, {.query_offset = huge}),
                    Catch::Contains("attention::dense: argument 'opts.query_offset'") &&
                        Catch::Contains("[0, kv_len = 5]"));
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, o, {}, {.query_offset = 6}), Catch::Contains("opts.query_offset"));
  CHECK_NOTHROW(att::dense<C>(q, k, v, o, {}, {.query_offset = 5}));  // right after the last key
  tensor<float, 4> kp(3, 4, 2, 64), vp(3, 4, 2, 64);
  const std::vector<std::int32_t> table{0, 1, 2};
  CHECK_THROWS_WITH(att::dense_paged<C>(q, kp, vp, table, 9, o, {}, {.query_offset = huge}),
                    Catch::Contains("attention::dense_paged: argument 'opts.query_offset'"));
  // o == q (head_dim == value_dim): tasks read q rows that other tasks have already overwritten.
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, q.view()),
                    Catch::Contains("argument 'o'") && Catch::Contains("does not overlap q"));
  CHECK_THROWS_WITH(
      att::dense<C>(q, v, v, dsk::view<float, 3>(v.data(), dsk::dims<3>(2, 4, 64), {256, 64, 1})),
      Catch::Contains("does not overlap k"));
  const dsk::view<float, 2> lse_in_o(o.data() + 8, dsk::dims<2>(2, 4), {4, 1});
  CHECK_THROWS_WITH(att::dense<C>(q, k, v, o, lse_in_o),
                    Catch::Contains("argument 'lse'") && Catch::Contains("does not overlap o"));
  const dsk::view<float, 2> lse_in_table(reinterpret_cast<float*>(const_cast<std::int32_t*>(table.data())),
                                         dsk::dims<2>(1, 2), {2, 1});
  tensor<float, 3> q1(1, 2, 64), o1(1, 2, 64);
  CHECK_THROWS_WITH(att::dense_paged<C>(q1, kp, vp, table, 9, o1, lse_in_table),
                    Catch::Contains("argument 'lse'") && Catch::Contains("does not overlap page_table"));
  CHECK_THROWS_WITH(att::dense_paged<C>(q, kp, vp, table, 9,
                                        dsk::view<float, 3>(kp.data(), dsk::dims<3>(2, 4, 64), {256, 64, 1})),
                    Catch::Contains("does not overlap k_pages"));
}

TEST_CASE("merge runs in place over either state and rejects partial overlaps",
          "[attention][merge][errors]") {
  const auto oa = random_tensor<3>({3, 2, 16}, 61), ob = random_tensor<3>({3, 2, 16}, 62);
  const auto la = random_tensor<2>({3, 2}, 63), lb = random_tensor<2>({3, 2}, 64);
  tensor<float, 3> o(3, 2, 16);
  tensor<float, 2> lse(3, 2);
  att::merge(oa, la, ob, lb, o, lse);
  tensor<float, 3> a = oa;
  tensor<float, 2> l = la;
  att::merge(a, l, ob, lb, a, l);
  CHECK(dsk::test::bit_equal(a, o));
  CHECK(dsk::test::bit_equal(l, lse));
  tensor<float, 3> buf(4, 2, 16);
  const dsk::view<float, 3> shifted = buf.view().slice(0, 1, 4);
  CHECK_THROWS_WITH(att::merge(buf.cview().slice(0, 0, 3), la, ob, lb, shifted, lse),
                    Catch::Contains("attention::merge: argument 'o'") &&
                        Catch::Contains("does not overlap o_a, or exactly o_a (in place)"));
  const dsk::view<float, 2> lse_in_o(o.data(), dsk::dims<2>(3, 2), {2, 1});
  CHECK_THROWS_WITH(att::merge(oa, la, ob, lb, o, lse_in_o),
                    Catch::Contains("argument 'lse'") && Catch::Contains("does not overlap o"));
}
