// MoE data movement (DeepEP vocabulary; capacity as in GShard / MegaBlocks): dispatch_layout, plan_dispatch,
// dispatch_tokens, combine_tokens and their backward. The _tokens / _layout names keep them apart from
// dsk::dispatch and dsk::layout_right. Host: op<Exec = dsk::host> (simd::scalar gives the same bits);
// checked against dsk/moe/ref.hpp in tests/moe/dispatch.cpp and exec.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/moe/router.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::moe {

namespace detail {
DSK_ISA_BEGIN
// Rows (or tokens) per parallel chunk so that a chunk moves at least ~256K floats: below that a fork/join
// costs more than the copy, and on a loaded machine far more.
inline index_t grain_for(index_t floats_per_item) {
  return std::max<index_t>(1, (index_t{1} << 18) / std::max<index_t>(1, floats_per_item));
}

// Bounds of a dispatch: experts, tokens, slots and dispatched rows fit the int32 tables of the handle
// (expert_id, row_token, row_slot); block is a GEMM M tile, at most 2^16 rows of padding per expert.
inline constexpr index_t max_dispatch_count = 0x7fffffff;
inline constexpr index_t max_dispatch_block = index_t{1} << 16;

// The per-expert limit of a dispatch of T tokens x K slots over E experts: `capacity` when >= 0, else
// ceil(capacity_factor * T * K / E) when the factor is > 0, else -1 (dropless). No expert can receive more
// than T * K pairs: a larger capacity (capacity_factor up to 1e308) keeps everything, and clamping first
// keeps the conversion to index_t defined.
inline index_t capacity_of(index_t capacity, double capacity_factor, index_t T, index_t K, index_t E) {
  if (capacity >= 0) return capacity;
  if (!(capacity_factor > 0.0)) return -1;
  const double cap = std::ceil(capacity_factor * static_cast<double>(T * K) / static_cast<double>(E));
  return cap >= static_cast<double>(T * K) ? T * K : static_cast<index_t>(cap);
}

// The padding and capacity options of a dispatch (dispatch_options, moe::ep_options).
inline void check_dispatch_options(const contract& c, index_t block, double capacity_factor,
                                   index_t capacity) {
  c.in_range("opt.block", block, index_t{1}, max_dispatch_block)
      .require(std::isfinite(capacity_factor) && capacity_factor >= 0.0, "opt.capacity_factor",
               "a finite value >= 0 (0 = dropless)", capacity_factor)
      .require(capacity >= -1, "opt.capacity", ">= 0, or -1 to use capacity_factor", capacity);
}

inline void check_topk_idx(const contract& c, view<const expert_id, 2> topk_idx, index_t E) {
  for (index_t t = 0; t < topk_idx.extent(0); ++t)
    for (index_t k = 0; k < topk_idx.extent(1); ++k) {
      const expert_id e = topk_idx(t, k);
      if (e < -1 || e >= E)
        c.require(false, "topk_idx", dsk::detail::concat("expert ids in [0, ", E, ") or -1 (no expert)"),
                  dsk::detail::concat(e, " at (", t, ", ", k, ")"));
    }
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// Expert-parallel layout (DeepEP get_dispatch_layout): experts are split contiguously over R ranks (rank of
// expert e = e / (E / R)); -1 slots are skipped.
//   tokens_per_expert[E]   (token, slot) pairs routed to each expert
//   tokens_per_rank[R]     tokens with at least one slot on the rank (a token is sent once per rank)
//   is_token_in_rank[T, R] 1 if the token has a slot on the rank, else 0
inline void dispatch_layout(view<const expert_id, 2> topk_idx, index_t E, view<index_t, 1> tokens_per_expert,
                            view<index_t, 1> tokens_per_rank, view<std::uint8_t, 2> is_token_in_rank) {
  contract c{"moe::dispatch_layout"};
  const index_t T = topk_idx.extent(0), R = tokens_per_rank.extent(0);
  c.require(E >= 1, "E", ">= 1", E)
      .require(R >= 1 && E % R == 0, "tokens_per_rank", "extent(0) = ranks R >= 1 dividing E", R)
      .extent("tokens_per_expert", tokens_per_expert, 0, E, "E")
      .extent("is_token_in_rank", is_token_in_rank, 0, T, "topk_idx.extent(0) (tokens)")
      .extent("is_token_in_rank", is_token_in_rank, 1, R, "ranks")
      .disjoint("tokens_per_expert", tokens_per_expert, "topk_idx", topk_idx)
      .disjoint("tokens_per_rank", tokens_per_rank, "topk_idx", topk_idx)
      .disjoint("is_token_in_rank", is_token_in_rank, "topk_idx", topk_idx)
      .disjoint("tokens_per_rank", tokens_per_rank, "tokens_per_expert", tokens_per_expert)
      .disjoint("is_token_in_rank", is_token_in_rank, "tokens_per_expert", tokens_per_expert)
      .disjoint("is_token_in_rank", is_token_in_rank, "tokens_per_rank", tokens_per_rank);
  detail::check_topk_idx(c, topk_idx, E);
  const index_t per_rank = E / R;
  for (index_t e = 0; e < E; ++e) tokens_per_expert(e) = 0;
  for (index_t r = 0; r < R; ++r) tokens_per_rank(r) = 0;
  for (index_t t = 0; t < T; ++t) {
    for (index_t r = 0; r < R; ++r) is_token_in_rank(t, r) = 0;
    for (index_t k = 0; k < topk_idx.extent(1); ++k) {
      const expert_id e = topk_idx(t, k);
      if (e < 0) continue;
      ++tokens_per_expert(e);
      is_token_in_rank(t, e / per_rank) = 1;
    }
    for (index_t r = 0; r < R; ++r) tokens_per_rank(r) += is_token_in_rank(t, r);
  }
}

DSK_ISA_END

// Options of one dispatch (runtime values: they shape the buffers, not the code).
struct dispatch_options {
  // Each expert's segment is padded with zero rows to a multiple of `block` (the M tile of a grouped GEMM).
  index_t block = 1;
  // capacity_factor > 0: each expert keeps at most capacity = ceil(capacity_factor * T * K / E) pairs
  // (GShard); 0: dropless (MegaBlocks). `capacity` >= 0 overrides the factor with an explicit per-expert
  // limit.
  double capacity_factor = 0.0;
  index_t capacity = -1;
};

DSK_ISA_BEGIN

// Everything combine_tokens (and the backward passes) need to undo a dispatch. Inside the ISA namespace
// because its (non-trivial) copy and destructor are code: a handle is made and used by one TU's kernels. Rows
// of the dispatched buffer are grouped by expert: expert e owns rows [offset[e], offset[e + 1]); its first
// count[e] rows hold tokens in (token, slot) order, the rest are padding.
struct dispatch_handle {
  index_t tokens = 0, slots = 0, experts = 0, block = 1;
  index_t capacity = -1;                // per-expert limit applied, or -1 (dropless)
  index_t dropped = 0;                  // (token, slot) pairs dropped by the capacity limit
  std::vector<index_t> offset;          // [E + 1]
  std::vector<index_t> count;           // [E] kept pairs
  std::vector<index_t> routed;          // [E] pairs routed before the capacity limit
  std::vector<std::int32_t> row_token;  // [rows] source token, -1 on padding
  std::vector<std::int32_t> row_slot;   // [rows] source slot, -1 on padding
  std::vector<index_t> pair_row;        // [T * K] row of pair (t, k), -1 for no expert or dropped
  index_t rows() const { return offset.empty() ? 0 : offset.back(); }
};

DSK_ISA_END
namespace detail {
DSK_ISA_BEGIN
// The kept pairs per expert (count) and the padded segments (offset) from the routed pairs per expert, under
// a capacity (-1: none) and a padding block; returns the dropped pairs. Shared by plan_dispatch and
// plan_dispatch<cuda>.
inline index_t plan_segments(const contract& c, const std::vector<index_t>& routed, index_t capacity,
                             index_t block, std::vector<index_t>& count, std::vector<index_t>& offset) {
  const auto E = static_cast<index_t>(routed.size());
  index_t dropped = 0;
  count.resize(static_cast<std::size_t>(E));
  offset.assign(static_cast<std::size_t>(E + 1), 0);
  for (index_t e = 0; e < E; ++e) {
    count[e] = capacity >= 0 ? std::min(routed[e], capacity) : routed[e];
    dropped += routed[e] - count[e];
    offset[e + 1] = offset[e] + (count[e] + block - 1) / block * block;
    // count <= T * K < 2^62 and block <= 2^16: no overflow; the bound keeps the row tables allocatable.
    if (offset[e + 1] > max_dispatch_count)
      c.require(false, "opt.block",
                dsk::detail::concat("a padding that keeps the dispatched rows within ", max_dispatch_count),
                dsk::detail::concat(block, " (", offset[e + 1], " rows by expert ", e, ")"));
  }
  return dropped;
}
DSK_ISA_END
}  // namespace detail
DSK_ISA_BEGIN

// Plans a dispatch: a stable counting sort of the (token, slot) pairs of topk_idx[T, K] by expert, so the
// same routing gives the same rows whatever the thread count. Under a capacity limit the earliest pairs (in
// token, then slot order) are kept and the others dropped: their combine contribution is zero (the token
// keeps its other experts and the residual). Throws on expert ids outside [-1, E), on E, tokens or slots
// beyond 2^31 - 1, on opt.block outside [1, 2^16] and on more than 2^31 - 1 dispatched rows. A
// capacity_factor whose capacity exceeds T * K (even 1e300) keeps every pair.
inline dispatch_handle plan_dispatch(view<const expert_id, 2> topk_idx, index_t E,
                                     const dispatch_options& opt = {}) {
  contract c{"moe::plan_dispatch"};
  const index_t T = topk_idx.extent(0), K = topk_idx.extent(1);
  c.in_range("E", E, index_t{1}, detail::max_dispatch_count)
      .in_range("topk_idx.extent(0) (tokens)", T, index_t{0}, detail::max_dispatch_count)
      .in_range("topk_idx.extent(1) (slots)", K, index_t{0}, detail::max_dispatch_count);
  detail::check_dispatch_options(c, opt.block, opt.capacity_factor, opt.capacity);
  detail::check_topk_idx(c, topk_idx, E);
  dispatch_handle h;
  h.tokens = T;
  h.slots = K;
  h.experts = E;
  h.block = opt.block;
  h.capacity = detail::capacity_of(opt.capacity, opt.capacity_factor, T, K, E);
  h.routed.assign(static_cast<std::size_t>(E), 0);
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k)
      if (const expert_id e = topk_idx(t, k); e >= 0) ++h.routed[e];
  h.dropped = detail::plan_segments(c, h.routed, h.capacity, h.block, h.count, h.offset);
  h.row_token.assign(static_cast<std::size_t>(h.rows()), -1);
  h.row_slot.assign(static_cast<std::size_t>(h.rows()), -1);
  h.pair_row.assign(static_cast<std::size_t>(T * K), -1);
  std::vector<index_t> next(static_cast<std::size_t>(E), 0);
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k) {
      const expert_id e = topk_idx(t, k);
      if (e < 0) continue;
      const index_t pos = next[e]++;
      if (pos >= h.count[e]) continue;  // over capacity: dropped
      const index_t r = h.offset[e] + pos;
      h.row_token[r] = static_cast<std::int32_t>(t);
      h.row_slot[r] = static_cast<std::int32_t>(k);
      h.pair_row[t * K + k] = r;
    }
  return h;
}

