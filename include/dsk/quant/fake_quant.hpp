// Fake quantization for quantization-aware training, per channel (and group): forward y =
// dequantize(quantize(x)) and the straight-through backward dx = dy masked to the clipping range, as
// PyTorch's fake_quantize_per_channel_affine with zero point 0 (bit for bit with
// quant::torch_compatible(fmt): x * f32(1 / s), ties to even). Host (scalar + AVX2,
// quant/host/quantize_avx2.hpp); checked against quant/ref.hpp in tests/quant/fake_quant.cpp.
#pragma once

#include "dsk/core/error.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"
#include "dsk/quant/format.hpp"
#include "dsk/quant/host/quantize_avx2.hpp"
#include "dsk/quant/quantize.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::quant {

namespace detail {
DSK_ISA_BEGIN
template <quantize_config C>
void check_fake_quant(const contract& c, view<const float, 2> x, view<const float, 2> scales) {
  static_assert(check_format<C.fmt>::value);
  c.unit_inner_stride("x", x)
      .extent("scales", scales, 0, x.extent(0), "x.extent(0) (channels)")
      .extent("scales", scales, 1, groups_per_row(C.fmt, x.extent(1)), "groups per channel")
      .unit_inner_stride("scales", scales);
  for (index_t i = 0; i < scales.extent(0); ++i)
    for (index_t g = 0; g < scales.extent(1); ++g)
      if (!(scales(i, g) >= 0.0f && scales(i, g) < INFINITY))
        fail(c.where(), ": argument 'scales': channel ", i, ": expected a finite scale >= 0, got ",
             scales(i, g));
}

template <class S, quantize_config C>
void fake_quantize_with(view<const float, 2> x, view<const float, 2> scales, view<float, 2> y) {
  const contract c{"quant::fake_quantize"};
  check_fake_quant<C>(c, x, scales);
  c.extent("y", y, 0, x.extent(0)).extent("y", y, 1, x.extent(1)).unit_inner_stride("y", y);
  // Elementwise: y == x (in place) is exact; a partial overlap, or y over the scales, is not.
  c.disjoint_or_same("y", y, "x", x).disjoint("y", y, "scales", scales);
  parallel_for_chunks(0, x.extent(0), 16, [&](index_t lo, index_t hi) {
    fake_quant_rows<S, C>(x.data(), x.stride(0), scales.data(), scales.stride(0), lo, hi, x.extent(1),
                          y.data(), y.stride(0), nullptr, 0, nullptr, 0);
  });
}

template <class S, quantize_config C>
void fake_quantize_backward_with(view<const float, 2> x, view<const float, 2> scales, view<const float, 2> dy,
                                 view<float, 2> dx) {
  const contract c{"quant::fake_quantize_backward"};
  check_fake_quant<C>(c, x, scales);
  c.extent("dy", dy, 0, x.extent(0)).extent("dy", dy, 1, x.extent(1)).unit_inner_stride("dy", dy);
  c.extent("dx", dx, 0, x.extent(0)).extent("dx", dx, 1, x.extent(1)).unit_inner_stride("dx", dx);
  c.disjoint_or_same("dx", dx, "dy", dy)
      .disjoint_or_same("dx", dx, "x", x)
      .disjoint("dx", dx, "scales", scales);
  parallel_for_chunks(0, x.extent(0), 16, [&](index_t lo, index_t hi) {
    fake_quant_rows<S, C>(x.data(), x.stride(0), scales.data(), scales.stride(0), lo, hi, x.extent(1),
                          nullptr, 0, dy.data(), dy.stride(0), dx.data(), dx.stride(0));
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN
// fake_quantize<C, Exec = dsk::host>: C a quant::format or quant::quantize_config (quantize's), Exec
// dsk::host or a packet layer. Forward: y[i, k] = clamp(round(x[i, k] / s), qmin, qmax) * s (+0 for a zero
// code; x / s formed as C's division says) with s =
// scales[i, k / group] (f32, >= 0; a zero scale gives 0). Uses the format (code range, group) and the
// rounding. x, y [N, K]; scales [N, groups_per_row(fmt, K)]. Typical scales: absmax_scales<C>(w, scales),
// i.e. what quantize() would store. y may be exactly x (in place); no other overlap (checked).
template <auto C, host_exec Exec = host>
void fake_quantize(view<const float, 2> x, view<const float, 2> scales, view<float, 2> y) {
  detail::fake_quantize_with<exec_packet_t<Exec>, spec_v<C>>(x, scales, y);
}
// Straight-through backward: dx = dy where qmin <= round(x / s) <= qmax (for s == 0: where x == 0), else 0.
// dx may be exactly dy or x (in place); no other overlap with x, dy or scales (checked).
template <auto C, host_exec Exec = host>
void fake_quantize_backward(view<const float, 2> x, view<const float, 2> scales, view<const float, 2> dy,
                            view<float, 2> dx) {
  detail::fake_quantize_backward_with<exec_packet_t<Exec>, spec_v<C>>(x, scales, dy, dx);
}

// The scales quantize<C>() would choose for w (abs-max or clipping search, rounded to the scale storage
// type), as f32 [N, groups_per_row(fmt, K)]: the usual input of fake_quantize.
template <auto C, host_exec Exec = host>
void absmax_scales(view<const float, 2> w, view<float, 2> scales) {
  constexpr quantize_config Q = spec_v<C>;
  const contract c{"quant::absmax_scales"};
  c.extent("scales", scales, 0, w.extent(0)).extent("scales", scales, 1, groups_per_row(Q.fmt, w.extent(1)));
  const auto q = quantize<Q, Exec>(w);
  for (index_t i = 0; i < q.rows(); ++i)
    for (index_t g = 0; g < q.groups(); ++g) scales(i, g) = q.scale(i, g);
}
DSK_ISA_END

}  // namespace dsk::quant
