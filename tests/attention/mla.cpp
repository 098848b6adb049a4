// MLA (dsk/attention/mla.hpp): expanded and absorbed forms against the fp64 expanded formula (ref::mla) and
// against each other, decode and prefill shapes, the V2 / V2-Lite dimensions and a small one; errors.
#include "dsk/attention/mla.hpp"

#include <limits>

#include <catch2/catch.hpp>

#include "common.hpp"
#include "dsk/attention/ref.hpp"
#include "support/grid.hpp"

namespace {
using dsk::index_t;
using dsk::tensor;
namespace att = dsk::attention;
using dsk::test::random_tensor;

template <att::mla_config C>
void check_mla(index_t T, index_t L, index_t H, std::uint64_t seed, float scale = 0.0f) {
  INFO("T " << T << " L " << L << " heads " << H << " rank " << C.kv_lora_rank << " causal " << C.causal);
  const auto qn = random_tensor<3>({T, H, C.nope_dim}, seed),
             qp = random_tensor<3>({T, H, C.rope_dim}, seed + 1);
  const auto cache = random_tensor<2>({L, C.cache_dim()}, seed + 2);
  // kv_b_proj entries ~ 1/sqrt(rank) keep the expanded keys O(1), as in a trained model.
  const float a = 1.0f / std::sqrt(float(C.kv_lora_rank));
  const auto w = random_tensor<2>({H * (C.nope_dim + C.v_dim), C.kv_lora_rank}, seed + 3, -a, a);
  tensor<float, 3> oa(T, H, C.v_dim), oe(T, H, C.v_dim);
  att::mla_absorbed<C>(qn, qp, cache, w, oa, {.scale = scale});
  att::mla_expanded<C>(qn, qp, cache, w, oe, {.scale = scale});
  tensor<double, 3> want(T, H, C.v_dim);
  att::ref::mla(qn, qp, cache, w, C.v_dim, C.causal,
                scale == 0.0f ? 1.0 / std::sqrt(double(C.qk_dim())) : scale, want);
  CHECK(dsk::test::nmse_of(want, oa) < dsk::test::attention_nmse);
  CHECK(dsk::test::nmse_of(want, oe) < dsk::test::attention_nmse);
  double num = 0, den = 0;
  for (index_t i = 0; i < oa.size(); ++i) {
    num += std::pow(double(oa.data()[i]) - oe.data()[i], 2);
    den += std::pow(double(oe.data()[i]), 2);
  }
  CHECK((den == 0 ? num : num / den) < dsk::test::attention_nmse);
}
}  // namespace

TEST_CASE("MLA absorbed equals expanded equals the fp64 formula", "[attention][mla]") {
  constexpr att::mla_config v2{};  // 512 + 64 latent cache, 128 / 64 / 128 head dims
  check_mla<v2>(1, 1, 2, 1);
  check_mla<v2>(1, 70, 2, 2);              // decode
  check_mla<v2>(9, 70, 2, 3, 0.1147214f);  // chunked prefill, YaRN-style scale (mscale^2 / sqrt(192))
  constexpr att::mla_config small{.kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24};
  check_mla<small>(40, 40, 16, 4);
  check_mla<small>(1, 333, 16, 5);
  constexpr att::mla_config bidir{
      .kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24, .causal = false};
  check_mla<bidir>(7, 50, 3, 6);
  check_mla<small>(5, 0, 2, 7);  // empty cache: zeros
  // Widths that are multiples of 8 but not 16 (the packet loops' tails), decode and prefill paths.
  constexpr att::mla_config odd{.kv_lora_rank = 40, .rope_dim = 8, .nope_dim = 24, .v_dim = 8};
  check_mla<odd>(1, 45, 3, 8);
  check_mla<odd>(9, 45, 3, 9);
}