DSK_ISA_END

namespace detail {
DSK_ISA_BEGIN
// A handle is plain data that a caller may modify between dispatch and combine: before its tables index
// buffers, check that it is one plan_dispatch could have made. O(experts + rows + tokens * slots), metadata
// only: offsets start at 0 and never decrease, each segment holds its count of rows (rows of the first
// count[e] name a (token, slot) pair whose pair_row points back, the rest are padding), pair_row entries
// lie in [-1, rows) and as many are >= 0 as the counts sum to.
inline void check_handle(const contract& c, const dispatch_handle& h) {
  const auto bad = [&](const auto&... what) {
    c.require(false, "handle", "a consistent handle as moe::plan_dispatch makes it",
              dsk::detail::concat(what...));
  };
  const index_t E = h.experts, T = h.tokens, K = h.slots;
  if (E < 1 || E > max_dispatch_count) bad("experts = ", E);
  if (T < 0 || T > max_dispatch_count) bad("tokens = ", T);
  if (K < 0 || K > max_dispatch_count) bad("slots = ", K);
  if (static_cast<index_t>(h.offset.size()) != E + 1) bad(h.offset.size(), " offsets for ", E, " experts");
  if (static_cast<index_t>(h.count.size()) != E) bad(h.count.size(), " counts for ", E, " experts");
  if (static_cast<index_t>(h.pair_row.size()) != T * K)
    bad(h.pair_row.size(), " pair_row entries for ", T, " tokens x ", K, " slots");
  if (h.offset[0] != 0) bad("offset[0] = ", h.offset[0]);
  index_t kept = 0;
  for (index_t e = 0; e < E; ++e) {
    if (h.offset[e + 1] < h.offset[e] || h.offset[e + 1] > max_dispatch_count)
      bad("offset[", e + 1, "] = ", h.offset[e + 1], " after offset[", e, "] = ", h.offset[e]);
    if (h.count[e] < 0 || h.count[e] > h.offset[e + 1] - h.offset[e])
      bad("count[", e, "] = ", h.count[e], " for a segment of ", h.offset[e + 1] - h.offset[e], " rows");
    kept += h.count[e];
  }
  const index_t rows = h.rows();
  if (static_cast<index_t>(h.row_token.size()) != rows || static_cast<index_t>(h.row_slot.size()) != rows)
    bad(h.row_token.size(), " row_token and ", h.row_slot.size(), " row_slot entries for ", rows, " rows");
  index_t paired = 0;
  for (index_t p = 0; p < T * K; ++p) {
    const index_t r = h.pair_row[p];
    if (r < -1 || r >= rows) bad("pair_row[", p, "] = ", r, " outside [-1, ", rows, ")");
    paired += r >= 0;
  }
  for (index_t e = 0; e < E; ++e)
    for (index_t r = h.offset[e]; r < h.offset[e + 1]; ++r) {
      const index_t t = h.row_token[r], k = h.row_slot[r];
      if (r < h.offset[e] + h.count[e]) {
        if (t < 0 || t >= T || k < 0 || k >= K || h.pair_row[t * K + k] != r)
          bad("row ", r, " (expert ", e, ") names pair (", t, ", ", k, "), which does not point back to it");
      } else if (t != -1 || k != -1) {
        bad("padding row ", r, " (expert ", e, ") names pair (", t, ", ", k, ")");
      }
    }
  if (paired != kept) bad(paired, " routed pairs for counts summing to ", kept);
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// Gathers the rows of every expert: xs[rows, H]: row r = x[row_token[r]], padding rows zero. x: [T, H]; xs
// must not overlap x (checked). The handle is checked for consistency (check_handle) on every call.
template <host_exec Exec = host>
void dispatch_tokens(view<const float, 2> x, const dispatch_handle& h, view<float, 2> xs) {
  contract c{"moe::dispatch_tokens"};
  detail::check_handle(c, h);
  c.extent("x", x, 0, h.tokens, "handle.tokens")
      .extent("xs", xs, 0, h.rows(), "handle.rows()")
      .extent("xs", xs, 1, x.extent(1), "x.extent(1) (hidden)")
      .unit_inner_stride("x", x)
      .unit_inner_stride("xs", xs)
      .disjoint("xs", xs, "x", x);
  const index_t H = x.extent(1);
  parallel_for_chunks(0, h.rows(), detail::grain_for(H), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      float* dst = row_ptr(xs, r);
      if (h.row_token[r] < 0)
        std::fill_n(dst, H, 0.0f);
      else
        std::copy_n(row_ptr(x, h.row_token[r]), H, dst);
    }
  });
}

