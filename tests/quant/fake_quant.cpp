// quant/fake_quant.hpp against quant/ref.hpp: forward values bit for bit (both divisions), and the
// straight-through gradient mask equal, element by element, to the clipping range written out by hand for
// each code range and rounding mode (including the tie at each end of the range).
#include "dsk/quant/fake_quant.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/quant/ref.hpp"
#include "support/compare.hpp"

using namespace dsk;
using namespace dsk::quant;

namespace {

template <class S, quantize_config C>
void check_against_ref(index_t N, index_t K) {
  INFO("N " << N << " K " << K << " layer " << S::name);
  tensor<float, 2> x(N, K), dy(N, K), y(N, K), dx(N, K);
  const auto rx = test::random_floats(static_cast<std::size_t>(N * K), 3 + K, -3.0f, 3.0f);
  const auto rd = test::random_floats(static_cast<std::size_t>(N * K), 4 + K);
  std::copy(rx.begin(), rx.end(), x.data());
  std::copy(rd.begin(), rd.end(), dy.data());
  const index_t G = groups_per_row(C.fmt, K), span = group_span(C.fmt, K);
  tensor<float, 2> s(N, G);
  // Scales that clip part of the range (amax / divisor * 0.6), and one zero-scale channel.
  absmax_scales<C>(x.cview(), s.view());
  for (index_t i = 0; i < N; ++i)
    for (index_t g = 0; g < G; ++g) s(i, g) = i == 1 ? 0.0f : s(i, g) * 0.6f;
  fake_quantize<C, S>(x.cview(), s.cview(), y.view());
  fake_quantize_backward<C, S>(x.cview(), s.cview(), dy.cview(), dx.view());
  for (index_t i = 0; i < N; ++i)
    for (index_t k = 0; k < K; ++k) {
      const float sc = s(i, k / span);
      const float want = ref::fake_quant(x(i, k), sc, C.fmt, C.round, C.div);
      REQUIRE(std::memcmp(&y(i, k), &want, sizeof(float)) == 0);  // bits: +0 where the code is 0
      REQUIRE(dx(i, k) == dy(i, k) * ref::fake_quant_mask(x(i, k), sc, C.fmt, C.round, C.div));
    }
}

// Mask at x = (t) * s for a power-of-two s, where x / s is exact: t is the value handed to the rounding.
template <quantize_config C>
float mask_at(float t) {
  const float s = 0.25f;
  tensor<float, 2> x(1, 1), sc(1, 1), dy(1, 1), dx(1, 1);
  x(0, 0) = t * s;
  sc(0, 0) = s;
  dy(0, 0) = 1.0f;
  fake_quantize_backward<C>(x.cview(), sc.cview(), dy.cview(), dx.view());
  return dx(0, 0);
}

}  // namespace

TEST_CASE("fake quantization forward and backward equal the reference", "[quant][fake_quant]") {
  for (index_t K : {1, 13, 64, 70}) {
    check_against_ref<simd::scalar, quantize_config{int8_per_channel}>(3, K);
    check_against_ref<simd::native, quantize_config{int8_per_channel}>(3, K);
    check_against_ref<simd::native, quantize_config{format{qtype::int4, 32}, rounding::half_away}>(3, K);
    check_against_ref<simd::scalar, quantize_config{format{qtype::int4, 32}, rounding::half_away}>(3, K);
    check_against_ref<simd::scalar, torch_compatible(int8_per_channel)>(3, K);
    check_against_ref<simd::native, torch_compatible(int8_per_channel)>(3, K);
    check_against_ref<simd::native,
                      torch_compatible(format{qtype::int4, 32, scale_type::f32, int4_range::full8})>(3, K);
    check_against_ref<simd::scalar, quantize_config{format{qtype::int4, 32}, rounding::half_away,
                                                    range_method::absmax, division::reciprocal}>(3, K);
  }
}

