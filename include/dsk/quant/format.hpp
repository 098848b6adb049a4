// Storage formats of symmetric quantized weights: code types and ranges, scale types, group sizes, rounding
// rules, and the non-owning weight view that host and CUDA kernels take. Host and device (no host-only code:
// helpers are DSK_HD and use no std:: functions that device code lacks). The formulas here are the spec that
// quant/ref.hpp implements independently; byte layouts are drawn in docs/quantization.md.
#pragma once

#include <cstdint>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"

namespace dsk::quant {

// Code type of a weight. int8 codes are int8_t in [-127, 127] (the restricted symmetric range: -128 is never
// produced, so |a * b| sums of two products fit int16 and negation is exact). int4 codes are two's-complement
// nibbles packed as dsk::int4x2: element 2i in the LOW nibble of byte i, element 2i+1 in the HIGH nibble.
enum class qtype : std::uint8_t { int8, int4 };

// Range convention of int4 (int8 always uses [-127, 127] with scale = amax / 127).
//  sym7:  codes in [-7, 7], scale = amax / 7. Symmetric, nothing clips; -8 is never used (the default).
//  full8: codes in [-8, 7], scale = amax / 8. One more level of resolution; +amax rounds to 8 and clips to 7,
//         so the most positive weight of a channel carries an error of up to one step.
enum class int4_range : std::uint8_t { sym7, full8 };

// Rounding of w / scale to a code. half_even: ties to the even integer (IEEE nearbyint, PyTorch's
// quantize_per_channel: bit for bit with division::reciprocal). half_away: ties away from zero (C roundf,
// llama.cpp).
enum class rounding : std::uint8_t { half_even, half_away };

// How the quotient w / scale handed to the rounding is formed (f32 arithmetic either way).
//  divide:     w / scale, one correctly rounded IEEE division (the default).
//  reciprocal: w * (1 / scale), the reciprocal rounded to f32 first: PyTorch's quantize_per_channel and
//              fake_quantize_per_channel_affine (CPU and CUDA: inv_scale = 1.0f / scale; nearbyint(w *
//              inv_scale)). Two roundings instead of one, so near a tie (w / scale within ~1 ulp of k + 0.5)
//              the code may differ by one from divide's; with half_even it reproduces torch's codes bit for
//              bit. Where 1 / scale overflows f32 (scale below ~2^-128, a subnormal f32 scale; torch's result
//              is undefined there) the quotient falls back to the division. quantize_config::div.
enum class division : std::uint8_t { divide, reciprocal };

// Storage type of the scales. The scale used to compute the codes is the stored (rounded) one, so
// dequantize(quantize(w)) uses exactly the scale the codes were chosen for.
enum class scale_type : std::uint8_t { f32, f16, bf16 };

// How the per-channel (per-group) scale is chosen.
//  absmax: scale = max|w| / divisor.
//  mse:    clipping search: scale = r * max|w| / divisor for the ratio r of clip_ratio(0..clip_steps-1) with
//  the
//          least squared error sum (w - q * scale)^2 over the channel/group (the first minimum wins). r = 1
//          is in the grid, so the error is never above absmax's.
enum class range_method : std::uint8_t { absmax, mse };

inline constexpr int clip_steps = 21;
// Ratios 1, 0.975, ..., 0.5 of the clipping search.
DSK_HD constexpr float clip_ratio(int i) { return 1.0f - 0.025f * static_cast<float>(i); }

// The storage format: everything a kernel needs to read the weights. A structural type (usable as a
// non-type template parameter): quant::matmul<fmt>(...). group = 0 means one scale per output channel (row
// of W [N, K]); 32, 64 or 128 means one scale per run of `group` consecutive elements of a row (the last
// run of a row may be shorter when K is not a multiple of the group).
struct format {
  qtype type = qtype::int8;
  int group = 0;
  scale_type scale = scale_type::f32;
  int4_range range = int4_range::sym7;