TEST_CASE("MLA rejects bad shapes", "[attention][mla][errors]") {
  constexpr att::mla_config C{.kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24};
  tensor<float, 3> qn(2, 4, 32), qp(2, 4, 16), o(2, 4, 24);
  tensor<float, 2> cache(10, 80), w(4 * 56, 64);
  CHECK_NOTHROW(att::mla_absorbed<C>(qn, qp, cache, w, o));
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, tensor<float, 2>(10, 576), w, o),
                    Catch::Contains("'cache'") && Catch::Contains("kv_lora_rank + rope_dim"));
  CHECK_THROWS_WITH(att::mla_expanded<C>(qn, qp, cache, tensor<float, 2>(3 * 56, 64), o),
                    Catch::Contains("'w_kv_b'"));
  CHECK_THROWS_WITH(att::mla_expanded<C>(qn, tensor<float, 3>(2, 4, 8), cache, w, o),
                    Catch::Contains("'q_pe'"));
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, cache, w, tensor<float, 3>(2, 4, 32)),
                    Catch::Contains("'o'"));
}

// ---- kv_b_proj formats, the latent cache type, dispatch ------------------------------------------------
namespace {
namespace quant = dsk::quant;
using dsk::bf16;
using dsk::f16;

// Worst-case per-element NMSE a format's rounding puts on an operand: relative rounding u (unit roundoff of
// a float format: 2^-8 bf16, 2^-11 f16) gives |err| <= u |x|, NMSE <= u^2; a symmetric integer grid of step
// amax / qmax gives |err| <= amax / (2 qmax), and for weights uniform in [-a, a] (mean square a^2 / 3)
// NMSE <= 3 / (2 qmax)^2.
constexpr double bf16_elem_nmse = 1.0 / (256.0 * 256.0);
constexpr double f16_elem_nmse = 1.0 / (2048.0 * 2048.0);
constexpr double int8_elem_nmse = 3.0 / (254.0 * 254.0);
constexpr double int4_elem_nmse = 3.0 / (14.0 * 14.0);
// The rounded operand enters the output through the keys (the scores, whose softmax Jacobian is O(1) at the
// O(1) scores of these tests) and through the values: each adds at most the element NMSE, and the sum of two
// such errors at most 4 times it. So the output of a rounded-operand run is within 4 x element NMSE of the
// f32 run (the tight check of the kernel is against the fp64 formula on the rounded operand itself).
constexpr double propagated(double elem) { return 4.0 * elem; }

template <class T>
tensor<float, 2> widen(const tensor<T, 2>& t) {
  tensor<float, 2> r(t.extent(0), t.extent(1));
  for (index_t i = 0; i < t.size(); ++i) r.data()[i] = static_cast<float>(t.data()[i]);
  return r;
}
template <class T>
tensor<T, 2> narrow(const tensor<float, 2>& t) {
  tensor<T, 2> r(t.extent(0), t.extent(1));
  for (index_t i = 0; i < t.size(); ++i) r.data()[i] = T(t.data()[i]);
  return r;
}

double nmse_f(const tensor<float, 3>& want, const tensor<float, 3>& got) {
  double num = 0, den = 0;
  for (index_t i = 0; i < want.size(); ++i) {
    num += std::pow(double(got.data()[i]) - want.data()[i], 2);
    den += std::pow(double(want.data()[i]), 2);
  }
  return den == 0 ? num : num / den;
}

// One case: kv_b_proj given as `w` (its values as floats: w_eff), the cache as an mla_cache<CacheT>.
// Checks absorbed and expanded against the fp64 formula on the operands as stored (tight), against each other
// (tight), and against the all-f32 run within the bound of the rounding (elem_nmse: weights and cache).
template <att::mla_config C, class CacheT, class W>
void check_format(const W& w, const tensor<float, 2>& w_eff, const tensor<float, 2>& w_f32, double elem_nmse,
                  index_t T, index_t L, index_t H, std::uint64_t seed) {
  INFO("T " << T << " L " << L << " heads " << H << " rank " << C.kv_lora_rank << " bf16 cache "
            << (std::is_same_v<CacheT, bf16>));
  const auto qn = random_tensor<3>({T, H, C.nope_dim}, seed),
             qp = random_tensor<3>({T, H, C.rope_dim}, seed + 1);
  const auto rows = random_tensor<2>({L, C.cache_dim()}, seed + 2);
  att::mla_cache<CacheT> cache(L + 3, C);
  cache.append(rows);
  tensor<float, 2> stored(L, C.cache_dim());  // the cache as stored, widened
  for (index_t j = 0; j < L; ++j)
    for (index_t x = 0; x < C.cache_dim(); ++x) stored(j, x) = static_cast<float>(cache.view()(j, x));
  const float scale = 0.1147214f;
  tensor<float, 3> oa(T, H, C.v_dim), oe(T, H, C.v_dim), of(T, H, C.v_dim), os(T, H, C.v_dim);
  att::mla_absorbed<C>(qn, qp, cache, w, oa, {.scale = scale});
  att::mla_expanded<C>(qn, qp, cache, w, oe, {.scale = scale});
  att::mla_absorbed<C, dsk::simd::scalar>(qn, qp, cache, w, os, {.scale = scale});
  att::mla_absorbed<C>(qn, qp, rows, w_f32, of, {.scale = scale});  // everything f32
  tensor<double, 3> want(T, H, C.v_dim);
  att::ref::mla(qn, qp, stored, w_eff, C.v_dim, C.causal, scale, want);
  CHECK(dsk::test::nmse_of(want, oa) < dsk::test::attention_nmse);
  CHECK(dsk::test::nmse_of(want, oe) < dsk::test::attention_nmse);
  CHECK(dsk::test::nmse_of(want, os) < dsk::test::attention_nmse);
  CHECK(nmse_f(oe, oa) < dsk::test::attention_nmse);
  const double cache_nmse = std::is_same_v<CacheT, bf16> ? bf16_elem_nmse : 0.0;
  CHECK(nmse_f(of, oa) <= propagated(elem_nmse + cache_nmse) + dsk::test::attention_nmse);
}

// every_format = false (only in the small grid, support/grid.hpp): f32 and int4 kv_b_proj only, for configs
// whose other formats run the same loops as a config checked with every format.
template <att::mla_config C, bool every_format = true>
void check_all_formats(index_t T, index_t L, index_t H, std::uint64_t seed) {
  const float a = 1.0f / std::sqrt(float(C.kv_lora_rank));
  const auto w = random_tensor<2>({H * (C.nope_dim + C.v_dim), C.kv_lora_rank}, seed + 10, -a, a);
  auto both_caches = [&](const auto& wf, const tensor<float, 2>& w_eff, double elem) {
    check_format<C, float>(wf, w_eff, w, elem, T, L, H, seed);
    check_format<C, bf16>(wf, w_eff, w, elem, T, L, H, seed);
  };
  {
    INFO("f32 kv_b_proj");
    both_caches(w, w, 0.0);
  }
  if constexpr (every_format) {
    INFO("bf16 kv_b_proj");
    const auto wb = narrow<bf16>(w);
    both_caches(wb, widen(wb), bf16_elem_nmse);
    both_caches(wb.cview(), widen(wb), bf16_elem_nmse);  // a view works as well as a tensor
  }
  if constexpr (every_format) {
    INFO("f16 kv_b_proj");
    const auto wh = narrow<f16>(w);
    both_caches(wh, widen(wh), f16_elem_nmse);
  }
  auto quantized = [&]<quant::format F>(double elem) {
    INFO("quantized kv_b_proj, type " << int(F.type) << " group " << F.group);
    const auto q = quant::quantize<quant::quantize_config{.fmt = F}>(w.cview());
    tensor<float, 2> deq(w.extent(0), w.extent(1));
    quant::dequantize(q, deq.view());
    both_caches(q, deq, elem);
    both_caches(q.view(), deq, elem);
  };
  quantized.template operator()<quant::int4_per_channel>(int4_elem_nmse);
  if constexpr (every_format) {
    quantized.template operator()<quant::int8_per_channel>(int8_elem_nmse);
    // Grouped int4 with f16 scales (group 32 < kv_lora_rank: several scales per row).
    quantized.template operator()<quant::format{quant::qtype::int4, 32, quant::scale_type::f16}>(
        int4_elem_nmse);
  }
}
}  // namespace

