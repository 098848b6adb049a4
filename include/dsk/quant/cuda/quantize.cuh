// CUDA quantization of weights (abs-max or clipping search, both roundings, int8 / int4, per channel or
// group) and dequantization: one warp per (channel, group). Codes and scales are bit-identical to the host's
// and to quant/ref.hpp (the search accumulates its squared errors in double, as the reference does). Backend
// dsk::cuda; checked against quant/ref.hpp in tests/simt/quant.cpp (also built natively as tests/cuda).
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "dsk/core/backend.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/quant/cuda/weight.cuh"
#include "dsk/quant/format.hpp"

namespace dsk::quant {
DSK_CUDA_MODE_BEGIN

namespace kernels {
inline constexpr unsigned quant_warps = 8;

template <format F>
DSK_DEVICE_INLINE float stored_scale(float s) {
  if constexpr (F.scale == scale_type::f32)
    return s;
  else
    return device::to_f32(device::from_f32<scale_t<F>>(s));
}

template <rounding R, division Dv>
DSK_DEVICE_INLINE int code_of(float w, float s, format f) {
  if (s == 0.0f) return 0;
  const float t = quotient_of(w, s, Dv);
  float q = R == rounding::half_even ? round_half_even(t) : round_half_away(t);
  q = fminf(fmaxf(q, static_cast<float>(qmin(f))), static_cast<float>(qmax(f)));
  return static_cast<int>(q);
}

DSK_DEVICE_INLINE double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// nvcc cannot name class-type template arguments in kernel stubs: kernels take the fields of format and
// quantize_config as separate enum / int template arguments.
#define DSK_QUANT_FMT_PARAMS qtype Q, int G, scale_type S, int4_range R
#define DSK_QUANT_FMT_ARGS(f) (f).type, (f).group, (f).scale, (f).range

// One warp per (row i, group g). bad_value: flat index i * K + k of a non-finite weight; bad_scale: i *
// groups + g of a scale that overflows its storage type.
template <DSK_QUANT_FMT_PARAMS, rounding Rd, range_method Method, division Dv, class T>
__global__ void quantize(const T* w, index_t ldw, index_t N, index_t K, std::uint8_t* codes,
                         typename scale_storage<S>::type* scales, long long* bad_value,
                         long long* bad_scale) {
  constexpr format F{Q, G, S, R};
  constexpr quantize_config C{F, Rd, Method, Dv};
  const index_t groups = groups_per_row(F, K), span = group_span(F, K);
  const index_t item = static_cast<index_t>(blockIdx.x) * quant_warps + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (item >= N * groups) return;
  const index_t i = item / groups, g = item - i * groups;
  const index_t k0 = g * span, k1 = k0 + span < K ? k0 + span : K;
  const T* wr = w + i * ldw;
  float amax = 0.0f;
  bool finite = true;
  for (index_t k = k0 + lane; k < k1; k += 32) {
    const float v = device::to_f32(wr[k]);
    if (!(fabsf(v) <= 3.402823466e38f)) {
      finite = false;
      device::report_index(bad_value, i * K + k);
    }
    amax = fmaxf(amax, fabsf(v));
  }
  if (__any_sync(0xffffffffu, !finite)) return;
  amax = device::warp_max(amax);
  float best = 0.0f;
  if constexpr (C.method == range_method::absmax) {
    best = stored_scale<F>(amax * clip_ratio(0) / divisor(F));
  } else {
    double best_err = INFINITY;
    for (int r = 0; r < clip_steps; ++r) {
      const float s = stored_scale<F>(amax * clip_ratio(r) / divisor(F));
      double err = 0;
      for (index_t k = k0 + lane; k < k1; k += 32) {
        const float v = device::to_f32(wr[k]);
        const double d = static_cast<double>(v) -
                         static_cast<double>(code_of<C.round, C.div>(v, s, F)) * static_cast<double>(s);
        err += d * d;
      }
      err = warp_sum_d(err);  // the same value in every lane: every lane makes the same choice
      if (err < best_err) {
        best_err = err;
        best = s;
      }
    }
  }
  if (!(best <= 3.402823466e38f)) {
    if (lane == 0) device::report_index(bad_scale, i * groups + g);
    return;
  }
  if (lane == 0) scales[i * groups + g] = device::from_f32<scale_t<F>>(best);
  std::uint8_t* cr = codes + i * code_row_bytes(F, K);
  if constexpr (F.type == qtype::int8) {
    for (index_t k = k0 + lane; k < k1; k += 32)
      cr[k] = static_cast<std::uint8_t>(
          static_cast<std::int8_t>(code_of<C.round, C.div>(device::to_f32(wr[k]), best, F)));
  } else {
    // Groups hold an even number of columns, so a byte never straddles two groups.
    for (index_t b = k0 / 2 + lane; b < (k1 + 1) / 2; b += 32) {
      const int lo = code_of<C.round, C.div>(device::to_f32(wr[2 * b]), best, F);
      const int hi = 2 * b + 1 < k1 ? code_of<C.round, C.div>(device::to_f32(wr[2 * b + 1]), best, F) : 0;
      cr[b] = static_cast<std::uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
    }
  }
}

template <DSK_QUANT_FMT_PARAMS>
__global__ void dequantize(const std::uint8_t* codes, index_t code_stride,
                           const typename scale_storage<S>::type* scales, index_t scale_stride, index_t rows,
                           index_t cols, float* out, index_t ldo) {
  constexpr format F{Q, G, S, R};
  const qweight_view<F> q{
      reinterpret_cast<const code_t<F>*>(codes), scales, rows, cols, code_stride, scale_stride};
  const index_t span = group_span(F, q.cols);
  for (index_t i = blockIdx.x; i < q.rows; i += gridDim.x)
    for (index_t k = static_cast<index_t>(blockIdx.y) * blockDim.x + threadIdx.x; k < q.cols;
         k += static_cast<index_t>(blockDim.x) * gridDim.y)
      out[i * ldo + k] =
          static_cast<float>(q.code(i, k)) * device::to_f32(q.scales[i * q.scale_stride + k / span]);
}
}  // namespace kernels

namespace detail {
template <quantize_config C, class T>
device_quantized_weight<C.fmt> quantize_cuda(view<const T, 2> w, const device::stream& s) {
  static_assert(check_format<C.fmt>::value);
  const contract c{"quant::quantize<cuda>"};
  c.unit_inner_stride("w", w);
  const index_t N = w.extent(0), K = w.extent(1);
  device_quantized_weight<C.fmt> q(N, K);
  const index_t items = N * groups_per_row(C.fmt, K);
  if (items == 0) return q;
  c.in_range("channels x groups", items, index_t{1}, index_t{device::max_grid_x()} * kernels::quant_warps);
  const device::index_report bad_value(s), bad_scale(s);
  device::launch(kernels::quantize<DSK_QUANT_FMT_ARGS(C.fmt), C.round, C.method, C.div, T>,
                 {dim3(device::blocks_for(items, kernels::quant_warps)), dim3(32 * kernels::quant_warps)},
                 s)(w.data(), w.stride(0), N, K, reinterpret_cast<std::uint8_t*>(q.codes()), q.scales(),
                    bad_value.slot(), bad_scale.slot());
  if (const auto e = bad_value.first(s))
    fail("quant::quantize<cuda>: channel ", *e / K, " holds a non-finite weight at column ", *e % K);
  if (const auto e = bad_scale.first(s))
    fail("quant::quantize<cuda>: channel ", *e / q.groups(), ": the scale overflows its storage type");
  return q;
}
}  // namespace detail

// quantize<C, dsk::cuda>(w, stream): C a quant::format or quant::quantize_config, as on the host.
// Quantizes W [N, K] (f32, bf16 or f16 in device memory, unit inner stride) as quant::quantize<C> does on the
// host (quant/quantize.hpp: abs-max or clipping search, C.round, scales rounded to their storage type first).
// A NaN or Inf weight throws dsk::error naming channel and column. Synchronises s (to report errors).
template <auto C, std::same_as<dsk::cuda> B>
device_quantized_weight<spec_v<C>.fmt> quantize(view<const float, 2> w,
                                                const device::stream& s = device::stream::default_stream()) {
  return detail::quantize_cuda<spec_v<C>>(w, s);
}
template <auto C, std::same_as<dsk::cuda> B>
device_quantized_weight<spec_v<C>.fmt> quantize(view<const bf16, 2> w,
                                                const device::stream& s = device::stream::default_stream()) {
  return detail::quantize_cuda<spec_v<C>>(w, s);
}
template <auto C, std::same_as<dsk::cuda> B>
device_quantized_weight<spec_v<C>.fmt> quantize(view<const f16, 2> w,
                                                const device::stream& s = device::stream::default_stream()) {
  return detail::quantize_cuda<spec_v<C>>(w, s);
}

// out[N, K] = code * scale; q and out in device memory (out: unit inner stride). Asynchronous on s.
template <std::same_as<dsk::cuda> B, format F>
void dequantize(qweight_view<F> q, view<float, 2> out,
                const device::stream& s = device::stream::default_stream()) {
  static_assert(check_format<F>::value);
  const contract c{"quant::dequantize<cuda>"};
  c.extent("out", out, 0, q.rows, "rows of the quantized weight")
      .extent("out", out, 1, q.cols, "cols of the quantized weight")
      .unit_inner_stride("out", out);
  contracts::check_weight_alias(c, "out", out, "q", q);
  if (q.rows == 0 || q.cols == 0) return;
  const auto gy = static_cast<unsigned>(std::min<index_t>(64, device::blocks_for(q.cols, 256)));
  device::launch(kernels::dequantize<DSK_QUANT_FMT_ARGS(F)>,
                 {dim3(static_cast<unsigned>(std::min<index_t>(q.rows, 65535)), gy), dim3(256)},
                 s)(reinterpret_cast<const std::uint8_t*>(q.codes), q.code_stride, q.scales, q.scale_stride,
                    q.rows, q.cols, out.data(), out.stride(0));
}
template <std::same_as<dsk::cuda> B, format F>
void dequantize(const device_quantized_weight<F>& q, view<float, 2> out,
                const device::stream& s = device::stream::default_stream()) {
  dequantize<B>(q.view(), out, s);
}
// The same with the format named first, as the host's dequantize<F, Exec>.
template <format F, std::same_as<dsk::cuda> B>
void dequantize(std::type_identity_t<qweight_view<F>> q, view<float, 2> out,
                const device::stream& s = device::stream::default_stream()) {
  dequantize<B>(q, out, s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::quant
