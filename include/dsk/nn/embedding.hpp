// Embedding lookup: y[t] = table[ids[t]] widened to f32 (table in f32, bf16 or f16, [vocab, dim]).
// Host, plain loops (a memory copy). Checked against nn/ref.hpp in tests/nn/embedding.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"

namespace dsk::nn {

namespace detail {
DSK_ISA_BEGIN
template <class W, class Id>
void embedding_checked(view<const W, 2> table, std::span<const Id> ids, view<float, 2> y) {
  const contract c{"nn::embedding"};
  c.unit_inner_stride("table", table).unit_inner_stride("y", y);
  c.extent("y", y, 0, static_cast<index_t>(ids.size()), "ids.size() (tokens)");
  c.extent("y", y, 1, table.extent(1), "table.extent(1) (dim)");
  const index_t vocab = table.extent(0), dim = table.extent(1);
  for (std::size_t t = 0; t < ids.size(); ++t)
    if (ids[t] < 0 || static_cast<index_t>(ids[t]) >= vocab)
      fail("nn::embedding: argument 'ids': ids[", t, "] = ", ids[t], " is outside [0, ", vocab, ")");
  parallel_for(0, static_cast<index_t>(ids.size()), [&](index_t t) {
    const W* src = row_ptr(table, static_cast<index_t>(ids[static_cast<std::size_t>(t)]));
    float* dst = row_ptr(y, t);
    for (index_t i = 0; i < dim; ++i) dst[i] = to_float(src[i]);
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// table: [vocab, dim]; ids: token ids, each in [0, vocab); y: [ids.size(), dim]. Plain loops for every Exec
// (dsk::host or a packet layer).
template <host_exec Exec = host>
void embedding(view<const float, 2> table, std::span<const std::int32_t> ids, view<float, 2> y) {
  detail::embedding_checked(table, ids, y);
}
template <host_exec Exec = host>
void embedding(view<const bf16, 2> table, std::span<const std::int32_t> ids, view<float, 2> y) {
  detail::embedding_checked(table, ids, y);
}
template <host_exec Exec = host>
void embedding(view<const f16, 2> table, std::span<const std::int32_t> ids, view<float, 2> y) {
  detail::embedding_checked(table, ids, y);
}
template <host_exec Exec = host>
void embedding(view<const float, 2> table, std::span<const std::int64_t> ids, view<float, 2> y) {
  detail::embedding_checked(table, ids, y);
}
template <host_exec Exec = host>
void embedding(view<const bf16, 2> table, std::span<const std::int64_t> ids, view<float, 2> y) {
  detail::embedding_checked(table, ids, y);
}
template <host_exec Exec = host>
void embedding(view<const f16, 2> table, std::span<const std::int64_t> ids, view<float, 2> y) {
  detail::embedding_checked(table, ids, y);
}
DSK_ISA_END

}  // namespace dsk::nn