TEST_CASE("MLA over f32 / bf16 / f16 / int8 / int4 kv_b_proj and f32 / bf16 latent caches",
          "[attention][mla]") {
  constexpr att::mla_config small{.kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24};
  check_all_formats<small>(1, 37, 4, 20);  // decode
  check_all_formats<small>(9, 37, 4, 21);  // chunked prefill (GEMM path of the output projection)
  check_all_formats<small>(1, 1, 1, 22);   // one key, one head
  check_all_formats<small>(3, 0, 2, 23);   // empty cache: zeros
  // Widths that are multiples of 8 but not 16 (the packet loops' tails).
  constexpr att::mla_config odd{.kv_lora_rank = 40, .rope_dim = 8, .nope_dim = 24, .v_dim = 8};
  check_all_formats<odd>(1, 45, 3, 24);
  check_all_formats<odd>(7, 45, 3, 25);
  constexpr att::mla_config bidir{
      .kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24, .causal = false};
  // The causal flag and the V2 widths change masking and loop counts, not the per-format code: the small grid
  // runs them with f32 and int4 weights only.
  check_all_formats<bidir, !dsk::test::small_grid>(6, 20, 2, 26);
  // V2 widths, decode over a bf16 cache with int8 / bf16 weights (the V2 runner's case).
  constexpr att::mla_config v2{};
  check_all_formats<v2, !dsk::test::small_grid>(1, 70, 2, 27);
}

