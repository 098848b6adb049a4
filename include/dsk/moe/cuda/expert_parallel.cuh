// Expert parallelism between GPUs: moe::ep_device_communicator runs moe::ep_communicator's dispatch, combine
// and both backward passes on token rows in device memory. The plan (who sends which token where, which pairs
// the experts keep) is the host communicator's, computed over MPI from the top-k ids and weights (a few bytes
// per token, copied to the host; DeepEP's normal mode also synchronises the CPU for its sizes); the rows move
// between device buffers over a transport: ep_nccl_transport (ncclSend / ncclRecv, one group per exchange;
// native builds with dsk::nccl) or ep_staged_transport (device -> host, MPI_Alltoallv, host -> device; any
// build, the SIMT emulation included). Gathers, weighted sums and dot products are the kernels of
// moe/cuda/dispatch.cuh (fmaf in slot order like the host's axpy, dots in the packet layers' 8-lane order),
// so every result equals the host communicator's bit for bit. Backend dsk::cuda. Checked in
// tests/moe/ep/device.cpp (emulation, mpirun 1/2/4 ranks, both against ep_communicator) and natively by
// tests/cuda (test_cuda_ep, GPU only).
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "dsk/cuda.cuh"
#include "dsk/moe/cuda/dispatch.cuh"
#include "dsk/moe/expert_parallel.hpp"

#if !DSK_SIMT_EMULATION && defined(DSK_HAS_NCCL) && DSK_HAS_NCCL
#include <nccl.h>
#define DSK_EP_NCCL 1
#else
#define DSK_EP_NCCL 0
#endif

namespace dsk::moe {
DSK_CUDA_MODE_BEGIN

namespace kernels {
// dot[i] = dy[row_token[back_row[i]]] . ys[back_row[i]] in the packet layers' order (dot8_warp); one warp
// per row, 8 per block.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void ep_row_dots(const float* dy, const std::int32_t* row_token, const index_t* back_row,
                            index_t n, const float* ys, index_t ldy, index_t H, float* dot) {
  const index_t i = static_cast<index_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (i >= n) return;  // a whole warp leaves together
  const index_t r = back_row[i];
  const float d = dot8_warp(dy + static_cast<index_t>(row_token[r]) * H, ys + r * ldy, H);
  if ((threadIdx.x & 31u) == 0) dot[i] = d;
}

// out[t, k] = values[pair[t * K + k]], 0 where the pair is -1.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void ep_pick(const float* values, const index_t* pair, index_t count, index_t K, float* out,
                        index_t ldo) {
  const index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const index_t p = pair[i];
  out[(i / K) * ldo + i % K] = p >= 0 ? values[p] : 0.0f;
}
}  // namespace kernels

// The output of a device dispatch: recv_x [N, H], recv_topk_idx [N, K], recv_topk_w [N, K] in device memory
// (ep_dispatched's meaning), the host plan (handle) and the device copies of the tables the kernels index.
// Reused between calls: device buffers are reallocated only when a size changes.
struct ep_device_dispatched {
  device::tensor<float, 2> recv_x, recv_topk_w;
  device::tensor<expert_id, 2> recv_topk_idx;
  ep_handle handle;
  device::buffer<std::int32_t> send_token, row_token, row_slot;
  device::buffer<index_t> back_row, pair_ret;
};

// Rows through the host: each exchange copies the rows to host memory, runs ep_communicator::exchange_rows
// (MPI) and copies the received rows back; blocking (it synchronises the stream). Works in every build
// (under the SIMT emulation device memory is host memory) and needs no CUDA-aware MPI.
class ep_staged_transport {
 public:
  explicit ep_staged_transport(const ep_communicator& ep) : ep_(&ep) {}
  void exchange(const float* send, const std::vector<int>& scount, const std::vector<int>& sdispl,
                float* recv, const std::vector<int>& rcount, const std::vector<int>& rdispl, index_t width,
                const device::stream& s) {
    const auto R = scount.size();
    const index_t sent = R ? index_t{sdispl[R - 1]} + scount[R - 1] : 0;
    const index_t got = R ? index_t{rdispl[R - 1]} + rcount[R - 1] : 0;
    send_.resize(static_cast<std::size_t>(std::max<index_t>(sent * width, 1)));
    recv_.resize(static_cast<std::size_t>(std::max<index_t>(got * width, 1)));
    device::copy(send_.data(), send, sent * width, device::copy_kind::device_to_host, s);
    s.synchronize();
    ep_->exchange_rows(send_.data(), scount, sdispl, recv_.data(), rcount, rdispl, width);
    device::copy(recv, recv_.data(), got * width, device::copy_kind::host_to_device, s);
    s.synchronize();  // recv_ is reused by the next exchange
  }
  static constexpr const char* name() { return "staged (MPI through host memory)"; }

