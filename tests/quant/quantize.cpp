// quant/quantize.hpp against quant/ref.hpp: codes and scales bit for bit for both rounding modes, both int4
// ranges, groups, the three scale types, abs-max and the clipping search, through the scalar and the native
// packet layer; ties, zero channels, tiny and huge magnitudes, K not a multiple of the group or vector width;
// the |dequantize(quantize(w)) - w| <= scale/2 bound; errors; size accounting; per-token activation
// quantization.
#include "dsk/quant/quantize.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "dsk/quant/ref.hpp"
#include "support/compare.hpp"

using namespace dsk;
using namespace dsk::quant;

namespace {

// Random weights with the hard cases mixed in: row 1 all zero, row 2 tiny (down to subnormal), row 3 with
// exact ties (multiples of 0.5 under a scale that is exactly 1 or a power of two), others ~N(0,1)-ish with an
// outlier.
tensor<float, 2> awkward_weights(index_t N, index_t K, std::uint64_t seed, float mag = 1.0f) {
  tensor<float, 2> w(N, K);
  const auto r = test::random_floats(static_cast<std::size_t>(N * K), seed, -mag, mag);
  for (index_t i = 0; i < N; ++i)
    for (index_t k = 0; k < K; ++k) {
      float v = r[static_cast<std::size_t>(i * K + k)];
      if (i % 5 == 1) v = 0.0f;
      if (i % 5 == 2) v *= (k % 2 ? 1e-38f : 1e-44f);
      if (i % 5 == 3) v = std::nearbyint(v * 10.0f) * 0.5f;  // exact ties of x / s when s is a power of two
      if (i % 5 == 4 && k == K / 2) v = 9.0f * mag;          // an outlier the clipping search may clip
      w(i, k) = v;
    }
  return w;
}

template <class Q>
void require_equal_to_ref(const Q& q, const ref::quantized& r) {
  REQUIRE(q.rows() == r.rows);
  REQUIRE(q.cols() == r.cols);
  REQUIRE(q.groups() == r.groups);
  for (index_t i = 0; i < r.rows; ++i) {
    for (index_t g = 0; g < r.groups; ++g) {
      INFO("row " << i << " group " << g);
      REQUIRE(q.scale(i, g) == r.scale(i, g));
    }
    for (index_t k = 0; k < r.cols; ++k) {
      INFO("row " << i << " col " << k);
      REQUIRE(q.code(i, k) == r.code(i, k));
    }
  }
}

template <class S, quantize_config C>
void check_config() {
  for (index_t K : {1, 7, 8, 9, 31, 33, 64, 130, 257})
    for (index_t N : {1, 5}) {
      INFO("N " << N << " K " << K << " layer " << S::name);
      const auto w = awkward_weights(N, K, static_cast<std::uint64_t>(N * 1000 + K));
      const auto q = quantize<C, S>(w.cview());
      const auto r = ref::quantize(w.cview(), C);
      require_equal_to_ref(q, r);
      // Dequantize: bit for bit code * scale.
      tensor<float, 2> d(N, K);
      dequantize<S>(q, d.view());
      const auto rd = ref::dequantize(r, C.fmt);
      for (index_t i = 0; i < N * K; ++i) REQUIRE(d.data()[i] == rd[static_cast<std::size_t>(i)]);
      // An odd int4 row leaves the last high nibble zero.
      if constexpr (C.fmt.type == qtype::int4)
        if (K % 2)
          for (index_t i = 0; i < N; ++i) REQUIRE((q.view().code_row(i)[K / 2] >> 4) == 0);
    }
}

template <quantize_config C>
void check_both_layers() {
  check_config<simd::scalar, C>();
  check_config<simd::native, C>();
}

constexpr format fmt_i4_full8_g32{qtype::int4, 32, scale_type::f32, int4_range::full8};
constexpr format fmt_i8_g64_bf16{qtype::int8, 64, scale_type::bf16};
constexpr format fmt_i4_g128_f16{qtype::int4, 128, scale_type::f16};

}  // namespace

TEST_CASE("quantize equals the reference bit for bit: int8", "[quant][quantize]") {
  check_both_layers<quantize_config{int8_per_channel, rounding::half_even}>();
  check_both_layers<quantize_config{int8_per_channel, rounding::half_away}>();
  check_both_layers<quantize_config{fmt_i8_g64_bf16, rounding::half_even, range_method::mse}>();
  check_both_layers<torch_compatible(int8_per_channel)>();
  check_both_layers<torch_compatible(fmt_i8_g64_bf16, range_method::mse)>();
}

