// nn::rope: YaRN inv_freq, correction range, mscale and softmax scale against the closed-form
// DeepSeek-V2-Lite values (shared/reference/deepseek-v2.md); apply_rope against the double reference in both
// layouts; the interleaved layout equals DeepSeek's de-interleave + rotate_half; argument errors.
#include "dsk/nn/rope.hpp"

#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/nn/ref.hpp"
#include "support/compare.hpp"

namespace {
using dsk::index_t;

dsk::nn::rope_params v2_lite(dsk::nn::rope_layout layout) {
  return {.dim = 64,
          .base = 10000.0,
          .layout = layout,
          .yarn = {.factor = 40.0,
                   .original_max_position = 4096,
                   .beta_fast = 32.0,
                   .beta_slow = 1.0,
                   .mscale = 0.707,
                   .mscale_all_dim = 0.707}};
}
// inv_freq is rounded to f32: relative 2^-24.
constexpr double kInvFreqRel = 6e-8;
// cos/sin from an f32 inv_freq at positions < 128: angle error <= 128 * 2^-24 rad plus f32 roundings of the
// rotation, for |x| <= 1.
constexpr double kRopeAbs = 1e-5;
}  // namespace

TEST_CASE("YaRN parameters of DeepSeek-V2-Lite match the closed-form values", "[nn][rope]") {
  const auto p = v2_lite(dsk::nn::rope_layout::interleaved);
  const auto [low, high] = dsk::nn::yarn_correction_range(p);
  REQUIRE(low == 10);
  REQUIRE(high == 23);
  REQUIRE(dsk::nn::yarn_mscale(40.0, 0.707) == Approx(1.2608038).epsilon(1e-7));
  REQUIRE(dsk::nn::attention_softmax_scale(192, p) == Approx(0.11472139).epsilon(1e-7));
  REQUIRE(dsk::nn::rope_cos_sin_scale(p) == 1.0);
  // Without mscale_all_dim the scale is 192^-0.5.
  auto plain = p;
  plain.yarn.mscale_all_dim = 0.0;
  REQUIRE(dsk::nn::attention_softmax_scale(192, plain) == Approx(0.0721688).epsilon(1e-6));

  const auto inv = dsk::nn::rope_inv_freq(p);
  REQUIRE(inv.size() == 32);
  for (int i = 0; i < 32; ++i) {
    CAPTURE(i);
    const double extra = std::pow(10000.0, -2.0 * i / 64), inter = extra / 40.0;
    // ramp = clamp((i - 10) / 13, 0, 1); inv_freq = inter * ramp + extra * (1 - ramp).
    const double ramp = std::clamp((i - 10) / 13.0, 0.0, 1.0);
    const double want = i <= 10 ? extra : i >= 23 ? inter : inter * ramp + extra * (1 - ramp);
    REQUIRE(std::abs(inv[std::size_t(i)] - want) <= kInvFreqRel * want);
  }
  // The same against the reference implementation of the formulas.
  const auto ref = dsk::nn::ref::yarn_inv_freq(64, 10000.0, 40.0, 4096.0, 32.0, 1.0);
  for (int i = 0; i < 32; ++i)
    REQUIRE(std::abs(inv[std::size_t(i)] - ref[std::size_t(i)]) <= kInvFreqRel * ref[std::size_t(i)]);
}

TEST_CASE("plain RoPE (factor 1) uses base^(-2i/dim)", "[nn][rope]") {
  const dsk::nn::rope_params p{.dim = 8, .base = 500.0};
  const auto inv = dsk::nn::rope_inv_freq(p);
  for (int i = 0; i < 4; ++i)
    REQUIRE(inv[std::size_t(i)] == Approx(std::pow(500.0, -2.0 * i / 8)).epsilon(1e-7));
}

