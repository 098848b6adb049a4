// The fault test's program (run by fault_test.sh under mpirun): the last rank dies in the middle of an
// expert-parallel step, either between dispatch and combine (argv[2] = "between": the others then wait in the
// combine's argument check) or inside a dispatch, after its payload was posted ("inside": the others wait for
// the payload it never completes). The survivors must get a dsk::error within their timeout (argv[1]
// seconds), print it and leave; the script checks that each did. They leave with _exit: MPI_Finalize with a
// dead peer may itself block.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dsk/moe/expert_parallel.hpp"

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const double timeout_s = argc > 1 ? std::atof(argv[1]) : 5.0;
  const bool inside = argc > 2 && std::strcmp(argv[2], "inside") == 0;
  using namespace dsk;
  const index_t T = 16, K = 2, H = 32, E = 2 * size;
  try {
    moe::ep_communicator ep(MPI_COMM_WORLD, E, H, timeout_s);
    tensor<float, 2> x(T, H), w(T, K), y(T, H);
    tensor<moe::expert_id, 2> idx(T, K);
    for (index_t t = 0; t < T; ++t)
      for (index_t k = 0; k < K; ++k) {
        idx(t, k) = static_cast<moe::expert_id>((t * 3 + k) % E);
        w(t, k) = 0.5f;
      }
    for (index_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 7);
    moe::ep_dispatched d;
    if (inside && rank == size - 1) {
      auto pending = ep.dispatch_begin(x, idx, w, d);
      std::printf("rank %d: exiting inside a dispatch\n", rank);
      std::fflush(stdout);
      _exit(3);
    }
    ep.dispatch(x, idx, w, d);
    std::printf("rank %d: dispatched %lld rows\n", rank, static_cast<long long>(d.handle.received()));
    std::fflush(stdout);
    if (rank == size - 1) {
      std::printf("rank %d: exiting in the middle of the step\n", rank);
      std::fflush(stdout);
      _exit(3);
    }
    tensor<float, 2> ys(d.handle.local.rows(), H);
    ep.combine(ys, d.handle, w, y);
    std::printf("rank %d: combine returned without an error\n", rank);
  } catch (const error& e) {
    std::printf("rank %d: error: %s\n", rank, e.what());
    std::fflush(stdout);
    // A non-zero status: mpirun runs with orte_abort_on_non_zero_status 0 and leaves the other survivors
    // alone, whereas a rank that exits 0 without MPI_Finalize counts as an improper exit and makes mpirun kill
    // the job (a survivor whose own deadline came a few milliseconds later was killed before it could report).
    _exit(1);
  }
  std::fflush(stdout);
  _exit(0);
}