TEST_CASE("mla_cache appends, rounds bf16 once and rejects bad shapes", "[attention][mla][errors]") {
  const auto rows = random_tensor<2>({5, 24}, 40);
  att::mla_cache<bf16> c(8, 16, 8);
  CHECK(c.size() == 0);
  CHECK(c.capacity() == 8);
  CHECK(c.row_dim() == 24);
  CHECK(c.bytes() == 8 * 24 * 2);
  c.append(rows);
  att::mla_cache<bf16> d(8, att::mla_config{.kv_lora_rank = 16, .rope_dim = 8});
  const dsk::view<const float, 2> rv = rows.cview();
  d.append(dsk::view<const float, 2>(rv.data(), dsk::dims<2>(5, 16), {24, 1}),
           dsk::view<const float, 2>(rv.data() + 16, dsk::dims<2>(5, 8), {24, 1}));
  REQUIRE(c.size() == 5);
  REQUIRE(d.size() == 5);
  CHECK(c.view().extent(0) == 5);
  CHECK(c.view().extent(1) == 24);
  CHECK(c.latent().extent(1) == 16);
  CHECK(c.k_pe().extent(1) == 8);
  bool same = true, rounded = true;
  for (index_t j = 0; j < 5; ++j)
    for (index_t x = 0; x < 24; ++x) {
      same &= c.view()(j, x) == d.view()(j, x);
      rounded &= c.view()(j, x) == bf16(rows(j, x));
      // Round to nearest with 8 significant bits: within half an ulp (2^-7 relative), |err| <= 2^-8 |x|.
      rounded &= std::abs(float(c.view()(j, x)) - rows(j, x)) <= std::ldexp(std::abs(rows(j, x)), -8);
    }
  CHECK(same);
  CHECK(rounded);
  CHECK(c.k_pe()(2, 3) == bf16(rows(2, 19)));
  c.truncate(2);
  CHECK(c.size() == 2);
  c.append(dsk::view<const float, 2>(rv.data(), dsk::dims<2>(1, 24), {24, 1}));
  CHECK(c.size() == 3);
  CHECK_THROWS_WITH(c.truncate(4), Catch::Contains("'n'"));
  CHECK_THROWS_WITH(c.append(tensor<float, 2>(6, 24)),
                    Catch::Contains("'latent'") && Catch::Contains("capacity 8"));
  CHECK(c.size() == 3);  // a rejected append leaves the cache as it was
  CHECK_THROWS_WITH(c.append(tensor<float, 2>(1, 20)), Catch::Contains("'rows'"));
  CHECK_THROWS_WITH(c.append(tensor<float, 2>(1, 15), tensor<float, 2>(1, 8)), Catch::Contains("'latent'"));
  CHECK_THROWS_WITH(c.append(tensor<float, 2>(1, 16), tensor<float, 2>(2, 8)), Catch::Contains("'k_pe'"));
  CHECK_THROWS_WITH(c.append(tensor<float, 2>(1, 16), tensor<float, 2>(1, 9)), Catch::Contains("'k_pe'"));
  CHECK_THROWS_WITH(att::mla_cache<float>(4, 0, 8), Catch::Contains("kv_lora_rank"));
  CHECK_THROWS_WITH(att::mla_cache<float>(-1, 16, 8), Catch::Contains("capacity"));
  att::mla_cache<float> e(0, 16, 8);
  CHECK(e.view().extent(0) == 0);
  CHECK_NOTHROW(e.append(tensor<float, 2>(0, 24)));
  CHECK_THROWS(e.append(tensor<float, 2>(1, 24)));
}

