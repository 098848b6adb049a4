// Compile-time presets: constexpr parameter counts against the published totals (DeepSeek-V2 paper, arXiv
// 2405.04434: V2 236B total / 21B activated; V2-Lite 15.7B / 2.4B) and the design card (~175B / ~37B).
#include <catch2/catch.hpp>

#include "presets.hpp"

using namespace dsk_v2;

namespace {
// The published totals are printed to 2-3 significant figures (V2-Lite's 2.45B active is printed 2.4B):
// 3% relative covers that rounding, while a missing or doubled block (an embedding table is 9% of V2-Lite's
// active count, one expert set per layer far more) does not fit.
constexpr double published_rel_tol = 0.03;
constexpr bool near(double got, double want) {
  return (got > want ? got - want : want - got) <= published_rel_tol * want;
}
}  // namespace

// Checked at compile time: the counts are constexpr.
static_assert(near(double(total_params(v2_lite)), 15.7e9));
static_assert(near(double(active_params(v2_lite)), 2.4e9));
static_assert(near(double(total_params(v2)), 236e9));
static_assert(near(double(active_params(v2)), 21e9));
static_assert(near(double(total_params(v2_card)), 175e9));
static_assert(near(double(active_params(v2_card)), 37e9));

TEST_CASE("models: preset parameter counts", "[models]") {
  CHECK(near(double(total_params(v2_lite)), 15.7e9));
  CHECK(near(double(active_params(v2_lite)), 2.4e9));
  CHECK(near(double(total_params(v2)), 236e9));
  CHECK(near(double(active_params(v2)), 21e9));
  CHECK(near(double(total_params(v2_card)), 175e9));
  CHECK(near(double(active_params(v2_card)), 37e9));
  // V2-Lite by hand from its config (vocab 102400, hidden 2048, 27 layers, 16 heads, q_proj 2048 -> 16*192,
  // kv_a 2048 -> 576, kv_b 512 -> 16*256, o 16*128 -> 2048, dense MLP 10944, 64+2 experts of 1408):
  const std::int64_t attn = 2048LL * 16 * 192 + 2048LL * 576 + 512 + 512LL * 16 * 256 + 16LL * 128 * 2048;
  const std::int64_t expert = 3LL * 2048 * 1408;
  const std::int64_t lite = 2LL * 102400 * 2048 + 2048 + 27 * (attn + 2 * 2048) + 3LL * 2048 * 10944 +
                            26 * (66 * expert + 64LL * 2048);
  CHECK(total_params(v2_lite) == lite);
  CHECK(active_params(v2_lite) == lite - 102400LL * 2048 - 26 * 58 * expert);
  // Layer 0 is dense in every preset; the others are MoE.
  for (const auto& p : {v2_lite, v2, v2_card, tiny}) {
    CHECK_FALSE(p.is_moe_layer(0));
    CHECK(p.is_moe_layer(1));
    CHECK(active_params(p) < total_params(p));
  }
}
