// bf16 / f16 / int4x2 against independent formulas: decoding from the bit fields with ldexp, and rounding by
// searching the sorted table of representable values (nearest, ties to the even bit pattern).
#include "dsk/core/dtype.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

namespace {

// value of a binary16-like pattern with `ebits` exponent and `mbits` mantissa bits, from its fields.
double decode(std::uint32_t bits, int ebits, int mbits) {
  const int bias = (1 << (ebits - 1)) - 1;
  const std::uint32_t s = bits >> (ebits + mbits), e = (bits >> mbits) & ((1u << ebits) - 1),
                      m = bits & ((1u << mbits) - 1);
  double v;
  if (e == (1u << ebits) - 1)
    v = m ? NAN : INFINITY;
  else if (e == 0)
    v = std::ldexp(static_cast<double>(m), 1 - bias - mbits);
  else
    v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -mbits), static_cast<int>(e) - bias);
  return s ? -v : v;
}

struct format16 {
  int ebits, mbits;
  std::vector<double> positive;  // value of every non-negative finite pattern, index = bit pattern
  format16(int e, int m) : ebits(e), mbits(m) {
    const std::uint32_t inf = ((1u << e) - 1) << m;
    for (std::uint32_t b = 0; b < inf; ++b) positive.push_back(decode(b, e, m));
  }
  // The correctly rounded pattern for x (round to nearest, ties to even pattern, overflow to Inf),
  // found by search; the value one step above the largest finite counts as 2^(emax+1) = Inf.
  std::uint16_t round(float x) const {
    const std::uint32_t sign = std::signbit(x) ? (1u << (ebits + mbits)) : 0u;
    const double a = std::fabs(static_cast<double>(x));
    const std::uint32_t inf = static_cast<std::uint32_t>(positive.size());
    auto it = std::upper_bound(positive.begin(), positive.end(), a);  // first value > a
    const std::uint32_t lo = static_cast<std::uint32_t>(it - positive.begin()) - 1;
    if (positive[lo] == a) return static_cast<std::uint16_t>(sign | lo);
    const double lo_v = positive[lo];
    const double hi_v = lo + 1 < inf ? positive[lo + 1] : std::ldexp(1.0, (1 << (ebits - 1)));
    std::uint32_t pick;
    if (a - lo_v < hi_v - a)
      pick = lo;
    else if (a - lo_v > hi_v - a)
      pick = lo + 1;
    else
      pick = (lo & 1u) ? lo + 1 : lo;
    return static_cast<std::uint16_t>(sign | pick);
  }
};

const format16& bf16_format() {
  static const format16 f(8, 7);
  return f;
}
const format16& f16_format() {
  static const format16 f(5, 10);
  return f;
}

template <class H>
const format16& format_of() {
  if constexpr (std::is_same_v<H, dsk::bf16>)
    return bf16_format();
  else
    return f16_format();
}

