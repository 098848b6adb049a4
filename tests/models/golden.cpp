// Golden logits: dsk_v2::model against Hugging Face transformers' DeepseekV2ForCausalLM on the tiny random
// checkpoints of tools/gen_v2_golden.py (bf16 weights, f32 compute on both sides).
#include <catch2/catch.hpp>

#include "common.hpp"

using namespace dsk;
using dsk::test::load_golden;

namespace {
// Both sides compute in f32 from the same bf16 weights; what differs is summation order (blocked GEMM,
// online softmax, grouped experts), dsk's SIMD exp (a few ulp) and RoPE angles formed in double here vs f32
// in torch (~pos * 2^-24 rad). Measured max |diff| <= 3e-6 on logits of size ~3; 1e-4 leaves room for other
// ISAs while any wrong formula (a missing mscale^2 changes logits by ~1e-1, a wrong rope layout by ~1e-1)
// fails.
constexpr double golden_tol = 1e-4;

const char* const cases[] = {"v2_qlora_group", "lite_greedy", "qlora_greedy_norope_scaling"};
}  // namespace

TEST_CASE("models: logits match transformers' DeepseekV2ForCausalLM (prefill, both MLA forms, decode)",
          "[models]") {
  for (const char* name : cases) {
    INFO("case " << name);
    const auto g = load_golden(name);
    INFO("golden from transformers " << g.transformers_version);
    auto m = dsk_v2::model::load(dsk::test::models_data(name), dsk_v2::weight_format::checkpoint);
    CHECK(std::abs(m.config().softmax_scale() - g.softmax_scale) < 1e-12);
    REQUIRE(g.logits.extent(1) == m.config().vocab_size);

    m.set_prefill_form(dsk_v2::attention_form::expanded);
    const auto expanded = dsk::test::prefill_logits(m, g.tokens);
    CHECK(dsk::test::max_abs(expanded, g.logits) < golden_tol);

    m.set_prefill_form(dsk_v2::attention_form::absorbed);
    const auto absorbed = dsk::test::prefill_logits(m, g.tokens);
    CHECK(dsk::test::max_abs(absorbed, g.logits) < golden_tol);

    const auto decoded = dsk::test::decode_logits(m, g.tokens);
    CHECK(dsk::test::max_abs(decoded, g.logits) < golden_tol);

    // f32 in memory computes the same (the bf16 weights widen exactly).
    auto m32 = dsk_v2::model::load(dsk::test::models_data(name), dsk_v2::weight_format::f32);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m32, g.tokens), g.logits) < golden_tol);
  }
}
