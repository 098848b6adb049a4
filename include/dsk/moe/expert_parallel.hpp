// Expert parallelism across processes over MPI (DeepEP's dispatch / combine contract, in host memory):
// moe::ep_communicator splits E experts contiguously over the R ranks of an MPI communicator (rank r owns
// experts [r * E / R, (r + 1) * E / R)). dispatch sends each token once per rank that owns one of its
// experts, with its top-k ids (local ids there, -1 elsewhere) and weights; the receiving rank gets the rows
// in (source rank, token) order and a moe::dispatch_handle over its local experts, so moe::dispatch_tokens
// and grouped_swiglu run on them unchanged. combine returns every kept (token, slot) expert output to the
// token's rank, which forms the weighted sum in slot order: the result is the single-process combine_tokens
// bit for bit, whatever R (DeepEP's low-latency combine also weights at the source; its normal mode sums
// per-rank partial sums, which changes the rounding with R). dispatch_backward and combine_backward are the
// adjoint exchanges, equal to the single-process backward passes bit for bit as well.
//
// Every exchange is non-blocking MPI (MPI_Ialltoall / MPI_Ialltoallv on a duplicate of the communicator with
// MPI_ERRORS_RETURN) completed by a polling wait with a deadline, so a rank that died or stopped calling
// gives a dsk::error on the others instead of a hang. Sizes are exchanged first and checked on every rank: a
// rank whose input is rejected sends a failure flag, so all ranks throw (it with its own message, the others
// naming it). Such a rejection happens before any payload moves, so the communicator stays usable (the
// tests call it again afterwards). After a timeout or a transport error its state is undefined: destroy it
// (and usually MPI_Abort). Needs
// dsk::mpi (cmake: links MPI::MPI_CXX). MPI calls are made from the calling thread only (MPI_THREAD_FUNNELED
// is enough). Checked in tests/moe/ep/ under mpirun against the single-process functions of
// dsk/moe/dispatch.hpp.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/moe/dispatch.hpp"
#include "dsk/moe/layer.hpp"

namespace dsk::moe {

// Per-call options of an expert-parallel dispatch: the local segments' padding and the capacity limit, with
// the meaning of dispatch_options. A capacity_factor is applied to the GLOBAL token count (the sum over the
// ranks), so a split run keeps the same pairs as one process holding all tokens in rank order.
struct ep_options {
  index_t block = 1;
  double capacity_factor = 0.0;
  index_t capacity = -1;
};

namespace detail {
DSK_ISA_BEGIN

inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return dsk::detail::concat("MPI error code ", code);
  return std::string(text, static_cast<std::size_t>(len));
}

inline void mpi_check(std::string_view where, int code, std::string_view call) {
  if (code != MPI_SUCCESS)
    throw error(dsk::detail::concat(where, ": ", call, " failed: ", mpi_error_string(code)));
}

// Completes n requests, polling: MPI has no timed wait, and a peer that never posts its side would leave
// MPI_Waitall blocked forever. Spins with yields for the first millisecond (a decode step's exchanges are
// short), then sleeps 50 us between tests.
inline void ep_wait(std::string_view where, MPI_Request* reqs, int n, double timeout_s,
                    std::string_view what) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (long polls = 0;; ++polls) {
    int done = 0;
    const int rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS)
      throw error(dsk::detail::concat(where, ": the ", what, " exchange failed: ", mpi_error_string(rc)));
    if (done) return;
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > timeout_s)
      throw error(dsk::detail::concat(where, ": the ", what, " exchange timed out after ", timeout_s,
                                      " s: a rank has died or is not calling the same exchange"));
    if (waited < 1e-3)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    (void)polls;
  }
}

// MPI counts are int: rows (a row datatype of H floats), not floats, so only the row count is bounded.
inline int mpi_count(std::string_view where, index_t n, std::string_view what) {
  if (n < 0 || n > INT_MAX)
    throw error(dsk::detail::concat(where, ": ", what, " = ", n, " exceeds MPI's int count (", INT_MAX, ")"));
  return static_cast<int>(n);
}

inline void exclusive_scan(const std::vector<int>& count, std::vector<int>& displ, std::string_view where) {
  displ.assign(count.size(), 0);
  index_t sum = 0;
  for (std::size_t i = 0; i < count.size(); ++i) {
    displ[i] = mpi_count(where, sum, "a displacement");
    sum += count[i];
  }
  mpi_count(where, sum, "a total count");
}

DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// What combine and the backward passes need to undo one dispatch. "Source" = the rank a token lives on,
// "expert rank" = a rank owning one of its experts; every rank is both.
struct ep_handle {
  index_t tokens = 0, slots = 0, hidden = 0, experts = 0, global_tokens = 0;
  int ranks = 1, rank = 0;
  // Source side: token rows sent to each rank (token order within a rank), and the rows each rank returns in
  // combine (its kept pairs of our tokens, in (token, slot) order). pair_ret[t * K + k]: the pair's row in
  // the returned buffer (rank by rank), -1 for no expert or dropped.
  std::vector<int> send_count, send_displ, ret_count, ret_displ;
  std::vector<std::int32_t> send_token;
  std::vector<index_t> pair_ret;
  // Expert side: token rows received from each rank (their rows of recv_x), the rows this rank returns to
  // each rank, and back_row: the row of `local` that each returned row carries, in order.
  std::vector<int> recv_count, recv_displ, back_count, back_displ;
  std::vector<index_t> back_row;
  dispatch_handle local;  // the received tokens' (token, slot) pairs over the local experts
  index_t received() const { return local.tokens; }
};

// The output of a dispatch, DeepEP's names: recv_x [N, H] (N = handle.received()), recv_topk_idx [N, K]
// (local expert ids, -1 where the expert is on another rank or the slot empty), recv_topk_w [N, K] (0 where
// -1). The tokens per local expert are handle.local.count (kept pairs) and handle.local.offset (padded
// segments). Reused between calls: buffers are reallocated only when a shape changes.
struct ep_dispatched {
  tensor<float, 2> recv_x, recv_topk_w;
  tensor<expert_id, 2> recv_topk_idx;
  ep_handle handle;
};