template <class H>
void check_from_float(float x) {
  const H h(x);
  if (std::isnan(x)) {
    REQUIRE(std::isnan(static_cast<float>(h)));
    REQUIRE(std::signbit(static_cast<float>(h)) == std::signbit(x));
    return;
  }
  const std::uint16_t want = format_of<H>().round(x);
  if (h.bits != want) {
    INFO("x = " << x << " (bits 0x" << std::hex << std::bit_cast<std::uint32_t>(x) << "), got 0x" << h.bits
                << ", want 0x" << want);
    REQUIRE(h.bits == want);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("16-bit floats widen exactly for all 65536 patterns", "[dtype]", dsk::bf16, dsk::f16) {
  const format16& f = format_of<TestType>();
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float got = static_cast<float>(TestType::from_bits(static_cast<std::uint16_t>(b)));
    const double want = decode(b, f.ebits, f.mbits);
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else if (static_cast<double>(got) != want || std::signbit(got) != std::signbit(want)) {
      INFO("pattern 0x" << std::hex << b);
      REQUIRE(static_cast<double>(got) == want);
    }
  }
}

TEMPLATE_TEST_CASE("16-bit floats narrow with round-to-nearest-even", "[dtype]", dsk::bf16, dsk::f16) {
  const format16& f = format_of<TestType>();
  SECTION("every representable value, and the midpoints between neighbours and their float neighbours") {
    for (std::uint32_t b = 0; b < f.positive.size(); ++b) {
      for (float sign : {1.0f, -1.0f}) {
        const float v = sign * static_cast<float>(f.positive[b]);
        check_from_float<TestType>(v);
        const double next =
            b + 1 < f.positive.size() ? f.positive[b + 1] : std::ldexp(1.0, 1 << (f.ebits - 1));
        const float mid = sign * static_cast<float>((f.positive[b] + next) / 2);  // exact in float
        check_from_float<TestType>(mid);
        check_from_float<TestType>(std::nextafter(mid, 0.0f));
        check_from_float<TestType>(std::nextafter(mid, sign * INFINITY));
      }
    }
  }
  SECTION("a dense sweep over float bit patterns") {
    for (std::uint64_t u = 0; u < (1ull << 32); u += 4093)
      check_from_float<TestType>(std::bit_cast<float>(static_cast<std::uint32_t>(u)));
  }
  SECTION("specials: +-0, +-Inf, NaN, overflow, smallest subnormals") {
    check_from_float<TestType>(0.0f);
    check_from_float<TestType>(-0.0f);
    check_from_float<TestType>(INFINITY);
    check_from_float<TestType>(-INFINITY);
    check_from_float<TestType>(NAN);
    check_from_float<TestType>(-NAN);
    check_from_float<TestType>(std::numeric_limits<float>::max());
    check_from_float<TestType>(-std::numeric_limits<float>::max());
    check_from_float<TestType>(std::numeric_limits<float>::denorm_min());
    check_from_float<TestType>(std::numeric_limits<float>::min());
    REQUIRE(std::isinf(static_cast<float>(TestType(std::numeric_limits<float>::max()))));
  }
}

TEST_CASE("f16 known values", "[dtype]") {
  REQUIRE(dsk::f16(65504.0f).bits == 0x7bff);
  REQUIRE(dsk::f16(65520.0f).bits == 0x7c00);  // the midpoint to Inf rounds up (to the even pattern)
  REQUIRE(dsk::f16(65519.99f).bits == 0x7bff);
  REQUIRE(dsk::f16(std::ldexp(1.0f, -24)).bits == 0x0001);  // smallest subnormal
  REQUIRE(dsk::f16(std::ldexp(1.0f, -25)).bits == 0x0000);  // half of it ties to even zero
  REQUIRE(dsk::f16(std::ldexp(1.5f, -25)).bits == 0x0001);
  REQUIRE(dsk::bf16(1.0f).bits == 0x3f80);
  REQUIRE(dsk::bf16(-2.0f).bits == 0xc000);
}

TEST_CASE("int4x2 packs two signed nibbles, element 2i in the low nibble", "[dtype]") {
  for (int lo = -8; lo <= 7; ++lo)
    for (int hi = -8; hi <= 7; ++hi) {
      const auto p = dsk::int4x2::pack(lo, hi);
      REQUIRE(p.lo() == lo);
      REQUIRE(p.hi() == hi);
      REQUIRE((p.bits & 0xf) == (lo & 0xf));
      REQUIRE((p.bits >> 4) == (hi & 0xf));
    }
  REQUIRE(dsk::int4x2::pack(-8, 7).bits == 0x78);
  REQUIRE(dsk::int4x2::pack(7, -8).bits == 0x87);
}

TEST_CASE("dtype tags", "[dtype]") {
  REQUIRE(dsk::dtype_of<float> == dsk::dtype::f32);
  REQUIRE(dsk::dtype_of<const dsk::bf16> == dsk::dtype::bf16);
  REQUIRE(dsk::bits_of(dsk::dtype::int4) == 4);
  REQUIRE(dsk::bits_of(dsk::dtype::f16) == 16);
  REQUIRE(dsk::name(dsk::dtype::bf16) == "bf16");
  STATIC_REQUIRE(dsk::float_storage<const dsk::f16>);
  STATIC_REQUIRE(!dsk::float_storage<int>);
  STATIC_REQUIRE(float(dsk::bf16(3.0f)) == 3.0f);  // conversions are constexpr
}
