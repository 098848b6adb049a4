// CUDA dispatch and combine with the host's layout (dsk/moe/dispatch.hpp): plan_dispatch<cuda> (a stable
// counting sort of the (token, slot) pairs by expert: counts per expert on the device, the padded offsets on
// the host from those E counts, the placement on the device in (token, slot) order with warp ballots),
// dispatch_tokens<cuda>, combine_tokens<cuda> and both backward passes. Every result is bit-identical to the
// host's with an 8-lane packet layer (simd::scalar, simd::avx2): the sums use fmaf in slot order like the
// host's axpy, and the dot products of combine's weight gradient run the packet layers' 8 lane accumulators
// and their reduction tree. Backend dsk::cuda. Checked in tests/simt/moe.cpp (emulation; also built natively
// into test_cuda) against the host functions and moe's plan invariants.
#pragma once

#include <concepts>
#include <cstdint>
#include <vector>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/moe/dispatch.hpp"

namespace dsk::moe {
DSK_CUDA_MODE_BEGIN

namespace kernels {
template <class T>
__global__ void moe_fill(T* p, index_t n, T v) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v;
}

// routed[e] = the pairs of expert e (one block per expert, a multiple of 32 threads); ids outside [-1, E)
// are reported by block 0 (the first bad pair index).
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_plan_count(const expert_id* idx, index_t ld, index_t T, index_t K, index_t E,
                               index_t* routed, long long* bad) {
  const index_t e = blockIdx.x, pairs = T * K;
  index_t n = 0;
  for (index_t base = 0; base < pairs; base += blockDim.x) {
    const index_t p = base + threadIdx.x;
    const expert_id v = p < pairs ? idx[(p / K) * ld + p % K] : -1;
    if (e == 0 && p < pairs && (v < -1 || v >= E)) device::report_index(bad, p);
    n += __syncthreads_count(v == e);
  }
  if (threadIdx.x == 0) routed[e] = n;
}

// Places expert e's pairs in (token, slot) order: the first count[e] get rows offset[e], offset[e] + 1, ...;
// the rest are dropped (pair_row stays -1). One block per expert, a multiple of 32 threads (at most 1024).
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_plan_place(const expert_id* idx, index_t ld, index_t T, index_t K, const index_t* offset,
                               const index_t* count, std::int32_t* row_token, std::int32_t* row_slot,
                               index_t* pair_row) {
  DSK_SHARED(unsigned[32], warp_total);
  const index_t e = blockIdx.x, pairs = T * K;
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  index_t placed = 0;  // pairs of e before this chunk (the same in every thread)
  for (index_t base = 0; base < pairs; base += blockDim.x) {
    const index_t p = base + threadIdx.x;
    const bool mine = p < pairs && idx[(p / K) * ld + p % K] == e;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_total[warp] = static_cast<unsigned>(__popc(ballot));
    __syncthreads();
    index_t before = 0, chunk = 0;
    for (unsigned w = 0; w < (blockDim.x >> 5); ++w) {
      if (w < warp) before += warp_total[w];
      chunk += warp_total[w];
    }
    if (mine) {
      const index_t pos = placed + before + __popc(ballot & ((1u << lane) - 1u));
      if (pos < count[e]) {
        const index_t r = offset[e] + pos;
        row_token[r] = static_cast<std::int32_t>(p / K);
        row_slot[r] = static_cast<std::int32_t>(p % K);
        pair_row[p] = r;
      }
    }
    placed += chunk;
    __syncthreads();  // warp_total is rewritten by the next chunk
  }
}

// xs[r] = x[row_token[r]], zero where row_token[r] < 0 (padding); one block per row. Also the gather of
// ep_device_communicator (row lists of int32 or index_t, without -1).
template <class Idx = std::int32_t>
__global__ void moe_dispatch_rows(const float* x, index_t ldx, const Idx* row_token, index_t H, float* xs,
                                  index_t ldxs) {
  const index_t r = blockIdx.x;
  const index_t t = static_cast<index_t>(row_token[r]);
  float* d = xs + r * ldxs;
  for (index_t j = threadIdx.x; j < H; j += blockDim.x) d[j] = t >= 0 ? x[t * ldx + j] : 0.0f;
}

// y[t] = base[t] (0 without base) + sum over the slots k with pair[t * K + k] >= 0 of w[t, k] (1 without w)
// * rows[pair[t * K + k]], in slot order with fmaf (the host's axpy). One block per token; base may be y.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_weighted_rows(const float* rows, index_t ldr, const index_t* pair, index_t K,
                                  const float* w, index_t ldw, const float* base, index_t ldb, float* y,
                                  index_t ldy, index_t H) {
  const index_t t = blockIdx.x;
  for (index_t j = threadIdx.x; j < H; j += blockDim.x) {
    float acc = base ? base[t * ldb + j] : 0.0f;
    for (index_t k = 0; k < K; ++k)
      if (const index_t p = pair[t * K + k]; p >= 0)
        acc = fmaf(w ? w[t * ldw + k] : 1.0f, rows[p * ldr + j], acc);
    y[t * ldy + j] = acc;
  }
}

