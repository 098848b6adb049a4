// Backend tags: the template argument after the config of every kernel entry point, op<Config, Backend>,
// selects where it runs (see dsk/core/exec.hpp for the host's explicit packet-layer tags).
// dsk::host picks the best SIMD path compiled into the translation unit; dsk::cuda runs on the GPU.
#pragma once

#include <concepts>

namespace dsk {

struct host {};  // scalar reference + SIMD, on the calling thread(s)
struct cuda {};  // CUDA kernels (include dsk/cuda.cuh; built with nvcc or under the SIMT emulation)

template <class B>
concept backend = std::same_as<B, host> || std::same_as<B, cuda>;

}  // namespace dsk
