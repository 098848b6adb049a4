// Softmax and log-softmax over the rows of x, fp32 (max-subtracted, one pass for max, one for exp and sum).
// Host backend: nn/host/rows_avx2.hpp (simd exp: a few ulp). Checked against nn/ref.hpp in
// tests/nn/softmax.cpp.
#pragma once

#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"
#include "dsk/nn/host/rows_avx2.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::nn {

namespace detail {
DSK_ISA_BEGIN
template <class S, bool Log>
void softmax_checked(const char* where, view<const float, 2> x, view<float, 2> y) {
  const contract c{where};
  c.unit_inner_stride("x", x).unit_inner_stride("y", y);
  c.extent("y", y, 0, x.extent(0), "x.extent(0) (rows)")
      .extent("y", y, 1, x.extent(1), "x.extent(1) (columns)");
  const index_t n = x.extent(1);
  if (n == 0) return;
  parallel_for_chunks(0, x.extent(0), std::max<index_t>(1, 65536 / n), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) packet::softmax_row<S, Log>(row_ptr(x, r), n, row_ptr(y, r));
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN
// y[r] = softmax(x[r]); x, y: [rows, n]; y may be x. A row that is all -inf gives all zeros; NaN or +inf in a
// row gives NaN in that row. Exec: dsk::host or a packet layer (dsk::simd::scalar: the bit-identical twin).
template <host_exec Exec = host>
void softmax(view<const float, 2> x, view<float, 2> y) {
  detail::softmax_checked<exec_packet_t<Exec>, false>("nn::softmax", x, y);
}
// y[r] = log_softmax(x[r]) = x - max - log(sum exp(x - max)); a row that is all -inf stays -inf.
template <host_exec Exec = host>
void log_softmax(view<const float, 2> x, view<float, 2> y) {
  detail::softmax_checked<exec_packet_t<Exec>, true>("nn::log_softmax", x, y);
}
DSK_ISA_END

}  // namespace dsk::nn