 private:
  const ep_communicator* ep_;
  std::vector<float> send_, recv_;
};

#if DSK_EP_NCCL
// Rows between GPUs over NCCL: a communicator over the same ranks as `ep` (its unique id broadcast over
// ep.comm()), on the CUDA device current at construction (one GPU per rank: call cudaSetDevice first). Each
// exchange is one ncclGroupStart / ncclSend + ncclRecv per peer / ncclGroupEnd on the stream; with
// bounded_wait (the default) it then waits for the stream, polling ncclCommGetAsyncError, and aborts the
// NCCL communicator and throws when a peer fails or ep.timeout_s() passes, so that a dead rank gives an error
// instead of a hang. Without it the exchange stays stream-ordered (overlap with other work; a dead peer then
// hangs in NCCL).
class ep_nccl_transport {
 public:
  explicit ep_nccl_transport(const ep_communicator& ep, bool bounded_wait = true)
      : timeout_s_(ep.timeout_s()), bounded_(bounded_wait) {
    static constexpr std::string_view where = "moe::ep_nccl_transport";
    ncclUniqueId id{};
    if (ep.rank() == 0) check(where, ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Request req;
    detail::mpi_check(where, MPI_Ibcast(&id, sizeof id, MPI_BYTE, 0, ep.comm(), &req), "MPI_Ibcast");
    detail::ep_wait(where, &req, 1, ep.timeout_s(), "NCCL unique id");
    check(where, ncclCommInitRank(&comm_, ep.ranks(), id, ep.rank()), "ncclCommInitRank");
  }
  ep_nccl_transport(const ep_nccl_transport&) = delete;
  ep_nccl_transport& operator=(const ep_nccl_transport&) = delete;
  ~ep_nccl_transport() {
    if (comm_) ncclCommDestroy(comm_);
  }

  void exchange(const float* send, const std::vector<int>& scount, const std::vector<int>& sdispl,
                float* recv, const std::vector<int>& rcount, const std::vector<int>& rdispl, index_t width,
                const device::stream& s) {
    static constexpr std::string_view where = "moe::ep_nccl_transport::exchange";
    if (!comm_) fail(where, ": the NCCL communicator was aborted by an earlier failure");
    check(where, ncclGroupStart(), "ncclGroupStart");
    for (std::size_t r = 0; r < scount.size(); ++r) {
      const int peer = static_cast<int>(r);
      if (scount[r] > 0)
        check(where,
              ncclSend(send + index_t{sdispl[r]} * width, static_cast<std::size_t>(scount[r]) * width,
                       ncclFloat32, peer, comm_, s.get()),
              "ncclSend");
      if (rcount[r] > 0)
        check(where,
              ncclRecv(recv + index_t{rdispl[r]} * width, static_cast<std::size_t>(rcount[r]) * width,
                       ncclFloat32, peer, comm_, s.get()),
              "ncclRecv");
    }
    check(where, ncclGroupEnd(), "ncclGroupEnd");
    if (bounded_) wait(where, s);
  }
  static constexpr const char* name() { return "NCCL"; }

 private:
  void wait(std::string_view where, const device::stream& s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(s.get());
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) device::check(q, "cudaStreamQuery after an NCCL exchange");
      ncclResult_t async = ncclSuccess;
      check(where, ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
      if (async != ncclSuccess || std::chrono::steady_clock::now() > deadline) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        if (async != ncclSuccess) check(where, async, "an NCCL exchange (asynchronous error)");
        fail(where, ": no completion within ", timeout_s_, " s (a peer died or stopped calling); the NCCL ",
             "communicator was aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  static void check(std::string_view where, ncclResult_t r, std::string_view call) {
    if (r != ncclSuccess)
      fail(where, ": ", call, " failed: ", ncclGetErrorString(r), " (", static_cast<int>(r), ")");
  }
  ncclComm_t comm_ = nullptr;
  double timeout_s_;
  bool bounded_;
};
#endif

// The device communicator over a host ep_communicator (the plan and the argument agreement, over MPI) and a
// transport (the rows). Every operation is collective, like the host communicator's, and is enqueued on the
// stream s: the same stream for all calls of one communicator (its staging buffers are reused). dispatch
// synchronises s (it reads the ids and weights on the host); the other operations synchronise only inside
// the transport. Views are device memory; shapes as in ep_communicator.
template <class Transport>
class ep_device_communicator {
 public:
  ep_device_communicator(ep_communicator& ep, Transport& transport) : ep_(&ep), tr_(&transport) {}

  const ep_communicator& host() const { return *ep_; }

  // x [T, H], topk_idx [T, K] (global ids or -1), topk_w [T, K] -> out.
  void dispatch(view<const float, 2> x, view<const expert_id, 2> topk_idx, view<const float, 2> topk_w,
                ep_device_dispatched& out, const ep_options& opt = {},
                const device::stream& s = device::stream::default_stream()) {
    static constexpr std::string_view where = "moe::ep_device_communicator::dispatch";
    const index_t T = x.extent(0), H = ep_->hidden();
    // The plan's own checks are collective; these are the device side's, agreed on before it.
    ep_->agree(where, [&] {
      contract c{where};
      c.extent("x", x, 1, H, "the communicator's hidden size")
          .extent("topk_idx", topk_idx, 0, T, "x.extent(0) (tokens)")
          .extent("topk_w", topk_w, 0, T, "x.extent(0) (tokens)")
          .extent("topk_w", topk_w, 1, topk_idx.extent(1), "topk_idx.extent(1) (K)")
          .unit_inner_stride("x", x)
          .unit_inner_stride("topk_idx", topk_idx)
          .unit_inner_stride("topk_w", topk_w)
          .in_range("x.extent(0) (tokens)", T, index_t{0}, index_t{device::max_grid_x()})
          .disjoint("x", x, "out.recv_x", out.recv_x.cview());
    });
    const index_t K = topk_idx.extent(1);
    tensor<expert_id, 2> idx_h({T, K}, uninitialized);
    tensor<float, 2> w_h({T, K}, uninitialized);
    device::copy(idx_h.view(), topk_idx, device::copy_kind::device_to_host, s);
    device::copy(w_h.view(), topk_w, device::copy_kind::device_to_host, s);
    s.synchronize();
    ep_->dispatch_plan(idx_h, w_h, plan_, opt);
    const ep_handle& h = plan_.handle;
    const index_t N = h.received();
    out.handle = h;
    upload(out.send_token, h.send_token, s);
    upload(out.row_token, h.local.row_token, s);
    upload(out.row_slot, h.local.row_slot, s);
    upload(out.back_row, h.back_row, s);
    upload(out.pair_ret, h.pair_ret, s);
    ensure(out.recv_topk_idx, N, K);
    ensure(out.recv_topk_w, N, K);
    ensure(out.recv_x, N, H);
    device::copy(out.recv_topk_idx.data(), plan_.recv_topk_idx.data(), N * K,
                 device::copy_kind::host_to_device, s);
    device::copy(out.recv_topk_w.data(), plan_.recv_topk_w.data(), N * K, device::copy_kind::host_to_device,
                 s);
    const auto sent = static_cast<index_t>(h.send_token.size());
    float* packed = stage(send_, sent * H);
    gather(x.data(), x.stride(0), out.send_token.data(), sent, H, packed, s);
    tr_->exchange(packed, h.send_count, h.send_displ, out.recv_x.data(), h.recv_count, h.recv_displ, H, s);
    s.synchronize();  // plan_'s host tables were the source of the uploads
  }

  // ys [local rows, H] -> y [T, H] = shared (or 0) + sum_k topk_w[t, k] * expert output of (t, k), in slot
  // order. shared may be y itself.
  void combine(view<const float, 2> ys, const ep_device_dispatched& d, view<const float, 2> topk_w,
               view<float, 2> y, view<const float, 2> shared = {},
               const device::stream& s = device::stream::default_stream()) {
    static constexpr std::string_view where = "moe::ep_device_communicator::combine";
    const ep_handle& h = d.handle;
    const bool has_shared = shared.extent(0) != 0 || shared.extent(1) != 0;
    ep_->agree(where, [&] {
      contract c{where};
      ep_->check_combine(c, ys, h, topk_w, y, shared);
      check_tables(c, d);
      c.unit_inner_stride("topk_w", topk_w);  // the kernels index rows of it
    });
    const float* returned = return_rows(ys.data(), ys.stride(0), d, s);
    weighted_sum(returned, d, topk_w.data(), topk_w.stride(0), has_shared ? shared.data() : nullptr,
                 has_shared ? shared.stride(0) : 0, y, s);
  }

  // dxs [local rows, H] -> dx [T, H] = sum_k dxs of pair (t, k), in slot order.
  void dispatch_backward(view<const float, 2> dxs, const ep_device_dispatched& d, view<float, 2> dx,
                         const device::stream& s = device::stream::default_stream()) {
    static constexpr std::string_view where = "moe::ep_device_communicator::dispatch_backward";
    const ep_handle& h = d.handle;
    ep_->agree(where, [&] {
      contract c{where};
      ep_->check_dispatch_backward(c, dxs, h, dx);
      check_tables(c, d);
    });
    const float* returned = return_rows(dxs.data(), dxs.stride(0), d, s);
    weighted_sum(returned, d, nullptr, 0, nullptr, 0, dx, s);
  }

  // dy [T, H] -> dys [local rows, H] (recv_topk_w * dy of the pair's token, 0 on padding) and dtopk_w [T, K]
  // (dy[t] . expert output of (t, k); 0 for empty and dropped slots). ys and recv_topk_w: the forward's.
  void combine_backward(view<const float, 2> dy, view<const float, 2> ys, const ep_device_dispatched& d,
                        view<const float, 2> recv_topk_w, view<float, 2> dys, view<float, 2> dtopk_w,
                        const device::stream& s = device::stream::default_stream()) {
    static constexpr std::string_view where = "moe::ep_device_communicator::combine_backward";
    const ep_handle& h = d.handle;
    const index_t H = h.hidden, K = h.slots, N = h.received();
    ep_->agree(where, [&] {
      contract c{where};
      ep_->check_combine_backward(c, dy, ys, h, recv_topk_w, dys, dtopk_w);
      check_tables(c, d);
      c.unit_inner_stride("recv_topk_w", recv_topk_w).unit_inner_stride("dtopk_w", dtopk_w);
    });
    // dy of each token to the ranks of its experts, along the dispatch's plan.
    const auto sent = static_cast<index_t>(h.send_token.size());
    float* packed = stage(send_, sent * H);
    gather(dy.data(), dy.stride(0), d.send_token.data(), sent, H, packed, s);
    float* rdy = stage(recv_, N * H);
    tr_->exchange(packed, h.send_count, h.send_displ, rdy, h.recv_count, h.recv_displ, H, s);
    const index_t rows = h.local.rows();
    if (rows > 0)
      device::launch(kernels::moe_scale_token_rows<>,
                     {dim3(static_cast<unsigned>(rows)), dim3(cuda_detail::rows_block(H))},
                     s)(rdy, H, d.row_token.data(), d.row_slot.data(), recv_topk_w.data(),
                        recv_topk_w.stride(0), dys.data(), dys.stride(0), H);
    // dtopk_w of each kept pair where its expert output is, returned in the combine's order.
    const auto back = static_cast<index_t>(h.back_row.size());
    float* sdot = stage(dots_, back + ret_rows(h));
    float* rdot = sdot + back;
    if (back > 0)
      device::launch(kernels::ep_row_dots<>, {dim3(static_cast<unsigned>((back + 7) / 8)), dim3(256)}, s)(
          rdy, d.row_token.data(), d.back_row.data(), back, ys.data(), ys.stride(0), H, sdot);
    tr_->exchange(sdot, h.back_count, h.back_displ, rdot, h.ret_count, h.ret_displ, 1, s);
    const index_t pairs = h.tokens * K;
    if (pairs > 0)
      device::launch(kernels::ep_pick<>, {dim3(static_cast<unsigned>((pairs + 255) / 256)), dim3(256)}, s)(
          rdot, d.pair_ret.data(), pairs, K, dtopk_w.data(), dtopk_w.stride(0));
  }

 private:
  static index_t ret_rows(const ep_handle& h) {
    return h.ret_count.empty() ? 0 : index_t{h.ret_displ.back()} + h.ret_count.back();
  }
  // The device tables must be the ones uploaded with this handle (a handle copied without them would index
  // stale buffers): their sizes are checked (after the handle itself).
  static void check_tables(const contract& c, const ep_device_dispatched& d) {
    const ep_handle& h = d.handle;
    c.require(d.send_token.size() == static_cast<index_t>(h.send_token.size()) &&
                  d.back_row.size() == static_cast<index_t>(h.back_row.size()) &&
                  d.pair_ret.size() == static_cast<index_t>(h.pair_ret.size()) &&
                  d.row_token.size() == h.local.rows() && d.row_slot.size() == h.local.rows(),
              "dispatched", "the device tables uploaded by this dispatch (sizes matching its handle)",
              "tables of another size");
  }
  template <class T>
  static void upload(device::buffer<T>& dst, const std::vector<T>& src, const device::stream& s) {
    const auto n = static_cast<index_t>(src.size());
    if (dst.size() != n) dst = device::buffer<T>(n);
    device::copy(dst.data(), src.data(), n, device::copy_kind::host_to_device, s);
  }
  template <class T>
  static void ensure(device::tensor<T, 2>& t, index_t r, index_t c) {
    if (t.extent(0) != r || t.extent(1) != c) t = device::tensor<T, 2>(r, c);
  }
  // A staging buffer of at least n floats (grown, never shrunk).
  static float* stage(device::buffer<float>& b, index_t n) {
    if (b.size() < std::max<index_t>(n, 1)) b = device::buffer<float>(std::max<index_t>(n, 1));
    return b.data();
  }
  template <class Idx>
  static void gather(const float* src, index_t lds, const Idx* rows, index_t n, index_t H, float* dst,
                     const device::stream& s) {
    if (n > 0)
      device::launch(kernels::moe_dispatch_rows<Idx>,
                     {dim3(static_cast<unsigned>(n)), dim3(cuda_detail::rows_block(H))},
                     s)(src, lds, rows, H, dst, H);
  }
  // The rows of src named by back_row, to the tokens' ranks; returns where they arrived ([ret rows, H]).
  const float* return_rows(const float* src, index_t lds, const ep_device_dispatched& d,
                           const device::stream& s) {
    const ep_handle& h = d.handle;
    const index_t H = h.hidden;
    const auto back = static_cast<index_t>(h.back_row.size());
    float* packed = stage(send_, back * H);
    gather(src, lds, d.back_row.data(), back, H, packed, s);
    float* returned = stage(recv_, ret_rows(h) * H);
    tr_->exchange(packed, h.back_count, h.back_displ, returned, h.ret_count, h.ret_displ, H, s);
    return returned;
  }
  void weighted_sum(const float* rows, const ep_device_dispatched& d, const float* w, index_t ldw,
                    const float* base, index_t ldb, view<float, 2> y, const device::stream& s) {
    const ep_handle& h = d.handle;
    if (h.tokens > 0)
      device::launch(kernels::moe_weighted_rows<>,
                     {dim3(static_cast<unsigned>(h.tokens)), dim3(cuda_detail::rows_block(h.hidden))}, s)(
          rows, h.hidden, d.pair_ret.data(), h.slots, w, ldw, base, ldb, y.data(), y.stride(0), h.hidden);
  }

  ep_communicator* ep_;
  Transport* tr_;
  ep_dispatched plan_;  // the host plan of the last dispatch (its recv_x stays empty)
  device::buffer<float> send_, recv_, dots_;
};

DSK_CUDA_MODE_END
}  // namespace dsk::moe
