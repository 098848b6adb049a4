// Compile-time configuration of gemm::matmul / gemm::swiglu, one structural type for both backends (host:
// dsk::host or a packet layer; CUDA: dsk::cuda in gemm/cuda/matmul.cuh), and the weight-operand concept.
// ISA-independent and device-safe (no host kernels here); checked through the kernels in tests/gemm and
// tests/simt/gemm.cpp.
#pragma once

#include <cstdint>
#include <string>

#include "dsk/core/config.hpp"

namespace dsk::gemm {

// Which path a product takes.
enum class algorithm : std::uint8_t {
  automatic,  // gemv for M <= gemv_max_rows, the large-M GEMM otherwise
  gemv,       // stream the weights once per (up to 8) rows of x, any M (meant for decode). Both backends.
  blocked,    // the large-M GEMM for any M: host, the packed cache-blocked GEMM; CUDA, cuBLASLt (native only:
              // the SIMT emulation runs the GEMV kernel for every M)
  cublaslt = blocked,  // the CUDA name of `blocked`
};

// matmul<matmul_config{...}>(...) / matmul<{.algo = gemm::algorithm::gemv}, dsk::cuda>(...). Both fields are
// used by both backends.
struct matmul_config {
  algorithm algo = algorithm::automatic;
  index_t gemv_max_rows = 8;  // automatic: M <= gemv_max_rows takes the GEMV path

  friend constexpr bool operator==(const matmul_config&, const matmul_config&) = default;
};

// For dsk::dispatch messages.
inline std::string to_string(const matmul_config& c) {
  const char* a = c.algo == algorithm::automatic ? "automatic"
                  : c.algo == algorithm::gemv    ? "gemv"
                                                 : "blocked";
  return std::string("{") + a + ", gemv_max_rows " + std::to_string(c.gemv_max_rows) + "}";
}

}  // namespace dsk::gemm