  friend constexpr bool operator==(const format&, const format&) = default;
};

// How to quantize: the format plus the choices that only matter while computing codes.
struct quantize_config {
  format fmt{};
  rounding round = rounding::half_even;
  range_method method = range_method::absmax;
  division div = division::divide;
};

// PyTorch's convention on the format f: ties to even of w * (1 / scale) (quantize_per_channel,
// fake_quantize_per_channel_affine with zero point 0), abs-max scales. quantize<quant::torch_compatible(
// quant::int4_per_channel)>(w) gives torch's codes for the scales it stores.
DSK_HD constexpr quantize_config torch_compatible(format f, range_method m = range_method::absmax) {
  return quantize_config{f, rounding::half_even, m, division::reciprocal};
}

// What quantize<C> / fake_quantize<C> / absmax_scales<C> take as C: a format (rounding half_even, abs-max
// scales: quantize<quant::int4_per_channel>(w), as matmul deduces it) or a quantize_config for the options
// that change the generated code (rounding, clipping search, division).
template <class T>
concept quantize_spec = std::is_same_v<T, format> || std::is_same_v<T, quantize_config>;

DSK_HD constexpr quantize_config to_quantize_config(format f) { return quantize_config{f}; }
DSK_HD constexpr quantize_config to_quantize_config(quantize_config c) { return c; }

template <auto C>
DSK_HD constexpr quantize_config spec_value() {
  if constexpr (quantize_spec<std::remove_cvref_t<decltype(C)>>)
    return to_quantize_config(C);
  else
    return quantize_config{};  // spec_of has said what is wrong
}

// The quantize_config a spec C stands for, validated with a readable message.
template <auto C>
struct spec_of {
  static_assert(quantize_spec<std::remove_cvref_t<decltype(C)>>,
                "dsk::quant: the config must be a quant::format (e.g. quant::int4_per_channel) or a "
                "quant::quantize_config");
  static constexpr quantize_config value = spec_value<C>();
};
template <auto C>
inline constexpr quantize_config spec_v = spec_of<C>::value;

inline constexpr format int8_per_channel{qtype::int8, 0, scale_type::f32, int4_range::sym7};
inline constexpr format int4_per_channel{qtype::int4, 0, scale_type::f32, int4_range::sym7};
inline constexpr format int4_g128_f16{qtype::int4, 128, scale_type::f16, int4_range::sym7};

template <format F>
concept valid_format = (F.group == 0 || F.group == 32 || F.group == 64 || F.group == 128);

// Validates a format at compile time with a readable message; every entry point instantiates it.
template <format F>
struct check_format {
  static_assert(F.group == 0 || F.group == 32 || F.group == 64 || F.group == 128,
                "dsk::quant::format: group must be 0 (per channel), 32, 64 or 128");
  static_assert(F.type == qtype::int8 || F.type == qtype::int4, "dsk::quant::format: unknown qtype");
  static constexpr bool value = true;
};

// ---- code ranges -------------------------------------------------------------------------------------
DSK_HD constexpr int qmax(format f) { return f.type == qtype::int8 ? 127 : 7; }
DSK_HD constexpr int qmin(format f) {
  return f.type == qtype::int8 ? -127 : (f.range == int4_range::full8 ? -8 : -7);
}
// scale = amax / divisor.
DSK_HD constexpr float divisor(format f) {
  return f.type == qtype::int8 ? 127.0f : (f.range == int4_range::full8 ? 8.0f : 7.0f);
}
// Bits of one code.
DSK_HD constexpr int code_bits(format f) { return f.type == qtype::int8 ? 8 : 4; }

// ---- storage types -----------------------------------------------------------------------------------
template <scale_type T>
struct scale_storage;
template <>
struct scale_storage<scale_type::f32> {
  using type = float;
};
template <>
struct scale_storage<scale_type::f16> {
  using type = dsk::f16;
};
template <>
struct scale_storage<scale_type::bf16> {
  using type = dsk::bf16;
};
template <format F>
using scale_t = typename scale_storage<F.scale>::type;

// Byte type of the codes: int8_t, or int4x2 (two codes per byte).
template <format F>
using code_t = std::conditional_t<F.type == qtype::int8, std::int8_t, int4x2>;

// ---- shapes ------------------------------------------------------------------------------------------
// Scales per row: ceil(K / group), or 1 per channel.
DSK_HD constexpr index_t groups_per_row(format f, index_t cols) {
  return f.group == 0 ? (cols > 0 ? 1 : 0) : (cols + f.group - 1) / f.group;
}
// Elements covered by one scale (the whole row per channel).
DSK_HD constexpr index_t group_span(format f, index_t cols) { return f.group == 0 ? cols : f.group; }
// Bytes of the codes of one row (densely packed: int4 rows of odd length end in a half-used byte whose high
// nibble is zero).
DSK_HD constexpr index_t code_row_bytes(format f, index_t cols) {
  return f.type == qtype::int8 ? cols : (cols + 1) / 2;
}

// ---- rounding, shared by the spec and the device code ------------------------------------------------
// Ties-to-even without the C library: for |x| < 2^23, |x| + 2^23 lies in [2^23, 2^24) where the float spacing
// is 1, so the addition rounds |x| to an integer, ties to even; values with |x| >= 2^23 are already integers.
DSK_HD constexpr float round_half_even(float x) {
  const float ax = x < 0 ? -x : x;
  if (!(ax < 8388608.0f)) return x;
  const float magic = 8388608.0f;  // 2^23
  const float r = (ax + magic) - magic;
  return x < 0 ? -r : r;
}
DSK_HD constexpr float round_half_away(float x) {
  const float ax = x < 0 ? -x : x;
  if (!(ax < 8388608.0f)) return x;
  const float t = static_cast<float>(static_cast<std::int32_t>(ax));  // truncation, exact below 2^23
  const float r = (ax - t >= 0.5f) ? t + 1.0f : t;                    // ax - t is exact
  return x < 0 ? -r : r;
}

// The quotient of division d (format.hpp's spec; host packets and device code follow it): w / s, or w * inv
// with inv = 1 / s rounded to f32, and w / s where that reciprocal overflows. s != 0.
DSK_HD constexpr float quotient_of(float w, float s, division d) {
  if (d == division::reciprocal) {
    const float inv = 1.0f / s;
    if (inv <= 3.4028234663852886e38f && inv >= -3.4028234663852886e38f) return w * inv;
  }
  return w / s;
}

// ---- non-owning view of quantized weights ------------------------------------------------------------
// W [rows = N, cols = K] as codes (row i at codes + i * code_stride bytes) and scales [N, groups_per_row]
// (row i at scales + i * scale_stride elements). What host and CUDA kernels take; quantized_weight<F> owns
// the storage and converts to it.
template <format F>
struct qweight_view {
  const code_t<F>* codes = nullptr;
  const scale_t<F>* scales = nullptr;
  index_t rows = 0, cols = 0;
  index_t code_stride = 0;   // bytes between rows of codes
  index_t scale_stride = 0;  // elements between rows of scales