TEST_CASE("quantize equals the reference bit for bit: int4", "[quant][quantize]") {
  check_both_layers<quantize_config{int4_per_channel, rounding::half_even}>();
  check_both_layers<quantize_config{fmt_i4_full8_g32, rounding::half_away}>();
  check_both_layers<quantize_config{fmt_i4_g128_f16, rounding::half_even, range_method::mse}>();
  check_both_layers<quantize_config{int4_per_channel, rounding::half_away, range_method::mse}>();
  check_both_layers<torch_compatible(fmt_i4_g128_f16)>();
  check_both_layers<quantize_config{fmt_i4_full8_g32, rounding::half_away, range_method::mse,
                                    division::reciprocal}>();
}

TEST_CASE("quantize: exact ties follow the rounding mode", "[quant][quantize]") {
  // amax = 127 -> scale exactly 1 (int8); amax = 7 -> scale 1 (int4 sym7).
  tensor<float, 2> w(2, 8);
  const float row0[] = {127.0f, 2.5f, -2.5f, 3.5f, -3.5f, 0.5f, -0.5f, 126.5f};
  const float row1[] = {7.0f, 2.5f, -2.5f, 3.5f, -3.5f, 0.5f, -0.5f, 6.5f};
  for (int k = 0; k < 8; ++k) w(0, k) = row0[k], w(1, k) = row1[k];
  const int even0[] = {127, 2, -2, 4, -4, 0, 0, 126}, away0[] = {127, 3, -3, 4, -4, 1, -1, 127};
  const int even1[] = {7, 2, -2, 4, -4, 0, 0, 6}, away1[] = {7, 3, -3, 4, -4, 1, -1, 7};
  const auto e8 = quantize<quantize_config{int8_per_channel, rounding::half_even}>(w.cview());
  const auto a8 = quantize<quantize_config{int8_per_channel, rounding::half_away}>(w.cview());
  const auto e4 = quantize<quantize_config{int4_per_channel, rounding::half_even}>(w.view().slice(0, 1, 2));
  const auto a4 = quantize<quantize_config{int4_per_channel, rounding::half_away}>(w.view().slice(0, 1, 2));
  REQUIRE(e8.scale(0, 0) == 1.0f);
  REQUIRE(e4.scale(0, 0) == 1.0f);
  for (int k = 0; k < 8; ++k) {
    INFO(k);
    REQUIRE(e8.code(0, k) == even0[k]);
    REQUIRE(a8.code(0, k) == away0[k]);
    REQUIRE(e4.code(0, k) == even1[k]);
    REQUIRE(a4.code(0, k) == away1[k]);
  }
}

TEST_CASE("quantize: int4 range edges of both conventions", "[quant][quantize]") {
  tensor<float, 2> w(2, 4);
  const float r0[] = {1.0f, -1.0f, 0.5f, 0.0f}, r1[] = {-1.0f, 0.25f, 1.0f, 0.0f};
  for (int k = 0; k < 4; ++k) w(0, k) = 3.5f * r0[k], w(1, k) = 3.5f * r1[k];
  const auto s7 = quantize<quantize_config{int4_per_channel}>(w.cview());
  constexpr format full8{qtype::int4, 0, scale_type::f32, int4_range::full8};
  const auto f8 = quantize<quantize_config{full8}>(w.cview());
  // sym7: scale = 3.5/7 = 0.5, +amax -> 7, -amax -> -7, -8 never used.
  REQUIRE(s7.scale(0, 0) == 0.5f);
  REQUIRE(s7.code(0, 0) == 7);
  REQUIRE(s7.code(0, 1) == -7);
  REQUIRE(s7.code(1, 0) == -7);
  // full8: scale = 3.5/8 = 0.4375, -amax -> -8 exactly, +amax -> 8 clipped to 7.
  REQUIRE(f8.scale(0, 0) == 0.4375f);
  REQUIRE(f8.code(0, 0) == 7);
  REQUIRE(f8.code(0, 1) == -8);
  REQUIRE(f8.code(1, 0) == -8);
  REQUIRE(f8.code(1, 2) == 7);
  REQUIRE(f8.code(0, 3) == 0);
}