// dys[r] = w[token, slot] * dy[token] for the row r of (token, slot) (fmaf onto 0, as the host's axpy onto a
// zeroed row); 0 on padding. One block per row.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_scale_token_rows(const float* dy, index_t lddy, const std::int32_t* row_token,
                                     const std::int32_t* row_slot, const float* w, index_t ldw, float* dys,
                                     index_t ldd, index_t H) {
  const index_t r = blockIdx.x;
  const std::int32_t t = row_token[r];
  const float wt = t >= 0 ? w[t * ldw + row_slot[r]] : 0.0f;
  for (index_t j = threadIdx.x; j < H; j += blockDim.x)
    dys[r * ldd + j] = t >= 0 ? fmaf(wt, dy[t * lddy + j], 0.0f) : 0.0f;
}
}  // namespace kernels

// a . b over n floats in the packet layers' order: lane l of 8 accumulates elements l, l + 8, ... with fmaf,
// then (t0 + t2) + (t1 + t3) with t_i = v_i + v_{i+4} (simd::scalar::reduce_add). Called by a whole warp
// (lanes 8-31 only carry zeros); lane 0 gets the result.
DSK_DEVICE float dot8_warp(const float* a, const float* b, index_t n) {
  const unsigned lane = threadIdx.x & 31u;
  float v = 0.0f;
  if (lane < 8)
    for (index_t j = lane; j < n; j += 8) v = fmaf(a[j], b[j], v);
  const float t = v + __shfl_sync(0xffffffffu, v, (lane + 4) & 31u);  // lanes 0-3: t_i
  const float u = t + __shfl_sync(0xffffffffu, t, (lane + 2) & 31u);  // lane 0: t0 + t2, lane 1: t1 + t3
  return u + __shfl_sync(0xffffffffu, u, (lane + 1) & 31u);           // lane 0: (t0 + t2) + (t1 + t3)
}

namespace kernels {
// out[t, k] = dy[t] . ys[pair_row[t * K + k]] (0 where -1), one warp per pair, 8 warps per block.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_pair_dots(const float* dy, index_t lddy, const float* ys, index_t ldys,
                              const index_t* pair_row, index_t pairs, index_t K, index_t H, float* out,
                              index_t ldo) {
  const index_t p = static_cast<index_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (p >= pairs) return;  // a whole warp leaves together
  const index_t r = pair_row[p];
  const index_t t = p / K;
  const float d = r >= 0 ? dot8_warp(dy + t * lddy, ys + r * ldys, H) : 0.0f;
  if ((threadIdx.x & 31u) == 0) out[t * ldo + p % K] = d;
}
}  // namespace kernels

class device_dispatch_handle;
template <std::same_as<dsk::cuda> B>
device_dispatch_handle plan_dispatch(view<const expert_id, 2> topk_idx, index_t E,
                                     const dispatch_options& opt = {},
                                     const device::stream& s = device::stream::default_stream());

// The plan of a device dispatch: plan_dispatch<cuda> makes it, the other entry points read it. The counts
// and offsets are on the host too (they size the buffers); the row tables live in device memory and are
// only written by plan_dispatch<cuda>, so the kernels may trust them (no per-call consistency pass as the
// host's check_handle).
class device_dispatch_handle {
 public:
  index_t tokens() const { return tokens_; }
  index_t slots() const { return slots_; }
  index_t experts() const { return experts_; }
  index_t block() const { return block_; }
  index_t capacity() const { return capacity_; }
  index_t dropped() const { return dropped_; }
  index_t rows() const { return offset_.empty() ? 0 : offset_.back(); }
  const std::vector<index_t>& offset() const { return offset_; }       // [E + 1]
  const std::vector<index_t>& count() const { return count_; }         // [E] kept pairs
  const std::vector<index_t>& routed() const { return routed_; }       // [E] routed pairs
  const std::int32_t* row_token() const { return row_token_.data(); }  // [rows] device
  const std::int32_t* row_slot() const { return row_slot_.data(); }    // [rows] device
  const index_t* pair_row() const { return pair_row_.data(); }         // [T * K] device

