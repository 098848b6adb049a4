// Catch2 main of the native CUDA tests: exits with 77 (ctest: skipped) and a message when no GPU is usable.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <cstdio>

int main(int argc, char* argv[]) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    std::printf("test_cuda: skipped: no usable CUDA device (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount returned 0");
    return 77;
  }
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
    std::printf("test_cuda: device 0: %s, sm_%d%d, %.1f GiB\n", p.name, p.major, p.minor,
                static_cast<double>(p.totalGlobalMem) / (1u << 30));
  return Catch::Session().run(argc, argv);
}