TEST_CASE("quantize: zero channels, tiny and huge magnitudes", "[quant][quantize]") {
  tensor<float, 2> w(4, 5);
  for (int k = 0; k < 5; ++k) {
    w(0, k) = 0.0f;
    w(1, k) = (k - 2) * std::numeric_limits<float>::denorm_min();
    w(2, k) = (k - 2) * 1e37f;
    w(3, k) = (k - 2) * 1e-6f;
  }
  const auto q = quantize<quantize_config{int8_per_channel}>(w.cview());
  REQUIRE(q.scale(0, 0) == 0.0f);  // zero channel: scale 0, codes 0, never NaN
  // 2 * denorm_min / 127 underflows to 0 in f32: the channel is stored as zero, no NaN.
  REQUIRE(q.scale(1, 0) == 0.0f);
  for (int k = 0; k < 5; ++k) {
    REQUIRE(q.code(0, k) == 0);
    REQUIRE(q.code(1, k) == 0);
  }
  REQUIRE(q.scale(2, 0) == 2e37f / 127.0f);
  REQUIRE(q.code(2, 4) == 127);
  REQUIRE(q.code(2, 0) == -127);
  // f16 scales: 1e-6 / 127 is below the f16 subnormal range and underflows to 0 -> codes 0; 2e37 overflows.
  const auto h = quantize<quantize_config{format{qtype::int8, 0, scale_type::f16}}>(w.view().slice(0, 3, 4));
  REQUIRE(h.scale(0, 0) == 0.0f);
  REQUIRE(h.code(0, 4) == 0);
  REQUIRE_THROWS_WITH(
      (quantize<quantize_config{format{qtype::int8, 0, scale_type::f16}}>(w.view().slice(0, 2, 3))),
      Catch::Contains("channel 0") && Catch::Contains("overflows"));
  // Huge magnitudes stay finite with bf16 scales (8 exponent bits).
  const auto b = quantize<quantize_config{format{qtype::int4, 0, scale_type::bf16}}>(w.view().slice(0, 2, 3));
  REQUIRE(b.code(0, 4) == 7);
}

TEST_CASE("quantize: the reciprocal falls back to the division where 1 / scale overflows",
          "[quant][quantize]") {
  // amax = 127 * 1e-40: the f32 scale 1e-40 is subnormal and 1 / scale (1e40) overflows f32, where torch's
  // w * inf is undefined. The reciprocal convention then divides: the division's codes, never NaN or garbage.
  tensor<float, 2> w(1, 6);
  const float r[] = {127.0f, -127.0f, 50.0f, -3.25f, 0.5f, 0.0f};
  for (int k = 0; k < 6; ++k) w(0, k) = r[k] * 1e-40f;
  constexpr quantize_config torch = torch_compatible(int8_per_channel);
  const auto qr = quantize<torch>(w.cview());
  const auto qs = quantize<torch, simd::scalar>(w.cview());
  const auto qd = quantize<int8_per_channel>(w.cview());
  REQUIRE(qr.scale(0, 0) < 2.9e-39f);
  REQUIRE(std::isinf(1.0f / qr.scale(0, 0)));
  for (int k = 0; k < 6; ++k) {
    INFO(k);
    REQUIRE(qr.code(0, k) == qd.code(0, k));
    REQUIRE(qs.code(0, k) == qd.code(0, k));
    REQUIRE(qr.code(0, k) ==
            ref::code_of(w(0, k), qr.scale(0, 0), int8_per_channel, rounding::half_even, division::divide));
  }
  REQUIRE(qr.code(0, 0) == 127);
  REQUIRE(qr.code(0, 1) == -127);
}

TEST_CASE("quantize rejects NaN and Inf weights naming the channel", "[quant][quantize]") {
  tensor<float, 2> w(3, 40);
  w(2, 37) = NAN;
  REQUIRE_THROWS_WITH(quantize<quantize_config{int8_per_channel}>(w.cview()),
                      Catch::Contains("channel 2") && Catch::Contains("column 37"));
  w(2, 37) = 0.0f;
  w(1, 3) = -INFINITY;
  REQUIRE_THROWS_WITH(quantize<quantize_config{int4_g128_f16}>(w.cview()), Catch::Contains("channel 1"));
  REQUIRE_THROWS_WITH((quantize<quantize_config{int4_per_channel}, simd::scalar>(w.cview())),
                      Catch::Contains("channel 1"));
}

