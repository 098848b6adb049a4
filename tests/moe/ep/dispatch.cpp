// moe::ep_communicator under mpirun (1, 2 and 4 ranks): every rank builds the same global problem from the
// same seed, holds its contiguous share of the tokens, and compares the expert-parallel results with the
// single-process functions of dsk/moe/dispatch.hpp run on the whole problem, bit for bit (memcmp): the
// received rows and ids, the local dispatch (counts, padded segments, gathered rows), combine (with and
// without shared experts, blocking and overlapped), dispatch backward and combine backward. Failures use
// CHECK, not REQUIRE: a rank that left a test case early would leave the others waiting in a collective.
#include <mpi.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "dsk/moe/expert_parallel.hpp"
#include "moe/common.hpp"
#include "moe/ep/cases.hpp"
#include "support/mpi.hpp"

namespace {
using dsk::test::on_all_ranks;
using dsk::test::world_rank;
using dsk::test::world_size;
using namespace dsk;
using namespace dsk::moe;
using namespace ep_test;

void run_case(const ep_case& c, std::uint64_t seed) {
  const int R = world_size(), me = world_rank();
  const index_t E = c.experts_per_rank * R, H = c.H, K = c.K, T = c.tokens;
  INFO(describe(c) << " ranks=" << R << " rank=" << me);
  // The global problem, the same on every rank.
  const auto x = moe_test::random_tensor(T, H, seed);
  const auto idx = make_routing(c, E, seed + 1);
  const auto w = moe_test::random_tensor(T, K, seed + 2, 0.0f, 1.0f);
  const auto split_n = token_split(c, R);
  std::vector<index_t> begin(static_cast<std::size_t>(R) + 1, 0);
  std::partial_sum(split_n.begin(), split_n.end(), begin.begin() + 1);
  const index_t t0 = begin[me], Tm = split_n[me];

  // Single-process reference over all tokens.
  const dispatch_handle g =
      plan_dispatch(idx, E, dispatch_options{c.opt.block, c.opt.capacity_factor, c.opt.capacity});
  tensor<float, 2> xs_g({g.rows(), H}, uninitialized);
  dispatch_tokens(x, g, xs_g);
  const auto ys_g = moe_test::random_tensor(g.rows(), H, seed + 3);
  const auto shared_g = moe_test::random_tensor(T, H, seed + 4);
  tensor<float, 2> y_g({T, H}, uninitialized), ysh_g({T, H}, uninitialized);
  combine_tokens(ys_g, g, w, y_g);
  combine_tokens(ys_g, g, w, ysh_g, shared_g);
  const auto dxs_g = moe_test::random_tensor(g.rows(), H, seed + 5);
  tensor<float, 2> dx_g({T, H}, uninitialized);
  dispatch_tokens_backward(dxs_g, g, dx_g);
  const auto dy_g = moe_test::random_tensor(T, H, seed + 6);
  tensor<float, 2> dys_g({g.rows(), H}, uninitialized), dw_g({T, K}, uninitialized);
  combine_tokens_backward(dy_g, ys_g, g, w, dys_g, dw_g);

  // This rank's share, and the expert-parallel run.
  const auto x_m = rows_of(x, t0, Tm);
  const auto idx_m = rows_of(idx, t0, Tm);
  const auto w_m = rows_of(w, t0, Tm);
  ep_communicator ep(MPI_COMM_WORLD, E, H);
  ep_dispatched d;
  ep.dispatch(x_m, idx_m, w_m, d, c.opt);
  const ep_handle& h = d.handle;
  CHECK(h.global_tokens == T);

  // Received rows: every token (in global order) with an expert here, ids local or -1, weights or 0.
  const index_t first = ep.first_expert(), EL = ep.local_experts();
  std::vector<float> want_x, want_w;
  std::vector<expert_id> want_idx;
  for (index_t t = 0; t < T; ++t) {
    bool here = false;
    for (index_t k = 0; k < K; ++k) here |= idx(t, k) >= first && idx(t, k) < first + EL;
    if (!here) continue;
    want_x.insert(want_x.end(), x.data() + t * H, x.data() + (t + 1) * H);
    for (index_t k = 0; k < K; ++k) {
      const bool local = idx(t, k) >= first && idx(t, k) < first + EL;
      want_idx.push_back(local ? static_cast<expert_id>(idx(t, k) - first) : -1);
      want_w.push_back(local ? w(t, k) : 0.0f);
    }
  }
  const auto N = static_cast<index_t>(want_x.size()) / H;
  const index_t row0 = g.offset[first], rows = g.offset[first + EL] - row0;
  // The comparisons below index by these sizes: every rank stops (together) when one rank's are wrong.
  CHECK(d.recv_x.extent(0) == N);
  CHECK(h.local.rows() == rows);
  if (!on_all_ranks(d.recv_x.extent(0) == N && d.recv_topk_idx.extent(0) == N && h.local.rows() == rows))
    return;
  CHECK(same_bits(d.recv_x.data(), want_x.data(), N * H));
  CHECK(same_bits(d.recv_topk_idx.data(), want_idx.data(), N * K));
  CHECK(same_bits(d.recv_topk_w.data(), want_w.data(), N * K));

  // The local plan is the global one's segments of the local experts.
  for (index_t e = 0; e < EL; ++e) {
    CHECK(h.local.count[e] == g.count[first + e]);
    CHECK(h.local.offset[e + 1] - h.local.offset[e] == g.offset[first + e + 1] - g.offset[first + e]);
  }
  tensor<float, 2> xs({rows, H}, uninitialized);
  dispatch_tokens(d.recv_x, h.local, xs);
  CHECK(same_rows(xs_g, row0, row0 + rows, xs.data()));

  // combine: the local experts' outputs are the global ones' rows.
  const auto ys = rows_of(ys_g, row0, rows);
  tensor<float, 2> y({Tm, H}, uninitialized);
  ep.combine(ys, h, w_m, y);
  CHECK(same_rows(y_g, t0, t0 + Tm, y.data()));
  // Overlapped, with shared experts computed in place while the rows travel.
  tensor<float, 2> ysh({Tm, H}, uninitialized);
  {
    auto ex = ep.combine_begin(ys, h, w_m, ysh, ysh);
    CHECK(ex.pending());
    std::copy_n(shared_g.data() + t0 * H, Tm * H, ysh.data());
    ex.wait();
    CHECK_FALSE(ex.pending());
  }
  CHECK(same_rows(ysh_g, t0, t0 + Tm, ysh.data()));

  // Backward passes.
  const auto dxs = rows_of(dxs_g, row0, rows);
  tensor<float, 2> dx({Tm, H}, uninitialized);
  ep.dispatch_backward(dxs, h, dx);
  CHECK(same_rows(dx_g, t0, t0 + Tm, dx.data()));
  const auto dy = rows_of(dy_g, t0, Tm);
  tensor<float, 2> dys({rows, H}, uninitialized), dw({Tm, K}, uninitialized);
  ep.combine_backward(dy, ys, h, d.recv_topk_w, dys, dw);
  CHECK(same_rows(dys_g, row0, row0 + rows, dys.data()));
  CHECK(same_rows(dw_g, t0, t0 + Tm, dw.data()));

  // A second dispatch through the same buffers (reused, the handle rebuilt) gives the same rows.
  ep.dispatch(x_m, idx_m, w_m, d, c.opt);
  CHECK(same_bits(d.recv_x.data(), want_x.data(), N * H));
}

}  // namespace

TEST_CASE("ep_communicator equals the single-process dispatch, combine and backward bit for bit", "[ep]") {
  const std::vector<ep_case> cases = standard_cases();
  std::uint64_t seed = 700;
  for (const auto& c : cases) run_case(c, seed += 10);
}
