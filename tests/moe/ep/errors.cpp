// Bad input to moe::ep_communicator: every rank throws a dsk::error (the rank whose argument was wrong names
// it, the others name that rank), nothing hangs, and the communicator stays usable after a rejected call.
#include <mpi.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "dsk/moe/expert_parallel.hpp"
#include "moe/common.hpp"
#include "support/mpi.hpp"

namespace {
using dsk::test::world_rank;
using dsk::test::world_size;
using namespace dsk;
using namespace dsk::moe;
using Catch::Matchers::Contains;

// A small routing over E experts: token t to experts t % E and (t + 1) % E.
tensor<expert_id, 2> routing(index_t T, index_t K, index_t E) {
  tensor<expert_id, 2> idx(T, K);
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k) idx(t, k) = static_cast<expert_id>((t + k) % E);
  return idx;
}

// The message a rank gets when rank `bad` rejected its arguments.
std::string rejected_by(int bad) { return dsk::detail::concat("rank ", bad, " rejected its arguments"); }

}  // namespace

TEST_CASE("ep_communicator rejects a configuration the ranks disagree on, on every rank", "[ep]") {
  const int R = world_size(), me = world_rank();
  CHECK_THROWS_WITH(ep_communicator(MPI_COMM_WORLD, 0, 8), Contains("argument 'experts'"));
  CHECK_THROWS_WITH(ep_communicator(MPI_COMM_WORLD, 4 * R, 0), Contains("argument 'hidden'"));
  if (R > 1) {
    CHECK_THROWS_WITH(ep_communicator(MPI_COMM_WORLD, me == 0 ? 8 * R : 4 * R, 8),
                      Contains("argument 'experts'") && Contains("on rank"));
    CHECK_THROWS_WITH(ep_communicator(MPI_COMM_WORLD, 4 * R, me == R - 1 ? 16 : 8),
                      Contains("argument 'hidden'") && Contains(dsk::detail::concat("on rank ", R - 1)));
    CHECK_THROWS_WITH(ep_communicator(MPI_COMM_WORLD, R + 1, 8),
                      Contains("argument 'experts'") && Contains("multiple of the communicator's size"));
  }
  CHECK_NOTHROW(ep_communicator(MPI_COMM_WORLD, 2 * R, 8));
}

TEST_CASE("ep_communicator::dispatch rejects bad routings and shapes on every rank", "[ep]") {
  const int R = world_size(), me = world_rank(), last = R - 1;
  const index_t E = 2 * R, H = 6, T = 5, K = 2;
  ep_communicator ep(MPI_COMM_WORLD, E, H, 60.0);
  const auto x = moe_test::random_tensor(T, H, 11);
  const auto w = moe_test::random_tensor(T, K, 12, 0.0f, 1.0f);
  auto idx = routing(T, K, E);
  ep_dispatched d;

  // An expert id out of range on the last rank only.
  auto bad = idx;
  if (me == last) bad(3, 1) = static_cast<expert_id>(E);
  if (me == last)
    CHECK_THROWS_WITH(ep.dispatch(x, bad, w, d), Contains("argument 'topk_idx'") && Contains("(3, 1)"));
  else
    CHECK_THROWS_WITH(ep.dispatch(x, bad, w, d), Contains(rejected_by(last)));

  // x with the wrong hidden size on rank 0.
  const auto x_wide = moe_test::random_tensor(T, me == 0 ? H + 1 : H, 13);
  if (me == 0)
    CHECK_THROWS_WITH(ep.dispatch(x_wide, idx, w, d), Contains("argument 'x'"));
  else
    CHECK_THROWS_WITH(ep.dispatch(x_wide, idx, w, d), Contains(rejected_by(0)));

  // Shapes that disagree with each other, and options out of range.
  CHECK_THROWS_WITH(ep.dispatch(x, idx, moe_test::random_tensor(T, K + 1, 14), d),
                    Contains("argument 'topk_w'"));
  CHECK_THROWS_WITH(ep.dispatch(x, idx, w, d, {0, 0.0, -1}), Contains("argument 'opt.block'"));

  if (R > 1) {
    // Ranks that disagree on K, or on the capacity: each rank names the other's value.
    const index_t Km = me == 0 ? 1 : 2;
    const auto idx_k = routing(T, Km, E);
    const auto w_k = moe_test::random_tensor(T, Km, 15);
    CHECK_THROWS_WITH(ep.dispatch(x, idx_k, w_k, d), Contains("same extent(1) (K) on every rank"));
    CHECK_THROWS_WITH(ep.dispatch(x, idx, w, d, {1, 0.0, me == last ? 2 : 3}),
                      Contains("same capacity and capacity_factor on every rank"));
  }

  // After rejected calls nothing was exchanged: the communicator still works.
  CHECK_NOTHROW(ep.dispatch(x, idx, w, d));
  CHECK(d.handle.global_tokens == T * R);
}

TEST_CASE("ep_communicator::combine and the backward passes reject bad shapes and handles on every rank",
          "[ep]") {
  const int R = world_size(), me = world_rank(), last = R - 1;
  const index_t E = 2 * R, H = 6, T = 7, K = 2;
  ep_communicator ep(MPI_COMM_WORLD, E, H, 60.0);
  const auto x = moe_test::random_tensor(T, H, 21);
  const auto w = moe_test::random_tensor(T, K, 22, 0.0f, 1.0f);
  const auto idx = routing(T, K, E);
  ep_dispatched d;
  ep.dispatch(x, idx, w, d);
  const index_t rows = d.handle.local.rows();
  const auto ys = moe_test::random_tensor(rows, H, 23);
  tensor<float, 2> y(T, H);

  // ys with a row too few on the last rank.
  const auto ys_short = moe_test::random_tensor(me == last ? rows - 1 : rows, H, 24);
  if (me == last)
    CHECK_THROWS_WITH(ep.combine(ys_short, d.handle, w, y), Contains("argument 'ys'"));
  else
    CHECK_THROWS_WITH(ep.combine(ys_short, d.handle, w, y), Contains(rejected_by(last)));

  // y overlapping ys (one buffer) on every rank.
  tensor<float, 2> both(std::max(rows, T), H);
  const view<float, 2> all = both;
  CHECK_THROWS_WITH(ep.combine(all.slice(0, 0, rows), d.handle, w, all.slice(0, 0, T)),
                    Contains("argument 'y'"));

  // A tampered handle on rank 0: a returned row outside the local rows.
  // (Rank 0 owns experts 0 and 1, which every rank's token 0 uses: it returns rows.)
  ep_handle tampered = d.handle;
  CHECK_FALSE(tampered.back_row.empty());
  if (me == 0 && !tampered.back_row.empty()) tampered.back_row[0] = rows;
  if (me == 0)
    CHECK_THROWS_WITH(ep.dispatch_backward(ys, tampered, y), Contains("argument 'handle'"));
  else
    CHECK_THROWS_WITH(ep.dispatch_backward(ys, tampered, y), Contains(rejected_by(0)));

  // The wrong dtopk_w shape in combine backward.
  tensor<float, 2> dys(rows, H), dw(T, K + 1);
  CHECK_THROWS_WITH(ep.combine_backward(y, ys, d.handle, d.recv_topk_w, dys, dw),
                    Contains("argument 'dtopk_w'"));

  // And the communicator still works.
  CHECK_NOTHROW(ep.combine(ys, d.handle, w, y));
}