DSK_ISA_END

namespace detail {
DSK_ISA_BEGIN
// y += w * x over n floats.
template <class S>
DSK_ALWAYS_INLINE void axpy(float w, const float* x, float* y, index_t n) {
  const auto wv = S::broadcast(w);
  index_t j = 0;
  for (; j + S::width <= n; j += S::width) S::store(y + j, S::fma(wv, S::load(x + j), S::load(y + j)));
  if (j < n) {
    const int t = static_cast<int>(n - j);
    S::store_partial(y + j, S::fma(wv, S::load_partial(x + j, t), S::load_partial(y + j, t)), t);
  }
}
template <class S>
DSK_ALWAYS_INLINE float dot(const float* a, const float* b, index_t n) {
  auto acc = S::zero();
  index_t j = 0;
  for (; j + S::width <= n; j += S::width) acc = S::fma(S::load(a + j), S::load(b + j), acc);
  if (j < n) {
    const int t = static_cast<int>(n - j);
    acc = S::fma(S::load_partial(a + j, t), S::load_partial(b + j, t), acc);
  }
  return S::reduce_add(acc);
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// y[t] = shared[t] + sum_k topk_w[t, k] * ys[pair_row(t, k)], in slot order, fp32: each token is summed by
// one thread in a fixed order, so the result does not depend on the thread count. Dropped and -1 slots add
// nothing. ys: [rows, H]; topk_w: [T, K]; shared: [T, H] or empty (no shared experts); y: [T, H]. y must not
// overlap ys or topk_w; it may be exactly shared (in place), not partly (checked).
template <host_exec Exec = host>
void combine_tokens(view<const float, 2> ys, const dispatch_handle& h, view<const float, 2> topk_w,
                    view<float, 2> y, view<const float, 2> shared = {}) {
  contract c{"moe::combine_tokens"};
  detail::check_handle(c, h);
  const index_t H = y.extent(1);
  c.extent("ys", ys, 0, h.rows(), "handle.rows()")
      .extent("ys", ys, 1, H, "y.extent(1) (hidden)")
      .extent("topk_w", topk_w, 0, h.tokens, "handle.tokens")
      .extent("topk_w", topk_w, 1, h.slots, "handle.slots (K)")
      .extent("y", y, 0, h.tokens, "handle.tokens")
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("y", y)
      .disjoint("y", y, "ys", ys)
      .disjoint("y", y, "topk_w", topk_w);
  const bool has_shared = shared.extent(0) != 0 || shared.extent(1) != 0;
  if (has_shared) {
    c.extent("shared", shared, 0, h.tokens, "handle.tokens (or empty)")
        .extent("shared", shared, 1, H, "y.extent(1)")
        .unit_inner_stride("shared", shared)
        .disjoint_or_same("y", y, "shared", shared);
  }
  using S = exec_packet_t<Exec>;
  parallel_for_chunks(0, h.tokens, detail::grain_for(H * (h.slots + 1)), [&](index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; ++t) {
      float* dst = row_ptr(y, t);
      if (has_shared) {
        if (row_ptr(shared, t) != dst) std::copy_n(row_ptr(shared, t), H, dst);  // y == shared: in place
      } else {
        std::fill_n(dst, H, 0.0f);
      }
      for (index_t k = 0; k < h.slots; ++k)
        if (const index_t r = h.pair_row[t * h.slots + k]; r >= 0)
          detail::axpy<S>(topk_w(t, k), row_ptr(ys, r), dst, H);
    }
  });
}

// Backward of dispatch_tokens (= an unweighted combine): dx[t] = sum_k dxs[pair_row(t, k)]. dxs: [rows, H];
// dx: [T, H].
template <host_exec Exec = host>
void dispatch_tokens_backward(view<const float, 2> dxs, const dispatch_handle& h, view<float, 2> dx) {
  contract c{"moe::dispatch_tokens_backward"};
  detail::check_handle(c, h);
  const index_t H = dx.extent(1);
  c.extent("dxs", dxs, 0, h.rows(), "handle.rows()")
      .extent("dxs", dxs, 1, H, "dx.extent(1) (hidden)")
      .extent("dx", dx, 0, h.tokens, "handle.tokens")
      .unit_inner_stride("dxs", dxs)
      .unit_inner_stride("dx", dx)
      .disjoint("dx", dx, "dxs", dxs);
  using S = exec_packet_t<Exec>;
  parallel_for_chunks(0, h.tokens, detail::grain_for(H * (h.slots + 1)), [&](index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; ++t) {
      float* dst = row_ptr(dx, t);
      std::fill_n(dst, H, 0.0f);
      for (index_t k = 0; k < h.slots; ++k)
        if (const index_t r = h.pair_row[t * h.slots + k]; r >= 0)
          detail::axpy<S>(1.0f, row_ptr(dxs, r), dst, H);
    }
  });
}