TEST_CASE("the straight-through mask is exactly the clipping range", "[quant][fake_quant]") {
  // Inside iff qmin <= round(x / s) <= qmax. At the upper end x/s = qmax + 0.5 rounds to qmax + 1 in both
  // modes (qmax is odd). At the lower end x/s = qmin - 0.5 rounds to qmin only under ties-to-even with an
  // even qmin
  // (-8 of full8); otherwise it leaves the range.
  constexpr quantize_config i8e{int8_per_channel, rounding::half_even},
      i8a{int8_per_channel, rounding::half_away};
  constexpr format f8{qtype::int4, 0, scale_type::f32, int4_range::full8};
  constexpr quantize_config f8e{f8, rounding::half_even}, f8a{f8, rounding::half_away};
  constexpr quantize_config s7e{int4_per_channel, rounding::half_even};
  auto inward = [](float t) { return std::nextafter(t, 0.0f); };  // the nearest float on the inner side
  auto outward = [](float t) { return std::nextafter(t, t > 0 ? INFINITY : -INFINITY); };
  REQUIRE(mask_at<i8e>(127.0f) == 1.0f);
  REQUIRE(mask_at<i8e>(inward(127.5f)) == 1.0f);
  REQUIRE(mask_at<i8e>(127.5f) == 0.0f);
  REQUIRE(mask_at<i8e>(-127.5f) == 0.0f);
  REQUIRE(mask_at<i8e>(inward(-127.5f)) == 1.0f);
  REQUIRE(mask_at<i8a>(127.5f) == 0.0f);
  REQUIRE(mask_at<i8a>(-127.5f) == 0.0f);
  REQUIRE(mask_at<i8a>(inward(-127.5f)) == 1.0f);
  REQUIRE(mask_at<f8e>(7.5f) == 0.0f);
  REQUIRE(mask_at<f8e>(inward(7.5f)) == 1.0f);
  REQUIRE(mask_at<f8e>(-8.5f) == 1.0f);
  REQUIRE(mask_at<f8e>(outward(-8.5f)) == 0.0f);
  REQUIRE(mask_at<f8a>(-8.5f) == 0.0f);
  REQUIRE(mask_at<f8a>(inward(-8.5f)) == 1.0f);
  REQUIRE(mask_at<s7e>(-7.5f) == 0.0f);
  REQUIRE(mask_at<s7e>(inward(-7.5f)) == 1.0f);
  REQUIRE(mask_at<s7e>(7.5f) == 0.0f);
  // Element by element over a dense sweep of x / s in [-10, 10] (steps of 1/64, all exact).
  for (int i = -640; i <= 640; ++i) {
    const float t = static_cast<float>(i) / 64.0f;
    const bool in8 = t > -8.5f && t < 7.5f;
    const bool in8e = in8 || t == -8.5f;
    REQUIRE(mask_at<f8e>(t) == (in8e ? 1.0f : 0.0f));
    REQUIRE(mask_at<f8a>(t) == (in8 ? 1.0f : 0.0f));
    REQUIRE(mask_at<s7e>(t) == (t > -7.5f && t < 7.5f ? 1.0f : 0.0f));
  }
}

TEST_CASE("fake quantization contracts", "[quant][fake_quant]") {
  tensor<float, 2> x(2, 4), s(2, 1), y(2, 4), s_bad(2, 2);
  s(1, 0) = -1.0f;
  REQUIRE_THROWS_WITH(fake_quantize<quantize_config{int8_per_channel}>(x.cview(), s.cview(), y.view()),
                      Catch::Contains("channel 1") && Catch::Contains("finite scale >= 0"));
  REQUIRE_THROWS_WITH(fake_quantize<quantize_config{int8_per_channel}>(x.cview(), s_bad.cview(), y.view()),
                      Catch::Contains("'scales'"));
}

TEST_CASE("fake quantization runs in place exactly and rejects partial overlaps",
          "[quant][fake_quant][errors]") {
  constexpr quantize_config C{int4_per_channel};
  const index_t N = 5, K = 37;
  tensor<float, 2> x(N, K), dy(N, K), s(N, 1), y(N, K), dx(N, K);
  const auto rx = test::random_floats(static_cast<std::size_t>(N * K), 11, -3.0f, 3.0f);
  const auto rd = test::random_floats(static_cast<std::size_t>(N * K), 12);
  std::copy(rx.begin(), rx.end(), x.data());
  std::copy(rd.begin(), rd.end(), dy.data());
  absmax_scales<C>(x.cview(), s.view());
  fake_quantize<C>(x.cview(), s.cview(), y.view());
  fake_quantize_backward<C>(x.cview(), s.cview(), dy.cview(), dx.view());
  // y == x and dx == dy (each element from the same element only): the same bits as out of place.
  tensor<float, 2> xi = x, dyi = dy;
  fake_quantize_backward<C>(x.cview(), s.cview(), dyi.cview(), dyi.view());
  fake_quantize<C>(xi.cview(), s.cview(), xi.view());
  CHECK(std::memcmp(xi.data(), y.data(), sizeof(float) * static_cast<std::size_t>(y.size())) == 0);
  CHECK(std::memcmp(dyi.data(), dx.data(), sizeof(float) * static_cast<std::size_t>(dx.size())) == 0);
  // y shifted by one element over x, or over the scales, is rejected.
  tensor<float, 2> buf(N + 1, K);
  const view<float, 2> shifted(buf.data() + 1, dims<2>(N, K), {K, 1});
  const view<const float, 2> xb(buf.data(), dims<2>(N, K), {K, 1});
  REQUIRE_THROWS_WITH(fake_quantize<C>(xb, s.cview(), shifted),
                      Catch::Contains("quant::fake_quantize: argument 'y'") &&
                          Catch::Contains("does not overlap x, or exactly x (in place)"));
  const view<float, 2> y_on_s(s.data(), dims<2>(1, 1), {1, 1});
  const view<const float, 2> x1(x.data(), dims<2>(1, 1), {K, 1}), s1(s.data(), dims<2>(1, 1), {1, 1});
  REQUIRE_THROWS_WITH(fake_quantize<C>(x1, s1, y_on_s), Catch::Contains("does not overlap scales"));
  REQUIRE_THROWS_WITH(fake_quantize_backward<C>(xb, s.cview(), xb, shifted),
                      Catch::Contains("quant::fake_quantize_backward: argument 'dx'") &&
                          Catch::Contains("does not overlap dy"));
}