TEST_CASE("MLA with quantized / bf16 weights and caches rejects bad shapes", "[attention][mla][errors]") {
  constexpr att::mla_config C{.kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24};
  tensor<float, 3> qn(2, 4, 32), qp(2, 4, 16), o(2, 4, 24);
  const auto w = random_tensor<2>({4 * 56, 64}, 50);
  const auto q8 = quant::quantize<quant::quantize_config{.fmt = quant::int8_per_channel}>(w.cview());
  const auto wb = narrow<bf16>(w);
  att::mla_cache<bf16> cache(10, C);
  cache.append(random_tensor<2>({10, 80}, 51));
  CHECK_NOTHROW(att::mla_absorbed<C>(qn, qp, cache, q8, o));
  CHECK_NOTHROW(att::mla_expanded<C>(qn, qp, cache, wb, o));
  const auto q8_short = quant::quantize<quant::quantize_config{.fmt = quant::int8_per_channel}>(
      random_tensor<2>({3 * 56, 64}, 52).cview());
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, cache, q8_short, o),
                    Catch::Contains("'w_kv_b'") && Catch::Contains("heads * (nope_dim + v_dim)"));
  const auto q8_narrow = quant::quantize<quant::quantize_config{.fmt = quant::int8_per_channel}>(
      random_tensor<2>({4 * 56, 72}, 53).cview());
  CHECK_THROWS_WITH(att::mla_expanded<C>(qn, qp, cache, q8_narrow, o),
                    Catch::Contains("'w_kv_b'") && Catch::Contains("kv_lora_rank"));
  att::mla_cache<bf16> wide(4, 512, 64);
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, wide, wb, o),
                    Catch::Contains("'cache'") && Catch::Contains("kv_lora_rank + rope_dim"));
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, tensor<bf16, 2>(3, 81), wb, o), Catch::Contains("'cache'"));
  CHECK_THROWS_WITH(att::mla_expanded<C>(qn, qp, cache, tensor<f16, 2>(4 * 56, 63), o),
                    Catch::Contains("'w_kv_b'"));
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, cache, wb, o, {.query_offset = -2}),
                    Catch::Contains("opts.query_offset"));
}

