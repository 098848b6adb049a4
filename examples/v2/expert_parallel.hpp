// dsk_v2 expert-parallel over MPI (mpirun -np R dsk_v2 --expert-parallel ...): model.hpp's expert_exchange
// on moe::ep_communicator. Needs dsk::mpi; main.cpp includes it when the runner is built with MPI.
#pragma once

#include <mpi.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "dsk/moe/expert_parallel.hpp"
#include "model.hpp"

namespace dsk_v2 {

// The exchange of a model over the ranks of an MPI communicator (every rank runs the model; rank r holds
// experts [r * E / R, (r + 1) * E / R)). The ep_communicator is made by configure
// (model::set_expert_parallel), when the experts and hidden size are known.
class mpi_expert_exchange final : public expert_exchange {
 public:
  explicit mpi_expert_exchange(MPI_Comm comm, double timeout_s = 300.0) : comm_(comm), timeout_s_(timeout_s) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &ranks_);
  }
  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  void configure(index_t experts, index_t hidden) override {
    ep_.emplace(comm_, experts, hidden, timeout_s_);
  }
  std::pair<index_t, index_t> token_range(index_t tokens) const override { return ep().token_range(tokens); }
  void dispatch(view<const float, 2> x, view<const moe::expert_id, 2> topk_idx,
                view<const float, 2> topk_w) override {
    ep().dispatch(x, topk_idx, topk_w, out_);
  }
  view<const float, 2> received() const override { return out_.recv_x.cview(); }
  const moe::dispatch_handle& local() const override { return out_.handle.local; }
  void combine(view<const float, 2> ys, view<const float, 2> topk_w, view<float, 2> y,
               view<const float, 2> shared) override {
    ep().combine(ys, out_.handle, topk_w, y, shared);
  }
  void allgather_rows(view<const float, 2> part, view<float, 2> all) override {
    ep().allgather_rows(part, all);
  }
  std::vector<std::int64_t> allgather(std::int64_t value) override { return ep().allgather(value); }

 private:
  moe::ep_communicator& ep() const {
    if (!ep_)
      throw dsk::error("dsk_v2::mpi_expert_exchange: used before configure (model::set_expert_parallel)");
    return *ep_;
  }
  MPI_Comm comm_;
  double timeout_s_;
  int rank_ = 0, ranks_ = 1;
  mutable std::optional<moe::ep_communicator> ep_;
  moe::ep_dispatched out_;  // the last dispatch's received rows and handle (combine reads them)
};

}  // namespace dsk_v2
