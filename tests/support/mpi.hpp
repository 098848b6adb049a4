// Helpers of the tests that run under mpirun (dsk_add_mpi_test): this process's rank and the job's size in
// MPI_COMM_WORLD, and a collective "did it hold on every rank" for checks that must not let the ranks take
// different paths through a test (a rank that left a test case early would leave the others waiting).
#pragma once

#include <mpi.h>

namespace dsk::test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
// Whether `ok` holds on every rank (collective: every rank must call it).
inline bool on_all_ranks(bool ok) {
  int mine = ok, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all != 0;
}

}  // namespace dsk::test