namespace {
constexpr att::mla_config cfg_small{.kv_lora_rank = 64, .rope_dim = 16, .nope_dim = 32, .v_dim = 24};
template <class Cache, class W>
constexpr bool absorbs = requires(dsk::view<const float, 3> q, const Cache& c, const W& w,
                                  dsk::view<float, 3> o) {
  att::mla_absorbed<cfg_small>(q, q, c, w, o);
};
// Named operand concepts: a double matrix is neither a kv_b_proj weight nor a latent cache.
static_assert(att::kv_b_weight<tensor<float, 2>> && att::kv_b_weight<dsk::view<const bf16, 2>> &&
              att::kv_b_weight<tensor<f16, 2>> &&
              att::kv_b_weight<quant::quantized_weight<quant::int4_per_channel>>);
static_assert(!att::kv_b_weight<tensor<double, 2>> && !att::kv_b_weight<tensor<float, 3>>);
static_assert(att::mla_cache_operand<att::mla_cache<bf16>> && att::mla_cache_operand<tensor<float, 2>>);
static_assert(!att::mla_cache_operand<tensor<double, 2>> && !att::mla_cache_operand<tensor<f16, 2>>);
static_assert(absorbs<att::mla_cache<bf16>, quant::quantized_weight<quant::int8_per_channel>>);
static_assert(!absorbs<att::mla_cache<bf16>, tensor<double, 2>>);
static_assert(!absorbs<tensor<double, 2>, tensor<float, 2>>);
}  // namespace

TEST_CASE("mla_dispatch maps runtime MLA widths onto compiled configs", "[attention][mla][dispatch]") {
  constexpr att::mla_config v2{}, tiny{.kv_lora_rank = 16, .rope_dim = 8, .nope_dim = 8, .v_dim = 8};
  // As read from config.json (kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim).
  const att::mla_config runtime{.kv_lora_rank = 16, .rope_dim = 8, .nope_dim = 8, .v_dim = 8};
  const int r = att::mla_dispatch<v2, tiny>(runtime, [](auto c) {
    constexpr att::mla_config C = decltype(c)::value;
    static_assert(C.kv_lora_rank == 16 || C.kv_lora_rank == 512);
    return C.cache_dim();
  });
  CHECK(r == 24);
  CHECK(att::mla_dispatch<v2, tiny>(att::mla_config{},
                                    [](auto c) { return decltype(c)::value.cache_dim(); }) == 576);
  // Dispatch into the kernels themselves.
  tensor<float, 3> qn(1, 2, 8), qp(1, 2, 8), o(1, 2, 8);
  att::mla_cache<bf16> cache(4, runtime);
  cache.append(random_tensor<2>({3, 24}, 60));
  const auto w = narrow<bf16>(random_tensor<2>({2 * 16, 16}, 61));
  CHECK_NOTHROW(att::mla_dispatch<v2, tiny>(
      runtime, [&](auto c) { att::mla_absorbed<decltype(c)::value>(qn, qp, cache, w, o); }));
  CHECK_THROWS_AS((att::mla_dispatch<v2, tiny>(att::mla_config{.kv_lora_rank = 256}, [](auto) {})),
                  dsk::unsupported);
  CHECK_THROWS_WITH(
      (att::mla_dispatch<v2, tiny>(att::mla_config{.kv_lora_rank = 256, .causal = false}, [](auto) {})),
      "dsk: attention::mla_config = {kv_lora_rank 256, rope_dim 64, nope_dim 128, v_dim 128, bidirectional} "
      "is "
      "not supported; compiled choices: {kv_lora_rank 512, rope_dim 64, nope_dim 128, v_dim 128}, "
      "{kv_lora_rank 16, rope_dim 8, nope_dim 8, v_dim 8}");
  CHECK(to_string(tiny) == "{kv_lora_rank 16, rope_dim 8, nope_dim 8, v_dim 8}");
  CHECK(runtime == tiny);
  CHECK_FALSE(runtime == v2);
}