TEST_CASE("dequantize(quantize(w)) is within scale/2 of w inside the clipping range", "[quant][quantize]") {
  const auto w = awkward_weights(7, 200, 99);
  auto check = [&](const auto& q, bool clipped_top) {
    tensor<float, 2> d(7, 200);
    dequantize(q, d.view());
    const index_t span = group_span(q.fmt, 200);
    for (index_t i = 0; i < 7; ++i)
      for (index_t k = 0; k < 200; ++k) {
        const float s = q.scale(i, k / span);
        if (clipped_top && q.code(i, k) == qmax(q.fmt)) continue;  // full8: +amax clips (documented)
        if (s == 0.0f) continue;  // scale underflow: the channel is stored as zero
        REQUIRE(std::fabs(static_cast<double>(d(i, k)) - w(i, k)) <= 0.5 * s * (1 + 1e-6));
      }
  };
  check(quantize<quantize_config{int8_per_channel}>(w.cview()), false);
  check(quantize<quantize_config{int4_g128_f16, rounding::half_away}>(w.cview()), false);
  check(quantize<quantize_config{format{qtype::int4, 32, scale_type::f32, int4_range::full8}}>(w.cview()),
        true);
}

TEST_CASE("the clipping search lowers the error against abs-max", "[quant][quantize]") {
  // Gaussian-like weights with heavy tails: abs-max wastes int4 levels on the outliers.
  const index_t N = 16, K = 256;
  tensor<float, 2> w(N, K);
  auto g = test::rng(5);
  std::student_t_distribution<float> t(3.0f);
  for (index_t i = 0; i < N * K; ++i) w.data()[i] = t(g);
  auto mse = [&](const auto& q) {
    tensor<float, 2> d(N, K);
    dequantize(q, d.view());
    double e = 0;
    for (index_t i = 0; i < N * K; ++i) e += (d.data()[i] - w.data()[i]) * double(d.data()[i] - w.data()[i]);
    return e;
  };
  const double e_abs = mse(quantize<quantize_config{int4_per_channel}>(w.cview()));
  const double e_mse =
      mse(quantize<quantize_config{int4_per_channel, rounding::half_even, range_method::mse}>(w.cview()));
  REQUIRE(e_mse < 0.8 * e_abs);
}

TEST_CASE("quantize from bf16 equals quantize of the widened values", "[quant][quantize]") {
  const auto w = awkward_weights(3, 45, 3);
  tensor<bf16, 2> wb(3, 45);
  tensor<float, 2> wf(3, 45);
  for (index_t i = 0; i < w.size(); ++i) wb.data()[i] = bf16(w.data()[i]), wf.data()[i] = float(wb.data()[i]);
  constexpr quantize_config C{int4_g128_f16};
  require_equal_to_ref(quantize<C>(wb.cview()), ref::quantize(wf.cview(), C));
  require_equal_to_ref(quantize<C>(wb.cview()), ref::quantize(wb.cview(), C));
}

TEST_CASE("quantized_weight size accounting", "[quant][quantize]") {
  const quantized_weight<int4_g128_f16> a(64, 256);
  REQUIRE(a.code_bytes() == 64 * 128);
  REQUIRE(a.scale_bytes() == 64 * 2 * 2);
  REQUIRE(a.bits_per_weight() == Approx(4.125).epsilon(1e-12));
  REQUIRE(a.compression_vs_f32() == Approx(32.0 / 4.125).epsilon(1e-12));
  REQUIRE(a.compression_vs_bf16() == Approx(16.0 / 4.125).epsilon(1e-12));
  const quantized_weight<int8_per_channel> b(10, 100);
  REQUIRE(b.bytes() == 10 * 100 + 10 * 4);
  REQUIRE(b.bits_per_weight() == Approx(8.32).epsilon(1e-12));
  const quantized_weight<int4_per_channel> c(3, 5);  // odd rows: 3 bytes each
  REQUIRE(c.code_bytes() == 9);
  REQUIRE(quantized_weight<int8_per_channel>(0, 0).bits_per_weight() == 0.0);
}

