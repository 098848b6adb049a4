// RMSNorm over the rows of x in fp32: y = w * (x * rsqrt(mean(x^2) + eps)) (Zhang & Sennrich 2019;
// DeepSeek-V2's DeepseekV2RMSNorm, eps = 1e-6). Host backend: nn/host/rows_avx2.hpp. Checked against
// nn/ref.hpp in tests/nn/rmsnorm.cpp.
#pragma once

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"
#include "dsk/nn/host/rows_avx2.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::nn {

namespace detail {
DSK_ISA_BEGIN
template <class S, class W>
void rmsnorm_checked(view<const float, 2> x, view<const W, 1> w, float eps, view<float, 2> y) {
  const contract c{"nn::rmsnorm"};
  c.unit_inner_stride("x", x).unit_inner_stride("w", w).unit_inner_stride("y", y);
  c.extent("w", w, 0, x.extent(1), "x.extent(1) (hidden)");
  c.extent("y", y, 0, x.extent(0), "x.extent(0) (rows)")
      .extent("y", y, 1, x.extent(1), "x.extent(1) (hidden)");
  c.require(eps >= 0.0f, "eps", ">= 0", eps);
  const index_t n = x.extent(1);
  if (n == 0) return;
  parallel_for_chunks(0, x.extent(0), 16, [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) packet::rmsnorm_row<S>(row_ptr(x, r), w.data(), n, eps, row_ptr(y, r));
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN
// x: [rows, hidden], w: [hidden] (f32, bf16 or f16), y: [rows, hidden]; y may be x (in place).
// Exec: dsk::host or a packet layer (dsk::simd::scalar is the bit-identical scalar twin).
template <host_exec Exec = host>
void rmsnorm(view<const float, 2> x, view<const float, 1> w, float eps, view<float, 2> y) {
  detail::rmsnorm_checked<exec_packet_t<Exec>>(x, w, eps, y);
}
template <host_exec Exec = host>
void rmsnorm(view<const float, 2> x, view<const bf16, 1> w, float eps, view<float, 2> y) {
  detail::rmsnorm_checked<exec_packet_t<Exec>>(x, w, eps, y);
}
template <host_exec Exec = host>
void rmsnorm(view<const float, 2> x, view<const f16, 1> w, float eps, view<float, 2> y) {
  detail::rmsnorm_checked<exec_packet_t<Exec>>(x, w, eps, y);
}
DSK_ISA_END

}  // namespace dsk::nn