  // The host's dispatch_handle with the same tables (downloaded; synchronises s).
  dispatch_handle to_host(const device::stream& s = device::stream::default_stream()) const {
    dispatch_handle h;
    h.tokens = tokens_;
    h.slots = slots_;
    h.experts = experts_;
    h.block = block_;
    h.capacity = capacity_;
    h.dropped = dropped_;
    h.offset = offset_;
    h.count = count_;
    h.routed = routed_;
    h.row_token.resize(static_cast<std::size_t>(rows()));
    h.row_slot.resize(static_cast<std::size_t>(rows()));
    h.pair_row.resize(static_cast<std::size_t>(tokens_ * slots_));
    device::copy(h.row_token.data(), row_token_.data(), rows(), device::copy_kind::device_to_host, s);
    device::copy(h.row_slot.data(), row_slot_.data(), rows(), device::copy_kind::device_to_host, s);
    device::copy(h.pair_row.data(), pair_row_.data(), tokens_ * slots_, device::copy_kind::device_to_host, s);
    s.synchronize();
    return h;
  }

 private:
  template <std::same_as<dsk::cuda> B>
  friend device_dispatch_handle plan_dispatch(view<const expert_id, 2>, index_t, const dispatch_options&,
                                              const device::stream&);
  index_t tokens_ = 0, slots_ = 0, experts_ = 0, block_ = 1, capacity_ = -1, dropped_ = 0;
  std::vector<index_t> offset_, count_, routed_;
  device::buffer<std::int32_t> row_token_, row_slot_;
  device::buffer<index_t> pair_row_;
};

namespace cuda_detail {
inline unsigned rows_block(index_t H) { return H >= 256 ? 256u : H > 64 ? 128u : 32u; }
template <class T>
void device_fill(T* p, index_t n, T v, const device::stream& s) {
  if (n > 0)
    device::launch(kernels::moe_fill<T>, {dim3(static_cast<unsigned>((n + 255) / 256)), dim3(256)}, s)(p, n,
                                                                                                       v);
}
}  // namespace cuda_detail

// topk_idx [T, K] in device memory (expert ids in [-1, E), checked on the device) -> the plan, with the host
// plan_dispatch's layout, capacity and padding. Synchronises s (the offsets are formed on the host from the
// E counts).
template <std::same_as<dsk::cuda> B>
device_dispatch_handle plan_dispatch(view<const expert_id, 2> topk_idx, index_t E,
                                     const dispatch_options& opt, const device::stream& s) {
  contract c{"moe::plan_dispatch<cuda>"};
  const index_t T = topk_idx.extent(0), K = topk_idx.extent(1);
  c.in_range("E", E, index_t{1}, index_t{device::max_grid_x()})
      .in_range("topk_idx.extent(0) (tokens)", T, index_t{0}, detail::max_dispatch_count)
      .in_range("topk_idx.extent(1) (slots)", K, index_t{0}, detail::max_dispatch_count)
      .in_range("tokens x slots", T * K, index_t{0}, detail::max_dispatch_count)
      .unit_inner_stride("topk_idx", topk_idx);
  detail::check_dispatch_options(c, opt.block, opt.capacity_factor, opt.capacity);
  device_dispatch_handle h;
  h.tokens_ = T;
  h.slots_ = K;
  h.experts_ = E;
  h.block_ = opt.block;
  h.capacity_ = detail::capacity_of(opt.capacity, opt.capacity_factor, T, K, E);
  device::buffer<index_t> routed(E);
  {
    const device::index_report bad(s);
    device::launch(kernels::moe_plan_count<>, {dim3(static_cast<unsigned>(E)), dim3(256)}, s)(
        topk_idx.data(), topk_idx.stride(0), T, K, E, routed.data(), bad.slot());
    if (const auto p = bad.first(s))
      fail("moe::plan_dispatch<cuda>: argument 'topk_idx': expected expert ids in [-1, ", E,
           "), got a bad id at (", *p / K, ", ", *p % K, ")");
  }
  h.routed_.resize(static_cast<std::size_t>(E));
  device::copy(h.routed_.data(), routed.data(), E, device::copy_kind::device_to_host, s);
  s.synchronize();
  h.dropped_ = detail::plan_segments(c, h.routed_, h.capacity_, h.block_, h.count_, h.offset_);
  const index_t rows = h.rows();
  h.row_token_ = device::buffer<std::int32_t>(rows);
  h.row_slot_ = device::buffer<std::int32_t>(rows);
  h.pair_row_ = device::buffer<index_t>(T * K);
  cuda_detail::device_fill(h.row_token_.data(), rows, std::int32_t{-1}, s);
  cuda_detail::device_fill(h.row_slot_.data(), rows, std::int32_t{-1}, s);
  cuda_detail::device_fill(h.pair_row_.data(), T * K, index_t{-1}, s);
  device::buffer<index_t> offset(E + 1), count(E);
  device::copy(offset.data(), h.offset_.data(), E + 1, device::copy_kind::host_to_device, s);
  device::copy(count.data(), h.count_.data(), E, device::copy_kind::host_to_device, s);
  device::launch(kernels::moe_plan_place<>, {dim3(static_cast<unsigned>(E)), dim3(256)}, s)(
      topk_idx.data(), topk_idx.stride(0), T, K, offset.data(), count.data(), h.row_token_.data(),
      h.row_slot_.data(), h.pair_row_.data());
  s.synchronize();  // offset and count (locals) are read by the kernel
  return h;
}