TEST_CASE("quantize_tokens equals the reference bit for bit", "[quant][quantize]") {
  for (index_t K : {1, 9, 32, 77}) {
    auto x = awkward_weights(6, K, 40 + K, 3.0f);
    tensor<std::int8_t, 2> q(6, K);
    tensor<float, 1> s(6);
    const auto r = ref::quantize_tokens(x.cview());
    for (int layer = 0; layer < 2; ++layer) {
      if (layer == 0)
        quantize_tokens<simd::scalar>(x.cview(), q.view(), s.view());
      else
        quantize_tokens(x.cview(), q.view(), s.view());
      for (index_t m = 0; m < 6; ++m) {
        REQUIRE(s(m) == r.scales[static_cast<std::size_t>(m)]);
        for (index_t k = 0; k < K; ++k) REQUIRE(q(m, k) == r.codes[static_cast<std::size_t>(m * K + k)]);
      }
    }
    x(5, 0) = INFINITY;
    REQUIRE_THROWS_WITH(quantize_tokens(x.cview(), q.view(), s.view()), Catch::Contains("token 5"));
  }
}

TEST_CASE("quantize and dequantize argument contracts", "[quant][quantize]") {
  tensor<float, 2> w(4, 6);
  const auto q = quantize<quantize_config{int8_per_channel}>(w.cview());
  tensor<float, 2> bad(4, 5);
  REQUIRE_THROWS_WITH(dequantize(q, bad.view()),
                      Catch::Contains("'out'") && Catch::Contains("extent(1) must be 6"));
  const view<const float, 2> strided(w.data(), dims<2>(4, 3), {6, 2});
  REQUIRE_THROWS_WITH(quantize<quantize_config{int8_per_channel}>(strided),
                      Catch::Contains("unit inner stride"));
  // Empty matrices are fine.
  const auto e = quantize<quantize_config{int4_per_channel}>(tensor<float, 2>(0, 5).cview());
  REQUIRE(e.rows() == 0);
  const auto z = quantize<quantize_config{int4_g128_f16}>(tensor<float, 2>(3, 0).cview());
  REQUIRE(z.groups() == 0);
}

TEST_CASE("quantize into existing storage reuses or reshapes it", "[quant][quantize]") {
  constexpr quantize_config C{int4_g128_f16};
  const auto a = awkward_weights(5, 300, 8), b = awkward_weights(3, 20, 9);
  quantized_weight<C.fmt> out(5, 300);
  const auto* codes = out.codes();
  quantize<C>(a.cview(), out);
  REQUIRE(out.codes() == codes);  // same shape: no reallocation
  require_equal_to_ref(out, ref::quantize(a.cview(), C));
  quantize<C>(b.cview(), out);
  require_equal_to_ref(out, ref::quantize(b.cview(), C));
}

// The format itself is a config (as matmul deduces it): quantize<int4_per_channel>(w) is
// quantize<quantize_config{int4_per_channel}>(w), on every execution tag; the named concepts say what is
// what.
static_assert(quantize_spec<format> && quantize_spec<quantize_config> && !quantize_spec<int>);
static_assert(quantized_operand<quantized_weight<int4_per_channel>> &&
              quantized_operand<qweight_view<int8_per_channel>>);
static_assert(!quantized_operand<tensor<float, 2>>);
static_assert(spec_v<int4_g128_f16>.fmt == int4_g128_f16 &&
              spec_v<int4_g128_f16>.round == rounding::half_even);

TEST_CASE("quantize takes the format as its config, on every execution tag", "[quant][quantize]") {
  const auto w = awkward_weights(7, 131, 77);
  const auto want = ref::quantize(w.cview(), quantize_config{int4_per_channel});
  require_equal_to_ref(quantize<int4_per_channel>(w.cview()), want);
  require_equal_to_ref(quantize<int4_per_channel, simd::scalar>(w.cview()), want);
  require_equal_to_ref(quantize<int4_per_channel, dsk::host>(w.cview()), want);
  quantized_weight<int4_per_channel> into;
  quantize<int4_per_channel, simd::scalar>(w.cview(), into);
  require_equal_to_ref(into, want);
  const auto g = ref::quantize(w.cview(), quantize_config{int4_g128_f16});
  require_equal_to_ref(quantize<int4_g128_f16>(w.cview()), g);
  // dequantize with the format named or deduced, scalar or native: the same values.
  tensor<float, 2> d1(7, 131), d2(7, 131), d3(7, 131);
  const auto q = quantize<int8_per_channel>(w.cview());
  dequantize(q, d1.view());
  dequantize<int8_per_channel, simd::scalar>(q, d2.view());
  dequantize<simd::scalar>(q.view(), d3.view());
  for (index_t i = 0; i < d1.size(); ++i) {
    REQUIRE(d1.data()[i] == d2.data()[i]);
    REQUIRE(d1.data()[i] == d3.data()[i]);
  }
}

