// CUDA embedding lookup: y[t] = table[ids[t]] widened to f32, one block per token. Backend dsk::cuda; same
// contract and results as nn::embedding (nn/embedding.hpp). Checked in tests/simt/nn.cpp (exact copy; also
// built natively as tests/cuda).
#pragma once

#include <concepts>
#include <cstdint>

#include "dsk/core/backend.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"

namespace dsk::nn {
DSK_CUDA_MODE_BEGIN

namespace kernels {
template <class W, class Id>
__global__ void embedding(const W* table, index_t ldt, index_t vocab, const Id* ids, index_t dim, float* y,
                          index_t ldy, long long* bad) {
  const index_t t = blockIdx.x;
  const index_t id = static_cast<index_t>(ids[t]);
  if (id < 0 || id >= vocab) {
    if (threadIdx.x == 0) device::report_index(bad, t);
    return;
  }
  const W* src = table + id * ldt;
  float* dst = y + t * ldy;
  for (index_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = device::to_f32(src[i]);
}
}  // namespace kernels

namespace detail {
template <class W, class Id>
void embedding_cuda(view<const W, 2> table, view<const Id, 1> ids, view<float, 2> y,
                    const device::stream& s) {
  const contract c{"nn::embedding<cuda>"};
  c.unit_inner_stride("table", table).unit_inner_stride("y", y);
  c.require(ids.stride(0) == 1 || ids.extent(0) <= 1, "ids", "a unit stride", ids.stride(0));
  c.extent("y", y, 0, ids.extent(0), "ids.extent(0) (tokens)");
  c.extent("y", y, 1, table.extent(1), "table.extent(1) (dim)");
  c.in_range("tokens", ids.extent(0), index_t{0}, index_t{device::max_grid_x()});
  if (ids.extent(0) == 0) return;
  const device::index_report bad(s);
  device::launch(kernels::embedding<W, Id>, {dim3(static_cast<unsigned>(ids.extent(0))), dim3(128)}, s)(
      table.data(), table.stride(0), table.extent(0), ids.data(), table.extent(1), y.data(), y.stride(0),
      bad.slot());
  if (const auto t = bad.first(s))
    fail("nn::embedding<cuda>: argument 'ids': ids[", *t, "] is outside [0, ", table.extent(0), ")");
}
}  // namespace detail

// table: [vocab, dim] f32 / bf16 / f16, ids: [tokens] int32 or int64, y: [tokens, dim] f32, all in device
// memory. Ids are checked on the device: a bad id throws dsk::error naming it after synchronising s.
#define DSK_NN_EMBEDDING_CUDA(W, Id)                                              \
  template <std::same_as<dsk::cuda> B>                                            \
  void embedding(view<const W, 2> table, view<const Id, 1> ids, view<float, 2> y, \
                 const device::stream& s = device::stream::default_stream()) {    \
    detail::embedding_cuda(table, ids, y, s);                                     \
  }
DSK_NN_EMBEDDING_CUDA(float, std::int32_t)
DSK_NN_EMBEDDING_CUDA(bf16, std::int32_t)
DSK_NN_EMBEDDING_CUDA(f16, std::int32_t)
DSK_NN_EMBEDDING_CUDA(float, std::int64_t)
DSK_NN_EMBEDDING_CUDA(bf16, std::int64_t)
DSK_NN_EMBEDDING_CUDA(f16, std::int64_t)
#undef DSK_NN_EMBEDDING_CUDA

DSK_CUDA_MODE_END
}  // namespace dsk::nn
