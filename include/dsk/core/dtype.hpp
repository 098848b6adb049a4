// Storage types of dsk: bf16, f16 (IEEE binary16) and packed signed int4, plus the runtime dtype tag; FP8
// (E4M3, E5M2) decoding.
// Conversions from float round to nearest even and handle NaN, +-Inf, subnormals and overflow; conversions to
// float are exact. Host and device code share these formats; checked in tests/core/dtype.cpp against
// closed-form field decoding over all 65536 bit patterns.
#pragma once

#include <bit>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "dsk/core/config.hpp"

namespace dsk {

// ---- bf16: the upper half of an IEEE binary32 -------------------------------------------------------
namespace detail {
constexpr std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even; a carry into the exponent is the right overflow
  return static_cast<std::uint16_t>(u >> 16);
}
constexpr float bf16_bits_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// ---- f16: IEEE binary16 (1 sign, 5 exponent, 10 mantissa bits) --------------------------------------
constexpr std::uint16_t float_to_f16_bits(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((x >> 13) & 0x3ffu));  // NaN
  if (x >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to Inf
  if (x < 0x38800000u) {                                                    // below 2^-14: subnormal f16
    const std::uint32_t e = x >> 23;
    if (e < 102) return static_cast<std::uint16_t>(sign);  // below 2^-25: rounds to zero
    const std::uint32_t m = (x & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // value / 2^-24 = m >> shift, shift in [14, 24]
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<std::uint16_t>(sign | r);
  }
  x += 0xfffu + ((x >> 13) & 1u);  // round to nearest even on the 13 dropped bits
  return static_cast<std::uint16_t>(sign | ((x - 0x38000000u) >> 13));
}
constexpr float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return std::bit_cast<float>(sign);
    e = 113;  // normalise the subnormal: value = m * 2^-24
    while (!(m & 0x400u)) {
      m <<= 1;
      --e;
    }
    return std::bit_cast<float>(sign | (e << 23) | ((m & 0x3ffu) << 13));
  }
  return std::bit_cast<float>(sign | ((e + 112) << 23) | (m << 13));
}
}  // namespace detail

// Brain float: 8 exponent bits, 7 mantissa bits. Construction from float rounds to nearest even.
struct bf16 {
  std::uint16_t bits = 0;
  constexpr bf16() = default;
  constexpr explicit bf16(float f) : bits(detail::float_to_bf16_bits(f)) {}
  static constexpr bf16 from_bits(std::uint16_t b) {
    bf16 r;
    r.bits = b;
    return r;
  }
  constexpr operator float() const { return detail::bf16_bits_to_float(bits); }
  friend constexpr bool operator==(bf16 a, bf16 b) { return a.bits == b.bits; }  // bitwise, NaN == same NaN
};

// IEEE half precision. Construction from float rounds to nearest even.
struct f16 {
  std::uint16_t bits = 0;
  constexpr f16() = default;
  constexpr explicit f16(float f) : bits(detail::float_to_f16_bits(f)) {}
  static constexpr f16 from_bits(std::uint16_t b) {
    f16 r;
    r.bits = b;
    return r;
  }
  constexpr operator float() const { return detail::f16_bits_to_float(bits); }
  friend constexpr bool operator==(f16 a, f16 b) { return a.bits == b.bits; }
};

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2, "bf16 and f16 must be 2-byte storage types");

// ---- FP8 (OCP 8-bit floating point), decoding only: checkpoints store it (DeepSeek-V3's e4m3 weights),
// dsk computes in f32 / bf16. Both decode exactly into float.
// E4M3 "fn": 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN, max +-448,
// subnormals m * 2^-9.
constexpr float fp8_e4m3_to_float(std::uint8_t b) {
  const std::uint32_t sign = static_cast<std::uint32_t>(b & 0x80u) << 24;
  const std::uint32_t e = (b >> 3) & 0xfu, m = b & 0x7u;
  if (e == 0xfu && m == 0x7u) return std::bit_cast<float>(sign | 0x7fc00000u);
  if (e == 0)
    return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(static_cast<float>(m) * 0x1p-9f));
  return std::bit_cast<float>(sign | ((e + 120u) << 23) | (m << 20));
}
// E5M2: 1 sign, 5 exponent (bias 15), 2 mantissa bits, IEEE-style: exponent 31 is Inf (m = 0) or NaN,
// max +-57344, subnormals m * 2^-16. (The upper byte of an f16.)
constexpr float fp8_e5m2_to_float(std::uint8_t b) {
  return detail::f16_bits_to_float(static_cast<std::uint16_t>(static_cast<std::uint16_t>(b) << 8));
}
// Whether the byte is an FP8 NaN (E4M3: S.1111.111; E5M2: exponent 31, mantissa != 0).
constexpr bool fp8_e4m3_is_nan(std::uint8_t b) { return (b & 0x7fu) == 0x7fu; }
constexpr bool fp8_e5m2_is_nan(std::uint8_t b) { return (b & 0x7cu) == 0x7cu && (b & 0x3u) != 0; }
// Whether the byte decodes to a NaN or an infinity.
constexpr bool fp8_e5m2_is_nonfinite(std::uint8_t b) { return (b & 0x7cu) == 0x7cu; }

