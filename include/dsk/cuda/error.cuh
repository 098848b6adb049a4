// CUDA runtime errors as dsk errors: every failed runtime call throws dsk::device::error naming the call, the
// CUDA error code and where it was made. Native (nvcc) builds; under the emulation nothing can fail this way.
// Checked in tests/cuda/runtime.cu.
#pragma once

#include <string>

#include "dsk/core/error.hpp"
#include "dsk/core/source_location.hpp"
#include "dsk/cuda/platform.cuh"

namespace dsk::device {

// A failed CUDA runtime call or kernel launch. code() is the cudaError_t value (0 under the emulation).
class error : public dsk::error {
 public:
  error(const std::string& what, int code) : dsk::error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

#if !DSK_SIMT_EMULATION
// Throws dsk::device::error when `e` is not cudaSuccess:
//   "dsk::device: cudaMalloc(&p, bytes) failed: cudaErrorMemoryAllocation (2): out of memory [file.cu:12]"
inline void check(cudaError_t e, const char* call,
                  dsk::source_location loc = dsk::source_location::current()) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so that later calls do not report it again
  throw error(
      dsk::detail::concat("dsk::device: ", call, " failed: ", cudaGetErrorName(e), " (", static_cast<int>(e),
                          "): ", cudaGetErrorString(e), " [", loc.file_name(), ":", loc.line(), "]"),
      static_cast<int>(e));
}
#define DSK_CUDA_CHECK(...) ::dsk::device::check((__VA_ARGS__), #__VA_ARGS__)
#endif

}  // namespace dsk::device