// An exchange in flight (the *_begin functions): wait() completes it and finishes the operation. The buffers
// passed to the call must stay alive and unmodified until then. Destroying an unfinished exchange waits for
// it (errors are then swallowed: call wait() to see them).
class ep_exchange {
 public:
  ep_exchange() = default;
  ep_exchange(const ep_exchange&) = delete;
  ep_exchange& operator=(const ep_exchange&) = delete;
  ep_exchange(ep_exchange&& o) noexcept { *this = std::move(o); }
  ep_exchange& operator=(ep_exchange&& o) noexcept {
    if (this != &o) {
      finish_quietly();
      reqs_ = std::move(o.reqs_);
      finish_ = std::move(o.finish_);
      keep_ = std::move(o.keep_);
      where_ = o.where_;
      what_ = o.what_;
      timeout_s_ = o.timeout_s_;
      o.reqs_.clear();
      o.finish_ = nullptr;
    }
    return *this;
  }
  ~ep_exchange() { finish_quietly(); }

  bool pending() const { return !reqs_.empty() || finish_ != nullptr; }
  void wait() {
    if (!reqs_.empty()) {
      auto reqs = std::move(reqs_);
      reqs_.clear();
      detail::ep_wait(where_, reqs.data(), static_cast<int>(reqs.size()), timeout_s_, what_);
    }
    if (finish_) {
      auto f = std::move(finish_);
      finish_ = nullptr;
      f();
    }
    keep_.clear();
  }

 private:
  friend class ep_communicator;
  void finish_quietly() noexcept {
    try {
      wait();
    } catch (...) {
    }
  }
  std::vector<MPI_Request> reqs_;
  std::function<void()> finish_;
  std::vector<std::unique_ptr<std::byte[]>> keep_;  // staging buffers the requests read or write
  std::string_view where_, what_;
  double timeout_s_ = 0;
};