// Backward of combine_tokens (= a weighted dispatch): dys[r] = topk_w[t, k] * dy[t] for the pair (t, k) of
// row r (zero on padding), and dtopk_w[t, k] = dy[t] . ys[pair_row(t, k)] (zero for dropped and -1 slots).
// The gradient of the shared-expert input of combine_tokens is dy itself.
template <host_exec Exec = host>
void combine_tokens_backward(view<const float, 2> dy, view<const float, 2> ys, const dispatch_handle& h,
                             view<const float, 2> topk_w, view<float, 2> dys, view<float, 2> dtopk_w) {
  contract c{"moe::combine_tokens_backward"};
  detail::check_handle(c, h);
  const index_t H = dy.extent(1);
  c.extent("dy", dy, 0, h.tokens, "handle.tokens")
      .extent("ys", ys, 0, h.rows(), "handle.rows()")
      .extent("ys", ys, 1, H, "dy.extent(1) (hidden)")
      .extent("topk_w", topk_w, 0, h.tokens, "handle.tokens")
      .extent("topk_w", topk_w, 1, h.slots, "handle.slots (K)")
      .extent("dys", dys, 0, h.rows(), "handle.rows()")
      .extent("dys", dys, 1, H, "dy.extent(1) (hidden)")
      .extent("dtopk_w", dtopk_w, 0, h.tokens, "handle.tokens")
      .extent("dtopk_w", dtopk_w, 1, h.slots, "handle.slots (K)")
      .unit_inner_stride("dy", dy)
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("dys", dys);
  // dys is written before the second pass reads dy and ys and writes dtopk_w: no overlaps at all.
  c.disjoint("dys", dys, "dy", dy)
      .disjoint("dys", dys, "ys", ys)
      .disjoint("dys", dys, "topk_w", topk_w)
      .disjoint("dtopk_w", dtopk_w, "dy", dy)
      .disjoint("dtopk_w", dtopk_w, "ys", ys)
      .disjoint("dtopk_w", dtopk_w, "topk_w", topk_w)
      .disjoint("dtopk_w", dtopk_w, "dys", dys);
  using S = exec_packet_t<Exec>;
  parallel_for_chunks(0, h.rows(), detail::grain_for(H), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      float* dst = row_ptr(dys, r);
      std::fill_n(dst, H, 0.0f);
      if (h.row_token[r] >= 0)
        detail::axpy<S>(topk_w(h.row_token[r], h.row_slot[r]), row_ptr(dy, h.row_token[r]), dst, H);
    }
  });
  parallel_for_chunks(0, h.tokens, detail::grain_for(H * (h.slots + 1)), [&](index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; ++t)
      for (index_t k = 0; k < h.slots; ++k) {
        const index_t r = h.pair_row[t * h.slots + k];
        dtopk_w(t, k) = r >= 0 ? detail::dot<S>(row_ptr(dy, t), row_ptr(ys, r), H) : 0.0f;
      }
  });
}

DSK_ISA_END

}  // namespace dsk::moe
