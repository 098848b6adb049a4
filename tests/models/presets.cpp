// Compile-time presets: constexpr parameter counts against the published totals (DeepSeek-V2 paper, arXiv
// 2405.04434: V2 236B total / 21B activated; V2-Lite 15.7B / 2.4B) and the design card (~175B / ~37B).
#include <catch2/catch.hpp>

#include "lite/presets.hpp"
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

// ---- DeepSeek-Lite (examples/lite/presets.hpp)
// -------------------------------------------------------------

// The seed's edge model is 2.8 GB: lite_card's int4 codes + f16 scales must be within 3% of it.
static_assert(near(double(dsk_lite::int4_weight_bytes(dsk_lite::lite_card)), 2.8e9));

TEST_CASE("models: lite_card is 2.8 GB of int4 weights and scales; bytes per decoded token",
          "[models][lite]") {
  using namespace dsk_lite;
  CHECK(near(double(int4_weight_bytes(lite_card)), 2.8e9));
  // By hand from the preset (hidden 2048, 16 heads: q_proj [3072, 2048], kv_a [576, 2048], kv_b [4096, 512],
  // o [2048, 2048]; experts gate / up [512, 2048], down [2048, 512]; 244 routed + 1 shared per block; 7
  // blocks; tied table [32768, 2048]). Each row: k / 2 bytes of codes + one 2-byte f16 scale.
  auto mat = [](std::int64_t n, std::int64_t k) { return n * (k / 2) + 2 * n; };
  const std::int64_t attn = mat(3072, 2048) + mat(576, 2048) + mat(4096, 512) + mat(2048, 2048);
  const std::int64_t expert = 2 * mat(512, 2048) + mat(2048, 512);
  const std::int64_t table = mat(32768, 2048);
  CHECK(int4_weight_bytes(lite_card) == table + 7 * (attn + 245 * expert));
  // One token: the whole tied head, then 14 logical layers of attention + router gate (f16 [244, 2048] and
  // the three norm vectors) + 5 routed + 1 shared experts. 14.1 ms at 19.7 GB/s (docs/models.md).
  const std::int64_t f16 = 2 * (244 * 2048 + 2 * 2048 + 512);
  CHECK(decode_bytes_per_token(lite_card) == table + 14 * (attn + f16 + 6 * expert));
  CHECK(double(decode_bytes_per_token(lite_card)) / 19.7e9 <= 0.015);
  CHECK(lite_card.num_blocks() == 7);
  CHECK(dsk_lite::tiny.num_blocks() == 2);
  CHECK_FALSE(dsk_lite::tiny.is_moe_block(0));
  CHECK(dsk_lite::tiny.is_moe_block(1));
  // About 4 bits per stored weight (4 + 16 / row length), and ~8x smaller than f32 (the seed's 87.5% is
  // vs 32-bit floats; vs bf16 it is ~75%).
  const double bits = 8.0 * double(int4_weight_bytes(lite_card)) /
                      double(stored_params(lite_card) - 7 * (244 * 2048 + 2 * 2048 + 512) - 2048);
  CHECK(bits > 4.0);
  CHECK(bits < 4.05);
}