TEST_CASE("quantized_weight bounds its storage before allocating", "[quant][quantize][errors]") {
  const index_t big = index_t{1} << 40;
  REQUIRE_THROWS_WITH(
      quantized_weight<int8_per_channel>(big, big),
      Catch::Contains("quant::quantized_weight: arguments 'rows, cols'") && Catch::Contains("2^48 bytes"));
  REQUIRE_THROWS_WITH(quantized_weight<int4_g128_f16>(1, std::numeric_limits<index_t>::max()),
                      Catch::Contains("'rows, cols'"));
  REQUIRE_THROWS_WITH(quantized_weight<int4_per_channel>(std::numeric_limits<index_t>::max(), 2),
                      Catch::Contains("'rows, cols'"));
  REQUIRE_THROWS_WITH(quantized_weight<int8_per_channel>(-1, 4), Catch::Contains("expected >= 0"));
  // Just under the bound is a valid shape (not allocated here); zero extents are fine at any size.
  CHECK_NOTHROW(quantized_weight<int8_per_channel>(0, big));
  CHECK_NOTHROW(quantized_weight<int8_per_channel>(big, 0));
}

TEST_CASE("quantize, dequantize and quantize_tokens reject overlapping outputs",
          "[quant][quantize][errors]") {
  tensor<float, 2> w(4, 64);
  for (index_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>(i % 11) - 5.0f;
  const auto q = quantize<quantize_config{int8_per_channel}>(w.cview());
  // dequantize into memory that holds the scales being read.
  qweight_view<int8_per_channel> qv = q.view();
  tensor<float, 2> out(4, 64);
  qv.scales = out.data() + 64;
  REQUIRE_THROWS_WITH(dequantize(qv, out.view()), Catch::Contains("quant::dequantize: argument 'out'") &&
                                                      Catch::Contains("does not overlap q.scales"));
  // quantize into storage that w is read from (w: a zero-row-stride view over the existing codes).
  auto into = quantize<quantize_config{int8_per_channel}>(w.cview());
  const view<const float, 2> w_on_codes(reinterpret_cast<const float*>(into.codes()), dims<2>(4, 64), {0, 1});
  REQUIRE_THROWS_WITH(
      quantize<quantize_config{int8_per_channel}>(w_on_codes, into),
      Catch::Contains("quant::quantize: argument 'w'") && Catch::Contains("does not overlap out.codes"));
  // quantize_tokens: codes over x (in place: an int8 row is narrower than the float row, so it would
  // overwrite the next row before it is read), scales over x or q.
  tensor<float, 2> x(3, 64);
  tensor<float, 1> sx(3);
  tensor<std::int8_t, 2> qx(3, 64);
  const view<std::int8_t, 2> q_on_x(reinterpret_cast<std::int8_t*>(x.data()), dims<2>(3, 64), {64, 1});
  REQUIRE_THROWS_WITH(
      quantize_tokens(x.cview(), q_on_x, sx.view()),
      Catch::Contains("quant::quantize_tokens: argument 'q'") && Catch::Contains("does not overlap x"));
  const view<float, 1> s_on_x(x.data() + 70, dims<1>(3), {1});
  REQUIRE_THROWS_WITH(quantize_tokens(x.cview(), qx.view(), s_on_x),
                      Catch::Contains("argument 'scales'") && Catch::Contains("does not overlap x"));
  const view<float, 1> s_on_q(reinterpret_cast<float*>(qx.data() + 4), dims<1>(3), {1});
  REQUIRE_THROWS_WITH(quantize_tokens(x.cview(), qx.view(), s_on_q),
                      Catch::Contains("argument 'scales'") && Catch::Contains("does not overlap q"));
}