// xs [rows, H] = x [T, H] gathered per expert, padding rows zero (dispatch_tokens).
template <std::same_as<dsk::cuda> B>
void dispatch_tokens(view<const float, 2> x, const device_dispatch_handle& h, view<float, 2> xs,
                     const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::dispatch_tokens<cuda>"};
  c.extent("x", x, 0, h.tokens(), "handle.tokens()")
      .extent("xs", xs, 0, h.rows(), "handle.rows()")
      .extent("xs", xs, 1, x.extent(1), "x.extent(1) (hidden)")
      .unit_inner_stride("x", x)
      .unit_inner_stride("xs", xs)
      .disjoint("xs", xs, "x", x);
  if (h.rows() > 0)
    device::launch(kernels::moe_dispatch_rows<std::int32_t>,
                   {dim3(static_cast<unsigned>(h.rows())), dim3(cuda_detail::rows_block(x.extent(1)))},
                   s)(x.data(), x.stride(0), h.row_token(), x.extent(1), xs.data(), xs.stride(0));
}

// y [T, H] = shared (or 0) + sum_k topk_w[t, k] * ys[pair_row(t, k)] in slot order (combine_tokens); shared
// may be y itself.
template <std::same_as<dsk::cuda> B>
void combine_tokens(view<const float, 2> ys, const device_dispatch_handle& h, view<const float, 2> topk_w,
                    view<float, 2> y, view<const float, 2> shared = {},
                    const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::combine_tokens<cuda>"};
  const index_t H = y.extent(1);
  const bool has_shared = shared.extent(0) != 0 || shared.extent(1) != 0;
  c.extent("ys", ys, 0, h.rows(), "handle.rows()")
      .extent("ys", ys, 1, H, "y.extent(1) (hidden)")
      .extent("topk_w", topk_w, 0, h.tokens(), "handle.tokens()")
      .extent("topk_w", topk_w, 1, h.slots(), "handle.slots() (K)")
      .extent("y", y, 0, h.tokens(), "handle.tokens()")
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("y", y)
      .unit_inner_stride("topk_w", topk_w)
      .disjoint("y", y, "ys", ys)
      .disjoint("y", y, "topk_w", topk_w);
  if (has_shared)
    c.extent("shared", shared, 0, h.tokens(), "handle.tokens() (or empty)")
        .extent("shared", shared, 1, H, "y.extent(1)")
        .unit_inner_stride("shared", shared)
        .disjoint_or_same("y", y, "shared", shared);
  if (h.tokens() > 0)
    device::launch(kernels::moe_weighted_rows<>,
                   {dim3(static_cast<unsigned>(h.tokens())), dim3(cuda_detail::rows_block(H))}, s)(
        ys.data(), ys.stride(0), h.pair_row(), h.slots(), topk_w.data(), topk_w.stride(0),
        has_shared ? shared.data() : nullptr, has_shared ? shared.stride(0) : 0, y.data(), y.stride(0), H);
}

