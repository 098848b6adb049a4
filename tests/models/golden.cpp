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
// ISAs while a wrong formula (a missing mscale^2, the wrong RoPE pairing) moves logits by more than 100x
// that (checked by the last test case).
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

TEST_CASE("models: the golden comparison detects a missing mscale^2 and a wrong RoPE pairing", "[models]") {
  // Guards against a vacuous comparison: each plausible mistake must move the logits far beyond golden_tol.
  constexpr double must_differ = 100 * golden_tol;
  const std::string name = "v2_qlora_group";
  const auto g = load_golden(name);
  const auto dir = dsk::test::models_data(name);
  {
    auto cfg = io::v2_config::load(dir);
    REQUIRE(cfg.rope_scaling.enabled);
    cfg.rope_scaling.mscale = cfg.rope_scaling.mscale_all_dim =
        0.0;  // cos/sin unchanged (ratio 1), no mscale^2
    const dsk_v2::model m(cfg, std::make_shared<const io::checkpoint>(dir),
                          dsk_v2::weight_format::checkpoint);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), g.logits) > must_differ);
  }
  {
    auto m = dsk_v2::model::load(dir, dsk_v2::weight_format::checkpoint);
    m.set_rope_layout(nn::rope_layout::half_split);
    CHECK(dsk::test::max_abs(dsk::test::prefill_logits(m, g.tokens), g.logits) > must_differ);
  }
}
