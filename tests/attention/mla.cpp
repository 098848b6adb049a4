// MLA (dsk/attention/mla.hpp): expanded and absorbed forms against the fp64 expanded formula (ref::mla) and
// against each other, decode and prefill shapes, the V2 / V2-Lite dimensions and a small one; errors.
#include "dsk/attention/mla.hpp"

#include <catch2/catch.hpp>

#include "common.hpp"
#include "dsk/attention/ref.hpp"

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
