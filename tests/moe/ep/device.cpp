// moe::ep_device_communicator under mpirun, against moe::ep_communicator (itself checked against the
// single-process functions in dispatch.cpp) on the same shares of the same problems: received rows, ids and
// weights, the plan's tables, combine (with shared experts in place), dispatch backward and combine backward
// (dtopk_w included: the device dot runs the packet layers' lane order) bit for bit. Compiled
// by g++ into test_moe_ep (the CUDA kernels under the SIMT emulation, staged transport) and by nvcc into
// test_cuda_ep (a GPU; staged and, with NCCL, ep_nccl_transport). CHECK, not REQUIRE: every rank must reach
// every collective.
#include <mpi.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <vector>

#include "dsk/moe/cuda/expert_parallel.cuh"
#include "moe/ep/cases.hpp"
#include "support/mpi.hpp"

namespace {
using dsk::test::on_all_ranks;
using dsk::test::world_rank;
using dsk::test::world_size;
using namespace dsk;
using namespace dsk::moe;
using namespace ep_test;

template <class T>
bool same_tensor(const tensor<T, 2>& want, const device::tensor<T, 2>& got) {
  if (want.extent(0) != got.extent(0) || want.extent(1) != got.extent(1)) return false;
  const auto g = device::download(got);
  return same_bits(want.data(), g.data(), want.size());
}

template <class Transport>
void run_device_case(const ep_case& c, std::uint64_t seed) {
  const int R = world_size(), me = world_rank();
  const index_t E = c.experts_per_rank * R, H = c.H, K = c.K, T = c.tokens;
  INFO(describe(c) << " ranks=" << R << " rank=" << me << " transport=" << Transport::name());
  const auto x = moe_test::random_tensor(T, H, seed);
  const auto idx = make_routing(c, E, seed + 1);
  const auto w = moe_test::random_tensor(T, K, seed + 2, 0.0f, 1.0f);
  const auto split_n = token_split(c, R);
  std::vector<index_t> begin(static_cast<std::size_t>(R) + 1, 0);
  std::partial_sum(split_n.begin(), split_n.end(), begin.begin() + 1);
  const index_t t0 = begin[me], Tm = split_n[me];
  const auto x_m = rows_of(x, t0, Tm), w_m = rows_of(w, t0, Tm);
  const auto idx_m = rows_of(idx, t0, Tm);

  // The host communicator's results.
  ep_communicator ep(MPI_COMM_WORLD, E, H);
  ep_dispatched d;
  ep.dispatch(x_m, idx_m, w_m, d, c.opt);
  const ep_handle& h = d.handle;
  const index_t rows = h.local.rows();
  const auto ys = moe_test::random_tensor(rows, H, seed + 3 + static_cast<std::uint64_t>(me) * 97);
  const auto shared = moe_test::random_tensor(Tm, H, seed + 4 + static_cast<std::uint64_t>(me) * 97);
  const auto dxs = moe_test::random_tensor(rows, H, seed + 5 + static_cast<std::uint64_t>(me) * 97);
  const auto dy = moe_test::random_tensor(Tm, H, seed + 6 + static_cast<std::uint64_t>(me) * 97);
  tensor<float, 2> y({Tm, H}, uninitialized), ysh({Tm, H}, uninitialized), dx({Tm, H}, uninitialized);
  tensor<float, 2> dys({rows, H}, uninitialized), dw({Tm, K}, uninitialized);
  ep.combine(ys, h, w_m, y);
  ep.combine(ys, h, w_m, ysh, shared);
  ep.dispatch_backward(dxs, h, dx);
  ep.combine_backward(dy, ys, h, d.recv_topk_w, dys, dw);

  // The device communicator's, on device copies of the same inputs.
  Transport transport(ep);
  ep_device_communicator dev(ep, transport);
  ep_device_dispatched dd;
  const auto x_d = device::upload(x_m), w_d = device::upload(w_m);
  const auto idx_d = device::upload(idx_m);
  dev.dispatch(x_d, idx_d, w_d, dd, c.opt);
  CHECK(dd.handle.send_token == h.send_token);
  CHECK(dd.handle.back_row == h.back_row);
  CHECK(dd.handle.pair_ret == h.pair_ret);
  CHECK(dd.handle.local.offset == h.local.offset);
  CHECK(same_tensor(d.recv_x, dd.recv_x));
  CHECK(same_tensor(d.recv_topk_idx, dd.recv_topk_idx));
  CHECK(same_tensor(d.recv_topk_w, dd.recv_topk_w));
  if (!on_all_ranks(dd.handle.local.rows() == rows && dd.recv_topk_w.extent(0) == h.received())) return;

  const auto ys_d = device::upload(ys), dxs_d = device::upload(dxs), dy_d = device::upload(dy);
  device::tensor<float, 2> y_d(Tm, H), dx_d(Tm, H), dys_d(rows, H), dw_d(Tm, K);
  dev.combine(ys_d, dd, w_d, y_d);
  CHECK(same_tensor(y, y_d));
  auto ysh_d = device::upload(shared);  // shared experts' output, summed into in place
  dev.combine(ys_d, dd, w_d, ysh_d, ysh_d);
  CHECK(same_tensor(ysh, ysh_d));
  dev.dispatch_backward(dxs_d, dd, dx_d);
  CHECK(same_tensor(dx, dx_d));
  dev.combine_backward(dy_d, ys_d, dd, dd.recv_topk_w, dys_d, dw_d);
  CHECK(same_tensor(dys, dys_d));
  CHECK(same_tensor(dw, dw_d));

  // A second dispatch through the same buffers gives the same rows.
  dev.dispatch(x_d, idx_d, w_d, dd, c.opt);
  CHECK(same_tensor(d.recv_x, dd.recv_x));
}

std::vector<ep_case> device_cases() {
  auto cases = standard_cases();
  cases.push_back({48, 2, 2, 300, routing::random_with_holes, split::even, {}});  // blocks of 256 + a tail
  cases.push_back({33, 3, 1, 1, routing::all_to_last_rank, split::uneven_with_empty, {1, 0.0, 4}});
  return cases;
}

template <class Transport>
void run_device_cases() {
  std::uint64_t seed = 900;
  for (const auto& c : device_cases()) run_device_case<Transport>(c, seed += 10);
}

// A rank's bad argument is reported on every rank before any row moves, and the communicator stays usable.
template <class Transport>
void run_device_errors() {
  const int R = world_size(), me = world_rank();
  const index_t E = 2 * R, H = 8, T = 5, K = 2;
  ep_communicator ep(MPI_COMM_WORLD, E, H);
  Transport transport(ep);
  ep_device_communicator dev(ep, transport);
  const auto x = device::upload(moe_test::random_tensor(T, H, 11));
  const auto w = device::upload(moe_test::random_tensor(T, K, 12, 0.0f, 1.0f));
  tensor<expert_id, 2> idx_h(T, K);
  for (index_t t = 0; t < T; ++t)
    for (index_t k = 0; k < K; ++k) idx_h(t, k) = static_cast<expert_id>((t + k) % E);
  const auto idx = device::upload(idx_h);
  ep_device_dispatched dd;
  dev.dispatch(x, idx, w, dd);
  const auto ys = device::upload(moe_test::random_tensor(dd.handle.local.rows(), H, 13));
  // y with one row too many on the last rank only: every rank throws; the last names y.
  device::tensor<float, 2> y(T + (me == R - 1), H);
  bool threw = false;
  try {
    dev.combine(ys, dd, w, y);
  } catch (const dsk::error& e) {
    threw = true;
    if (me == R - 1) CHECK_THAT(e.what(), Catch::Matchers::Contains("'y'"));
  }
  CHECK(threw);
  // An id outside [-1, E) on rank 0 only: the plan rejects it on every rank.
  tensor<expert_id, 2> bad_h = idx_h;
  if (me == 0) bad_h(T - 1, 1) = static_cast<expert_id>(E);
  const auto bad = device::upload(bad_h);
  threw = false;
  try {
    dev.dispatch(x, bad, w, dd);
  } catch (const dsk::error& e) {
    threw = true;
    if (me == 0) CHECK_THAT(e.what(), Catch::Matchers::Contains("topk_idx"));
  }
  CHECK(threw);
  // Still usable afterwards.
  dev.dispatch(x, idx, w, dd);
  device::tensor<float, 2> y_ok(T, H);
  dev.combine(ys, dd, w, y_ok);
  ep_dispatched d;
  ep.dispatch(device::download(x), idx_h, device::download(w), d);
  tensor<float, 2> want(T, H);
  ep.combine(device::download(ys), d.handle, device::download(w), want);
  CHECK(same_tensor(want, y_ok));
}

}  // namespace

TEST_CASE("ep_device_communicator (staged transport) equals ep_communicator", "[ep][device]") {
  run_device_cases<ep_staged_transport>();
  run_device_errors<ep_staged_transport>();
}

#if DSK_EP_NCCL
TEST_CASE("ep_device_communicator (NCCL transport) equals ep_communicator", "[ep][device][nccl]") {
  run_device_cases<ep_nccl_transport>();
  run_device_errors<ep_nccl_transport>();
}
#endif