  static constexpr format fmt = F;
  DSK_HD constexpr index_t extent(std::size_t r) const { return r == 0 ? rows : cols; }
  DSK_HD constexpr index_t groups() const { return groups_per_row(F, cols); }
  // Bytes of codes and scales a product reads (the row padding of larger strides excluded).
  DSK_HD constexpr index_t bytes() const {
    return rows * (code_row_bytes(F, cols) + groups() * static_cast<index_t>(sizeof(scale_t<F>)));
  }
  DSK_HD constexpr const std::uint8_t* code_row(index_t i) const {
    return reinterpret_cast<const std::uint8_t*>(codes) + i * code_stride;
  }
  DSK_HD constexpr float scale(index_t i, index_t g) const {
    return static_cast<float>(scales[i * scale_stride + g]);
  }
  // Code (i, j) as an int.
  DSK_HD constexpr int code(index_t i, index_t j) const {
    const std::uint8_t* r = code_row(i);
    if constexpr (F.type == qtype::int8) {
      return static_cast<std::int8_t>(r[j]);
    } else {
      const int nib = (j & 1) ? (r[j >> 1] >> 4) : (r[j >> 1] & 0xf);
      return nib >= 8 ? nib - 16 : nib;
    }
  }
};

}  // namespace dsk::quant