TEST_CASE("MLA rejects absurd query offsets and cache sizes, and outputs over the weights",
          "[attention][mla][errors]") {
  constexpr att::mla_config C{.kv_lora_rank = 32, .rope_dim = 8, .nope_dim = 16, .v_dim = 16};
  const index_t T = 2, H = 2, L = 6;
  const auto qn = random_tensor<3>({T, H, C.nope_dim}, 1), qp = random_tensor<3>({T, H, C.rope_dim}, 2);
  const auto cache = random_tensor<2>({L, C.cache_dim()}, 3);
  auto w = random_tensor<2>({H * (C.nope_dim + C.v_dim), C.kv_lora_rank}, 4, -0.2f, 0.2f);
  tensor<float, 3> o(T, H, C.v_dim);
  const index_t huge = std::numeric_limits<index_t>::max();
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, cache, w, o, {.query_offset = huge}),
                    Catch::Contains("attention::mla_absorbed: argument 'opts.query_offset'") &&
                        Catch::Contains("[0, kv_len = 6]"));
  CHECK_THROWS_WITH(att::mla_expanded<C>(qn, qp, cache, w, o, {.query_offset = huge}),
                    Catch::Contains("attention::mla_expanded: argument 'opts.query_offset'"));
  // o over W_UV (read while o is written).
  const dsk::view<float, 3> o_on_w(w.data(), dsk::dims<3>(T, H, C.v_dim), {H * C.v_dim, C.v_dim, 1});
  CHECK_THROWS_WITH(att::mla_absorbed<C>(qn, qp, cache, w, o_on_w),
                    Catch::Contains("argument 'o'") && Catch::Contains("does not overlap w_kv_b"));
  const auto qw = dsk::quant::quantize<dsk::quant::int8_per_channel>(w.cview());
  const dsk::view<float, 3> o_on_codes(reinterpret_cast<float*>(const_cast<std::int8_t*>(qw.codes())),
                                       dsk::dims<3>(T, H, C.v_dim), {H * C.v_dim, C.v_dim, 1});
  CHECK_THROWS_WITH(att::mla_expanded<C>(qn, qp, cache, qw, o_on_codes),
                    Catch::Contains("does not overlap w_kv_b.codes"));
  // o over q_nope is fine: the queries are read before o is written (here: the same bits).
  att::mla_absorbed<C>(qn, qp, cache, w, o);
  tensor<float, 3> qo = qn;  // nope_dim == v_dim: o may take q_nope's place
  att::mla_absorbed<C>(qo, qp, cache, w, qo);
  CHECK(dsk::test::bit_equal(qo, o));
  // Caches: an absurd capacity, and an append from the cache's own free rows.
  CHECK_THROWS_WITH(att::mla_cache<float>(index_t{1} << 40, 512, 64),
                    Catch::Contains("attention::mla_cache: argument 'capacity'"));
  att::mla_cache<float> mc(8, C);
  mc.append(cache.cview().slice(0, 0, 2));
  const dsk::view<const float, 2> free_rows(mc.view().data() + 3 * C.cache_dim(),
                                            dsk::dims<2>(2, C.kv_lora_rank), {C.cache_dim(), 1});
  const dsk::view<const float, 2> pe(mc.view().data() + 3 * C.cache_dim() + C.kv_lora_rank,
                                     dsk::dims<2>(2, C.rope_dim), {C.cache_dim(), 1});
  CHECK_THROWS_WITH(mc.append(free_rows, pe),
                    Catch::Contains("attention::mla_cache::append: argument 'latent'") &&
                        Catch::Contains("does not overlap the cache's free rows"));
  // Appending rows already in the cache (its filled part) is fine.
  mc.append(dsk::view<const float, 2>(mc.view().data(), dsk::dims<2>(1, C.kv_lora_rank), {C.cache_dim(), 1}),
            dsk::view<const float, 2>(mc.view().data() + C.kv_lora_rank, dsk::dims<2>(1, C.rope_dim),
                                      {C.cache_dim(), 1}));
  CHECK(mc.size() == 3);
}