TEST_CASE("apply_rope matches the double reference in both layouts", "[nn][rope]") {
  for (auto layout : {dsk::nn::rope_layout::interleaved, dsk::nn::rope_layout::half_split}) {
    const auto p = v2_lite(layout);
    const dsk::nn::rope_cache cache(p, 128);
    const auto ref_inv = dsk::nn::ref::yarn_inv_freq(64, 10000.0, 40.0, 4096.0, 32.0, 1.0);
    const index_t tokens = 5, heads = 3, dim = 64, ld_head = 70;  // heads strided inside [tokens, heads, 70]
    auto buf = dsk::test::random_floats(std::size_t(tokens * heads * ld_head), 11);
    const auto orig = buf;
    const std::vector<index_t> pos = {0, 1, 17, 64, 127};
    dsk::view<float, 3> x(buf.data(), dsk::dims<3>(tokens, heads, dim), {heads * ld_head, ld_head, 1});
    dsk::nn::apply_rope(cache, pos, x);
    for (index_t t = 0; t < tokens; ++t)
      for (index_t h = 0; h < heads; ++h) {
        std::vector<double> v(static_cast<std::size_t>(dim));
        for (index_t i = 0; i < dim; ++i)
          v[std::size_t(i)] = orig[std::size_t((t * heads + h) * ld_head + i)];
        dsk::nn::ref::rope(v, double(pos[std::size_t(t)]), ref_inv,
                           layout == dsk::nn::rope_layout::interleaved, 1.0);
        for (index_t i = 0; i < dim; ++i) REQUIRE(std::abs(x(t, h, i) - v[std::size_t(i)]) <= kRopeAbs);
        // Padding between heads is untouched.
        for (index_t i = dim; i < ld_head; ++i)
          REQUIRE(buf[std::size_t((t * heads + h) * ld_head + i)] ==
                  orig[std::size_t((t * heads + h) * ld_head + i)]);
      }
  }
}

TEST_CASE("interleaved RoPE equals DeepSeek's de-interleave followed by half-split RoPE", "[nn][rope]") {
  const dsk::nn::rope_cache inter(v2_lite(dsk::nn::rope_layout::interleaved), 64);
  const dsk::nn::rope_cache half(v2_lite(dsk::nn::rope_layout::half_split), 64);
  auto a = dsk::test::random_floats(64, 5);
  std::vector<float> b(64);
  for (int i = 0; i < 32; ++i)
    b[std::size_t(i)] = a[std::size_t(2 * i)], b[std::size_t(i + 32)] = a[std::size_t(2 * i + 1)];
  const std::vector<index_t> pos = {33};
  dsk::nn::apply_rope(inter, pos, dsk::view<float, 2>(a.data(), dsk::dims<2>(1, 64), {64, 1}));
  dsk::nn::apply_rope(half, pos, dsk::view<float, 2>(b.data(), dsk::dims<2>(1, 64), {64, 1}));
  for (int i = 0; i < 32; ++i) {
    REQUIRE(a[std::size_t(2 * i)] == b[std::size_t(i)]);
    REQUIRE(a[std::size_t(2 * i + 1)] == b[std::size_t(i + 32)]);
  }
}

TEST_CASE("rope rejects bad arguments", "[nn][rope][errors]") {
  REQUIRE_THROWS_WITH(dsk::nn::rope_inv_freq({.dim = 7}), Catch::Contains("'p.dim'"));
  const dsk::nn::rope_cache cache(v2_lite(dsk::nn::rope_layout::interleaved), 8);
  dsk::tensor<float, 2> x(2, 64), x32(2, 32);
  const std::vector<index_t> pos = {0, 8}, pos1 = {0};
  REQUIRE_THROWS_WITH(dsk::nn::apply_rope(cache, pos, x), Catch::Contains("positions[1] = 8"));
  REQUIRE_THROWS_WITH(dsk::nn::apply_rope(cache, pos1, x), Catch::Contains("'x'"));
  const std::vector<index_t> ok = {0, 1};
  REQUIRE_THROWS_WITH(dsk::nn::apply_rope(cache, ok, x32), Catch::Contains("rope dim"));
}