// An expert-parallel communicator: construction is collective over `comm` (every rank must construct it with
// the same experts and hidden size: checked, every rank throws on a mismatch) and every operation is
// collective too, called by all ranks in the same order. timeout_s bounds every wait for the other ranks.
class ep_communicator {
 public:
  ep_communicator(MPI_Comm comm, index_t experts, index_t hidden, double timeout_s = 300.0)
      : experts_(experts), hidden_(hidden), timeout_s_(timeout_s > 0 && timeout_s < 1e9 ? timeout_s : 300.0) {
    static constexpr std::string_view where = "moe::ep_communicator";
    detail::mpi_check(where, MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    try {
      detail::mpi_check(where, MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
      detail::mpi_check(where, MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
      detail::mpi_check(where, MPI_Comm_size(comm_, &ranks_), "MPI_Comm_size");
      // Every rank's arguments go to every rank, so all see the same mismatch and all throw.
      const std::int64_t mine[3] = {experts, hidden, timeout_s > 0 && timeout_s < 1e9};
      std::vector<std::int64_t> all(static_cast<std::size_t>(3 * ranks_));
      MPI_Request req;
      detail::mpi_check(where, MPI_Iallgather(mine, 3, MPI_INT64_T, all.data(), 3, MPI_INT64_T, comm_, &req),
                        "MPI_Iallgather");
      detail::ep_wait(where, &req, 1, timeout_s_, "configuration");
      contract c{where};
      for (int r = 0; r < ranks_; ++r) {
        const std::int64_t* a = &all[static_cast<std::size_t>(3 * r)];
        c.require(a[0] == all[0], "experts",
                  dsk::detail::concat("the same on every rank (rank 0: ", all[0], ")"),
                  dsk::detail::concat(a[0], " on rank ", r))
            .require(a[1] == all[1], "hidden",
                     dsk::detail::concat("the same on every rank (rank 0: ", all[1], ")"),
                     dsk::detail::concat(a[1], " on rank ", r))
            .require(a[2] == 1, "timeout_s", "a number of seconds in (0, 1e9) on every rank",
                     dsk::detail::concat("an invalid value on rank ", r));
      }
      c.in_range("experts", experts, index_t{1}, detail::max_dispatch_count)
          .require(experts % ranks_ == 0, "experts",
                   dsk::detail::concat("a multiple of the communicator's size (", ranks_, " ranks)"), experts)
          .in_range("hidden", hidden, index_t{1}, index_t{INT_MAX});
      detail::mpi_check(where, MPI_Type_contiguous(static_cast<int>(hidden), MPI_FLOAT, &row_),
                        "MPI_Type_contiguous");
      detail::mpi_check(where, MPI_Type_commit(&row_), "MPI_Type_commit");
    } catch (...) {
      MPI_Comm_free(&comm_);
      throw;
    }
  }
  ep_communicator(const ep_communicator&) = delete;
  ep_communicator& operator=(const ep_communicator&) = delete;
  ~ep_communicator() {
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (row_ != MPI_DATATYPE_NULL) MPI_Type_free(&row_);
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  index_t experts() const { return experts_; }
  index_t hidden() const { return hidden_; }
  index_t local_experts() const { return experts_ / ranks_; }
  index_t first_expert() const { return rank_ * local_experts(); }
  int rank_of_expert(expert_id e) const { return static_cast<int>(e / local_experts()); }
  MPI_Comm comm() const { return comm_; }
  double timeout_s() const { return timeout_s_; }

  // Rows of `width` floats: rows [sdispl[r], sdispl[r] + scount[r]) of send go to rank r, and rank r's rows
  // arrive at rows [rdispl[r], rdispl[r] + rcount[r]) of recv (counts and displacements in rows, one entry
  // per rank, as the handle's tables). Collective and blocking, bounded by timeout_s. The row exchange of
  // ep_device_communicator's staged transport.
  void exchange_rows(const float* send, const std::vector<int>& scount, const std::vector<int>& sdispl,
                     float* recv, const std::vector<int>& rcount, const std::vector<int>& rdispl,
                     index_t width) const;
  // Runs checks() (which throws dsk::error on a bad argument), then tells every rank whether each rank's
  // checks passed: all ranks throw when any rank's were rejected (that rank with its own message), so that
  // no rank enters an exchange the others left. Collective.
  template <class Checks>
  void agree(std::string_view where, Checks&& checks) const;
  // Checks a handle against this communicator before its tables index anything.
  void check_handle(const contract& c, const ep_handle& h) const;
  // The argument checks of combine, dispatch_backward and combine_backward (the handle, shapes against it,
  // strides, aliasing); ep_device_communicator runs the same ones.
  void check_combine(const contract& c, view<const float, 2> ys, const ep_handle& h,
                     view<const float, 2> topk_w, view<float, 2> y, view<const float, 2> shared) const;
  void check_dispatch_backward(const contract& c, view<const float, 2> dxs, const ep_handle& h,
                               view<float, 2> dx) const;
  void check_combine_backward(const contract& c, view<const float, 2> dy, view<const float, 2> ys,
                              const ep_handle& h, view<const float, 2> recv_topk_w, view<float, 2> dys,
                              view<float, 2> dtopk_w) const;

  // x [T, H] with topk_idx [T, K] (global expert ids or -1) and topk_w [T, K] -> out (see ep_dispatched).
  // T may differ between ranks (0 too); K must be the same on all. Blocking: dispatch_begin + wait.
  void dispatch(view<const float, 2> x, view<const expert_id, 2> topk_idx, view<const float, 2> topk_w,
                ep_dispatched& out, const ep_options& opt = {}) {
    dispatch_begin(x, topk_idx, topk_w, out, opt).wait();
  }
  // The same in two halves: the sizes are exchanged (a short blocking step), the payload posted; wait()
  // receives it and plans the local dispatch. x, topk_idx, topk_w and out must live until then.
  ep_exchange dispatch_begin(view<const float, 2> x, view<const expert_id, 2> topk_idx,
                             view<const float, 2> topk_w, ep_dispatched& out, const ep_options& opt = {}) {
    return dispatch_impl(&x, topk_idx, topk_w, out, opt);
  }
  // A dispatch without the token rows: out.handle, out.recv_topk_idx and out.recv_topk_w as dispatch gives
  // them, out.recv_x [N, 0]. For a caller that moves the rows itself along the plan (ep_device_communicator
  // moves them between GPUs): the handle's tables do not depend on the hidden size.
  void dispatch_plan(view<const expert_id, 2> topk_idx, view<const float, 2> topk_w, ep_dispatched& out,
                     const ep_options& opt = {}) {
    dispatch_impl(nullptr, topk_idx, topk_w, out, opt).wait();
  }

  // ys [local rows, H]: the local experts' outputs, rows of out.handle.local. y [T, H] on the tokens' rank:
  // shared[t] (or 0) + sum_k topk_w[t, k] * expert output of (t, k), in slot order (= combine_tokens).
  template <host_exec Exec = host>
  void combine(view<const float, 2> ys, const ep_handle& h, view<const float, 2> topk_w, view<float, 2> y,
               view<const float, 2> shared = {}) {
    combine_begin<Exec>(ys, h, topk_w, y, shared).wait();
  }
  template <host_exec Exec = host>
  ep_exchange combine_begin(view<const float, 2> ys, const ep_handle& h, view<const float, 2> topk_w,
                            view<float, 2> y, view<const float, 2> shared = {});

  // Backward of dispatch: dxs [local rows, H] (gradient of moe::dispatch_tokens' output on the received
  // tokens) -> dx [T, H] = sum_k dxs of pair (t, k), in slot order (= dispatch_tokens_backward).
  template <host_exec Exec = host>
  void dispatch_backward(view<const float, 2> dxs, const ep_handle& h, view<float, 2> dx);

  // Backward of combine: dy [T, H] -> dys [local rows, H] (recv_topk_w * dy of the pair's token, zero
  // padding) and dtopk_w [T, K] (dy[t] . expert output of (t, k); 0 for empty and dropped slots), as
  // combine_tokens_backward. ys and recv_topk_w are the forward's local expert outputs and out.recv_topk_w.
  template <host_exec Exec = host>
  void combine_backward(view<const float, 2> dy, view<const float, 2> ys, const ep_handle& h,
                        view<const float, 2> recv_topk_w, view<float, 2> dys, view<float, 2> dtopk_w);

  // For a model whose tokens are held by every rank (attention replicated, experts split): this rank's share
  // [first, first + count) of T tokens, contiguous, in rank order (rank r: [r * T / R, (r + 1) * T / R)).
  std::pair<index_t, index_t> token_range(index_t tokens) const {
    contract{"moe::ep_communicator::token_range"}.require(tokens >= 0, "tokens", ">= 0", tokens);
    const index_t first = tokens * rank_ / ranks_;
    return {first, tokens * (rank_ + 1) / ranks_ - first};
  }
  // all [sum of the ranks' part rows, H] = the ranks' part [rows, H] one after another in rank order, on
  // every rank (e.g. each rank's share of the MoE output, token_range, back to all tokens). The row counts
  // are exchanged first: every rank throws when all's rows differ from their sum on any rank.
  void allgather_rows(view<const float, 2> part, view<float, 2> all);
  // The value of every rank, in rank order (reports: resident memory per rank, a checksum of the output).
  std::vector<std::int64_t> allgather(std::int64_t value) const {
    static constexpr std::string_view where = "moe::ep_communicator::allgather";
    std::vector<std::int64_t> all(static_cast<std::size_t>(ranks_));
    MPI_Request req;
    detail::mpi_check(where, MPI_Iallgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm_, &req),
                      "MPI_Iallgather");
    detail::ep_wait(where, &req, 1, timeout_s_, "value");
    return all;
  }

 private:
  // dispatch_begin, or dispatch_plan when x is null.
  ep_exchange dispatch_impl(const view<const float, 2>* x, view<const expert_id, 2> topk_idx,
                            view<const float, 2> topk_w, ep_dispatched& out, const ep_options& opt);
  // One MPI_Ialltoallv of `type` elements; counts and displacements in elements of `type`.
  void post_alltoallv(std::string_view where, const void* send, const std::vector<int>& scount,
                      const std::vector<int>& sdispl, void* recv, const std::vector<int>& rcount,
                      const std::vector<int>& rdispl, MPI_Datatype type,
                      std::vector<MPI_Request>& reqs) const {
    reqs.emplace_back();
    detail::mpi_check(where,
                      MPI_Ialltoallv(send, scount.data(), sdispl.data(), type, recv, rcount.data(),
                                     rdispl.data(), type, comm_, &reqs.back()),
                      "MPI_Ialltoallv");
  }
  void wait_all(std::string_view where, std::vector<MPI_Request>& reqs, std::string_view what) const {
    detail::ep_wait(where, reqs.data(), static_cast<int>(reqs.size()), timeout_s_, what);
    reqs.clear();
  }
  // Posts the return of the rows of `src` named by h.back_row to the tokens' ranks; returns the buffer they
  // arrive in ([sum h.ret_count, H], owned by ex).
  float* return_rows(std::string_view where, view<const float, 2> src, const ep_handle& h,
                     ep_exchange& ex) const;
  // A staging buffer of n T's owned by the exchange (alive until it completes).
  template <class T>
  static T* stage(ep_exchange& ex, index_t n) {
    // An array of std::byte implicitly creates the T objects the kernels then write ([intro.object]).
    ex.keep_.emplace_back(new std::byte[static_cast<std::size_t>(std::max<index_t>(n, 1)) * sizeof(T)]);
    return reinterpret_cast<T*>(ex.keep_.back().get());
  }
  ep_exchange make_exchange(std::string_view where, std::string_view what) const {
    ep_exchange ex;
    ex.where_ = where;
    ex.what_ = what;
    ex.timeout_s_ = timeout_s_;
    return ex;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Datatype row_ = MPI_DATATYPE_NULL;
  int rank_ = 0, ranks_ = 1;
  index_t experts_ = 0, hidden_ = 0;
  double timeout_s_ = 300.0;
};

// ---- implementation ------------------------------------------------------------------------------------

template <class Checks>
void ep_communicator::agree(std::string_view where, Checks&& checks) const {
  std::string failure;
  try {
    checks();
  } catch (const error& e) {
    failure = e.what();
  }
  const int ok = failure.empty();
  std::vector<int> all(static_cast<std::size_t>(ranks_));
  MPI_Request req;
  detail::mpi_check(where, MPI_Iallgather(&ok, 1, MPI_INT, all.data(), 1, MPI_INT, comm_, &req),
                    "MPI_Iallgather");
  detail::ep_wait(where, &req, 1, timeout_s_, "argument check");
  if (!failure.empty()) throw error(failure);
  for (int r = 0; r < ranks_; ++r)
    if (!all[static_cast<std::size_t>(r)])
      throw error(dsk::detail::concat(where, ": rank ", r, " rejected its arguments (its error says why); ",
                                      "nothing was exchanged"));
}

inline void ep_communicator::allgather_rows(view<const float, 2> part, view<float, 2> all) {
  static constexpr std::string_view where = "moe::ep_communicator::allgather_rows";
  std::int64_t rows[2] = {0, 0};  // this rank's part rows, and the rows of all
  agree(where, [&] {
    contract c{where};
    c.extent("part", part, 1, hidden_, "the communicator's hidden size")
        .extent("all", all, 1, hidden_, "the communicator's hidden size")
        .unit_inner_stride("part", part)
        .disjoint("all", all, "part", part);
    rows[0] = part.extent(0);
    rows[1] = all.extent(0);
  });
  std::vector<std::int64_t> every(static_cast<std::size_t>(2 * ranks_));
  MPI_Request req;
  detail::mpi_check(where, MPI_Iallgather(rows, 2, MPI_INT64_T, every.data(), 2, MPI_INT64_T, comm_, &req),
                    "MPI_Iallgather");
  detail::ep_wait(where, &req, 1, timeout_s_, "row count");
  std::vector<int> count(static_cast<std::size_t>(ranks_)), displ;
  std::int64_t sum = 0;
  for (int r = 0; r < ranks_; ++r) {
    sum += every[static_cast<std::size_t>(2 * r)];
    count[static_cast<std::size_t>(r)] =
        detail::mpi_count(where, every[static_cast<std::size_t>(2 * r)], "a row count");
  }
  for (int r = 0; r < ranks_; ++r)
    if (every[static_cast<std::size_t>(2 * r + 1)] != sum)
      throw error(dsk::detail::concat(where, ": argument 'all': expected ", sum,
                                      " rows (the sum of the ranks' part rows) on every rank, got ",
                                      every[static_cast<std::size_t>(2 * r + 1)], " on rank ", r));
  detail::exclusive_scan(count, displ, where);
  // Contiguous rows in and out (MPI's row type is H floats); strided views go through a staging copy.
  const bool dense_in = part.extent(0) <= 1 || part.stride(0) == hidden_;
  const bool dense_out = all.extent(0) <= 1 || all.stride(0) == hidden_;
  std::vector<float> in, out;
  if (!dense_in) {
    in.resize(static_cast<std::size_t>(part.extent(0) * hidden_));
    for (index_t t = 0; t < part.extent(0); ++t)
      std::copy_n(row_ptr(part, t), hidden_, in.data() + t * hidden_);
  }
  if (!dense_out) out.resize(static_cast<std::size_t>(all.extent(0) * hidden_));
  const float* send = dense_in ? part.data() : in.data();
  float* recv = dense_out ? all.data() : out.data();
  detail::mpi_check(where,
                    MPI_Iallgatherv(send, count[static_cast<std::size_t>(rank_)], row_, recv, count.data(),
                                    displ.data(), row_, comm_, &req),
                    "MPI_Iallgatherv");
  detail::ep_wait(where, &req, 1, timeout_s_, "rows");
  if (!dense_out)
    for (index_t t = 0; t < all.extent(0); ++t)
      std::copy_n(out.data() + t * hidden_, hidden_, row_ptr(all, t));
}

inline void ep_communicator::check_handle(const contract& c, const ep_handle& h) const {
  const auto bad = [&](const auto&... what) {
    c.require(false, "handle", "a handle made by this communicator's dispatch", dsk::detail::concat(what...));
  };
  if (h.ranks != ranks_ || h.rank != rank_ || h.experts != experts_ || h.hidden != hidden_)
    bad("rank ", h.rank, " of ", h.ranks, ", ", h.experts, " experts, hidden ", h.hidden,
        " (this communicator: rank ", rank_, " of ", ranks_, ", ", experts_, " experts, hidden ", hidden_,
        ")");
  detail::check_handle(c, h.local);
  const auto R = static_cast<std::size_t>(ranks_);
  for (const auto* v : {&h.send_count, &h.send_displ, &h.ret_count, &h.ret_displ, &h.recv_count,
                        &h.recv_displ, &h.back_count, &h.back_displ})
    if (v->size() != R) bad("a table of ", v->size(), " entries for ", R, " ranks");
  const auto consistent = [&](const std::vector<int>& count, const std::vector<int>& displ,
                              const char* name) {
    index_t sum = 0;
    for (std::size_t r = 0; r < R; ++r) {
      if (count[r] < 0 || displ[r] != sum)
        bad(name, " of rank ", r, ": count ", count[r], ", displacement ", displ[r]);
      sum += count[r];
    }
    return sum;
  };
  const index_t sent = consistent(h.send_count, h.send_displ, "send"),
                ret = consistent(h.ret_count, h.ret_displ, "return"),
                recv = consistent(h.recv_count, h.recv_displ, "receive"),
                back = consistent(h.back_count, h.back_displ, "send-back");
  const index_t T = h.tokens, K = h.slots;
  if (T < 0 || K < 0 || K != h.local.slots || recv != h.local.tokens)
    bad(T, " tokens x ", K, " slots for a local plan of ", h.local.tokens, " x ", h.local.slots, " and ",
        recv, " received rows");
  if (static_cast<index_t>(h.send_token.size()) != sent)
    bad(h.send_token.size(), " send_token entries for ", sent);
  for (const std::int32_t t : h.send_token)
    if (t < 0 || t >= T) bad("send_token entry ", t, " outside [0, ", T, ")");
  if (static_cast<index_t>(h.pair_ret.size()) != T * K)
    bad(h.pair_ret.size(), " pair_ret entries for ", T * K);
  for (const index_t p : h.pair_ret)
    if (p < -1 || p >= ret) bad("pair_ret entry ", p, " outside [-1, ", ret, ")");
  if (static_cast<index_t>(h.back_row.size()) != back) bad(h.back_row.size(), " back_row entries for ", back);
  for (const index_t r : h.back_row)
    if (r < 0 || r >= h.local.rows()) bad("back_row entry ", r, " outside [0, ", h.local.rows(), ")");
}

inline void ep_communicator::exchange_rows(const float* send, const std::vector<int>& scount,
                                           const std::vector<int>& sdispl, float* recv,
                                           const std::vector<int>& rcount, const std::vector<int>& rdispl,
                                           index_t width) const {
  static constexpr std::string_view where = "moe::ep_communicator::exchange_rows";
  const auto R = static_cast<std::size_t>(ranks_);
  contract c{where};
  c.in_range("width", width, index_t{1}, index_t{INT_MAX})
      .require(
          scount.size() == R && sdispl.size() == R && rcount.size() == R && rdispl.size() == R,
          "scount, sdispl, rcount, rdispl", dsk::detail::concat("one entry per rank (", R, ")"),
          dsk::detail::concat(scount.size(), ", ", sdispl.size(), ", ", rcount.size(), ", ", rdispl.size()));
  MPI_Datatype type = row_;
  if (width != hidden_) {
    detail::mpi_check(where, MPI_Type_contiguous(static_cast<int>(width), MPI_FLOAT, &type),
                      "MPI_Type_contiguous");
    detail::mpi_check(where, MPI_Type_commit(&type), "MPI_Type_commit");
  }
  std::vector<MPI_Request> reqs;
  try {
    post_alltoallv(where, send, scount, sdispl, recv, rcount, rdispl, type, reqs);
    wait_all(where, reqs, "rows");
  } catch (...) {
    if (type != row_) MPI_Type_free(&type);
    throw;
  }
  if (type != row_) MPI_Type_free(&type);
}

inline ep_exchange ep_communicator::dispatch_impl(const view<const float, 2>* x,
                                                  view<const expert_id, 2> topk_idx,
                                                  view<const float, 2> topk_w, ep_dispatched& out,
                                                  const ep_options& opt) {
  static constexpr std::string_view where = "moe::ep_communicator::dispatch";
  const auto R = static_cast<std::size_t>(ranks_);
  const index_t T = x ? x->extent(0) : topk_idx.extent(0), K = topk_idx.extent(1), EL = local_experts();
  const index_t H = x ? hidden_ : 0;  // the row length moved (none for a plan)
  std::vector<index_t> tokens_to(R, 0), pairs_to(R, 0);
  // 1. Local checks. A failure is sent to the peers in the size exchange instead of thrown at once: a rank
  // that threw here would leave the others waiting in it.
  std::string failure;
  try {
    contract c{where};
    if (x)
      c.extent("x", *x, 1, hidden_, "the communicator's hidden size")
          .extent("topk_idx", topk_idx, 0, T, "x.extent(0) (tokens)")
          .unit_inner_stride("x", *x)
          .disjoint("x", *x, "out.recv_x", out.recv_x.cview());
    c.extent("topk_w", topk_w, 0, T, "topk_idx.extent(0) (tokens)")
        .extent("topk_w", topk_w, 1, K, "topk_idx.extent(1) (K)")
        .in_range("tokens", T, index_t{0}, detail::max_dispatch_count)
        .in_range("topk_idx.extent(1) (slots)", K, index_t{0}, index_t{INT_MAX})
        .disjoint("topk_idx", topk_idx, "out.recv_topk_idx", out.recv_topk_idx.cview())
        .disjoint("topk_w", topk_w, "out.recv_topk_w", out.recv_topk_w.cview());
    detail::check_dispatch_options(c, opt.block, opt.capacity_factor, opt.capacity);
    detail::check_topk_idx(c, topk_idx, experts_);
    for (index_t t = 0; t < T; ++t)
      for (std::size_t r = 0; r < R; ++r) {
        bool any = false;
        for (index_t k = 0; k < K; ++k)
          if (const expert_id e = topk_idx(t, k); e >= 0 && rank_of_expert(e) == static_cast<int>(r)) {
            ++pairs_to[r];
            any = true;
          }
        tokens_to[r] += any;
      }
  } catch (const error& e) {
    failure = e.what();
  }
  // 2. Sizes: {ok, tokens to the rank, pairs to the rank, K, T, capacity, capacity_factor's bits} to every
  // rank. The capacity options must agree (they decide which pairs every rank keeps); the padding may differ.
  constexpr int F = 7;
  std::vector<std::int64_t> hdr_out(F * R), hdr_in(F * R);
  for (std::size_t r = 0; r < R; ++r) {
    std::int64_t* o = &hdr_out[F * r];
    o[0] = failure.empty();
    o[1] = tokens_to[r];
    o[2] = pairs_to[r];
    o[3] = K;
    o[4] = T;
    o[5] = opt.capacity;
    o[6] = std::bit_cast<std::int64_t>(opt.capacity_factor);
  }
  {
    MPI_Request req;
    detail::mpi_check(
        where, MPI_Ialltoall(hdr_out.data(), F, MPI_INT64_T, hdr_in.data(), F, MPI_INT64_T, comm_, &req),
        "MPI_Ialltoall");
    detail::ep_wait(where, &req, 1, timeout_s_, "size");
  }
  if (!failure.empty()) throw error(failure);
  index_t global_tokens = 0;
  for (std::size_t s = 0; s < R; ++s) {
    const std::int64_t* in = &hdr_in[F * s];
    if (!in[0])
      throw error(dsk::detail::concat(where, ": rank ", s, " rejected its arguments (its error says why); ",
                                      "nothing was exchanged"));
    if (in[3] != K)
      throw error(
          dsk::detail::concat(where, ": argument 'topk_idx': expected the same extent(1) (K) on every ",
                              "rank, got ", K, " here (rank ", rank_, ") and ", in[3], " on rank ", s));
    if (in[5] != opt.capacity || in[6] != std::bit_cast<std::int64_t>(opt.capacity_factor))
      throw error(
          dsk::detail::concat(where, ": argument 'opt': expected the same capacity and capacity_factor on ",
                              "every rank, got ", opt.capacity, " and ", opt.capacity_factor, " here (rank ",
                              rank_, ") and ", in[5], " and ", std::bit_cast<double>(in[6]), " on rank ", s));
    global_tokens += in[4];
  }
  if (global_tokens > detail::max_dispatch_count)
    throw error(dsk::detail::concat(where, ": ", global_tokens, " tokens over all ranks exceed ",
                                    detail::max_dispatch_count));
  const index_t capacity = detail::capacity_of(opt.capacity, opt.capacity_factor, global_tokens, K, experts_);

  // 3. The plan of this rank's tokens (source side) and of what it receives.
  ep_handle& h = out.handle;
  h = ep_handle{};
  h.tokens = T;
  h.slots = K;
  h.hidden = hidden_;
  h.experts = experts_;
  h.global_tokens = global_tokens;
  h.ranks = ranks_;
  h.rank = rank_;
  h.send_count.resize(R);
  h.recv_count.resize(R);
  std::vector<int> pairs_from(R);
  for (std::size_t r = 0; r < R; ++r) {
    h.send_count[r] = detail::mpi_count(where, tokens_to[r], "tokens to one rank");
    h.recv_count[r] = detail::mpi_count(where, hdr_in[F * r + 1], "tokens from one rank");
    pairs_from[r] = detail::mpi_count(where, hdr_in[F * r + 2], "pairs from one rank");
  }
  detail::exclusive_scan(h.send_count, h.send_displ, where);
  detail::exclusive_scan(h.recv_count, h.recv_displ, where);
  const index_t sent = h.send_displ[R - 1] + h.send_count[R - 1];
  const index_t N = h.recv_displ[R - 1] + h.recv_count[R - 1];
  detail::mpi_count(where, N * K, "received (token, slot) entries");
  detail::mpi_count(where, sent * K, "sent (token, slot) entries");
  h.send_token.reserve(static_cast<std::size_t>(sent));
  for (std::size_t r = 0; r < R; ++r)
    for (index_t t = 0; t < T; ++t)
      for (index_t k = 0; k < K; ++k)
        if (const expert_id e = topk_idx(t, k); e >= 0 && rank_of_expert(e) == static_cast<int>(r)) {
          h.send_token.push_back(static_cast<std::int32_t>(t));
          break;
        }

  // 4. Pack and post: rows once per rank, ids made local to the receiving rank (-1 elsewhere), weights 0
  // there.
  ep_exchange ex = make_exchange(where, "payload");
  float* sx = stage<float>(ex, sent * H);
  expert_id* sidx = stage<expert_id>(ex, sent * K);
  float* sw = stage<float>(ex, sent * K);
  for (std::size_t r = 0; r < R; ++r)
    for (index_t i = h.send_displ[r]; i < h.send_displ[r] + h.send_count[r]; ++i) {
      const index_t t = h.send_token[static_cast<std::size_t>(i)];
      if (x) std::copy_n(row_ptr(*x, t), H, sx + i * H);
      for (index_t k = 0; k < K; ++k) {
        const expert_id e = topk_idx(t, k);
        const bool here = e >= 0 && rank_of_expert(e) == static_cast<int>(r);
        sidx[i * K + k] =
            here ? static_cast<expert_id>(e - static_cast<expert_id>(r) * static_cast<expert_id>(EL)) : -1;
        sw[i * K + k] = here ? topk_w(t, k) : 0.0f;
      }
    }
  detail::ensure_shape(out.recv_x, N, H);
  detail::ensure_shape(out.recv_topk_idx, N, K);
  detail::ensure_shape(out.recv_topk_w, N, K);
  std::vector<int> scount_k(R), sdispl_k(R), rcount_k(R), rdispl_k(R);
  for (std::size_t r = 0; r < R; ++r) {
    scount_k[r] = static_cast<int>(h.send_count[r] * K);
    sdispl_k[r] = static_cast<int>(h.send_displ[r] * K);
    rcount_k[r] = static_cast<int>(h.recv_count[r] * K);
    rdispl_k[r] = static_cast<int>(h.recv_displ[r] * K);
  }
  if (x)
    post_alltoallv(where, sx, h.send_count, h.send_displ, out.recv_x.data(), h.recv_count, h.recv_displ, row_,
                   ex.reqs_);
  post_alltoallv(where, sidx, scount_k, sdispl_k, out.recv_topk_idx.data(), rcount_k, rdispl_k, MPI_INT32_T,
                 ex.reqs_);
  post_alltoallv(where, sw, scount_k, sdispl_k, out.recv_topk_w.data(), rcount_k, rdispl_k, MPI_FLOAT,
                 ex.reqs_);

  // 5. On completion: the local plan, and which rows go back in combine.
  ex.finish_ = [this, &out, topk_idx, pairs_to = std::move(pairs_to), pairs_from = std::move(pairs_from),
                capacity, EL, opt]() mutable {
    static constexpr std::string_view where = "moe::ep_communicator::dispatch";
    ep_handle& h = out.handle;
    const auto R = static_cast<std::size_t>(ranks_);
    const index_t K = h.slots, T = h.tokens;
    h.local = plan_dispatch(out.recv_topk_idx, EL, dispatch_options{opt.block, 0.0, capacity});
    // Expert side: kept pairs per source rank, in (received token, slot) order.
    h.back_count.assign(R, 0);
    for (std::size_t s = 0; s < R; ++s)
      for (index_t n = h.recv_displ[s]; n < h.recv_displ[s] + h.recv_count[s]; ++n)
        for (index_t k = 0; k < K; ++k)
          if (const index_t row = h.local.pair_row[static_cast<std::size_t>(n * K + k)]; row >= 0) {
            h.back_row.push_back(row);
            ++h.back_count[s];
          }
    detail::exclusive_scan(h.back_count, h.back_displ, where);
    // Source side: which of its pairs each rank kept. Dropless: all routed pairs; under a capacity, the
    // expert ranks say (a byte per routed pair, in the same order).
    std::vector<std::uint8_t> kept_in;
    std::vector<int> pcount(R), pdispl;
    for (std::size_t r = 0; r < R; ++r) pcount[r] = static_cast<int>(pairs_to[r]);
    detail::exclusive_scan(pcount, pdispl, where);
    if (capacity >= 0) {
      std::vector<int> fdispl;
      detail::exclusive_scan(pairs_from, fdispl, where);
      std::vector<std::uint8_t> kept_out;
      for (std::size_t s = 0; s < R; ++s)
        for (index_t n = h.recv_displ[s]; n < h.recv_displ[s] + h.recv_count[s]; ++n)
          for (index_t k = 0; k < K; ++k)
            if (out.recv_topk_idx(n, k) >= 0)
              kept_out.push_back(h.local.pair_row[static_cast<std::size_t>(n * K + k)] >= 0);
      kept_in.resize(static_cast<std::size_t>(pdispl[R - 1] + pcount[R - 1]));
      std::vector<MPI_Request> reqs;
      post_alltoallv(where, kept_out.data(), pairs_from, fdispl, kept_in.data(), pcount, pdispl, MPI_UINT8_T,
                     reqs);
      wait_all(where, reqs, "capacity");
    }
    h.pair_ret.assign(static_cast<std::size_t>(T * K), -1);
    h.ret_count.assign(R, 0);
    index_t next = 0;
    for (std::size_t r = 0; r < R; ++r) {
      index_t pair = pdispl[r];
      for (index_t t = 0; t < T; ++t)
        for (index_t k = 0; k < K; ++k)
          if (const expert_id e = topk_idx(t, k); e >= 0 && rank_of_expert(e) == static_cast<int>(r)) {
            if (capacity < 0 || kept_in[static_cast<std::size_t>(pair)]) {
              h.pair_ret[static_cast<std::size_t>(t * K + k)] = next++;
              ++h.ret_count[r];
            }
            ++pair;
          }
    }
    detail::exclusive_scan(h.ret_count, h.ret_displ, where);
  };
  return ex;
}

inline void ep_communicator::check_combine(const contract& c, view<const float, 2> ys, const ep_handle& h,
                                           view<const float, 2> topk_w, view<float, 2> y,
                                           view<const float, 2> shared) const {
  const bool has_shared = shared.extent(0) != 0 || shared.extent(1) != 0;
  check_handle(c, h);
  c.extent("ys", ys, 0, h.local.rows(), "handle.local.rows()")
      .extent("ys", ys, 1, hidden_, "the communicator's hidden size")
      .extent("topk_w", topk_w, 0, h.tokens, "handle.tokens")
      .extent("topk_w", topk_w, 1, h.slots, "handle.slots (K)")
      .extent("y", y, 0, h.tokens, "handle.tokens")
      .extent("y", y, 1, hidden_, "the communicator's hidden size")
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("y", y)
      .disjoint("y", y, "ys", ys)
      .disjoint("y", y, "topk_w", topk_w);
  if (has_shared)
    c.extent("shared", shared, 0, h.tokens, "handle.tokens (or empty)")
        .extent("shared", shared, 1, hidden_, "the communicator's hidden size")
        .unit_inner_stride("shared", shared)
        .disjoint_or_same("y", y, "shared", shared);
}

inline void ep_communicator::check_dispatch_backward(const contract& c, view<const float, 2> dxs,
                                                     const ep_handle& h, view<float, 2> dx) const {
  check_handle(c, h);
  c.extent("dxs", dxs, 0, h.local.rows(), "handle.local.rows()")
      .extent("dxs", dxs, 1, hidden_, "the communicator's hidden size")
      .extent("dx", dx, 0, h.tokens, "handle.tokens")
      .extent("dx", dx, 1, hidden_, "the communicator's hidden size")
      .unit_inner_stride("dxs", dxs)
      .unit_inner_stride("dx", dx)
      .disjoint("dx", dx, "dxs", dxs);
}

inline void ep_communicator::check_combine_backward(const contract& c, view<const float, 2> dy,
                                                    view<const float, 2> ys, const ep_handle& h,
                                                    view<const float, 2> recv_topk_w, view<float, 2> dys,
                                                    view<float, 2> dtopk_w) const {
  const index_t H = hidden_, K = h.slots, N = h.received();
  check_handle(c, h);
  c.extent("dy", dy, 0, h.tokens, "handle.tokens")
      .extent("dy", dy, 1, H, "the communicator's hidden size")
      .extent("ys", ys, 0, h.local.rows(), "handle.local.rows()")
      .extent("ys", ys, 1, H, "the communicator's hidden size")
      .extent("recv_topk_w", recv_topk_w, 0, N, "handle.received()")
      .extent("recv_topk_w", recv_topk_w, 1, K, "handle.slots (K)")
      .extent("dys", dys, 0, h.local.rows(), "handle.local.rows()")
      .extent("dys", dys, 1, H, "the communicator's hidden size")
      .extent("dtopk_w", dtopk_w, 0, h.tokens, "handle.tokens")
      .extent("dtopk_w", dtopk_w, 1, K, "handle.slots (K)")
      .unit_inner_stride("dy", dy)
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("dys", dys)
      .disjoint("dys", dys, "dy", dy)
      .disjoint("dys", dys, "ys", ys)
      .disjoint("dys", dys, "recv_topk_w", recv_topk_w)
      .disjoint("dtopk_w", dtopk_w, "dy", dy)
      .disjoint("dtopk_w", dtopk_w, "ys", ys)
      .disjoint("dtopk_w", dtopk_w, "recv_topk_w", recv_topk_w)
      .disjoint("dtopk_w", dtopk_w, "dys", dys);
}

inline float* ep_communicator::return_rows(std::string_view where, view<const float, 2> src,
                                           const ep_handle& h, ep_exchange& ex) const {
  const index_t H = hidden_;
  const auto back = static_cast<index_t>(h.back_row.size());
  float* packed = stage<float>(ex, back * H);
  for (index_t i = 0; i < back; ++i)
    std::copy_n(row_ptr(src, h.back_row[static_cast<std::size_t>(i)]), H, packed + i * H);
  const auto R = static_cast<std::size_t>(ranks_);
  float* returned = stage<float>(ex, (h.ret_displ[R - 1] + h.ret_count[R - 1]) * H);
  post_alltoallv(where, packed, h.back_count, h.back_displ, returned, h.ret_count, h.ret_displ, row_,
                 ex.reqs_);
  return returned;
}

template <host_exec Exec>
ep_exchange ep_communicator::combine_begin(view<const float, 2> ys, const ep_handle& h,
                                           view<const float, 2> topk_w, view<float, 2> y,
                                           view<const float, 2> shared) {
  static constexpr std::string_view where = "moe::ep_communicator::combine";
  const bool has_shared = shared.extent(0) != 0 || shared.extent(1) != 0;
  agree(where, [&] {
    contract c{where};
    check_combine(c, ys, h, topk_w, y, shared);
  });
  ep_exchange ex = make_exchange(where, "combine");
  const float* returned = return_rows(where, ys, h, ex);
  ex.finish_ = [&h, topk_w, y, shared, has_shared, returned, H = hidden_] {
    using S = exec_packet_t<Exec>;
    const index_t K = h.slots;
    parallel_for_chunks(0, h.tokens, detail::grain_for(H * (K + 1)), [&](index_t lo, index_t hi) {
      for (index_t t = lo; t < hi; ++t) {
        float* dst = row_ptr(y, t);
        if (has_shared) {
          if (row_ptr(shared, t) != dst) std::copy_n(row_ptr(shared, t), H, dst);
        } else {
          std::fill_n(dst, H, 0.0f);
        }
        for (index_t k = 0; k < K; ++k)
          if (const index_t p = h.pair_ret[static_cast<std::size_t>(t * K + k)]; p >= 0)
            detail::axpy<S>(topk_w(t, k), returned + p * H, dst, H);
      }
    });
  };
  return ex;
}

template <host_exec Exec>
void ep_communicator::dispatch_backward(view<const float, 2> dxs, const ep_handle& h, view<float, 2> dx) {
  static constexpr std::string_view where = "moe::ep_communicator::dispatch_backward";
  agree(where, [&] {
    contract c{where};
    check_dispatch_backward(c, dxs, h, dx);
  });
  ep_exchange ex = make_exchange(where, "dispatch backward");
  const float* returned = return_rows(where, dxs, h, ex);
  ex.finish_ = [&h, dx, returned, H = hidden_] {
    using S = exec_packet_t<Exec>;
    const index_t K = h.slots;
    parallel_for_chunks(0, h.tokens, detail::grain_for(H * (K + 1)), [&](index_t lo, index_t hi) {
      for (index_t t = lo; t < hi; ++t) {
        float* dst = row_ptr(dx, t);
        std::fill_n(dst, H, 0.0f);
        for (index_t k = 0; k < K; ++k)
          if (const index_t p = h.pair_ret[static_cast<std::size_t>(t * K + k)]; p >= 0)
            detail::axpy<S>(1.0f, returned + p * H, dst, H);
      }
    });
  };
  ex.wait();
}

template <host_exec Exec>
void ep_communicator::combine_backward(view<const float, 2> dy, view<const float, 2> ys, const ep_handle& h,
                                       view<const float, 2> recv_topk_w, view<float, 2> dys,
                                       view<float, 2> dtopk_w) {
  static constexpr std::string_view where = "moe::ep_communicator::combine_backward";
  const index_t H = hidden_, K = h.slots, N = h.received();
  agree(where, [&] {
    contract c{where};
    check_combine_backward(c, dy, ys, h, recv_topk_w, dys, dtopk_w);
  });
  const auto R = static_cast<std::size_t>(ranks_);
  // dy of each token to the ranks that hold its experts, along the dispatch's plan.
  ep_exchange ex = make_exchange(where, "combine backward");
  const auto sent = static_cast<index_t>(h.send_token.size());
  float* sdy = stage<float>(ex, sent * H);
  for (index_t i = 0; i < sent; ++i)
    std::copy_n(row_ptr(dy, h.send_token[static_cast<std::size_t>(i)]), H, sdy + i * H);
  float* rdy = stage<float>(ex, N * H);
  post_alltoallv(where, sdy, h.send_count, h.send_displ, rdy, h.recv_count, h.recv_displ, row_, ex.reqs_);
  wait_all(where, ex.reqs_, "combine backward");
  using S = exec_packet_t<Exec>;
  const dispatch_handle& l = h.local;
  parallel_for_chunks(0, l.rows(), detail::grain_for(H), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) {
      float* dst = row_ptr(dys, r);
      std::fill_n(dst, H, 0.0f);
      if (l.row_token[r] >= 0)
        detail::axpy<S>(recv_topk_w(l.row_token[r], l.row_slot[r]), rdy + l.row_token[r] * H, dst, H);
    }
  });
  // dtopk_w of each kept pair, computed where its expert output is, returned in the combine's order.
  const auto back = static_cast<index_t>(h.back_row.size());
  float* sdot = stage<float>(ex, back);
  for (index_t i = 0; i < back; ++i) {
    const index_t r = h.back_row[static_cast<std::size_t>(i)];
    sdot[i] = detail::dot<S>(rdy + l.row_token[r] * H, row_ptr(ys, r), H);
  }
  std::vector<float> rdot(static_cast<std::size_t>(h.ret_displ[R - 1] + h.ret_count[R - 1]));
  post_alltoallv(where, sdot, h.back_count, h.back_displ, rdot.data(), h.ret_count, h.ret_displ, MPI_FLOAT,
                 ex.reqs_);
  wait_all(where, ex.reqs_, "combine backward");
  for (index_t t = 0; t < h.tokens; ++t)
    for (index_t k = 0; k < K; ++k) {
      const index_t p = h.pair_ret[static_cast<std::size_t>(t * K + k)];
      dtopk_w(t, k) = p >= 0 ? rdot[static_cast<std::size_t>(p)] : 0.0f;
    }
}

DSK_ISA_END

}  // namespace dsk::moe
