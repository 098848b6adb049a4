// CUDA fake quantization for quantization-aware training: forward y = clamp(round(x / s)) * s and the
// straight-through backward dx = dy masked to the clipping range (PyTorch's fake_quantize_per_channel_affine
// with zero point 0), elementwise with the scale of each (channel, group). Backend dsk::cuda; the same
// contract as quant/fake_quant.hpp. Checked against quant/ref.hpp in tests/simt/quant.cpp (also built
// natively as tests/cuda).
#pragma once

#include <concepts>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/quant/cuda/quantize.cuh"
#include "dsk/quant/format.hpp"

namespace dsk::quant {
DSK_CUDA_MODE_BEGIN

namespace kernels {
// Backward when dy != nullptr (writes dx), forward otherwise (writes y). bad: flat index of a scale that is
// negative, NaN or infinite.
template <DSK_QUANT_FMT_PARAMS, rounding Rd, division Dv>
__global__ void fake_quant(const float* x, index_t ldx, const float* scales, index_t lds, index_t rows,
                           index_t cols, float* y, index_t ldy, const float* dy, index_t lddy, float* dx,
                           index_t lddx, long long* bad) {
  constexpr format F{Q, G, S, R};
  constexpr quantize_config C{F, Rd, range_method::absmax, Dv};
  const index_t span = group_span(F, cols);
  for (index_t i = blockIdx.x; i < rows; i += gridDim.x)
    for (index_t k = static_cast<index_t>(blockIdx.y) * blockDim.x + threadIdx.x; k < cols;
         k += static_cast<index_t>(blockDim.x) * gridDim.y) {
      const index_t g = k / span;
      const float s = scales[i * lds + g];
      if (!(s >= 0.0f && s <= 3.402823466e38f)) {
        device::report_index(bad, i * lds + g);
        continue;
      }
      const float v = x[i * ldx + k];
      if (!dy) {
        float out = 0.0f;
        if (s != 0.0f) {
          const float t = quotient_of(v, s, C.div);
          float q = C.round == rounding::half_even ? round_half_even(t) : round_half_away(t);
          q = fminf(fmaxf(q, static_cast<float>(qmin(F))), static_cast<float>(qmax(F)));
          out = (q + 0.0f) * s;  // + 0: a code of -0 is +0 (the host's and the reference's bits)
        }
        y[i * ldy + k] = out;
      } else {
        bool pass;
        if (s == 0.0f) {
          pass = v == 0.0f;
        } else {
          const float t = quotient_of(v, s, C.div);
          const float q = C.round == rounding::half_even ? round_half_even(t) : round_half_away(t);
          pass = q >= static_cast<float>(qmin(F)) && q <= static_cast<float>(qmax(F));
        }
        dx[i * lddx + k] = pass ? dy[i * lddy + k] : 0.0f;
      }
    }
}
}  // namespace kernels

namespace detail {
template <quantize_config C>
void fake_quant_cuda(const char* where, view<const float, 2> x, view<const float, 2> scales, view<float, 2> y,
                     view<const float, 2> dy, view<float, 2> dx, bool backward, const device::stream& s) {
  static_assert(check_format<C.fmt>::value);
  const contract c{where};
  c.unit_inner_stride("x", x)
      .extent("scales", scales, 0, x.extent(0), "x.extent(0) (channels)")
      .extent("scales", scales, 1, groups_per_row(C.fmt, x.extent(1)), "groups per channel")
      .unit_inner_stride("scales", scales);
  if (!backward) {
    c.extent("y", y, 0, x.extent(0)).extent("y", y, 1, x.extent(1)).unit_inner_stride("y", y);
    c.disjoint_or_same("y", y, "x", x).disjoint("y", y, "scales", scales);  // as the host's
  } else {
    c.extent("dy", dy, 0, x.extent(0)).extent("dy", dy, 1, x.extent(1)).unit_inner_stride("dy", dy);
    c.extent("dx", dx, 0, x.extent(0)).extent("dx", dx, 1, x.extent(1)).unit_inner_stride("dx", dx);
    c.disjoint_or_same("dx", dx, "dy", dy)
        .disjoint_or_same("dx", dx, "x", x)
        .disjoint("dx", dx, "scales", scales);
  }
  if (x.size() == 0) return;
  const device::index_report bad(s);
  const auto gy = static_cast<unsigned>(std::min<index_t>(64, device::blocks_for(x.extent(1), 256)));
  device::launch(kernels::fake_quant<DSK_QUANT_FMT_ARGS(C.fmt), C.round, C.div>,
                 {dim3(static_cast<unsigned>(std::min<index_t>(x.extent(0), 65535)), gy), dim3(256)}, s)(
      x.data(), x.stride(0), scales.data(), scales.stride(0), x.extent(0), x.extent(1), y.data(), y.stride(0),
      backward ? dy.data() : nullptr, dy.stride(0), dx.data(), dx.stride(0), bad.slot());
  if (const auto e = bad.first(s))
    fail(where, ": argument 'scales': channel ", *e / scales.stride(0), ": expected a finite scale >= 0");
}
}  // namespace detail

// Forward: y[i, k] = clamp(round(x[i, k] / s), qmin, qmax) * s, s = scales[i, k / group] (a zero scale gives
// 0). x, y [N, K], scales [N, groups_per_row(C.fmt, K)] f32, all in device memory. A negative or non-finite
// scale throws dsk::error after synchronising s (the scales are checked on the device).
template <auto C, std::same_as<dsk::cuda> B>
void fake_quantize(view<const float, 2> x, view<const float, 2> scales, view<float, 2> y,
                   const device::stream& s = device::stream::default_stream()) {
  detail::fake_quant_cuda<spec_v<C>>("quant::fake_quantize<cuda>", x, scales, y, {}, {}, false, s);
}
// Straight-through backward: dx = dy where qmin <= round(x / s) <= qmax (for s == 0: where x == 0), else 0.
template <auto C, std::same_as<dsk::cuda> B>
void fake_quantize_backward(view<const float, 2> x, view<const float, 2> scales, view<const float, 2> dy,
                            view<float, 2> dx, const device::stream& s = device::stream::default_stream()) {
  detail::fake_quant_cuda<spec_v<C>>("quant::fake_quantize_backward<cuda>", x, scales, {}, dy, dx, true, s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::quant
