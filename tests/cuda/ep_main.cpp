// Main of test_cuda_ep: MPI (a singleton, or under mpirun with one GPU per rank), then Catch2 on every rank;
// exits with 77 (ctest: skipped) and a message when no GPU is usable, or when there are fewer GPUs than ranks
// (NCCL needs one GPU per rank). Compiled by the host compiler (Catch2's runner under nvcc took 28 s).
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <cuda_runtime_api.h>

#include <catch2/catch.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "%s: MPI_Init_thread failed\n", argv[0]);
    return 2;
  }
  int rank = 0, ranks = 1, gpus = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const cudaError_t e = cudaGetDeviceCount(&gpus);
  if (e != cudaSuccess || gpus < ranks) {
    if (rank == 0)
      std::printf("test_cuda_ep: skipped: %d rank(s) need as many usable CUDA devices, found %d (%s)\n",
                  ranks, e == cudaSuccess ? gpus : 0,
                  e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount");
    MPI_Finalize();
    return 77;
  }
  cudaSetDevice(rank);
  int rc = 0;
  {
    Catch::Session session;
    rc = session.applyCommandLine(argc, argv);
    if (rc == 0) rc = session.run();
  }
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst != 0 ? 1 : 0;
}