// dx [T, H] = sum_k dxs[pair_row(t, k)] in slot order (dispatch_tokens_backward).
template <std::same_as<dsk::cuda> B>
void dispatch_tokens_backward(view<const float, 2> dxs, const device_dispatch_handle& h, view<float, 2> dx,
                              const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::dispatch_tokens_backward<cuda>"};
  const index_t H = dx.extent(1);
  c.extent("dxs", dxs, 0, h.rows(), "handle.rows()")
      .extent("dxs", dxs, 1, H, "dx.extent(1) (hidden)")
      .extent("dx", dx, 0, h.tokens(), "handle.tokens()")
      .unit_inner_stride("dxs", dxs)
      .unit_inner_stride("dx", dx)
      .disjoint("dx", dx, "dxs", dxs);
  if (h.tokens() > 0)
    device::launch(kernels::moe_weighted_rows<>,
                   {dim3(static_cast<unsigned>(h.tokens())), dim3(cuda_detail::rows_block(H))},
                   s)(dxs.data(), dxs.stride(0), h.pair_row(), h.slots(), nullptr, 0, nullptr, 0, dx.data(),
                      dx.stride(0), H);
}

// dys [rows, H] = topk_w[t, k] * dy[t] for row (t, k), 0 on padding; dtopk_w [T, K] = dy[t] . ys[pair_row(t,
// k)], 0 for empty and dropped slots (combine_tokens_backward).
template <std::same_as<dsk::cuda> B>
void combine_tokens_backward(view<const float, 2> dy, view<const float, 2> ys,
                             const device_dispatch_handle& h, view<const float, 2> topk_w, view<float, 2> dys,
                             view<float, 2> dtopk_w,
                             const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::combine_tokens_backward<cuda>"};
  const index_t H = dy.extent(1);
  c.extent("dy", dy, 0, h.tokens(), "handle.tokens()")
      .extent("ys", ys, 0, h.rows(), "handle.rows()")
      .extent("ys", ys, 1, H, "dy.extent(1) (hidden)")
      .extent("topk_w", topk_w, 0, h.tokens(), "handle.tokens()")
      .extent("topk_w", topk_w, 1, h.slots(), "handle.slots() (K)")
      .extent("dys", dys, 0, h.rows(), "handle.rows()")
      .extent("dys", dys, 1, H, "dy.extent(1) (hidden)")
      .extent("dtopk_w", dtopk_w, 0, h.tokens(), "handle.tokens()")
      .extent("dtopk_w", dtopk_w, 1, h.slots(), "handle.slots() (K)")
      .unit_inner_stride("dy", dy)
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("dys", dys)
      .unit_inner_stride("topk_w", topk_w)
      .unit_inner_stride("dtopk_w", dtopk_w)
      .disjoint("dys", dys, "dy", dy)
      .disjoint("dys", dys, "ys", ys)
      .disjoint("dys", dys, "topk_w", topk_w)
      .disjoint("dtopk_w", dtopk_w, "dy", dy)
      .disjoint("dtopk_w", dtopk_w, "ys", ys)
      .disjoint("dtopk_w", dtopk_w, "topk_w", topk_w)
      .disjoint("dtopk_w", dtopk_w, "dys", dys);
  if (h.rows() > 0)
    device::launch(kernels::moe_scale_token_rows<>,
                   {dim3(static_cast<unsigned>(h.rows())), dim3(cuda_detail::rows_block(H))},
                   s)(dy.data(), dy.stride(0), h.row_token(), h.row_slot(), topk_w.data(), topk_w.stride(0),
                      dys.data(), dys.stride(0), H);
  const index_t pairs = h.tokens() * h.slots();
  if (pairs > 0)
    device::launch(kernels::moe_pair_dots<>, {dim3(static_cast<unsigned>((pairs + 7) / 8)), dim3(256)}, s)(
        dy.data(), dy.stride(0), ys.data(), ys.stride(0), h.pair_row(), pairs, h.slots(), H, dtopk_w.data(),
        dtopk_w.stride(0));
}

DSK_CUDA_MODE_END
}  // namespace dsk::moe