// Two signed 4-bit integers in [-8, 7] in one byte (two's complement nibbles).
// Nibble order: element 2i is the LOW nibble of byte i, element 2i+1 the HIGH nibble. A row with an odd
// number of elements leaves the last high nibble zero. This layout is shared by host and CUDA kernels.
struct int4x2 {
  std::uint8_t bits = 0;
  static constexpr int min = -8, max = 7;
  static constexpr int4x2 pack(int lo, int hi) {
    int4x2 r;
    r.bits = static_cast<std::uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
    return r;
  }
  constexpr int lo() const { return static_cast<std::int8_t>(static_cast<std::uint8_t>(bits << 4)) >> 4; }
  constexpr int hi() const { return static_cast<std::int8_t>(bits) >> 4; }
  constexpr int get(int which) const { return which ? hi() : lo(); }
  friend constexpr bool operator==(int4x2 a, int4x2 b) { return a.bits == b.bits; }
};
static_assert(sizeof(int4x2) == 1, "int4x2 must be one byte");

// Runtime tag of an element type, for files (safetensors) and messages.
enum class dtype : std::uint8_t { f32, f64, bf16, f16, i8, u8, i16, i32, i64, int4 };

constexpr std::string_view name(dtype t) {
  switch (t) {
    case dtype::f32:
      return "f32";
    case dtype::f64:
      return "f64";
    case dtype::bf16:
      return "bf16";
    case dtype::f16:
      return "f16";
    case dtype::i8:
      return "i8";
    case dtype::u8:
      return "u8";
    case dtype::i16:
      return "i16";
    case dtype::i32:
      return "i32";
    case dtype::i64:
      return "i64";
    case dtype::int4:
      return "int4";
  }
  return "?";
}

// Storage bits of one element (int4: 4; two share a byte).
constexpr int bits_of(dtype t) {
  switch (t) {
    case dtype::f64:
    case dtype::i64:
      return 64;
    case dtype::f32:
    case dtype::i32:
      return 32;
    case dtype::bf16:
    case dtype::f16:
    case dtype::i16:
      return 16;
    case dtype::i8:
    case dtype::u8:
      return 8;
    case dtype::int4:
      return 4;
  }
  return 0;
}

template <class T>
struct dtype_of_t;  // no tag for this type: the element type is not a dsk storage type
template <>
struct dtype_of_t<float> {
  static constexpr dtype value = dtype::f32;
};
template <>
struct dtype_of_t<double> {
  static constexpr dtype value = dtype::f64;
};
template <>
struct dtype_of_t<bf16> {
  static constexpr dtype value = dtype::bf16;
};
template <>
struct dtype_of_t<f16> {
  static constexpr dtype value = dtype::f16;
};
template <>
struct dtype_of_t<std::int8_t> {
  static constexpr dtype value = dtype::i8;
};
template <>
struct dtype_of_t<std::uint8_t> {
  static constexpr dtype value = dtype::u8;
};
template <>
struct dtype_of_t<std::int16_t> {
  static constexpr dtype value = dtype::i16;
};
template <>
struct dtype_of_t<std::int32_t> {
  static constexpr dtype value = dtype::i32;
};
template <>
struct dtype_of_t<std::int64_t> {
  static constexpr dtype value = dtype::i64;
};
template <>
struct dtype_of_t<int4x2> {
  static constexpr dtype value = dtype::int4;
};

template <class T>
inline constexpr dtype dtype_of = dtype_of_t<std::remove_cv_t<T>>::value;

// Element types that convert to float exactly: the weight types of the float kernels.
template <class T>
concept float_storage = std::is_same_v < std::remove_cv_t<T>,
float > || std::is_same_v<std::remove_cv_t<T>, bf16> || std::is_same_v<std::remove_cv_t<T>, f16>;

// Widen any float storage type to float.
template <float_storage T>
constexpr float to_float(T v) {
  return static_cast<float>(v);
}
// Narrow float to a float storage type (round to nearest even).
template <float_storage T>
constexpr T from_float(float v) {
  if constexpr (std::is_same_v<std::remove_cv_t<T>, float>)
    return v;
  else
    return T(v);
}

}  // namespace dsk
